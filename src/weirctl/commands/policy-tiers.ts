// weirctl policy, ClusterNetworkPolicy part: the tiers around a pod's
// NetworkPolicies, per direction, in the order a packet meets them (Admin
// tier by priority, NetworkPolicy, Baseline tier by priority, the default),
// each policy with its rules in order: action, peers and ports in words.
// Pure: from the cluster state and the evaluator's selection.
import { formatCidr } from '../../ip.ts';
import {
  type CnpPeer,
  type CnpRule,
  canonicalDomain,
  domainMatches,
  type NormalizedClusterPolicy,
  normalizeClusterPolicies,
} from '../../policy/cnp-normalize.ts';
import type { CnpAction, CnpTier } from '../../policy/cnp-types.ts';
import type { PolicyEvaluator } from '../../policy/evaluator.ts';
import type { Direction } from '../../policy/normalize.ts';
import type { NamedPorts } from '../../policy/ports.ts';
import { formatSelector } from '../../policy/selector.ts';
import type { ClusterState } from '../../policy/types.ts';
import { paint, renderTable } from '../table.ts';
import { describePeer, describePorts } from '../words.ts';

export interface ClusterRuleReport {
  /** Index in spec.ingress / spec.egress. */
  rule: number;
  name?: string;
  action: CnpAction;
  peers: string[];
  ports: string[];
}

export interface ClusterPolicyReport {
  name: string;
  tier: CnpTier;
  priority: number;
  rules: ClusterRuleReport[];
}

/** Learned names shown per domain peer; the rest are counted. */
const LEARNED_SHOWN = 5;

/** What the agent learned for a domain peer's names: `name addr addr; ...`, the first few names, then how many more. */
function learnedWords(patterns: readonly string[], learned: ClusterState['domainAddresses']): string {
  const hits = [...(learned ?? [])]
    .filter(([n]) => patterns.some((pat) => domainMatches(pat, canonicalDomain(n))))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (hits.length === 0) return 'nothing learned yet';
  const shown = hits.slice(0, LEARNED_SHOWN).map(([n, addrs]) => `${n} ${addrs.join(' ')}`);
  return `learned: ${shown.join('; ')}${hits.length > LEARNED_SHOWN ? `; and ${hits.length - LEARNED_SHOWN} more name(s)` : ''}`;
}

/** One peer of a ClusterNetworkPolicy rule in words (domain names with what the agent learned for them, when it says). */
export function describeCnpPeer(p: CnpPeer, learned?: ClusterState['domainAddresses']): string {
  switch (p.kind) {
    case 'nodes':
      return p.nodes.requirements.length === 0 && !p.nodes.matchesNothing ? 'all nodes' : `nodes ${formatSelector(p.nodes)}`;
    case 'domains':
      return `domain names ${p.names.join(', ')}${learned ? ` (${learnedWords(p.names, learned)})` : ''}`;
    case 'ipBlock':
      return `network ${formatCidr(p.cidr)}`;
    case 'pods':
      // A ClusterNetworkPolicy peer names its namespaces: never "the policy's own".
      return describePeer(p, '');
  }
}

function ruleReport(r: CnpRule, d: Direction, named: NamedPorts, learned: ClusterState['domainAddresses']): ClusterRuleReport {
  return {
    rule: r.index,
    ...(r.name !== undefined ? { name: r.name } : {}),
    action: r.action,
    peers: r.peers === 'any' ? ['any'] : r.peers.map((p) => describeCnpPeer(p, learned)),
    ports: describePorts(r.ports, { direction: d, named }),
  };
}

/** The ClusterNetworkPolicies of a direction selecting the pod, Admin tier first, in order of evaluation; and the errors of those weir enforces as "Deny all". */
export function clusterTiersOf(
  state: ClusterState,
  ev: PolicyEvaluator,
  pod: { namespace: string; name: string },
  named: NamedPorts,
): { tiers: (d: Direction) => ClusterPolicyReport[]; warnings: string[] } {
  const { policies, errors } = normalizeClusterPolicies(state.clusterPolicies ?? []);
  const byName = new Map<string, NormalizedClusterPolicy>(policies.map((p) => [p.name, p]));
  const tiers = (d: Direction): ClusterPolicyReport[] =>
    ev.clusterPoliciesFor(pod, d).flatMap((ref) => {
      const p = byName.get(ref.name);
      if (!p) return [];
      return [{ name: p.name, tier: p.tier, priority: p.priority, rules: p[d].map((r) => ruleReport(r, d, named, state.domainAddresses)) }];
    });
  const warnings = errors.map((e) => `${e.message} (weir enforces this ClusterNetworkPolicy as "Deny all" for its subjects)`);
  return { tiers, warnings };
}

/** The order a packet meets the tiers in, in one line: "Admin tier: a (10) -> NetworkPolicy -> Baseline tier: c (5) -> default". */
export function tierOrder(tiers: readonly ClusterPolicyReport[], networkPolicies: readonly string[]): string {
  const of = (t: CnpTier): string[] => tiers.filter((p) => p.tier === t).map((p) => `${p.name} (${p.priority})`);
  const admin = of('Admin');
  const baseline = of('Baseline');
  return [
    ...(admin.length ? [`Admin tier: ${admin.join(', ')}`] : []),
    `NetworkPolicy${networkPolicies.length ? `: ${networkPolicies.join(', ')}` : ' (none)'}`,
    ...(baseline.length ? [`Baseline tier: ${baseline.join(', ')}`] : []),
    'default',
  ].join(' -> ');
}

/** The rules of a direction's ClusterNetworkPolicies as a table, in order of evaluation. */
export function formatTiers(tiers: readonly ClusterPolicyReport[], d: Direction, color: boolean): string {
  const action = (a: CnpAction): string => paint(a, a === 'Deny' ? 'red' : a === 'Accept' ? 'green' : 'yellow', color);
  const rows = tiers.flatMap((p) =>
    p.rules.map((r) => [
      `${p.tier} ${p.priority}`,
      action(r.action),
      r.peers.join('\n'),
      r.ports.join('\n'),
      `${p.name} ${d}[${r.rule}]${r.name !== undefined ? ` ${JSON.stringify(r.name)}` : ''}`,
    ]),
  );
  if (rows.length === 0) return '';
  return renderTable(['TIER', 'ACTION', d === 'ingress' ? 'FROM' : 'TO', 'PORTS', 'CLUSTER POLICY RULE'], rows, { color, indent: '  ' });
}
