// NetlinkHandle against the real kernel. Needs root (CAP_NET_ADMIN + CAP_SYS_ADMIN).
//
// Every test works in fresh namespaces from test/helpers/netns.ts, destroyed in
// afterEach even when the test fails. Nothing is configured in the root
// namespace: handles are only ever opened inside the test's namespaces, and
// every check runs `ip -n <ns>` against them.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isAlreadyExists, isNotFound } from '../../src/errors.ts';
import * as C from '../../src/netlink/constants.ts';
import type { Link } from '../../src/netlink/link.ts';
import { NetlinkHandle } from '../../src/netlink/rtnl-handle.ts';
import { inNetns, Netns } from '../../src/sys/netns.ts';
import { catchNetlink } from '../helpers/netlink.ts';
import { sh, type TestNetns, withNetnsCleanup } from '../helpers/netns.ts';

const scope = withNetnsCleanup('netlink');

// ---- helpers ----

const selfNetns = (): string => fs.readlinkSync('/proc/thread-self/ns/net');

/** A handle bound to `ns`; the handle and the namespace fd are closed in afterEach. */
function handleIn(ns: TestNetns): { h: NetlinkHandle; netns: Netns } {
  const netns = Netns.open(ns.path);
  scope.defer(() => netns.close());
  const h = NetlinkHandle.open(netns);
  scope.defer(() => h.close());
  return { h, netns };
}

const v4 = (s: string): Uint8Array => Uint8Array.from(s.split('.').map(Number));
function v6(s: string): Uint8Array {
  const [head = '', tail = ''] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = s.includes('::') && tail ? tail.split(':') : [];
  const groups = s.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const b = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) b.writeUInt16BE(parseInt(g, 16), i * 2);
  return Uint8Array.from(b);
}
const eqBytes = (a: Uint8Array | undefined, b: Uint8Array): boolean => !!a && Buffer.from(a).equals(Buffer.from(b));

interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  operstate: string;
  address?: string;
  ifalias?: string;
  link_netnsid?: number;
  link_index?: number;
  linkinfo?: { info_kind?: string };
}
interface IpAddr {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string; nodad?: boolean; tentative?: boolean; dadfailed?: boolean }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
  type?: string;
  flags: string[];
  metrics?: Record<string, number>[];
}
interface IpNeigh {
  dst: string;
  dev?: string;
  lladdr?: string;
  state: string[];
}

const ipLink = (ns: TestNetns, dev: string): IpLink => {
  const [l] = ns.ipJson<IpLink[]>(['-d', 'link', 'show', 'dev', dev]);
  if (!l) throw new Error(`no link ${dev} in ${ns.name}`);
  return l;
};
/** `ip -j addr show` entries; iproute2 emits `{}` for addresses its filter skipped, so drop those. */
const ipAddrs = (ns: TestNetns, family: '-4' | '-6', args: string[]): IpAddr['addr_info'] =>
  ns.ipJson<IpAddr[]>([family, 'addr', 'show', ...args]).flatMap((l) => l.addr_info.filter((x) => x.local !== undefined));
const ipLinkExists = (ns: TestNetns, dev: string): boolean => ns.run(['ip', 'link', 'show', 'dev', dev]).code === 0;

/** Gets a link by name through the handle, failing the test if it is missing. */
function mustGet(h: NetlinkHandle, name: string): Link {
  const l = h.linkGet({ name });
  if (!l) throw new Error(`link ${name} not found`);
  return l;
}

/**
 * Namespace `a` holds `veth-a`, its peer `eth0` lives in namespace `b`: the
 * layout weir builds for a pod. Both ends up, so routes and neighbours see carrier.
 */
function vethPair(opts: { up?: boolean; mtu?: number } = {}) {
  const a = scope.create('a');
  const b = scope.create('b');
  const A = handleIn(a);
  const B = handleIn(b);
  A.h.createVeth({ name: 'veth-a', peerName: 'eth0', peerNetnsFd: B.netns.fd, ...(opts.mtu ? { mtu: opts.mtu } : {}) });
  const host = mustGet(A.h, 'veth-a');
  const peer = mustGet(B.h, 'eth0');
  if (opts.up) {
    A.h.linkSet(host.index, { up: true });
    B.h.linkSet(peer.index, { up: true });
  }
  return { a, b, ha: A.h, hb: B.h, host, peer };
}

// ---- tests ----

describe('NetlinkHandle (kernel)', () => {
  it('opens a handle in a fresh namespace and lists only lo', () => {
    const ns = scope.create();
    const { h } = handleIn(ns);
    const links = h.linkList();
    expect(links.map((l) => l.name)).toEqual(['lo']);
    expect(links[0]).toMatchObject({ index: 1, name: 'lo', mtu: 65536, mac: '00:00:00:00:00:00' });
    expect(h.linkGet({ name: 'lo' })?.index).toBe(1);
    expect(h.linkGet({ index: 1 })?.name).toBe('lo');
    expect(h.linkGet({ name: 'nope0' })).toBeUndefined();
    expect(h.linkGet({ index: 4242 })).toBeUndefined();
    expect(h.addrList()).toEqual([]);
  });

  it('creates a veth pair with the peer placed straight into a second namespace by fd', () => {
    const a = scope.create('a');
    const b = scope.create('b');
    const A = handleIn(a);
    const B = handleIn(b);
    A.h.createVeth({
      name: 'veth-a',
      peerName: 'eth0',
      peerNetnsFd: B.netns.fd,
      mtu: 1450,
      mac: '02:00:00:00:00:0a',
      peerMac: '0a:58:0a:f4:01:05',
    });

    // Through the handles.
    const host = mustGet(A.h, 'veth-a');
    const peer = mustGet(B.h, 'eth0');
    expect(host).toMatchObject({ name: 'veth-a', kind: 'veth', mtu: 1450, mac: '02:00:00:00:00:0a', parentIndex: peer.index });
    expect(peer).toMatchObject({ name: 'eth0', kind: 'veth', mtu: 1450, mac: '0a:58:0a:f4:01:05', parentIndex: host.index });
    expect(host.linkNetnsId).toBeGreaterThanOrEqual(0);
    expect(peer.linkNetnsId).toBeGreaterThanOrEqual(0);
    expect(
      A.h
        .linkList()
        .map((l) => l.name)
        .sort(),
    ).toEqual(['lo', 'veth-a']);
    expect(
      B.h
        .linkList()
        .map((l) => l.name)
        .sort(),
    ).toEqual(['eth0', 'lo']);

    // Through iproute2: each end in its own namespace, and only there.
    expect(ipLink(a, 'veth-a')).toMatchObject({ ifname: 'veth-a', mtu: 1450, address: '02:00:00:00:00:0a', linkinfo: { info_kind: 'veth' } });
    expect(ipLink(b, 'eth0')).toMatchObject({ ifname: 'eth0', mtu: 1450, address: '0a:58:0a:f4:01:05', linkinfo: { info_kind: 'veth' } });
    expect(ipLinkExists(a, 'eth0')).toBe(false);
    expect(ipLinkExists(b, 'veth-a')).toBe(false);
    // iproute2 resolves the peer's namespace by the netnsid: it must be b.
    expect(a.sh(['ip', 'link', 'show', 'dev', 'veth-a'])).toContain(`link-netns ${b.name}`);
    expect(b.sh(['ip', 'link', 'show', 'dev', 'eth0'])).toContain(`link-netns ${a.name}`);
    // Nothing leaked into the namespace this process runs in.
    expect(
      sh('ip', ['-o', 'link', 'show'])
        .split('\n')
        .some((l) => /\sveth-a[@:]/.test(l)),
    ).toBe(false);

    // A second create with the same names is refused.
    const dup = catchNetlink(() => A.h.createVeth({ name: 'veth-a', peerName: 'eth0', peerNetnsFd: B.netns.fd }));
    expect(dup.errno).toBe(17);
    expect(isAlreadyExists(dup)).toBe(true);

    // Deleting one end removes both.
    A.h.linkDelete(host.index);
    expect(A.h.linkGet({ name: 'veth-a' })).toBeUndefined();
    expect(B.h.linkGet({ name: 'eth0' })).toBeUndefined();
    expect(ipLinkExists(b, 'eth0')).toBe(false);
  });

  it('creates a veth pair without an MTU: both ends get the default 1500', () => {
    const { a, b, ha, host, peer } = vethPair();
    expect(host.mtu).toBe(1500);
    expect(peer.mtu).toBe(1500);
    expect(ipLink(a, 'veth-a').mtu).toBe(1500);
    expect(ipLink(b, 'eth0').mtu).toBe(1500);
    ha.linkDelete(host.index);
  });

  // Known bug (reported against src/netlink/rtnl-handle.ts createVeth): the kernel's
  // rtnl_create_link ignores IFLA_IFALIAS, so the alias in VethSpec is silently
  // dropped. This canary pins the current behaviour; once createVeth sets the
  // alias with a follow-up RTM_NEWLINK, change the expectation to the alias.
  it('sets an alias on a new veth after creation (the kernel ignores it at creation)', () => {
    const a = scope.create('a');
    const b = scope.create('b');
    const A = handleIn(a);
    const B = handleIn(b);
    A.h.createVeth({ name: 'veth-a', peerName: 'eth0', peerNetnsFd: B.netns.fd });
    const host = mustGet(A.h, 'veth-a');
    expect(ipLink(a, 'veth-a').ifalias).toBeUndefined();
    A.h.linkSet(host.index, { alias: 'pod ns/name' });
    expect(mustGet(A.h, 'veth-a').alias).toBe('pod ns/name');
    expect(ipLink(a, 'veth-a').ifalias).toBe('pod ns/name');
    A.h.linkDelete(host.index);
  });

  it('sets a link up and down, its MTU, MAC, alias and name', () => {
    const { a, b, ha, hb, host, peer } = vethPair();
    expect(ipLink(a, 'veth-a').flags).not.toContain('UP');

    ha.linkSet(host.index, { up: true });
    expect(ipLink(a, 'veth-a').flags).toContain('UP');
    expect(mustGet(ha, 'veth-a').flags & C.IFF_UP).toBe(C.IFF_UP);
    // Carrier comes once the peer is up too.
    hb.linkSet(peer.index, { up: true });
    expect(ipLink(a, 'veth-a').flags).toEqual(expect.arrayContaining(['UP', 'LOWER_UP']));
    expect(ipLink(b, 'eth0').flags).toEqual(expect.arrayContaining(['UP', 'LOWER_UP']));

    // Changing other attributes leaves the up/down state alone.
    ha.linkSet(host.index, { mtu: 9000 });
    expect(ipLink(a, 'veth-a')).toMatchObject({ mtu: 9000, flags: expect.arrayContaining(['UP']) });
    expect(ipLink(b, 'eth0').mtu).toBe(1500); // the peer keeps its own MTU

    ha.linkSet(host.index, { mac: 'EE:EE:EE:EE:EE:EE' });
    expect(ipLink(a, 'veth-a').address).toBe('ee:ee:ee:ee:ee:ee');
    expect(mustGet(ha, 'veth-a').mac).toBe('ee:ee:ee:ee:ee:ee');

    ha.linkSet(host.index, { alias: 'weir pod default/web-0' });
    expect(ipLink(a, 'veth-a').ifalias).toBe('weir pod default/web-0');
    expect(mustGet(ha, 'veth-a').alias).toBe('weir pod default/web-0');
    ha.linkSet(host.index, { alias: '' }); // an empty alias clears it
    expect(ipLink(a, 'veth-a').ifalias).toBeUndefined();
    expect(mustGet(ha, 'veth-a').alias).toBeUndefined();

    ha.linkSet(host.index, { up: false });
    expect(ipLink(a, 'veth-a').flags).not.toContain('UP');
    expect(ipLink(a, 'veth-a').mtu).toBe(9000);

    // Several changes in one request, including a rename (the link is down).
    ha.linkSet(host.index, { name: 'veth-b', mtu: 1400, up: true });
    expect(ipLinkExists(a, 'veth-a')).toBe(false);
    expect(ipLink(a, 'veth-b')).toMatchObject({ ifindex: host.index, mtu: 1400, flags: expect.arrayContaining(['UP']) });

    // A bad MTU is refused by the kernel with its reason.
    const tooSmall = catchNetlink(() => ha.linkSet(host.index, { mtu: 10 }));
    expect(tooSmall.errno).toBe(22);
    expect(ipLink(a, 'veth-b').mtu).toBe(1400);

    ha.linkDelete(host.index);
    expect(ipLinkExists(a, 'veth-b')).toBe(false);
  });

  it('adds, lists and deletes IPv4 and IPv6 addresses', () => {
    const { a, ha, host } = vethPair({ up: true });

    ha.addrAdd({ family: 4, address: v4('10.244.1.1'), prefix: 24, index: host.index });
    ha.addrAdd({ family: 6, address: v6('fd00:10:244:1::1'), prefix: 64, index: host.index, flags: C.IFA_F_NODAD });

    expect(ipAddrs(a, '-4', ['dev', 'veth-a'])).toEqual([expect.objectContaining({ family: 'inet', local: '10.244.1.1', prefixlen: 24, scope: 'global' })]);
    const ip6 = ipAddrs(a, '-6', ['dev', 'veth-a', 'scope', 'global']);
    expect(ip6).toEqual([expect.objectContaining({ family: 'inet6', local: 'fd00:10:244:1::1', prefixlen: 64, nodad: true })]);
    expect(ip6[0]?.tentative).toBeUndefined(); // NODAD: usable at once

    const v4list = ha.addrList(4).filter((x) => x.index === host.index);
    expect(v4list).toEqual([{ family: 4, address: v4('10.244.1.1'), prefix: 24, index: host.index, scope: 0, flags: C.IFA_F_PERMANENT, label: 'veth-a' }]);
    const mine6 = ha.addrList(6).find((x) => eqBytes(x.address, v6('fd00:10:244:1::1')));
    expect(mine6).toMatchObject({ family: 6, prefix: 64, index: host.index, scope: 0 });
    expect(mine6!.flags & C.IFA_F_NODAD).toBe(C.IFA_F_NODAD);
    expect(mine6!.flags & C.IFA_F_PERMANENT).toBe(C.IFA_F_PERMANENT);
    // AF_UNSPEC dumps both families.
    const all = ha.addrList().filter((x) => x.index === host.index);
    expect(new Set(all.map((x) => x.family))).toEqual(new Set([4, 6]));

    // A second address on the same link, then delete one at a time.
    ha.addrAdd({ family: 4, address: v4('10.244.1.2'), prefix: 32, index: host.index });
    expect(ipAddrs(a, '-4', ['dev', 'veth-a']).map((x) => `${x.local}/${x.prefixlen}`)).toEqual(['10.244.1.1/24', '10.244.1.2/32']);
    ha.addrDelete({ family: 4, address: v4('10.244.1.2'), prefix: 32, index: host.index });
    ha.addrDelete({ family: 4, address: v4('10.244.1.1'), prefix: 24, index: host.index });
    ha.addrDelete({ family: 6, address: v6('fd00:10:244:1::1'), prefix: 64, index: host.index });
    expect(ipAddrs(a, '-4', ['dev', 'veth-a'])).toEqual([]);
    expect(ipAddrs(a, '-6', ['dev', 'veth-a', 'scope', 'global'])).toEqual([]);
    expect(ha.addrList(4).filter((x) => x.index === host.index)).toEqual([]);

    // Deleting what is not there: EADDRNOTAVAIL.
    const gone = catchNetlink(() => ha.addrDelete({ family: 4, address: v4('10.244.1.1'), prefix: 24, index: host.index }));
    expect(gone.errno).toBe(99);

    ha.linkDelete(host.index);
  });

  it('adds, replaces and deletes IPv4 routes: /32 scope link, default via gateway, onlink, table 1000, metrics', () => {
    const { a, ha, host } = vethPair({ up: true });
    ha.addrAdd({ family: 4, address: v4('10.244.1.1'), prefix: 24, index: host.index });
    const oif = host.index;
    const showMain = () => a.ipJson<IpRoute[]>(['route', 'show']);
    const showAll = () => a.ipJson<IpRoute[]>(['route', 'show', 'table', 'all']);
    const find = (rs: IpRoute[], dst: string, table?: string) => rs.filter((r) => r.dst === dst && r.table === table);

    // /32 scope-link route to a pod.
    const podRoute = { family: 4 as const, dst: v4('10.244.2.7'), dstLen: 32, oif, scope: C.RT_SCOPE_LINK };
    ha.routeAdd(podRoute);
    expect(find(showMain(), '10.244.2.7')).toEqual([
      // iproute2 leaves `protocol` out for RTPROT_BOOT; routeList checks it below.
      expect.objectContaining({ dst: '10.244.2.7', dev: 'veth-a', scope: 'link' }),
    ]);
    const dupe = catchNetlink(() => ha.routeAdd(podRoute));
    expect(dupe.errno).toBe(17);

    // Default route via a gateway on the connected subnet, then replaced.
    ha.routeAdd({ family: 4, dstLen: 0, gateway: v4('10.244.1.254'), oif });
    expect(find(showMain(), 'default')).toEqual([expect.objectContaining({ gateway: '10.244.1.254', dev: 'veth-a' })]);
    ha.routeReplace({ family: 4, dstLen: 0, gateway: v4('10.244.1.253'), oif });
    expect(find(showMain(), 'default')).toEqual([expect.objectContaining({ gateway: '10.244.1.253', dev: 'veth-a' })]);

    // A gateway outside every connected subnet needs RTNH_F_ONLINK.
    const offLink = { family: 4 as const, dst: v4('10.99.0.0'), dstLen: 16, gateway: v4('192.0.2.1'), oif };
    const refused = catchNetlink(() => ha.routeAdd(offLink));
    expect(refused.errno).toBe(101); // ENETUNREACH: "Nexthop has invalid gateway"
    ha.routeAdd({ ...offLink, flags: C.RTNH_F_ONLINK });
    expect(find(showMain(), '10.99.0.0/16')).toEqual([
      expect.objectContaining({ gateway: '192.0.2.1', dev: 'veth-a', flags: expect.arrayContaining(['onlink']) }),
    ]);

    // Table 1000 (> 255: only expressible in RTA_TABLE), with metrics and a priority.
    const t1000 = { family: 4 as const, dst: v4('10.98.0.0'), dstLen: 16, oif, scope: C.RT_SCOPE_LINK, table: 1000, priority: 50, mtu: 1400, advmss: 1360 };
    ha.routeAdd(t1000);
    expect(find(showMain(), '10.98.0.0/16')).toEqual([]);
    const inTable = a.ipJson<IpRoute[]>(['route', 'show', 'table', '1000']);
    expect(inTable).toEqual([expect.objectContaining({ dst: '10.98.0.0/16', dev: 'veth-a', scope: 'link' })]);
    expect(find(showAll(), '10.98.0.0/16', '1000')).toHaveLength(1);
    expect(Object.assign({}, ...(inTable[0]?.metrics ?? []))).toEqual({ mtu: 1400, advmss: 1360 });

    // routeList decodes what the kernel dumps.
    const listed = ha.routeList(4);
    const byDst = (dst: string, len: number, table = 254) =>
      listed.filter((r) => r.dstLen === len && (len === 0 || eqBytes(r.dst, v4(dst))) && r.table === table);
    expect(byDst('10.244.2.7', 32)).toEqual([
      expect.objectContaining({ family: 4, oif, scope: C.RT_SCOPE_LINK, protocol: C.RTPROT_BOOT, type: C.RTN_UNICAST }),
    ]);
    const [dflt] = byDst('0.0.0.0', 0);
    expect(dflt?.dst).toBeUndefined();
    expect(eqBytes(dflt?.gateway, v4('10.244.1.253'))).toBe(true);
    const [onlink] = byDst('10.99.0.0', 16);
    expect(onlink!.flags! & C.RTNH_F_ONLINK).toBe(C.RTNH_F_ONLINK);
    expect(byDst('10.98.0.0', 16, 1000)).toEqual([expect.objectContaining({ oif, priority: 50, mtu: 1400, advmss: 1360, table: 1000 })]);
    // the kernel's own connected route and the local table are in the dump too
    expect(byDst('10.244.1.0', 24)).toEqual([expect.objectContaining({ protocol: 2, scope: C.RT_SCOPE_LINK, prefsrc: v4('10.244.1.1') })]);
    expect(listed.some((r) => r.table === 255 && r.type === C.RTN_LOCAL && eqBytes(r.dst, v4('10.244.1.1')))).toBe(true);

    // Deleting matches rtm_scope/rtm_protocol/rtm_type unless they are wildcards
    // (RT_SCOPE_NOWHERE = 255, 0, 0), as `ip route del` sends them.
    const wild = { family: 4 as const, dst: v4('10.244.3.0'), dstLen: 24, oif, scope: C.RT_SCOPE_LINK, protocol: 0x9e };
    ha.routeAdd(wild);
    expect(find(showMain(), '10.244.3.0/24')).toHaveLength(1);
    ha.routeDelete({ family: 4, dst: v4('10.244.3.0'), dstLen: 24, oif, scope: 255, protocol: 0, type: 0 });
    expect(find(showMain(), '10.244.3.0/24')).toEqual([]);

    // Delete everything we added.
    ha.routeDelete(t1000);
    ha.routeDelete({ ...offLink, flags: C.RTNH_F_ONLINK });
    ha.routeDelete({ family: 4, dstLen: 0, gateway: v4('10.244.1.253'), oif });
    ha.routeDelete(podRoute);
    expect(a.ipJson<IpRoute[]>(['route', 'show', 'table', '1000'])).toEqual([]);
    expect(showMain().map((r) => r.dst)).toEqual(['10.244.1.0/24']);
    const missing = catchNetlink(() => ha.routeDelete(podRoute));
    expect(missing.errno).toBe(3); // ESRCH
    expect(isNotFound(missing)).toBe(true);

    ha.addrDelete({ family: 4, address: v4('10.244.1.1'), prefix: 24, index: host.index });
    ha.linkDelete(host.index);
  });

  it('adds, replaces and deletes IPv6 routes, checked with `ip -6 route show table all`', () => {
    const { a, ha, host } = vethPair({ up: true });
    const oif = host.index;
    ha.addrAdd({ family: 6, address: v6('fd00:1::1'), prefix: 64, index: oif, flags: C.IFA_F_NODAD });
    const show = () => a.ipJson<IpRoute[]>(['-6', 'route', 'show', 'table', 'all']);
    const find = (dst: string, table?: string) => show().filter((r) => r.dst === dst && r.table === table && r.type !== 'local' && r.type !== 'multicast');

    const host128 = { family: 6 as const, dst: v6('fd00:2::7'), dstLen: 128, oif };
    ha.routeAdd(host128);
    expect(find('fd00:2::7')).toEqual([expect.objectContaining({ dev: 'veth-a' })]);

    const viaGw = { family: 6 as const, dst: v6('fd00:3::'), dstLen: 64, gateway: v6('fd00:1::2'), oif };
    ha.routeAdd(viaGw);
    expect(find('fd00:3::/64')).toEqual([expect.objectContaining({ gateway: 'fd00:1::2', dev: 'veth-a' })]);
    ha.routeReplace({ ...viaGw, gateway: v6('fd00:1::3') });
    expect(find('fd00:3::/64')).toEqual([expect.objectContaining({ gateway: 'fd00:1::3', dev: 'veth-a' })]);

    // Default route via a link-local gateway (what a pod gets).
    const dflt = { family: 6 as const, dstLen: 0, gateway: v6('fe80::1'), oif };
    ha.routeAdd(dflt);
    expect(find('default')).toEqual([expect.objectContaining({ gateway: 'fe80::1', dev: 'veth-a' })]);

    const t1000 = { family: 6 as const, dst: v6('fd00:4::'), dstLen: 64, oif, table: 1000, mtu: 1400 };
    ha.routeAdd(t1000);
    expect(find('fd00:4::/64')).toEqual([]);
    const inTable = find('fd00:4::/64', '1000');
    expect(inTable).toEqual([expect.objectContaining({ dev: 'veth-a' })]);
    expect(Object.assign({}, ...(inTable[0]?.metrics ?? []))).toMatchObject({ mtu: 1400 });

    const listed = ha.routeList(6);
    expect(listed.filter((r) => r.table === 1000 && eqBytes(r.dst, v6('fd00:4::')))).toEqual([
      expect.objectContaining({ family: 6, dstLen: 64, oif, mtu: 1400 }),
    ]);
    expect(listed.filter((r) => r.dstLen === 0 && r.table === 254 && eqBytes(r.gateway, v6('fe80::1')))).toHaveLength(1);
    expect(listed.filter((r) => r.dstLen === 128 && eqBytes(r.dst, v6('fd00:2::7')))).toEqual([
      expect.objectContaining({ oif, protocol: C.RTPROT_BOOT, table: 254, type: C.RTN_UNICAST }),
    ]);

    ha.routeDelete(t1000);
    ha.routeDelete(dflt);
    ha.routeDelete({ ...viaGw, gateway: v6('fd00:1::3') });
    ha.routeDelete(host128);
    for (const dst of ['fd00:2::7', 'fd00:3::/64', 'default']) expect(find(dst)).toEqual([]);
    expect(find('fd00:4::/64', '1000')).toEqual([]);
    expect(catchNetlink(() => ha.routeDelete(host128)).errno).toBe(3); // ESRCH

    ha.addrDelete({ family: 6, address: v6('fd00:1::1'), prefix: 64, index: oif });
    ha.linkDelete(host.index);
  });

  it('replaces neighbours with NUD_PERMANENT entries', () => {
    const { a, ha, host } = vethPair({ up: true });
    ha.addrAdd({ family: 4, address: v4('10.244.1.1'), prefix: 24, index: host.index });
    const showNeigh = (fam: '-4' | '-6') => a.ipJson<IpNeigh[]>([fam, 'neigh', 'show', 'dev', 'veth-a']);

    ha.neighReplace({ family: 4, index: host.index, address: v4('169.254.1.1'), mac: 'ee:ee:ee:ee:ee:ee', state: C.NUD_PERMANENT });
    expect(showNeigh('-4')).toEqual([expect.objectContaining({ dst: '169.254.1.1', lladdr: 'ee:ee:ee:ee:ee:ee', state: ['PERMANENT'] })]);
    // Replace is idempotent and updates the MAC in place.
    ha.neighReplace({ family: 4, index: host.index, address: v4('169.254.1.1'), mac: '02:00:00:00:00:01', state: C.NUD_PERMANENT });
    expect(showNeigh('-4')).toEqual([expect.objectContaining({ dst: '169.254.1.1', lladdr: '02:00:00:00:00:01', state: ['PERMANENT'] })]);

    ha.neighReplace({ family: 6, index: host.index, address: v6('fe80::1'), mac: 'ee:ee:ee:ee:ee:ee', state: C.NUD_PERMANENT });
    expect(showNeigh('-6').filter((n) => n.dst === 'fe80::1')).toEqual([expect.objectContaining({ lladdr: 'ee:ee:ee:ee:ee:ee', state: ['PERMANENT'] })]);

    expect(ha.neighList(4).filter((n) => n.index === host.index)).toEqual([
      { family: 4, index: host.index, address: v4('169.254.1.1'), mac: '02:00:00:00:00:01', state: C.NUD_PERMANENT },
    ]);
    expect(ha.neighList(6).filter((n) => n.index === host.index && eqBytes(n.address, v6('fe80::1')))).toEqual([
      expect.objectContaining({ mac: 'ee:ee:ee:ee:ee:ee', state: C.NUD_PERMANENT }),
    ]);

    // The handle has no neighbour delete: remove them with iproute2.
    a.sh(['ip', 'neigh', 'del', '169.254.1.1', 'dev', 'veth-a']);
    a.sh(['ip', '-6', 'neigh', 'del', 'fe80::1', 'dev', 'veth-a']);
    expect(showNeigh('-4')).toEqual([]);
    expect(ha.neighList(4).filter((n) => n.index === host.index)).toEqual([]);

    ha.addrDelete({ family: 4, address: v4('10.244.1.1'), prefix: 24, index: host.index });
    ha.linkDelete(host.index);
  });

  describe('errors', () => {
    it('deleting a missing link gives NetlinkError with errno 19 (ENODEV)', () => {
      const { h } = handleIn(scope.create());
      const e = catchNetlink(() => h.linkDelete(4242));
      expect(e.errno).toBe(19);
      expect(e.message).toContain('ENODEV');
      expect(isNotFound(e)).toBe(true);
      // the handle stays usable after an error
      expect(h.linkList().map((l) => l.name)).toEqual(['lo']);
    });

    it('adding a duplicate address gives errno 17 (EEXIST) with the kernel extended-ack message', () => {
      const { ha, host } = vethPair({ up: true });
      const v4addr = { family: 4 as const, address: v4('10.244.1.1'), prefix: 24, index: host.index };
      ha.addrAdd(v4addr);
      const e4 = catchNetlink(() => ha.addrAdd(v4addr));
      expect(e4.errno).toBe(17);
      expect(isAlreadyExists(e4)).toBe(true);
      expect(e4.message).toMatch(/EEXIST \(errno 17\): ipv4: Address already assigned$/);

      const v6addr = { family: 6 as const, address: v6('fd00::1'), prefix: 64, index: host.index, flags: C.IFA_F_NODAD };
      ha.addrAdd(v6addr);
      const e6 = catchNetlink(() => ha.addrAdd(v6addr));
      expect(e6.errno).toBe(17);
      expect(e6.message).toMatch(/ipv6: address already assigned$/i);

      ha.addrDelete(v6addr);
      ha.addrDelete(v4addr);
      ha.linkDelete(host.index);
    });

    it('an unreachable gateway carries the extended-ack reason too', () => {
      const { ha, host } = vethPair({ up: true });
      const e = catchNetlink(() => ha.routeAdd({ family: 4, dst: v4('10.99.0.0'), dstLen: 16, gateway: v4('192.0.2.1'), oif: host.index }));
      expect(e.errno).toBe(101);
      expect(e.message).toMatch(/Nexthop has invalid gateway/);
      ha.linkDelete(host.index);
    });
  });

  describe('namespace confinement', () => {
    it('the thread is back in its original namespace after opening a handle in another', () => {
      const ns = scope.create();
      const before = selfNetns();
      const { h, netns } = handleIn(ns);
      expect(selfNetns()).toBe(before);
      expect(before).not.toBe(`net:[${netns.inode}]`);
      // The handle still talks to the target namespace, not to ours.
      h.createVeth({ name: 'conf0', peerName: 'conf1', peerNetnsFd: netns.fd });
      expect(selfNetns()).toBe(before);
      expect(ipLinkExists(ns, 'conf0')).toBe(true);
      expect(ipLinkExists(ns, 'conf1')).toBe(true);
      expect(
        sh('ip', ['-o', 'link', 'show'])
          .split('\n')
          .some((l) => /\sconf[01][@:]/.test(l)),
      ).toBe(false);
      h.linkDelete(mustGet(h, 'conf0').index);
    });

    it('inNetns runs the callback inside the target and returns even when it throws', () => {
      const ns = scope.create();
      const netns = Netns.open(ns.path);
      scope.defer(() => netns.close());
      const before = selfNetns();

      expect(inNetns(netns, () => selfNetns())).toBe(`net:[${netns.inode}]`);
      expect(selfNetns()).toBe(before);

      const boom = new Error('boom');
      let inside = '';
      expect(() =>
        inNetns(netns, () => {
          inside = selfNetns();
          throw boom;
        }),
      ).toThrow(boom);
      expect(inside).toBe(`net:[${netns.inode}]`);
      expect(selfNetns()).toBe(before);

      // A handle opened after the failure still lands in the right place.
      const h = NetlinkHandle.open(netns);
      scope.defer(() => h.close());
      expect(h.linkList().map((l) => l.name)).toEqual(['lo']);
      expect(selfNetns()).toBe(before);
    });
  });
});
