// Synthetic ClusterNetworkPolicies (policy.networking.k8s.io/v1beta1, the
// standard channel of sigs.k8s.io/network-policy-api v0.3.0) for the
// benchmarks' --cluster-policies (bench-agent, bench-policy): what a platform
// team writes on top of the namespaces' NetworkPolicies. Drawn from the same
// label vocabulary as the synthetic cluster (cluster.ts) with a generator of
// its own, so adding them leaves the pods and NetworkPolicies unchanged.
// Deterministic: the same count, seed and options give the same objects.
import type {
  ClusterNetworkPolicy,
  ClusterNetworkPolicyEgressPeer,
  ClusterNetworkPolicyIngressPeer,
  ClusterNetworkPolicyProtocol,
  CnpAction,
} from '../../../src/policy/cnp-types.ts';
import type { LabelSelector } from '../../../src/policy/types.ts';
import { APPS, ENVS, nsName, rng, TEAMS, TIERS } from './cluster.ts';

const PORTS = [80, 443, 8080, 5432, 6379, 9090];

export const cnpName = (i: number): string => `cnp-${String(i).padStart(3, '0')}`;

export interface ClusterPolicyOptions {
  /**
   * Turn some of the `networks` egress peers into `nodes` peers (the nodes'
   * InternalIPs). Decided from a stream of its own, so every other field is
   * the same as without the option.
   */
  nodes?: boolean;
}

/** Node selectors for `nodes` peers; the synthetic nodes have no labels, so both select every node (as "workers" does in a cluster without a control-plane label). */
export const NODE_SELECTORS: readonly LabelSelector[] = [
  {},
  { matchExpressions: [{ key: 'node-role.kubernetes.io/control-plane', operator: 'DoesNotExist' }] },
];

/** `n` ClusterNetworkPolicies: a third Admin (Deny and Pass guard rails), the rest Baseline (Accept defaults). */
export function makeClusterPolicies(n: number, nsCount: number, seed = 1, opts: ClusterPolicyOptions = {}): ClusterNetworkPolicy[] {
  // A stream apart from makeCluster's: the pods and NetworkPolicies stay what they were.
  const r = rng((seed * 7919 + 104729) >>> 0);
  const rn = rng((seed * 6007 + 15485863) >>> 0);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const nsSel = (): LabelSelector => {
    const x = r();
    if (x < 0.45) return { matchLabels: { team: pick(TEAMS) } };
    if (x < 0.75) return { matchLabels: { env: pick(ENVS) } };
    return { matchLabels: { 'kubernetes.io/metadata.name': nsName(Math.floor(r() * nsCount)) } };
  };
  const podSel = (): LabelSelector => (r() < 0.6 ? { matchLabels: { app: pick(APPS) } } : { matchLabels: { tier: pick(TIERS) } });
  const protocols = (): ClusterNetworkPolicyProtocol[] | undefined => (r() < 0.2 ? undefined : [{ tcp: { destinationPort: { number: pick(PORTS) } } }]);
  const podPeer = (): ClusterNetworkPolicyIngressPeer =>
    r() < 0.45 ? { namespaces: nsSel() } : { pods: { namespaceSelector: nsSel(), podSelector: podSel() } };
  const networks = (): ClusterNetworkPolicyEgressPeer => {
    const cidr = pick(['192.168.0.0/16', '172.16.0.0/12', '203.0.113.0/24']);
    return opts.nodes && rn() < 0.5 ? { nodes: NODE_SELECTORS[Math.floor(rn() * NODE_SELECTORS.length)] as LabelSelector } : { networks: [cidr] };
  };
  // networks and nodes are egress peers only.
  const egressPeer = (): ClusterNetworkPolicyEgressPeer => (r() < 0.15 ? networks() : podPeer());
  return Array.from({ length: n }, (_, i) => {
    const admin = i % 3 === 0;
    const actions: CnpAction[] = admin ? ['Deny', 'Pass', 'Accept'] : ['Accept'];
    const rule = (k: number) => {
      const p = protocols();
      return { name: `r${k}`, action: pick(actions), ...(p ? { protocols: p } : {}) };
    };
    const subject = r() < 0.5 ? { namespaces: nsSel() } : { pods: { namespaceSelector: nsSel(), podSelector: podSel() } };
    const ingress = Array.from({ length: 1 + Math.floor(r() * 2) }, (_, k) => ({ ...rule(k), from: [podPeer()] }));
    const egress = r() < 0.5 ? [{ ...rule(9), to: [egressPeer()] }] : undefined;
    return {
      apiVersion: 'policy.networking.k8s.io/v1beta1',
      kind: 'ClusterNetworkPolicy',
      metadata: { name: cnpName(i), uid: `uid-cnp-${i}`, resourceVersion: '1' },
      spec: { tier: admin ? 'Admin' : 'Baseline', priority: Math.floor(r() * 1000), subject, ingress, ...(egress ? { egress } : {}) },
    };
  });
}
