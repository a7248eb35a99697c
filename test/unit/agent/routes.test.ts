// The agent's plan of routes to other nodes' pod CIDRs (desiredNodeRoutes):
// pure, from Node objects to the routes reconcileNodeRoutes programs (its
// kernel side is test/kernel/agent-routes.test.ts).
import { describe, expect, it } from 'vitest';
import { desiredNodeRoutes, type NodeInfo, type NodeRoute, RTPROT_WEIR_NODE, reconcileNodeRoutes } from '../../../src/agent/routes.ts';
import { Errno } from '../../../src/errors.ts';
import { formatIp, parseIp } from '../../../src/ip.ts';
import * as C from '../../../src/netlink/constants.ts';
import { FakeNetworks, type FakeRtnl } from '../../../src/netlink/fake-rtnl.ts';

const node = (name: string, podCIDRs: string[], internalIPs: string[]): NodeInfo => ({ name, podCIDRs, internalIPs });

const show = (rs: NodeRoute[]): string[] =>
  rs.map((r) => `${r.dst.address}/${r.dst.prefix} via ${r.via.family === 4 ? r.via.bytes.join('.') : Buffer.from(r.via.bytes).toString('hex')} ${r.node}`);

describe('desiredNodeRoutes', () => {
  const fmt = (rs: NodeRoute[]) => rs.map((r) => ({ dst: `${r.dst.address}/${r.dst.prefix}`, via: r.via, node: r.node }));

  it('routes every other node’s podCIDRs via its InternalIP of the same family', () => {
    const nodes: NodeInfo[] = [
      { name: 'c', podCIDRs: ['10.244.2.0/24', 'fd00:244:2::/64'], internalIPs: ['10.98.0.3', 'fd98::3'] },
      { name: 'a', podCIDRs: ['10.244.0.0/24', 'fd00:244::/64'], internalIPs: ['10.98.0.1', 'fd98::1'] },
      { name: 'b', podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'], internalIPs: ['fd98::2', '10.98.0.2', '10.98.0.22'] },
    ];
    expect(fmt(desiredNodeRoutes(nodes, 'a'))).toEqual([
      { dst: '10.244.1.0/24', via: parseIp('10.98.0.2'), node: 'b' },
      { dst: 'fd00:244:1::/64', via: parseIp('fd98::2'), node: 'b' },
      { dst: '10.244.2.0/24', via: parseIp('10.98.0.3'), node: 'c' },
      { dst: 'fd00:244:2::/64', via: parseIp('fd98::3'), node: 'c' },
    ]);
  });

  it('skips families without an InternalIP, nodes without podCIDRs, and text that does not parse', () => {
    const nodes: NodeInfo[] = [
      { name: 'self', podCIDRs: ['10.244.0.0/24'], internalIPs: ['10.98.0.1'] },
      { name: 'v4only', podCIDRs: ['10.244.1.0/24', 'fd00:244:1::/64'], internalIPs: ['10.98.0.2'] },
      { name: 'new', podCIDRs: [], internalIPs: ['10.98.0.3'] },
      { name: 'odd', podCIDRs: ['garbage', '10.244.4.0/24'], internalIPs: ['not-an-ip', '10.98.0.4'] },
      { name: 'noip', podCIDRs: ['10.244.5.0/24'], internalIPs: [] },
    ];
    expect(show(desiredNodeRoutes(nodes, 'self'))).toEqual(['10.244.4.0/24 via 10.98.0.4 odd', '10.244.1.0/24 via 10.98.0.2 v4only']);
  });

  it('clears host bits, never routes our own CIDR away, and gives a doubly claimed CIDR to the first node by name', () => {
    const nodes: NodeInfo[] = [
      { name: 'self', podCIDRs: ['10.244.0.0/24'], internalIPs: ['10.98.0.1'] },
      { name: 'thief', podCIDRs: ['10.244.0.0/24'], internalIPs: ['10.98.0.9'] },
      { name: 'z-new', podCIDRs: ['10.244.3.0/24'], internalIPs: ['10.98.0.8'] },
      { name: 'm-old', podCIDRs: ['10.244.3.7/24'], internalIPs: ['10.98.0.7'] },
    ];
    expect(show(desiredNodeRoutes(nodes, 'self'))).toEqual(['10.244.3.0/24 via 10.98.0.7 m-old']);
    // Self absent from the list: nothing is reserved, everything else is routed.
    expect(desiredNodeRoutes(nodes, 'elsewhere')).toHaveLength(2);
  });
});

describe('reconcileNodeRoutes over the rtnetlink fake', () => {
  const w = (): { h: FakeRtnl; nodes: NodeInfo[] } => {
    const h = new FakeNetworks().handle(1);
    h.createVeth({ name: 'd0', peerName: 'd0-peer', peerNetnsFd: 2 });
    return { h, nodes: [node('a', ['10.244.1.0/24'], ['10.98.0.2']), node('b', ['10.244.2.0/24', 'fd00:244:2::/64'], ['10.98.0.3', 'fd98::3'])] };
  };
  const table = (h: FakeRtnl): string[] =>
    [...h.routeList(4), ...h.routeList(6)]
      .map((r) => `${formatIp(r.dst as Uint8Array)}/${r.dstLen} via ${r.gateway ? formatIp(r.gateway) : '-'} proto ${r.protocol}`)
      .sort();

  it('adds what is missing, changes nothing the second time, replaces a moved gateway, removes a node that went', () => {
    const { h, nodes } = w();
    const first = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(first).toMatchObject({ added: ['10.244.1.0/24', '10.244.2.0/24', 'fd00:244:2::/64'], replaced: [], removed: [], errors: [] });
    expect(table(h)).toEqual([
      `10.244.1.0/24 via 10.98.0.2 proto ${RTPROT_WEIR_NODE}`,
      `10.244.2.0/24 via 10.98.0.3 proto ${RTPROT_WEIR_NODE}`,
      `fd00:244:2::/64 via fd98::3 proto ${RTPROT_WEIR_NODE}`,
    ]);
    expect(reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'))).toMatchObject({ added: [], replaced: [], removed: [], errors: [] });
    const moved = [node('a', ['10.244.1.0/24'], ['10.98.0.9'])];
    expect(reconcileNodeRoutes(h, desiredNodeRoutes(moved, 'self'))).toMatchObject({
      replaced: ['10.244.1.0/24'],
      removed: ['10.244.2.0/24', 'fd00:244:2::/64'].sort(),
    });
    expect(table(h)).toEqual([`10.244.1.0/24 via 10.98.0.9 proto ${RTPROT_WEIR_NODE}`]);
  });

  it('leaves routes of other protocols alone, and reports a destination one of them holds', () => {
    const { h, nodes } = w();
    h.routeAdd({ family: 4, dst: parseIp('10.244.2.0').bytes, dstLen: 24, gateway: parseIp('10.98.0.77').bytes, protocol: C.RTPROT_BOOT });
    const r = reconcileNodeRoutes(h, desiredNodeRoutes(nodes, 'self'));
    expect(r.errors.map((e) => e.dst)).toEqual(['10.244.2.0/24']);
    expect(table(h)).toContain(`10.244.2.0/24 via 10.98.0.77 proto ${C.RTPROT_BOOT}`);
    expect(table(h)).toContain(`10.244.1.0/24 via 10.98.0.2 proto ${RTPROT_WEIR_NODE}`);
  });

  it('a route the kernel refuses is reported, and the others are still programmed', () => {
    const { nodes } = w();
    const world = new FakeNetworks();
    const h2 = world.handle(1);
    world.failNext('routeAdd', Errno.ENETUNREACH);
    const r = reconcileNodeRoutes(h2, desiredNodeRoutes(nodes, 'self'));
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ dst: '10.244.1.0/24', node: 'a' });
    expect(r.added).toEqual(['10.244.2.0/24', 'fd00:244:2::/64']);
    expect(table(h2)).toHaveLength(2);
  });
});
