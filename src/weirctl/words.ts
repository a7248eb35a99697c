// NetworkPolicy rules in words, for `weirctl policy`: peers ("pods app=client
// in namespace shop", "namespaces team=a", "10.0.0.0/8 except 10.1.0.0/16",
// "any") and ports ("TCP 80", "UDP 1000-2000", "named http (TCP 8080 on this
// pod)", "all ports"). Pure.
import { formatCidr } from '../ip.ts';
import type { Direction, NormalizedPeer } from '../policy/normalize.ts';
import { type NamedPorts, type PortMatch, resolveNamedPort } from '../policy/ports.ts';
import { type CompiledSelector, formatSelector } from '../policy/selector.ts';

const everything = (s: CompiledSelector): boolean => !s.matchesNothing && s.requirements.length === 0;

/** One peer of a rule of a policy in namespace `policyNs`. */
export function describePeer(peer: NormalizedPeer, policyNs: string): string {
  if (peer.kind === 'ipBlock') {
    const base = formatCidr(peer.cidr);
    return peer.except.length > 0 ? `${base} except ${peer.except.map(formatCidr).join(', ')}` : base;
  }
  const pods = everything(peer.pods) ? undefined : formatSelector(peer.pods);
  if (peer.namespaces === 'own') return pods === undefined ? `all pods in namespace ${policyNs}` : `pods ${pods} in namespace ${policyNs}`;
  const ns = everything(peer.namespaces) ? undefined : formatSelector(peer.namespaces);
  if (ns === undefined) return pods === undefined ? 'all pods in all namespaces' : `pods ${pods} in all namespaces`;
  return pods === undefined ? `namespaces ${ns}` : `pods ${pods} in namespaces ${ns}`;
}

export function describePeers(peers: readonly NormalizedPeer[] | 'any', policyNs: string): string[] {
  return peers === 'any' ? ['any'] : peers.map((p) => describePeer(p, policyNs));
}

export interface PortContext {
  /** Ingress: named ports are this pod's. Egress: they are each destination's. */
  direction: Direction;
  /** The subject pod's named container ports (used for ingress). */
  named: NamedPorts;
}

export function describePort(m: PortMatch, ctx: PortContext): string {
  switch (m.kind) {
    case 'all':
      return `all ${m.protocol} ports`;
    case 'range':
      return m.from === m.to ? `${m.protocol} ${m.from}` : `${m.protocol} ${m.from}-${m.to}`;
    case 'named': {
      if (ctx.direction === 'egress') return `named ${m.name} (${m.protocol}, the port of that name on each destination pod)`;
      const ports = resolveNamedPort(ctx.named, m.protocol, m.name);
      return ports.length > 0
        ? `named ${m.name} (${m.protocol} ${ports.join(', ')} on this pod)`
        : `named ${m.name} (${m.protocol}; this pod declares no such port, so it matches nothing)`;
    }
  }
}

export function describePorts(ports: readonly PortMatch[] | 'any', ctx: PortContext): string[] {
  return ports === 'any' ? ['all ports'] : ports.map((p) => describePort(p, ctx));
}
