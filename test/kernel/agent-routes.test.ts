// The agent's routes to other nodes' pod CIDRs, against the real kernel
// (the route plan itself is tested in test/unit/agent/routes.test.ts). Needs
// root (CAP_NET_ADMIN + CAP_SYS_ADMIN).
//
// Every kernel test works in fresh namespaces from test/helpers/netns.ts
// (destroyed in afterEach even when the test fails): the "node" namespace
// holds d0 with 10.98.0.1/24 and fd98::1/64, the node network on which the
// other nodes' InternalIPs are directly reachable. d0 is a veth whose peer
// sits in a second test namespace (the test kernel may lack the dummy
// driver). Nothing is configured in the root namespace: the handle is opened
// inside the test namespace and every command runs with `ip -n <ns>`.
import { describe, expect, it } from 'vitest';
import { desiredNodeRoutes, type NodeInfo, RTPROT_WEIR_NODE, reconcileNodeRoutes } from '../../src/agent/routes.ts';
import { NetlinkError } from '../../src/errors.ts';
import { parseCidr, parseIp } from '../../src/ip.ts';
import { NetlinkHandle } from '../../src/netlink/rtnl-handle.ts';
import { RTPROT_WEIR } from '../../src/plugin/names.ts';
import { Netns } from '../../src/sys/netns.ts';
import { sh, type TestNetns, withNetnsCleanup } from '../helpers/netns.ts';

// ---- kernel ----

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  metric?: number;
  table?: string;
}

const scope = withNetnsCleanup('agentroutes');

/** A namespace with d0 (10.98.0.1/24, fd98::1/64) up, and a handle in it closed in afterEach. */
function nodeNs(): { ns: TestNetns; h: NetlinkHandle; ip: (...args: string[]) => string } {
  const ns = scope.create('node');
  // The rest of the "node network": the far end of d0, so it has carrier.
  const peer = scope.create('net');
  const ip = (...args: string[]): string => sh('ip', ['-n', ns.name, ...args]);
  ip('link', 'add', 'd0', 'type', 'veth', 'peer', 'name', 'p0', 'netns', peer.name);
  sh('ip', ['-n', peer.name, 'link', 'set', 'p0', 'up']);
  ip('link', 'set', 'd0', 'up');
  ip('addr', 'add', '10.98.0.1/24', 'dev', 'd0');
  ip('-6', 'addr', 'add', 'fd98::1/64', 'dev', 'd0', 'nodad');
  const netns = Netns.open(ns.path);
  scope.defer(() => netns.close());
  const h = NetlinkHandle.open(netns);
  scope.defer(() => h.close());
  return { ns, h, ip };
}

/** `dst via gateway proto N` of every route in the table (both families), sorted. */
function routes(ns: TestNetns, table = 'main'): string[] {
  const all = [...ns.ipJson<IpRoute[]>(['-4', 'route', 'show', 'table', table]), ...ns.ipJson<IpRoute[]>(['-6', 'route', 'show', 'table', table])];
  return all
    .filter((r) => r.protocol !== 'kernel' && !r.dst.startsWith('fe80:') && r.dst !== 'multicast')
    .map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev && !r.gateway ? ` dev ${r.dev}` : ''} proto ${r.protocol ?? 'boot'}`)
    .sort();
}
const ours = (ns: TestNetns, table = 'main'): string[] => routes(ns, table).filter((r) => r.endsWith(`proto ${RTPROT_WEIR_NODE}`));

const node = (name: string, podCIDRs: string[], internalIPs: string[]): NodeInfo => ({ name, podCIDRs, internalIPs });
const SELF = node('self', ['10.244.0.0/24', 'fd00:244::/64'], ['10.98.0.1', 'fd98::1']);

describe('reconcileNodeRoutes (kernel)', () => {
  it('programs nodes as they come, replaces a route whose InternalIP changed, removes a node that went', () => {
    const { ns, h } = nodeNs();
    let nodes = [SELF, node('b', ['10.244.1.0/24'], ['10.98.0.2']), node('c', ['10.244.2.0/24'], ['10.98.0.3'])];
    let r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(r).toEqual({ added: ['10.244.1.0/24', '10.244.2.0/24'], replaced: [], removed: [], errors: [] });
    expect(ours(ns)).toEqual(['10.244.1.0/24 via 10.98.0.2 proto 88', '10.244.2.0/24 via 10.98.0.3 proto 88']);
    // The kernel really forwards there.
    expect(ns.sh(['ip', 'route', 'get', '10.244.2.77'])).toMatch(/via 10\.98\.0\.3 dev d0/);

    // A third node joins.
    nodes = [...nodes, node('d', ['10.244.3.0/24'], ['10.98.0.4'])];
    r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(r).toEqual({ added: ['10.244.3.0/24'], replaced: [], removed: [], errors: [] });

    // b gets a new InternalIP.
    nodes = nodes.map((n) => (n.name === 'b' ? node('b', ['10.244.1.0/24'], ['10.98.0.12']) : n));
    r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(r).toEqual({ added: [], replaced: ['10.244.1.0/24'], removed: [], errors: [] });
    expect(ours(ns)).toEqual(['10.244.1.0/24 via 10.98.0.12 proto 88', '10.244.2.0/24 via 10.98.0.3 proto 88', '10.244.3.0/24 via 10.98.0.4 proto 88']);

    // c leaves.
    nodes = nodes.filter((n) => n.name !== 'c');
    r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(r).toEqual({ added: [], replaced: [], removed: ['10.244.2.0/24'], errors: [] });
    expect(ours(ns)).toEqual(['10.244.1.0/24 via 10.98.0.12 proto 88', '10.244.3.0/24 via 10.98.0.4 proto 88']);

    // Everyone leaves.
    r = reconcileNodeRoutes(h, desiredNodeRoutes([SELF], 'self'));
    expect(r.removed.sort()).toEqual(['10.244.1.0/24', '10.244.3.0/24']);
    expect(ours(ns)).toEqual([]);
  });

  it('is idempotent: a second reconcile changes nothing', () => {
    const { ns, h } = nodeNs();
    const nodes = [SELF, node('b', ['10.244.1.0/24', 'fd00:244:1::/64'], ['10.98.0.2', 'fd98::2']), node('c', ['10.244.2.0/24'], ['10.98.0.3'])];
    const desired = desiredNodeRoutes(nodes, 'self');
    expect(reconcileNodeRoutes(h, desired).added).toHaveLength(3);
    const before = routes(ns);
    const empty = { added: [], replaced: [], removed: [], errors: [] };
    expect(reconcileNodeRoutes(h, desired)).toEqual(empty);
    expect(reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'))).toEqual(empty);
    expect(routes(ns)).toEqual(before);
  });

  it('dual-stack: IPv6 podCIDRs via IPv6 InternalIPs, replaced and removed like IPv4', () => {
    const { ns, h } = nodeNs();
    let nodes = [SELF, node('b', ['10.244.1.0/24', 'fd00:244:1::/64'], ['10.98.0.2', 'fd98::2']), node('v6', ['fd00:244:2::/64'], ['fd98::3'])];
    let r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(r).toEqual({ added: ['10.244.1.0/24', 'fd00:244:1::/64', 'fd00:244:2::/64'], replaced: [], removed: [], errors: [] });
    expect(ours(ns)).toEqual(['10.244.1.0/24 via 10.98.0.2 proto 88', 'fd00:244:1::/64 via fd98::2 proto 88', 'fd00:244:2::/64 via fd98::3 proto 88']);
    expect(ns.sh(['ip', '-6', 'route', 'get', 'fd00:244:2::5'])).toMatch(/via fd98::3 dev d0/);

    nodes = [SELF, node('b', ['10.244.1.0/24', 'fd00:244:1::/64'], ['10.98.0.2', 'fd98::22'])];
    r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(r).toEqual({ added: [], replaced: ['fd00:244:1::/64'], removed: ['fd00:244:2::/64'], errors: [] });
    expect(ours(ns)).toEqual(['10.244.1.0/24 via 10.98.0.2 proto 88', 'fd00:244:1::/64 via fd98::22 proto 88']);
    // A replace leaves one route, not an ECMP pair of old and new gateway.
    const v6 = ns.ipJson<(IpRoute & { nexthops?: unknown[] })[]>(['-6', 'route', 'show', 'proto', String(RTPROT_WEIR_NODE)]);
    expect(v6).toHaveLength(1);
    expect(v6[0]?.nexthops).toBeUndefined();
  });

  it('never touches routes of other protocols: static, boot, the plugin’s 87', () => {
    const { ns, h, ip } = nodeNs();
    ip('route', 'add', '10.244.7.0/24', 'via', '10.98.0.9', 'proto', 'static');
    ip('route', 'add', '10.244.9.0/24', 'via', '10.98.0.10'); // proto boot
    ip('route', 'add', '10.244.0.5/32', 'dev', 'd0', 'proto', String(RTPROT_WEIR), 'scope', 'link');
    ip('-6', 'route', 'add', 'fd00:244:0::5/128', 'dev', 'd0', 'proto', String(RTPROT_WEIR));
    ip('-6', 'route', 'add', 'fd00:244:7::/64', 'via', 'fd98::9', 'proto', 'static');
    // A stale route of ours, left from an earlier agent run.
    ip('route', 'add', '10.244.8.0/24', 'via', '10.98.0.8', 'proto', String(RTPROT_WEIR_NODE));
    const foreign = routes(ns).filter((r) => !r.endsWith('proto 88'));
    expect(foreign).toEqual([
      '10.244.0.5 dev d0 proto 87',
      '10.244.7.0/24 via 10.98.0.9 proto static',
      '10.244.9.0/24 via 10.98.0.10 proto boot',
      'fd00:244:7::/64 via fd98::9 proto static',
      'fd00:244::5 dev d0 proto 87',
    ]);

    // b wants exactly what the static and the boot routes hold.
    const nodes = [
      SELF,
      node('b', ['10.244.7.0/24', 'fd00:244:7::/64'], ['10.98.0.2', 'fd98::2']),
      node('c', ['10.244.9.0/24'], ['10.98.0.3']),
      node('d', ['10.244.4.0/24'], ['10.98.0.4']),
    ];
    const r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(r.added).toEqual(['10.244.4.0/24']);
    expect(r.removed).toEqual(['10.244.8.0/24']);
    expect(r.replaced).toEqual([]);
    expect(r.errors.map((e) => [e.dst, e.node, e.op])).toEqual([
      ['10.244.7.0/24', 'b', 'add'],
      ['fd00:244:7::/64', 'b', 'add'],
      ['10.244.9.0/24', 'c', 'add'],
    ]);
    expect(r.errors[0]?.reason).toMatch(/protocol static via 10\.98\.0\.9/);
    expect(r.errors[2]?.reason).toMatch(/protocol boot/);
    expect(r.errors.every((e) => e.error instanceof NetlinkError && e.error.errno === 17)).toBe(true);

    // Wiping every node route leaves the others exactly as they were.
    expect(reconcileNodeRoutes(h, []).removed).toEqual(['10.244.4.0/24']);
    expect(routes(ns)).toEqual(foreign);
  });

  it('drops its own route when a foreign route takes over the destination', () => {
    const { ns, h, ip } = nodeNs();
    const nodes = [SELF, node('b', ['10.244.1.0/24'], ['10.98.0.2'])];
    reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    // Someone appends a static route with the same key next to ours.
    ip('route', 'append', '10.244.1.0/24', 'via', '10.98.0.50', 'proto', 'static');
    // b moves: a replace would hit whichever of the two the kernel finds first.
    const r = reconcileNodeRoutes(h, desiredNodeRoutes([SELF, node('b', ['10.244.1.0/24'], ['10.98.0.12'])], 'self'));
    expect(r.removed).toEqual(['10.244.1.0/24']);
    expect(r.errors.map((e) => e.dst)).toEqual(['10.244.1.0/24']);
    expect(routes(ns).filter((x) => x.startsWith('10.244.1.0/24'))).toEqual(['10.244.1.0/24 via 10.98.0.50 proto static']);
  });

  it('reports a node whose gateway is not directly reachable, and still programs the others', () => {
    const { ns, h, ip } = nodeNs();
    // 10.99.0.0/24 is reachable only through another router: not a valid next hop for a host-gw route.
    ip('route', 'add', '10.99.0.0/24', 'via', '10.98.0.50');
    const nodes = [
      SELF,
      node('far', ['10.244.1.0/24', 'fd00:244:1::/64'], ['192.0.2.1', '2001:db8::1']),
      node('behind-router', ['10.244.2.0/24'], ['10.99.0.7']),
      node('ok', ['10.244.3.0/24', 'fd00:244:3::/64'], ['10.98.0.3', 'fd98::3']),
    ];
    const r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(r.added).toEqual(['10.244.3.0/24', 'fd00:244:3::/64']);
    expect(r.errors.map((e) => [e.node, e.dst, e.via])).toEqual([
      ['behind-router', '10.244.2.0/24', '10.99.0.7'],
      ['far', '10.244.1.0/24', '192.0.2.1'],
      ['far', 'fd00:244:1::/64', '2001:db8::1'],
    ]);
    for (const e of r.errors) {
      expect(e.error).toBeInstanceOf(NetlinkError);
      // IPv4 refuses with ENETUNREACH, IPv6 with EHOSTUNREACH.
      expect([101, 113]).toContain((e.error as NetlinkError).errno);
      expect(e.reason).toMatch(/not on a directly connected network/);
    }
    expect(ours(ns)).toEqual(['10.244.3.0/24 via 10.98.0.3 proto 88', 'fd00:244:3::/64 via fd98::3 proto 88']);

    // Once the far node's network is connected, the next reconcile programs it.
    ip('addr', 'add', '192.0.2.100/24', 'dev', 'd0');
    const again = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(again.added).toEqual(['10.244.1.0/24']);
    expect(again.errors.map((e) => e.dst)).toEqual(['10.244.2.0/24', 'fd00:244:1::/64']);
  });

  it('reports malformed and duplicate desired routes without throwing', () => {
    const { ns, h } = nodeNs();
    const r = reconcileNodeRoutes(h, [
      { dst: parseCidr('10.244.1.0/24'), via: parseIp('fd98::2'), node: 'mixed' },
      { dst: parseCidr('10.244.2.0/24'), via: parseIp('10.98.0.2'), node: 'first' },
      { dst: parseCidr('10.244.2.9/24'), via: parseIp('10.98.0.3'), node: 'second' },
    ]);
    expect(r.added).toEqual(['10.244.2.0/24']);
    expect(r.errors.map((e) => [e.node, e.reason])).toEqual([
      ['mixed', 'gateway fd98::2 is not IPv4'],
      ['second', '10.244.2.0/24 is already routed to node first'],
    ]);
    expect(ours(ns)).toEqual(['10.244.2.0/24 via 10.98.0.2 proto 88']);
  });

  it('works in another table and leaves the main table alone', () => {
    const { ns, h } = nodeNs();
    const nodes = [SELF, node('b', ['10.244.1.0/24', 'fd00:244:1::/64'], ['10.98.0.2', 'fd98::2'])];
    expect(reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self')).added).toHaveLength(2);
    const r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'), { table: 1000 });
    expect(r).toEqual({ added: ['10.244.1.0/24', 'fd00:244:1::/64'], replaced: [], removed: [], errors: [] });
    expect(ours(ns, '1000')).toEqual(['10.244.1.0/24 via 10.98.0.2 proto 88', 'fd00:244:1::/64 via fd98::2 proto 88']);
    expect(reconcileNodeRoutes(h, [], { table: 1000 }).removed).toHaveLength(2);
    expect(ours(ns, '1000')).toEqual([]);
    expect(ours(ns)).toHaveLength(2);
  });
});
