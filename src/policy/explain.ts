// Human-readable explanation of a verdict, for a debugging CLI: one line per
// direction, naming the policies and rule indexes that decided it, and the
// tier when ClusterNetworkPolicies select the pod.
import { describePolicyRef, formatPolicyRef } from './errors.ts';
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
      if (d.host !== undefined) return `host firewall: no policy selects node ${d.host} for ${d.direction}`;
      return `no NetworkPolicy selects it for ${d.direction}${d.clusterPolicies ? ' and no ClusterNetworkPolicy rule decided: allowed by default' : ''}`;
    case 'self':
      return 'a pod cannot block traffic to itself';
    case 'own-node':
      return d.host !== undefined
        ? `host firewall: node ${d.host} and its own pods may always talk`
        : 'traffic between a pod and its own node is always allowed';
    case 'rule':
      return `allowed by ${describePolicyRef(r.policy)} ${where}[${r.rule}]`;
    case 'no-rule-matched':
      return `no rule allows it in ${d.policies.map(formatPolicyRef).join(', ')}`;
    case 'failsafe':
      return `host firewall: failsafe port of node ${d.host ?? '?'}, open whatever the policies say`;
    case 'audit':
      return `no rule allows it in ${d.policies.map(formatPolicyRef).join(', ')}, but audit mode logs it instead of dropping it`;
    case 'metadata-guard':
      return 'denied by the metadata guard: the cloud metadata service needs the opt-in label, or an egress rule naming its address';
    case 'cluster-rule': {
      const what = r.action === 'Accept' ? 'allowed' : r.action === 'Deny' ? 'denied' : `passed on from the ${r.tier} tier`;
      return `${what} by ${describePolicyRef(r.policy)} (${r.tier} tier, priority ${r.priority}) ${where}[${r.rule}]${r.name !== undefined ? ` ${JSON.stringify(r.name)}` : ''}`;
    }
  }
}

function line(d: DirectionVerdict): string {
  const who = d.subject
    ? `${d.subject.namespace}/${d.subject.name}${d.host !== undefined ? ` (hostNetwork on ${d.host})` : ''}`
    : d.host !== undefined
      ? `node ${d.host}`
      : '-';
  const state = d.allowed ? 'allowed' : 'DENIED';
  const tier = d.clusterPolicies ? ` [${d.tier !== undefined ? `${d.tier} tier` : 'default'}]` : '';
  return `${d.direction} at ${who}: ${state}${d.isolated ? ' (isolated)' : ''}${tier}: ${d.reasons.map((r) => formatReason(r, d)).join('; ')}`;
}

/** Multi-line explanation: the connection, then egress and ingress. */
export function formatVerdict(v: Verdict, protocol: string, port: number): string {
  return [
    `${formatEndpoint(v.src)} -> ${formatEndpoint(v.dst)} ${protocol}/${port} IPv${v.family}: ${v.allowed ? 'ALLOWED' : 'DENIED'}`,
    `  ${line(v.egress)}`,
    `  ${line(v.ingress)}`,
  ].join('\n');
}
