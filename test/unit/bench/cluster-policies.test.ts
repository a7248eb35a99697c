// The benchmarks' ClusterNetworkPolicies (scripts/bench/policy/
// cluster-policies.ts, pair-tiers.ts): the generator's mix, its `nodes`
// option leaving everything else as bench-agent has always had it, and the
// pair's Pass policies that make bench-policy's connections cross the tiers.
import { describe, expect, it } from 'vitest';
import { addPair, makeCluster, PAIR_PORTS, type PairPods, snapshot } from '../../../scripts/bench/policy/cluster.ts';
import { makeClusterPolicies } from '../../../scripts/bench/policy/cluster-policies.ts';
import { chainPackets, changedClusterPolicy, changedPolicy, PAIR_PASS, pairPassPolicies, placePairPass } from '../../../scripts/bench/policy/pair-tiers.ts';
import { normalizeClusterPolicy } from '../../../src/policy/cnp-normalize.ts';
import type { ClusterNetworkPolicy } from '../../../src/policy/cnp-types.ts';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { evaluate, podEndpoint } from '../../../src/policy/evaluator.ts';

const PAIR: PairPods = {
  client: { namespace: 'ns-03', name: 'bench-client', ip: '10.244.1.2', labels: { app: 'web', tier: 'frontend', version: 'v1' } },
  server: { namespace: 'ns-07', name: 'bench-server', ip: '10.244.1.3', labels: { app: 'api', tier: 'backend', version: 'v1' } },
};
const pairState = (extra: ClusterNetworkPolicy[] = []) => {
  const c = makeCluster({ pods: 1000, policies: 100, seed: 1 });
  addPair(c, PAIR);
  return { ...snapshot(c), clusterPolicies: [...makeClusterPolicies(100, c.namespaces, 1, { nodes: true }), ...extra, ...pairPassPolicies(PAIR, PAIR_PORTS)] };
};
const pairVerdict = (state: ReturnType<typeof pairState>, port: number) =>
  evaluate(state, {
    src: podEndpoint(PAIR.client.namespace, PAIR.client.name),
    dst: podEndpoint(PAIR.server.namespace, PAIR.server.name),
    protocol: 'TCP',
    port,
  });
const denyPair = (name: string, priority: number): ClusterNetworkPolicy => ({
  apiVersion: 'policy.networking.k8s.io/v1beta1',
  kind: 'ClusterNetworkPolicy',
  metadata: { name, uid: `uid-${name}`, resourceVersion: '1' },
  spec: {
    tier: 'Admin',
    priority,
    subject: { namespaces: { matchLabels: { 'kubernetes.io/metadata.name': PAIR.server.namespace } } },
    ingress: [{ name: 'no-ns-03', action: 'Deny', from: [{ namespaces: { matchLabels: { 'kubernetes.io/metadata.name': PAIR.client.namespace } } }] }],
  },
});

describe('makeClusterPolicies', () => {
  it('draws both tiers, every action, priorities and peers of every kind, all valid', () => {
    const cnps = makeClusterPolicies(300, 50, 1, { nodes: true });
    const rules = cnps.flatMap((c) => [
      ...(c.spec?.ingress ?? []).map((r) => ({ tier: c.spec?.tier, action: r.action, peers: r.from ?? [] })),
      ...(c.spec?.egress ?? []).map((r) => ({ tier: c.spec?.tier, action: r.action, peers: r.to ?? [] })),
    ]);
    expect(new Set(cnps.map((c) => c.spec?.tier))).toEqual(new Set(['Admin', 'Baseline']));
    expect(new Set(rules.filter((r) => r.tier === 'Admin').map((r) => r.action))).toEqual(new Set(['Accept', 'Deny', 'Pass']));
    expect(new Set(rules.filter((r) => r.tier === 'Baseline').map((r) => r.action))).toEqual(new Set(['Accept']));
    const kinds = new Set(rules.flatMap((r) => r.peers.flatMap((p) => Object.keys(p))));
    expect(kinds).toEqual(new Set(['pods', 'namespaces', 'networks', 'nodes']));
    expect(new Set(cnps.map((c) => c.spec?.priority)).size).toBeGreaterThan(100);
    for (const c of cnps) expect(() => normalizeClusterPolicy(c)).not.toThrow();
    expect(makeClusterPolicies(300, 50, 1, { nodes: true })).toEqual(cnps);
  });

  it('with nodes, only some networks peers differ: every other field is what bench-agent gets without it', () => {
    const plain = makeClusterPolicies(300, 50, 3);
    const withNodes = makeClusterPolicies(300, 50, 3, { nodes: true });
    expect(plain.flatMap((c) => (c.spec?.egress ?? []).flatMap((r) => r.to ?? [])).some((p) => p.nodes)).toBe(false);
    let changed = 0;
    withNodes.forEach((c, i) => {
      const p = plain[i] as ClusterNetworkPolicy;
      const egress = (c.spec?.egress ?? []).map((r, k) => {
        const before = p.spec?.egress?.[k];
        if (r.to?.[0]?.nodes) {
          expect(before?.to?.[0]?.networks).toBeDefined();
          changed++;
          return before;
        }
        return r;
      });
      expect({ ...c, spec: { ...c.spec, ...(c.spec?.egress ? { egress } : {}) } }).toEqual(p);
    });
    expect(changed).toBeGreaterThan(0);
  });

  it('selects pods of the bench node in both tiers and compiles without errors', () => {
    const c = makeCluster({ pods: 1000, policies: 1000, seed: 1 });
    const res = compilePolicies({ ...snapshot(c), clusterPolicies: makeClusterPolicies(100, c.namespaces, 1, { nodes: true }) }, { nodeName: 'node-01' });
    expect(res.errors).toEqual([]);
    const tiers = res.endpoints.map((e) => e.tiers ?? {});
    expect(tiers.some((t) => t.admin?.ingress && t.admin?.egress)).toBe(true);
    expect(tiers.some((t) => t.baseline?.ingress)).toBe(true);
  });
});

describe("the pair's Pass policies", () => {
  it('stay last when no other Admin rule decides the pair, and the pair is allowed by NetworkPolicy after the Pass', () => {
    const s = pairState();
    expect(placePairPass(s, PAIR, PAIR_PORTS)).toEqual({ server: 1000, client: 1000 });
    for (const port of PAIR_PORTS) {
      const v = pairVerdict(s, port);
      expect(v.allowed).toBe(true);
      expect(v.ingress.tier).toBe('NetworkPolicy');
      expect(v.ingress.reasons[0]).toMatchObject({ kind: 'cluster-rule', action: 'Pass', policy: { name: PAIR_PASS.server } });
      expect(v.egress.reasons[0]).toMatchObject({ kind: 'cluster-rule', action: 'Pass', policy: { name: PAIR_PASS.client } });
    }
  });

  it('move ahead of an Admin policy that would deny the pair, and no further', () => {
    const s = pairState([denyPair('cnp-deny-pair', 500)]);
    expect(pairVerdict(s, 8080).allowed).toBe(false);
    expect(placePairPass(s, PAIR, PAIR_PORTS)).toEqual({ server: 500, client: 1000 });
    expect(pairVerdict(s, 8080).allowed).toBe(true);
    expect(pairVerdict(s, 5201).ingress.reasons[0]).toMatchObject({ policy: { name: PAIR_PASS.server } });
    // The deny still holds for what the Pass does not cover.
    expect(pairVerdict(s, 9090).allowed).toBe(false);
  });

  it('refuse a place they cannot take (a deny at priority 0 whose name sorts first)', () => {
    const s = pairState([denyPair('a-deny-pair', 0)]);
    expect(() => placePairPass(s, PAIR, PAIR_PORTS)).toThrow(/a-deny-pair decides the pair's port \d+ ahead of bench-pass-server/);
  });
});

describe('the edits the sync part times', () => {
  it('give a new object with one new port and a new resourceVersion, the old one untouched', () => {
    const c = makeCluster({ pods: 100, policies: 50, seed: 1 });
    const np = c.state.policies.find((p) => p.spec?.ingress?.length) as NonNullable<(typeof c.state.policies)[number]>;
    const before = structuredClone(np);
    const after = changedPolicy(np, 10000);
    expect(np).toEqual(before);
    expect(after.spec?.ingress?.[0]?.ports).toEqual([{ protocol: 'TCP', port: 10000 }]);
    expect(after.spec?.ingress?.slice(1)).toEqual(np.spec?.ingress?.slice(1));
    expect(after.metadata?.resourceVersion).toBe('2');
    const cnp = makeClusterPolicies(3, 50, 1)[0] as ClusterNetworkPolicy;
    const cnpBefore = structuredClone(cnp);
    const cnpAfter = changedClusterPolicy(cnp, 10001);
    expect(cnp).toEqual(cnpBefore);
    expect(cnpAfter.spec?.ingress?.[0]?.protocols).toEqual([{ tcp: { destinationPort: { number: 10001 } } }]);
    expect(cnpAfter.metadata?.resourceVersion).toBe('2');
  });
});

describe('chainPackets', () => {
  it("sums the counters of one chain's rules only", () => {
    const listing = [
      'table inet weir {',
      '\tchain c1_in {',
      '\t\tip saddr @s1 tcp dport 8080 counter packets 7 bytes 420 goto ingress_pass comment "x"',
      '\t\tip saddr @s2 counter packets 3 bytes 180 drop',
      '\t}',
      '\tchain c1_in_x {',
      '\t\tcounter packets 100 bytes 1 accept',
      '\t}',
      '}',
    ].join('\n');
    expect(chainPackets(listing, 'c1_in')).toBe(10);
    expect(chainPackets(listing, 'c2_in')).toBe(0);
  });
});
