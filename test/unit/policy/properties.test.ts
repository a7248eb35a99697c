// Invariants of NetworkPolicy that hold for every cluster and policy set,
// checked with random policies over a small e2e-like cluster. Each is a
// consequence of the documented semantics, not of this implementation:
// policies only ever add isolation and add allowances, the union does not
// depend on order or on how rules are grouped into policies, ingress is
// decided by the destination namespace's policies alone (egress by the
// source's), and isolation without allowances leaves only self and own-node.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ClusterState,
  type Connection,
  effectivePolicyTypes,
  ipEndpoint,
  type LabelSelector,
  type NetworkPolicy,
  type NetworkPolicyPeer,
  type NetworkPolicyPort,
  type NetworkPolicySpec,
  PolicyEvaluator,
  type Protocol,
  podEndpoint,
  type Verdict,
} from '../../../src/policy/index.ts';
import { ns, pod } from './helpers.ts';

const NS = ['x', 'y', 'z'] as const;
const PODS = ['a', 'b', 'c'] as const;

// The cluster varies only in its labels; addresses and ports are fixed.
const clusterArb = fc.record({
  teams: fc.tuple(...NS.map(() => fc.constantFrom('red', 'blue', undefined))),
  apps: fc.tuple(...NS.flatMap(() => PODS.map(() => fc.constantFrom('web', 'db', undefined)))),
});
type Cluster = { teams: (string | undefined)[]; apps: (string | undefined)[] };

function buildState(c: Cluster, policies: NetworkPolicy[]): ClusterState {
  return {
    namespaces: NS.map((n, i) => ns(n, { ns: n, ...(c.teams[i] ? { team: c.teams[i] } : {}) })),
    pods: NS.flatMap((n, i) =>
      PODS.map((p, j) => {
        const app = c.apps[i * 3 + j];
        return pod(`${n}/${p}`, {
          labels: { pod: p, ...(app ? { app } : {}) },
          ips: [`10.${i + 1}.0.${j + 1}`, `fd00:${i + 1}::${j + 1}`],
          node: `node-${j}`,
          hostIPs: [`192.168.0.${j + 1}`],
          ports: [
            { name: 'serve-80-tcp', containerPort: 80 },
            { name: 'serve-81-udp', containerPort: 81, protocol: 'UDP' },
          ],
        });
      }),
    ),
    nodes: PODS.map((_p, j) => ({ name: `node-${j}`, internalIPs: [`192.168.0.${j + 1}`] })),
    policies,
  };
}

const podSelectorArb: fc.Arbitrary<LabelSelector> = fc.constantFrom<LabelSelector>(
  {},
  { matchLabels: { pod: 'a' } },
  { matchLabels: { pod: 'b' } },
  { matchLabels: { app: 'web' } },
  { matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'web'] }] },
  { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] },
  { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] },
  { matchExpressions: [{ key: 'app', operator: 'Exists' }], matchLabels: { pod: 'c' } },
);
const nsSelectorArb: fc.Arbitrary<LabelSelector> = fc.constantFrom<LabelSelector>(
  {},
  { matchLabels: { ns: 'y' } },
  { matchLabels: { team: 'red' } },
  { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] },
  { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] },
);
const peerArb: fc.Arbitrary<NetworkPolicyPeer> = fc.oneof(
  podSelectorArb.map((podSelector) => ({ podSelector })),
  nsSelectorArb.map((namespaceSelector) => ({ namespaceSelector })),
  fc.tuple(podSelectorArb, nsSelectorArb).map(([podSelector, namespaceSelector]) => ({ podSelector, namespaceSelector })),
  fc.constantFrom<NetworkPolicyPeer>(
    { ipBlock: { cidr: '10.1.0.0/16' } },
    { ipBlock: { cidr: '10.0.0.0/8', except: ['10.2.0.0/16', '10.3.0.1/32'] } },
    { ipBlock: { cidr: 'fd00:2::/32' } },
    { ipBlock: { cidr: '0.0.0.0/0', except: ['192.168.0.0/16'] } },
    { ipBlock: { cidr: '203.0.113.0/24' } },
  ),
);
const portArb: fc.Arbitrary<NetworkPolicyPort> = fc.constantFrom<NetworkPolicyPort>(
  { port: 80 },
  { protocol: 'UDP', port: 81 },
  { port: 'serve-80-tcp' },
  { protocol: 'UDP', port: 'serve-81-udp' },
  { protocol: 'TCP', port: 'serve-81-udp' },
  { protocol: 'UDP' },
  { port: 80, endPort: 81 },
  { protocol: 'SCTP' },
);
const ruleArb = fc.record({
  peers: fc.option(fc.array(peerArb, { maxLength: 3 }), { nil: undefined }),
  ports: fc.option(fc.array(portArb, { maxLength: 2 }), { nil: undefined }),
});
const rulesArb = fc.option(fc.array(ruleArb, { maxLength: 3 }), { nil: undefined });

const policyArb = (name: string): fc.Arbitrary<NetworkPolicy> =>
  fc
    .record({
      namespace: fc.constantFrom(...NS),
      podSelector: podSelectorArb,
      policyTypes: fc.constantFrom<NetworkPolicySpec['policyTypes']>(undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']),
      ingress: rulesArb,
      egress: rulesArb,
    })
    .map((r) => {
      const spec: NetworkPolicySpec = { podSelector: r.podSelector };
      if (r.policyTypes) spec.policyTypes = r.policyTypes;
      if (r.ingress) spec.ingress = r.ingress.map((x) => ({ ...(x.peers ? { from: x.peers } : {}), ...(x.ports ? { ports: x.ports } : {}) }));
      if (r.egress) spec.egress = r.egress.map((x) => ({ ...(x.peers ? { to: x.peers } : {}), ...(x.ports ? { ports: x.ports } : {}) }));
      return { metadata: { namespace: r.namespace, name }, spec };
    });
const policiesArb = fc.array(fc.nat(), { maxLength: 5 }).chain((ids) => fc.tuple(...ids.map((_, i) => policyArb(`p${i}`))));

// Every pod pair over four port/protocol pairs, over IPv4 and IPv6 for TCP/80,
// plus pods talking to an outside address, an outside address and a node
// talking to pods.
const ALL_PODS = NS.flatMap((n) => PODS.map((p) => podEndpoint(n, p)));
const SERVICES: [Protocol, number][] = [
  ['TCP', 80],
  ['TCP', 81],
  ['UDP', 81],
  ['SCTP', 80],
];
const CONNECTIONS: Connection[] = [
  ...ALL_PODS.flatMap((src) => ALL_PODS.flatMap((dst) => SERVICES.map(([protocol, port]) => ({ src, dst, protocol, port })))),
  ...ALL_PODS.flatMap((src) => ALL_PODS.map((dst) => ({ src, dst, protocol: 'TCP' as const, port: 80, family: 6 as const }))),
  ...ALL_PODS.flatMap((p) => [
    { src: p, dst: ipEndpoint('203.0.113.7'), protocol: 'TCP' as const, port: 80 },
    { src: ipEndpoint('203.0.113.7'), dst: p, protocol: 'TCP' as const, port: 80 },
    { src: ipEndpoint('10.2.0.99'), dst: p, protocol: 'UDP' as const, port: 81 },
    { src: ipEndpoint('192.168.0.1'), dst: p, protocol: 'TCP' as const, port: 80 },
  ]),
];

const isSelf = (c: Connection): boolean => c.src.kind === 'pod' && c.dst.kind === 'pod' && c.src.namespace === c.dst.namespace && c.src.name === c.dst.name;
const verdicts = (cluster: Cluster, policies: NetworkPolicy[]): Verdict[] => {
  const e = new PolicyEvaluator(buildState(cluster, policies));
  return CONNECTIONS.map((c) => e.evaluate(c));
};
const allowedOf = (vs: Verdict[]): boolean[] => vs.map((v) => v.allowed);
const RUNS = { numRuns: 60 };

describe('NetworkPolicy invariants', () => {
  it('without policies everything is allowed and nothing is isolated', () => {
    fc.assert(
      fc.property(clusterArb, (cluster) => {
        for (const v of verdicts(cluster, [])) {
          expect(v.allowed).toBe(true);
          expect(v.ingress.isolated || v.egress.isolated).toBe(false);
        }
      }),
      { numRuns: 10 },
    );
  });

  it('verdicts are consistent: both directions needed, unisolated means allowed, reasons cite selecting policies', () => {
    fc.assert(
      fc.property(clusterArb, policiesArb, (cluster, policies) => {
        verdicts(cluster, policies).forEach((v, i) => {
          expect(v.allowed).toBe(v.ingress.allowed && v.egress.allowed);
          for (const d of [v.ingress, v.egress]) {
            if (!d.isolated) expect(d.allowed).toBe(true);
            expect(d.isolated).toBe(d.policies.length > 0);
            expect(d.reasons.length).toBeGreaterThan(0);
            for (const r of d.reasons) {
              if (r.kind === 'rule') expect(d.policies).toContainEqual(r.policy);
              if (r.kind === 'no-rule-matched') expect(d.allowed).toBe(false);
            }
          }
          if (isSelf(CONNECTIONS[i] as Connection)) expect(v.allowed).toBe(true);
        });
      }),
      RUNS,
    );
  });

  it('order of policies does not matter', () => {
    fc.assert(
      fc.property(clusterArb, policiesArb, (cluster, policies) => {
        expect(allowedOf(verdicts(cluster, [...policies].reverse()))).toEqual(allowedOf(verdicts(cluster, policies)));
      }),
      RUNS,
    );
  });

  it('adding a policy removes a connection only by newly isolating one of its ends, and adds one only through its own rules', () => {
    fc.assert(
      fc.property(clusterArb, policiesArb, policyArb('added'), (cluster, policies, added) => {
        const before = verdicts(cluster, policies);
        const after = verdicts(cluster, [...policies, added]);
        before.forEach((b, i) => {
          const a = after[i] as Verdict;
          const sameIsolation = a.ingress.isolated === b.ingress.isolated && a.egress.isolated === b.egress.isolated;
          if (b.allowed && sameIsolation) expect(a.allowed).toBe(true);
          if (!b.allowed && a.allowed) {
            const cites = [...a.ingress.reasons, ...a.egress.reasons].some((r) => r.kind === 'rule' && r.policy.name === 'added');
            const unisolated = !a.ingress.isolated || !a.egress.isolated;
            expect(cites || unisolated).toBe(true);
          }
          // isolation never shrinks
          if (b.ingress.isolated) expect(a.ingress.isolated).toBe(true);
          if (b.egress.isolated) expect(a.egress.isolated).toBe(true);
        });
      }),
      RUNS,
    );
  });

  it('splitting policies into one rule per policy changes nothing (rules are a union)', () => {
    fc.assert(
      fc.property(clusterArb, policiesArb, (cluster, policies) => {
        const split: NetworkPolicy[] = policies.flatMap((p, i) => {
          const spec = p.spec ?? {};
          const types = effectivePolicyTypes(spec);
          const base = { podSelector: spec.podSelector ?? {}, policyTypes: types };
          const meta = (k: string) => ({ namespace: p.metadata?.namespace ?? '', name: `s${i}-${k}` });
          return [
            { metadata: meta('iso'), spec: base },
            ...(spec.ingress ?? []).map((r, j) => ({ metadata: meta(`i${j}`), spec: { ...base, ingress: [r] } })),
            ...(spec.egress ?? []).map((r, j) => ({ metadata: meta(`e${j}`), spec: { ...base, egress: [r] } })),
          ];
        });
        expect(allowedOf(verdicts(cluster, split))).toEqual(allowedOf(verdicts(cluster, policies)));
      }),
      RUNS,
    );
  });

  it('ingress is decided by the destination namespace policies alone, egress by the source namespace', () => {
    fc.assert(
      fc.property(clusterArb, policiesArb, (cluster, policies) => {
        const full = verdicts(cluster, policies);
        const byNs = new Map(
          NS.map((n) => [
            n,
            new PolicyEvaluator(
              buildState(
                cluster,
                policies.filter((p) => p.metadata?.namespace === n),
              ),
            ),
          ]),
        );
        const none = new PolicyEvaluator(buildState(cluster, []));
        CONNECTIONS.forEach((c, i) => {
          const v = full[i] as Verdict;
          const dstOnly = c.dst.kind === 'pod' ? (byNs.get(c.dst.namespace as (typeof NS)[number]) ?? none) : none;
          const srcOnly = c.src.kind === 'pod' ? (byNs.get(c.src.namespace as (typeof NS)[number]) ?? none) : none;
          expect(dstOnly.evaluate(c).ingress).toEqual(v.ingress);
          expect(srcOnly.evaluate(c).egress).toEqual(v.egress);
        });
      }),
      { numRuns: 30 },
    );
  });

  it('a deny-all ingress policy, alone in its namespace, leaves only self and own-node traffic in', () => {
    fc.assert(
      fc.property(clusterArb, policiesArb, fc.constantFrom(...NS), (cluster, policies, target) => {
        // drop the other ingress policies of the target namespace: they could allow things
        const others = policies.filter((p) => p.metadata?.namespace !== target || !effectivePolicyTypes(p.spec).includes('Ingress'));
        const deny: NetworkPolicy = { metadata: { namespace: target, name: 'deny' }, spec: { podSelector: {}, policyTypes: ['Ingress'] } };
        const e = new PolicyEvaluator(buildState(cluster, [...others, deny]));
        for (const c of CONNECTIONS) {
          if (c.dst.kind !== 'pod' || c.dst.namespace !== target) continue;
          const v = e.evaluate(c);
          const fromOwnNode = c.src.kind === 'ip' && c.src.ip === `192.168.0.${PODS.indexOf(c.dst.name as (typeof PODS)[number]) + 1}`;
          expect(v.ingress.isolated).toBe(true);
          expect(v.ingress.allowed).toBe(isSelf(c) || fromOwnNode);
        }
      }),
      RUNS,
    );
  });
});
