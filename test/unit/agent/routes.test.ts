// The agent's plan of routes to other nodes' pod CIDRs (desiredNodeRoutes):
// pure, from Node objects to the routes reconcileNodeRoutes programs (its
// kernel side is test/kernel/agent-routes.test.ts).
import { describe, expect, it } from 'vitest';
import { type NodeInfo, type NodeRoute, desiredNodeRoutes } from '../../../src/agent/routes.ts';
import { parseIp } from '../../../src/cni/ip.ts';

const show = (rs: NodeRoute[]): string[] => rs.map((r) => `${r.dst.address}/${r.dst.prefix} via ${r.via.family === 4 ? r.via.bytes.join('.') : Buffer.from(r.via.bytes).toString('hex')} ${r.node}`);

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
