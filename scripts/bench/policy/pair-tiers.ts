// ClusterNetworkPolicies in bench-policy (--cluster-policies): the pair's own
// Admin policies, so that the benchmark's connections cross the tier chains
// and not just the NetworkPolicy profiles, and the changes the sync part
// times (one NetworkPolicy or one ClusterNetworkPolicy edited).
import type { ClusterNetworkPolicy } from '../../../src/policy/cnp-types.ts';
import { evaluate, podEndpoint } from '../../../src/policy/evaluator.ts';
import type { ClusterState, NetworkPolicy } from '../../../src/policy/types.ts';
import type { PairPods } from './cluster.ts';

/** Names that sort before the generator's (cnp-NNN): at equal priority the pair's policy goes first. */
export const PAIR_PASS = { server: 'bench-pass-server', client: 'bench-pass-client' } as const;
const LOWEST = 1000;

/**
 * Two Admin policies that Pass the pair's traffic on to NetworkPolicy: one
 * with the server as subject (ingress from the client), one with the client
 * (egress to the server), both at the lowest precedence to start with.
 */
export function pairPassPolicies(pair: PairPods, ports: readonly number[]): ClusterNetworkPolicy[] {
  const pods = (p: PairPods['client']) => ({
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': p.namespace } },
    podSelector: { matchLabels: { app: p.labels.app as string } },
  });
  const protocols = ports.map((port) => ({ tcp: { destinationPort: { number: port } } }));
  const meta = (name: string) => ({ name, uid: `uid-${name}`, resourceVersion: '1' });
  return [
    {
      apiVersion: 'policy.networking.k8s.io/v1beta1',
      kind: 'ClusterNetworkPolicy',
      metadata: meta(PAIR_PASS.server),
      spec: {
        tier: 'Admin',
        priority: LOWEST,
        subject: { pods: pods(pair.server) },
        ingress: [{ name: 'bench-client', action: 'Pass', from: [{ pods: pods(pair.client) }], protocols }],
      },
    },
    {
      apiVersion: 'policy.networking.k8s.io/v1beta1',
      kind: 'ClusterNetworkPolicy',
      metadata: meta(PAIR_PASS.client),
      spec: {
        tier: 'Admin',
        priority: LOWEST,
        subject: { pods: pods(pair.client) },
        egress: [{ name: 'bench-server', action: 'Pass', to: [{ pods: pods(pair.server) }], protocols }],
      },
    },
  ];
}

/**
 * Moves the pair's Pass policies (in `state.clusterPolicies`, replaced in
 * place) ahead of any other Admin policy whose rule decides the pair's
 * connections, so that the reference evaluator says: the Admin tier's first
 * matching rule is the pair's Pass, NetworkPolicy allows. Every Admin policy
 * of the pair that does not match its traffic stays ahead of the Pass, and a
 * packet crosses all of their rules first. Returns the Pass policies' priorities.
 */
export function placePairPass(
  state: ClusterState & { clusterPolicies: ClusterNetworkPolicy[] },
  pair: PairPods,
  ports: readonly number[],
): { server: number; client: number } {
  const list = state.clusterPolicies;
  const at = (name: string): number => list.findIndex((c) => c.metadata?.name === name);
  for (let round = 0; round < 2 * list.length + 2; round++) {
    let moved = false;
    for (const port of ports) {
      const v = evaluate(state, {
        src: podEndpoint(pair.client.namespace, pair.client.name),
        dst: podEndpoint(pair.server.namespace, pair.server.name),
        protocol: 'TCP',
        port,
      });
      for (const [dir, own] of [
        [v.ingress, PAIR_PASS.server],
        [v.egress, PAIR_PASS.client],
      ] as const) {
        const first = dir.reasons.find((r) => r.kind === 'cluster-rule' && r.tier === 'Admin');
        if (first?.kind !== 'cluster-rule' || first.policy.name === own) continue;
        const i = at(own);
        const cur = list[i] as ClusterNetworkPolicy;
        if ((cur.spec?.priority ?? LOWEST) <= first.priority)
          throw new Error(`${first.policy.name} decides the pair's port ${port} ahead of ${own} at the same priority`);
        list[i] = {
          ...cur,
          metadata: { ...cur.metadata, resourceVersion: String(Number(cur.metadata?.resourceVersion ?? 1) + 1) },
          spec: { ...cur.spec, priority: first.priority },
        };
        moved = true;
      }
      if (!moved && !(v.allowed && v.ingress.tier === 'NetworkPolicy' && v.egress.tier === 'NetworkPolicy'))
        throw new Error(
          `the pair's port ${port} is not passed on to NetworkPolicy and allowed (ingress: ${v.ingress.tier}, egress: ${v.egress.tier}, ${v.allowed ? 'allowed' : 'denied'})`,
        );
    }
    if (!moved) return { server: list[at(PAIR_PASS.server)]?.spec?.priority ?? LOWEST, client: list[at(PAIR_PASS.client)]?.spec?.priority ?? LOWEST };
  }
  throw new Error("the pair's Pass policies found no place");
}

/** A NetworkPolicy edited as a user would: its first ingress (else egress) rule's ports become one TCP port. */
export function changedPolicy(p: NetworkPolicy, port: number): NetworkPolicy {
  const spec = { ...p.spec };
  const ports = [{ protocol: 'TCP', port }];
  if (spec.ingress?.length) spec.ingress = [{ ...spec.ingress[0], ports }, ...spec.ingress.slice(1)];
  else if (spec.egress?.length) spec.egress = [...spec.egress.slice(0, -1), { ...spec.egress[spec.egress.length - 1], ports }];
  else throw new Error(`NetworkPolicy ${p.metadata?.namespace}/${p.metadata?.name} has no rule to change`);
  return { ...p, metadata: { ...p.metadata, resourceVersion: String(Number(p.metadata?.resourceVersion ?? 1) + 1) }, spec };
}

/** A ClusterNetworkPolicy edited likewise: its first rule's protocols become one TCP port. */
export function changedClusterPolicy(c: ClusterNetworkPolicy, port: number): ClusterNetworkPolicy {
  const spec = { ...c.spec };
  const protocols = [{ tcp: { destinationPort: { number: port } } }];
  if (spec.ingress?.length) spec.ingress = [{ ...spec.ingress[0], protocols }, ...spec.ingress.slice(1)];
  else if (spec.egress?.length) spec.egress = [{ ...spec.egress[0], protocols }, ...spec.egress.slice(1)];
  else throw new Error(`ClusterNetworkPolicy ${c.metadata?.name} has no rule to change`);
  return { ...c, metadata: { ...c.metadata, resourceVersion: String(Number(c.metadata?.resourceVersion ?? 1) + 1) }, spec };
}

/** Packets counted by the rules of `chain` in an `nft list table` listing. */
export function chainPackets(listing: string, chain: string): number {
  let inside = false;
  let n = 0;
  for (const line of listing.split('\n')) {
    const t = line.trim();
    if (t.startsWith('chain ')) inside = t === `chain ${chain} {`;
    else if (inside && t === '}') inside = false;
    else if (inside) n += Number(/counter packets (\d+)/.exec(t)?.[1] ?? 0);
  }
  return n;
}
