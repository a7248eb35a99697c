// wirePod and unwirePod over the map-backed rtnetlink fake: what ADD leaves in
// the two namespaces (the kernel tier runs the same against the real kernel,
// test/kernel/plugin.test.ts), and that a failure at any step leaves nothing.
import { describe, expect, it } from 'vitest';
import { Errno, NetlinkError } from '../../../src/errors.ts';
import { formatIp } from '../../../src/ip.ts';
import * as C from '../../../src/netlink/constants.ts';
import { FakeNetworks } from '../../../src/netlink/fake-rtnl.ts';
import { GATEWAY4, GATEWAY6, HOST_VETH_MAC, hostVethAlias, hostVethName, podMac, RTPROT_WEIR } from '../../../src/plugin/names.ts';
import { unwirePod, type WireRequest, wirePod } from '../../../src/plugin/wiring.ts';
import type { Netns } from '../../../src/sys/netns.ts';

const HOST = 1000;
const POD = 1001;
const CID = 'c0ffee'.padEnd(64, '0');
const req: WireRequest = {
  network: 'weir',
  containerID: CID,
  ifname: 'eth0',
  podNamespace: 'shop',
  podName: 'web',
  addresses: ['10.244.1.5', 'fd00:244:1::5'],
  mtu: 1400,
};

function world() {
  const w = new FakeNetworks();
  const sysctls: string[] = [];
  const podNs = { fd: POD, path: '/run/netns/fake-pod' } as Netns;
  const wire = (r: WireRequest = req) =>
    wirePod(w.handle(HOST), w.handle(POD), podNs, r, (key, value, ns) => {
      sysctls.push(`${ns ? 'pod' : 'host'} ${key}=${value}`);
      return true;
    });
  return { w, host: w.handle(HOST), pod: w.handle(POD), wire, sysctls };
}

const text = (b: Uint8Array | undefined): string => (b ? formatIp(b) : '-');

describe('wirePod over the rtnetlink fake', () => {
  it("a dual-stack pod: a veth pair, the pod's /32 and /128 behind link-local gateways, host routes of protocol 87", () => {
    const { host, pod, wire, sysctls } = world();
    const { host: h, pod: p } = wire();
    const hostLink = host.linkGet({ name: hostVethName(CID, 'eth0') });
    expect(hostLink).toMatchObject({ index: h.index, kind: 'veth', mac: HOST_VETH_MAC, mtu: 1400, alias: hostVethAlias(req) });
    expect((hostLink?.flags ?? 0) & C.IFF_UP).toBe(C.IFF_UP);
    expect(pod.linkGet({ name: 'eth0' })).toMatchObject({ index: p.index, mac: podMac(new Uint8Array([10, 244, 1, 5])), mtu: 1400 });
    expect(
      pod
        .addrList()
        .map((a) => `${text(a.address)}/${a.prefix}`)
        .sort(),
    ).toEqual(['10.244.1.5/32', 'fd00:244:1::5/128']);
    expect(
      host
        .addrList()
        .map((a) => `${text(a.address)}/${a.prefix} scope ${a.scope}`)
        .sort(),
    ).toEqual([`${GATEWAY4}/32 scope ${C.RT_SCOPE_HOST}`, `${GATEWAY6}/64 scope ${C.RT_SCOPE_LINK}`]);
    expect(pod.routeList(4).map((r) => `${text(r.dst)}/${r.dstLen} via ${text(r.gateway)}`)).toEqual([`${GATEWAY4}/32 via -`, `0.0.0.0/0 via ${GATEWAY4}`]);
    expect(pod.routeList(6).map((r) => `${text(r.dst)}/${r.dstLen} via ${text(r.gateway)}`)).toEqual([`::/0 via ${GATEWAY6}`]);
    expect([...host.routeList(4), ...host.routeList(6)].map((r) => `${text(r.dst)}/${r.dstLen} oif ${r.oif} proto ${r.protocol}`)).toEqual([
      `10.244.1.5/32 oif ${h.index} proto ${RTPROT_WEIR}`,
      `fd00:244:1::5/128 oif ${h.index} proto ${RTPROT_WEIR}`,
    ]);
    expect([...pod.neighList(4), ...pod.neighList(6)].map((n) => `${text(n.address)} ${n.mac} ${n.state}`)).toEqual([
      `${GATEWAY4} ${HOST_VETH_MAC} ${C.NUD_PERMANENT}`,
      `${GATEWAY6} ${HOST_VETH_MAC} ${C.NUD_PERMANENT}`,
    ]);
    // IPv6: no duplicate address detection on either end (else the pod's first packets stall).
    expect(sysctls).toEqual([`host net/ipv6/conf/${hostVethName(CID, 'eth0')}/accept_dad=0`, 'pod net/ipv6/conf/eth0/accept_dad=0']);
  });

  it('an IPv4-only pod touches no IPv6 sysctl and gets no IPv6 address or route', () => {
    const { host, pod, wire, sysctls } = world();
    wire({ ...req, addresses: ['10.244.1.6'] });
    expect(sysctls).toEqual([]);
    expect([...pod.addrList(6), ...host.addrList(6)]).toEqual([]);
    expect([...pod.routeList(6), ...host.routeList(6)]).toEqual([]);
  });

  it('an ADD retried after one killed part-way starts from scratch: one veth pair, the same result', () => {
    const { w, host, pod, wire } = world();
    w.failNext('routeReplace', Errno.EINTR);
    // A veth left behind by an ADD that never finished: a fresh request must replace it, not fail on it.
    host.createVeth({ name: hostVethName(CID, 'eth0'), peerName: 'tmp-eth0', peerNetnsFd: 2000 });
    expect(() => wire()).toThrow(NetlinkError);
    wire();
    expect(host.linkList().filter((l) => l.kind === 'veth')).toHaveLength(1);
    expect(
      pod
        .linkList()
        .map((l) => l.name)
        .sort(),
    ).toEqual(['eth0', 'lo']);
    expect(host.routeList(4)).toHaveLength(1);
  });

  it('an interface of that name already in the pod (not ours) is EEXIST, and nothing is left on the host', () => {
    const { host, pod, wire } = world();
    pod.createVeth({ name: 'eth0', peerName: 'other', peerNetnsFd: 2000 });
    expect(() => wire()).toThrow(expect.objectContaining({ errno: Errno.EEXIST }));
    expect(host.linkList().map((l) => l.name)).toEqual(['lo']);
  });

  for (const op of ['linkSet', 'addrAdd', 'neighReplace', 'routeReplace'] as const) {
    it(`a failure of ${op} part-way removes the pair, and with it every address, route and neighbour`, () => {
      const { w, host, pod, wire } = world();
      w.failNext(op, Errno.ENETUNREACH);
      expect(() => wire()).toThrow(expect.objectContaining({ errno: Errno.ENETUNREACH }));
      expect(host.linkList().map((l) => l.name)).toEqual(['lo']);
      expect(pod.linkList().map((l) => l.name)).toEqual(['lo']);
      expect([...host.addrList(), ...pod.addrList(), ...host.routeList(4), ...host.routeList(6), ...pod.routeList(4), ...pod.neighList(4)]).toEqual([]);
    });
  }

  it('unwirePod removes both ends and is idempotent', () => {
    const { host, pod, wire } = world();
    wire();
    expect(unwirePod(host, CID, 'eth0')).toBe(true);
    expect(pod.linkGet({ name: 'eth0' })).toBeUndefined();
    expect(host.routeList(4)).toEqual([]);
    expect(unwirePod(host, CID, 'eth0')).toBe(false);
  });
});
