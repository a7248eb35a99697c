// The built weir plugin (dist/bin/weir) against the real kernel, invoked as a
// runtime invokes it (test/helpers/cni.ts). Each test gets a "node" network
// namespace the plugin runs in, pod namespaces and a temp dataDir, all
// destroyed in afterEach; nothing is configured in the root namespace.
//
// Needs root, busybox and iproute2; run `npm run build` first.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type AttachedPod,
  type CniNode,
  expectCniError,
  expectSuccess,
  gcNetworkList,
  hasLink,
  NODE_IPV4,
  NODE_IPV6,
  NOTHING_LEFT,
  ping,
  podAddresses,
  tcpExchange,
  useCniNodes,
  waitFor,
} from '../helpers/cni.ts';

const nodes = useCniNodes('plugin');

const HOST_MAC = 'ee:ee:ee:ee:ee:ee';

const podMac = (pod: AttachedPod): string => pod.ns.ipJson<{ address: string }[]>(['link', 'show', 'dev', pod.ifname])[0]?.address ?? '(none)';

/** What `ip` shows for a wired pod, on both sides, and its IPAM files. */
function expectWired(node: CniNode, pod: AttachedPod): void {
  expect(pod.ipv4, 'IPv4 address in the result').toMatch(/^10\.244\.1\.\d+$/);
  expect(pod.ipv6, 'IPv6 address in the result').toMatch(/^fd00:10:244:1::[0-9a-f]+$/);
  // Pod side: /32 and /128 on eth0, default routes via the link-local gateways, which resolve permanently to the host veth's MAC.
  expect(podAddresses(pod.ns, pod.ifname).sort()).toEqual([`${pod.ipv4}/32`, `${pod.ipv6}/128`]);
  expect(pod.ns.sh(['ip', '-4', 'route', 'show', 'default'])).toContain(`default via 169.254.1.1 dev ${pod.ifname}`);
  expect(pod.ns.sh(['ip', '-6', 'route', 'show', 'default'])).toContain(`default via fe80::1 dev ${pod.ifname}`);
  expect(pod.ns.sh(['ip', 'neigh', 'show', '169.254.1.1'])).toMatch(new RegExp(`lladdr ${HOST_MAC} PERMANENT`));
  expect(pod.ns.sh(['ip', '-6', 'neigh', 'show', 'fe80::1'])).toMatch(new RegExp(`lladdr ${HOST_MAC} PERMANENT`));
  // Node side: the host veth, named and labelled, with a proto 87 route per
  // address (weirRoutes lists `ip route show proto 87`, which omits the proto).
  const link = node.links().find((l) => l.ifname === pod.hostVeth);
  expect(link, `host veth ${pod.hostVeth}`).toMatchObject({
    address: HOST_MAC,
    ifalias: `weir/${node.network}/${pod.meta.namespace}/${pod.meta.name}/${pod.containerId}`,
    linkinfo: { info_kind: 'veth' },
  });
  const routes = node.weirRoutes();
  expect(routes).toContainEqual(expect.stringMatching(new RegExp(`^${pod.ipv4!.replace(/\./g, '\\.')} dev ${pod.hostVeth} scope link`)));
  expect(routes).toContainEqual(expect.stringMatching(new RegExp(`^${pod.ipv6} dev ${pod.hostVeth} `)));
  expect(node.addressFiles()).toEqual(expect.arrayContaining([pod.ipv4, pod.ipv6]));
}

/** The result's exact shape in `version`. */
function expectResultShape(version: string, pod: AttachedPod): void {
  const r = pod.result;
  const v0 = version.startsWith('0.');
  const mtu = version === '1.1.0' ? { mtu: 1500 } : {};
  const ver = (v: string) => (v0 ? { version: v } : {});
  expect(Object.keys(r).sort()).toEqual(v0 ? ['cniVersion', 'dns', 'interfaces', 'ips', 'routes'] : ['cniVersion', 'interfaces', 'ips', 'routes']);
  expect(r.cniVersion).toBe(version);
  expect(r.interfaces).toEqual([
    { name: pod.hostVeth, mac: HOST_MAC, ...mtu },
    { name: pod.ifname, mac: podMac(pod), sandbox: pod.ns.path, ...mtu },
  ]);
  expect(r.ips).toEqual([
    { ...ver('4'), interface: 1, address: `${pod.ipv4}/32`, gateway: '169.254.1.1' },
    { ...ver('6'), interface: 1, address: `${pod.ipv6}/128`, gateway: 'fe80::1' },
  ]);
  expect(r.routes).toEqual([
    { dst: '0.0.0.0/0', gw: '169.254.1.1' },
    { dst: '::/0', gw: 'fe80::1' },
  ]);
  if (v0) expect(r.dns).toEqual({});
}

function expectGone(node: CniNode, pod: AttachedPod): void {
  expect(node.leftovers()).toEqual(NOTHING_LEFT);
  expect(hasLink(pod.ns, pod.ifname), `${pod.ifname} still in the pod`).toBe(false);
}

describe('weir plugin: ADD, CHECK, DEL', () => {
  it.each(['0.3.1', '0.4.0', '1.0.0', '1.1.0'])('ADD → CHECK → DEL with cniVersion %s', (version) => {
    const node = nodes.node();
    const conf = node.config({}, version);
    const pod = node.add(node.newPod(), conf);
    expectResultShape(version, pod);
    expectWired(node, pod);
    expect(node.linkNames().sort()).toEqual(['lo', pod.hostVeth].sort());

    const check = node.check(pod, conf);
    if (version === '0.3.1') {
      // CHECK came with 0.4.0: the plugin refuses it for an older config.
      expect(expectCniError(check, 1, 'CHECK').msg).toMatch(/CHECK/);
    } else {
      expectSuccess(check, 'CHECK');
      expect(check.stdout.trim()).toBe('');
    }

    node.del(pod, conf);
    expectGone(node, pod);
  });

  it('ADD is idempotent: a repeated ADD returns the same result and leaves one wired veth', () => {
    const node = nodes.node();
    const pod = node.newPod();
    const first = node.add(pod);
    const again = node.add(pod);
    expect(again.result.ips).toEqual(first.result.ips);
    expect(again.result).toEqual(first.result);
    expect(node.linkNames().sort()).toEqual(['lo', first.hostVeth].sort());
    expect(node.addressFiles().sort()).toEqual([first.ipv4, first.ipv6].sort());
    expectWired(node, again);
    expect(ping(node.ns, again.ipv4!)).toBe(true);
    expectSuccess(node.check(again), 'CHECK after the repeated ADD');
    node.del(again);
    expectGone(node, again);
  });
});

/** A stand-in for the agent's socket: records each request and answers as the agent does. */
async function fakeAgent(socket: string): Promise<{ calls: { path: string; body: unknown }[]; close(): Promise<void> }> {
  const calls: { path: string; body: unknown }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      calls.push({ path: req.url ?? '', body: JSON.parse(body) });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url === '/cni/add' ? { applied: true } : { ok: true }));
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { calls, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('weir plugin: hand-off to the agent', () => {
  // The executable runs from a startup snapshot, where a module can only be
  // loaded the way the hand-off loads node:http; this is the one test that
  // drives the hand-off through the built executable rather than in-process.
  it('ADD tells the agent the pod and its addresses and waits for it; DEL tells it the attachment is gone', async () => {
    const node = nodes.node();
    const socket = path.join(node.tmp, 'agent.sock');
    const agent = await fakeAgent(socket);
    try {
      const conf = node.config({ agentSocket: socket });
      const pod = node.newPod();
      const added = await node.invokeAsync('ADD', conf, pod).done;
      const attached = node.attached(pod, expectSuccess(added, 'ADD'));
      expect(added.stderr, 'no warning: the agent confirmed').toBe('');
      expect(agent.calls).toEqual([
        {
          path: '/cni/add',
          body: { containerID: pod.containerId, ifname: 'eth0', ...pod.meta, ips: [attached.ipv4, attached.ipv6] },
        },
      ]);
      const deleted = await node.invokeAsync('DEL', { ...conf, prevResult: attached.result }, pod).done;
      expectSuccess(deleted, 'DEL');
      expect(deleted.stdout).toBe('');
      expect(agent.calls[1]).toEqual({ path: '/cni/del', body: { containerID: pod.containerId, ifname: 'eth0' } });
      expectGone(node, attached);
    } finally {
      await agent.close();
    }
  });
});

describe('weir plugin: single-stack networks and MTU', () => {
  it.each([
    { family: 'IPv4', cidr: '10.244.1.0/24', route: { dst: '0.0.0.0/0', gw: '169.254.1.1' }, nodeIp: NODE_IPV4, prefix: 32 },
    { family: 'IPv6', cidr: 'fd00:10:244:1::/64', route: { dst: '::/0', gw: 'fe80::1' }, nodeIp: NODE_IPV6, prefix: 128 },
  ])('an $family-only network: one address, one route, reachable both ways, CHECK and DEL', ({ cidr, route, nodeIp, prefix }) => {
    const node = nodes.node();
    const conf = node.config({ podCIDRs: [cidr] });
    const pod = node.add(node.newPod(), conf);
    const address = (pod.ipv4 ?? pod.ipv6)!;
    expect(pod.result.ips).toEqual([{ interface: 1, address: `${address}/${prefix}`, gateway: route.gw }]);
    expect(pod.result.routes).toEqual([route]);
    expect(podAddresses(pod.ns)).toEqual([`${address}/${prefix}`]);
    expect(node.addressFiles()).toEqual([address]);
    expect(ping(node.ns, address), `node → ${address}`).toBe(true);
    expect(ping(pod.ns, nodeIp), `pod → ${nodeIp}`).toBe(true);
    expectSuccess(node.check(pod, conf), 'CHECK');
    node.del(pod, conf);
    expectGone(node, pod);
  });

  it('the configured mtu is set on both ends of the veth and reported', () => {
    const node = nodes.node();
    const conf = node.config({ mtu: 1400 });
    const pod = node.add(node.newPod(), conf);
    expect(pod.result.interfaces!.map((i: { mtu?: number }) => i.mtu)).toEqual([1400, 1400]);
    expect(pod.ns.ipJson<{ mtu: number }[]>(['link', 'show', 'dev', 'eth0'])[0]?.mtu).toBe(1400);
    expect(node.ns.ipJson<{ mtu: number }[]>(['link', 'show', 'dev', pod.hostVeth])[0]?.mtu).toBe(1400);
    node.del(pod, conf);
    expectGone(node, pod);
  });
});

describe('weir plugin: connectivity', () => {
  it('two pods on one node exchange TCP over IPv4 and IPv6', async () => {
    const node = nodes.node();
    const a = node.add(node.newPod());
    const b = node.add(node.newPod());
    expect(a.ipv4).not.toBe(b.ipv4);
    expect(a.ipv6).not.toBe(b.ipv6);

    expect(await tcpExchange(a.ns, b.ns, a.ipv4!, 8080, 'hello over IPv4\n')).toBe('hello over IPv4\n');
    expect(await tcpExchange(b.ns, a.ns, b.ipv6!, 8081, 'hello over IPv6\n')).toBe('hello over IPv6\n');
    node.del(a);
    node.del(b);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
  });

  it('node → pod and pod → node work over IPv4 and IPv6', async () => {
    const node = nodes.node();
    const pod = node.add(node.newPod());
    expect(ping(node.ns, pod.ipv4!), `node → ${pod.ipv4}`).toBe(true);
    expect(ping(node.ns, pod.ipv6!), `node → ${pod.ipv6}`).toBe(true);
    expect(ping(pod.ns, NODE_IPV4), `pod → ${NODE_IPV4}`).toBe(true);
    expect(ping(pod.ns, NODE_IPV6), `pod → ${NODE_IPV6}`).toBe(true);
    expect(await tcpExchange(pod.ns, node.ns, pod.ipv4!, 8080, 'node to pod\n')).toBe('node to pod\n');
    expect(await tcpExchange(node.ns, pod.ns, NODE_IPV4, 9090, 'pod to node\n')).toBe('pod to node\n');
    node.del(pod);
    expectGone(node, pod);
  });
});

describe('weir plugin: DEL is idempotent', () => {
  it('DEL twice', () => {
    const node = nodes.node();
    const pod = node.add(node.newPod());
    node.del(pod);
    node.del(pod);
    expectGone(node, pod);
  });

  it('DEL with an empty CNI_NETNS still removes the veth and frees the addresses', () => {
    const node = nodes.node();
    const pod = node.add(node.newPod());
    expectSuccess(node.invoke('DEL', { ...node.config(), prevResult: pod.result }, pod, { netns: '' }), 'DEL without netns');
    expectGone(node, pod);
  });

  it('DEL after the pod namespace was deleted frees the addresses and leaves no veth', async () => {
    const node = nodes.node();
    const pod = node.add(node.newPod());
    pod.ns.destroy();
    // The runtime still passes the path it used at ADD.
    expectSuccess(node.invoke('DEL', { ...node.config(), prevResult: pod.result }, pod), 'DEL after netns deletion');
    expect(node.addressFiles()).toEqual([]);
    // The kernel tears a dead namespace's devices down asynchronously.
    await waitFor('the host veth to disappear', () => !node.linkNames().includes(pod.hostVeth));
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
    // The freed address is handed out again (after the rest of the range, round-robin).
    const next = node.add(node.newPod());
    expect(next.ipv4).toMatch(/^10\.244\.1\.\d+$/);
    node.del(next);
  });

  it('DEL of an unknown container succeeds and touches no other pod', () => {
    const node = nodes.node();
    const pod = node.add(node.newPod());
    const stranger = node.newPod();
    expectSuccess(node.invoke('DEL', node.config(), stranger), 'DEL of an unknown container');
    expectSuccess(node.invoke('DEL', node.config(), stranger, { netns: '' }), 'DEL of an unknown container without netns');
    expectWired(node, pod);
    expect(ping(node.ns, pod.ipv4!)).toBe(true);
    node.del(pod);
    expectGone(node, pod);
  });
});

describe('weir plugin: CHECK detects damage', () => {
  type Damage = { what: string; damage: (node: CniNode, pod: AttachedPod) => void; msg: (pod: AttachedPod) => RegExp | string };
  const damages: Damage[] = [
    {
      what: "the pod's IPv4 default route",
      damage: (_n, p) => p.ns.sh(['ip', '-4', 'route', 'del', 'default']),
      msg: () => /default route via 169\.254\.1\.1/,
    },
    { what: "the pod's IPv6 default route", damage: (_n, p) => p.ns.sh(['ip', '-6', 'route', 'del', 'default']), msg: () => /default route via fe80::1/ },
    {
      what: "the node's IPv4 route to the pod",
      damage: (n, p) => n.ns.sh(['ip', '-4', 'route', 'del', `${p.ipv4}/32`, 'dev', p.hostVeth]),
      msg: (p) => `route to ${p.ipv4}`,
    },
    {
      what: "the node's IPv6 route to the pod",
      damage: (n, p) => n.ns.sh(['ip', '-6', 'route', 'del', `${p.ipv6}/128`, 'dev', p.hostVeth]),
      msg: (p) => `route to ${p.ipv6}`,
    },
    { what: "the pod's IPv4 address", damage: (_n, p) => p.ns.sh(['ip', 'addr', 'del', `${p.ipv4}/32`, 'dev', p.ifname]), msg: (p) => `${p.ipv4}/32` },
    { what: 'the host veth (set down)', damage: (n, p) => n.ns.sh(['ip', 'link', 'set', p.hostVeth, 'down']), msg: (p) => new RegExp(`${p.hostVeth} is down`) },
    {
      what: 'the host veth (deleted)',
      damage: (n, p) => n.ns.sh(['ip', 'link', 'del', p.hostVeth]),
      msg: (p) => new RegExp(`${p.hostVeth} is missing|interface eth0 is missing`),
    },
    {
      what: 'the IPAM record (both address files)',
      damage: (n, p) => {
        for (const a of [p.ipv4!, p.ipv6!]) fs.rmSync(path.join(n.dataDir, n.network, a));
      },
      msg: (p) => new RegExp(`IPAM record.*${p.containerId}`),
    },
    // A half-removed dual-stack record: the IPv4 address is no longer held in
    // the store, so the next ADD's repair frees the rest and another pod can
    // get this pod's address. CHECK must say so.
    { what: 'the IPv4 address file', damage: (n, p) => fs.rmSync(path.join(n.dataDir, n.network, p.ipv4!)), msg: (p) => p.ipv4! },
  ];

  it.each(damages)('after removing $what: code 103 naming it', ({ damage, msg }) => {
    const node = nodes.node();
    const pod = node.add(node.newPod());
    expectSuccess(node.check(pod), 'CHECK of the healthy pod');
    damage(node, pod);
    const e = expectCniError(node.check(pod), 103, 'CHECK after damage');
    expect(e.msg).toMatch(msg(pod));
    // DEL still cleans up a damaged attachment.
    node.del(pod);
    expectGone(node, pod);
  });

  // The kernel flushes a pod's neighbour entries, permanent ones included,
  // whenever its MAC changes (see chain.test.ts, tuning). The host veth owns
  // the gateway, so the pod resolves it again by ARP/NDP and stays healthy;
  // without that address on the host veth it would be cut off, and CHECK
  // must then say so.
  it.each([
    { family: 'IPv4', gw: '169.254.1.1', plen: '32', nodeIp: NODE_IPV4, fam: '-4' },
    { family: 'IPv6', gw: 'fe80::1', plen: '64', nodeIp: NODE_IPV6, fam: '-6' },
  ])(
    'a pod that lost its $family gateway neighbour entry still reaches the node; without the gateway on the host veth CHECK fails',
    ({ gw, plen, nodeIp, fam }) => {
      const node = nodes.node();
      const pod = node.add(node.newPod());
      expect(ping(pod.ns, nodeIp)).toBe(true);
      pod.ns.sh(['ip', fam, 'neigh', 'del', gw, 'dev', pod.ifname]);
      expect(ping(pod.ns, nodeIp), `pod → node after the ${gw} neighbour entry was deleted`).toBe(true);
      expectSuccess(node.check(pod), 'CHECK of a pod that still reaches the node');
      node.ns.sh(['ip', fam, 'addr', 'del', `${gw}/${plen}`, 'dev', pod.hostVeth]);
      expect(expectCniError(node.check(pod), 103, 'CHECK without the gateway on the host veth').msg).toContain(gw);
      node.del(pod);
      expectGone(node, pod);
    },
  );

  it('CHECK with a prevResult naming other addresses: code 103', () => {
    const node = nodes.node();
    const pod = node.add(node.newPod());
    const forged = structuredClone(pod.result);
    forged.ips![0]!.address = '10.244.1.250/32';
    const e = expectCniError(node.invoke('CHECK', { ...node.config(), prevResult: forged }, pod), 103, 'CHECK with a forged result');
    expect(e.msg).toContain('10.244.1.250');
    node.del(pod);
    expectGone(node, pod);
  });

  it('CHECK without prevResult: code 7', () => {
    const node = nodes.node();
    const pod = node.add(node.newPod());
    expect(expectCniError(node.invoke('CHECK', node.config(), pod), 7, 'CHECK without prevResult').msg).toMatch(/prevResult/);
    node.del(pod);
    expectGone(node, pod);
  });
});

describe('weir plugin: GC', () => {
  it('frees every attachment not in cni.dev/valid-attachments, and only of its own network', async () => {
    const node = nodes.node();
    const [a, b, c] = [0, 1, 2].map(() => node.add(node.newPod())) as [AttachedPod, AttachedPod, AttachedPod];
    // A pod of another weir network on the same node and dataDir: not this GC's business.
    const otherConf = node.config({ name: 'othernet', podCIDRs: ['10.245.0.0/24'] });
    const d = node.add(node.newPod(), otherConf);

    const gc = gcNetworkList(node.name, node.list(), [{ containerID: b.containerId, ifname: b.ifname }]);
    expect(gc.ok, gc.error).toBe(true);
    expect(gc.steps[0]?.stdin['cni.dev/valid-attachments']).toEqual([{ containerID: b.containerId, ifname: 'eth0' }]);

    expect(node.addressFiles().sort()).toEqual([b.ipv4, b.ipv6].sort());
    expect(node.addressFiles('othernet')).toEqual([d.ipv4]);
    expect(node.linkNames().sort()).toEqual(['lo', b.hostVeth, d.hostVeth].sort());
    for (const gone of [a, c]) {
      expect(hasLink(gone.ns, 'eth0'), `eth0 of ${gone.meta.name}`).toBe(false);
      expect(node.weirRoutes().join('\n')).not.toContain(gone.hostVeth);
    }
    // The named pod keeps working, and so does the other network's.
    expectWired(node, b);
    expectSuccess(node.check(b), 'CHECK of the kept pod');
    expect(ping(node.ns, b.ipv4!)).toBe(true);
    expect(ping(node.ns, b.ipv6!)).toBe(true);
    expect(await tcpExchange(b.ns, node.ns, b.ipv4!, 8080, 'still here\n')).toBe('still here\n');
    expect(ping(node.ns, d.ipv4!)).toBe(true);

    node.del(b);
    node.del(d, otherConf);
    expect(node.leftovers()).toEqual(NOTHING_LEFT);
    expect(node.addressFiles('othernet')).toEqual([]);
  });
});
