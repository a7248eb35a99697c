// Human-readable explanation of a verdict, for a debugging CLI: one line per
// direction, naming the policies and rule indexes that decided it.
import { formatPolicyRef } from './errors.ts';
import type { DirectionVerdict, Reason, ResolvedEndpoint, Verdict } from './evaluator.ts';

export function formatEndpoint(e: ResolvedEndpoint): string {
  switch (e.kind) {
    case 'pod':
      return `pod ${e.pod.namespace}/${e.pod.name} (${e.ip})`;
    case 'node':
      return e.hostNetworkPod
        ? `hostNetwork pod ${e.hostNetworkPod.namespace}/${e.hostNetworkPod.name} as node ${e.node ?? '?'} (${e.ip})`
        : `node ${e.node ?? '?'} (${e.ip})`;
    case 'external':
      return `address ${e.ip}`;
  }
}

export function formatReason(r: Reason, d: DirectionVerdict): string {
  const where = d.direction === 'ingress' ? 'spec.ingress' : 'spec.egress';
  switch (r.kind) {
    case 'not-a-pod':
      return 'not a pod: NetworkPolicy does not apply';
    case 'not-isolated':
      return `no NetworkPolicy selects it for ${d.direction}`;
    case 'self':
      return 'a pod cannot block traffic to itself';
    case 'own-node':
      return 'traffic between a pod and its own node is always allowed';
    case 'rule':
      return `allowed by NetworkPolicy ${formatPolicyRef(r.policy)} ${where}[${r.rule}]`;
    case 'no-rule-matched':
      return `no rule allows it in ${d.policies.map(formatPolicyRef).join(', ')}`;
  }
}

function line(d: DirectionVerdict): string {
  const who = d.subject ? `${d.subject.namespace}/${d.subject.name}` : '-';
  const state = d.allowed ? 'allowed' : 'DENIED';
  return `${d.direction} at ${who}: ${state}${d.isolated ? ' (isolated)' : ''}: ${d.reasons.map((r) => formatReason(r, d)).join('; ')}`;
}

/** Multi-line explanation: the connection, then egress and ingress. */
export function formatVerdict(v: Verdict, protocol: string, port: number): string {
  return [
    `${formatEndpoint(v.src)} -> ${formatEndpoint(v.dst)} ${protocol}/${port} IPv${v.family}: ${v.allowed ? 'ALLOWED' : 'DENIED'}`,
    `  ${line(v.egress)}`,
    `  ${line(v.ingress)}`,
  ].join('\n');
}
