// ClusterNetworkPolicy tiers enforced by the real kernel, against the
// reference evaluator. Needs root and the built plugin (dist/bin/weir).
//
// The upstream x/y/z model of matrix.test.ts (test/helpers/policy-node.ts),
// plus the node itself: a probe server in the node namespace on its address
// (192.0.2.1), so that the matrix also holds every pod's traffic to its own
// node (the input hook, where pod_local judges the tiers) and the node's to
// every pod (the output hook, never policed). Cases first, then random
// ClusterNetworkPolicies of both tiers mixed with NetworkPolicies, synced as
// diffs through one engine (WEIR_CNP_RUNS, default 8; WEIR_CNP_SEED).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MatrixPod, type MatrixProbe, type MatrixResult, renderMatrix, runMatrix } from '../../../lab/probe/matrix.ts';
import { type ServerProcess, spawnServer } from '../../../lab/probe/process.ts';
import type {
  ClusterNetworkPolicy,
  ClusterNetworkPolicyEgressPeer,
  ClusterNetworkPolicyProtocol,
  ClusterNetworkPolicySubject,
  CnpTier,
} from '../../../src/policy/cnp-types.ts';
import { ipEndpoint, PolicyEvaluator, podEndpoint } from '../../../src/policy/evaluator.ts';
import type { LabelSelector, NetworkPolicy, NetworkPolicySpec } from '../../../src/policy/types.ts';
import { e2eModel, NODE_IP, POD_CIDR, PORTS, PROTOCOLS, propertyRuns, usePolicyNode } from '../../helpers/policy-node.ts';

const fx = usePolicyNode({ prefix: 'polcnp', ...e2eModel() });
const { runs: RUNS, seed: SEED } = propertyRuns('WEIR_CNP', 8);
const NODE = 'node';

let nodeServer: ServerProcess | undefined;
beforeAll(async () => {
  nodeServer = await spawnServer({ netnsPath: fx.node.node.path, name: NODE, tcp: PORTS, udp: PORTS, sctp: PORTS });
}, 60_000);
afterAll(() => nodeServer?.stop());

// ---- the matrix, node included ----

const entries = (): MatrixPod[] => [
  ...fx.node.pods.map((p) => ({ id: p.id, netnsPath: p.netns.path, ips: [p.ip], observer: p.server })),
  { id: NODE, netnsPath: fx.node.node.path, ips: [NODE_IP], observer: nodeServer as ServerProcess },
];

function expected(): MatrixResult {
  const ev = new PolicyEvaluator(fx.node.state());
  const endpoint = (id: string) => (id === NODE ? ipEndpoint(NODE_IP) : podEndpoint(id.split('/')[0] as string, id.split('/')[1] as string));
  const ids = entries().map((e) => e.id);
  const probes: MatrixProbe[] = [];
  for (const port of PORTS) {
    for (const protocol of PROTOCOLS) {
      for (const from of ids)
        for (const to of ids)
          if (from !== to)
            probes.push({ from, to, port, protocol, connected: ev.evaluate({ src: endpoint(from), dst: endpoint(to), protocol, port }).allowed });
    }
  }
  return { probes };
}

/** Applies the policies (a diff after the first sync), probes the kernel with the node in the matrix, and returns the disagreements and a report. */
async function check(
  label: string,
  clusterPolicies: ClusterNetworkPolicy[],
  policies: NetworkPolicy[] = [],
): Promise<{ mismatches: string[]; report: string; observed: MatrixResult }> {
  const node = fx.node;
  node.apply(policies, undefined, undefined, clusterPolicies);
  const ips = new Set(node.pods.map((p) => p.ip));
  node.conntrack().deleteWhere((e) => ips.has(e.orig.src) || ips.has(e.orig.dst));
  const observed = await runMatrix(entries(), { ports: [...PORTS], protocols: [...PROTOCOLS], timeoutMs: 1000 });
  const want = expected();
  const k = (p: MatrixProbe) => `${p.from} -> ${p.to} ${p.port}/${p.protocol}`;
  const byKey = new Map(want.probes.map((p) => [k(p), p.connected]));
  const mismatches = observed.probes.filter((p) => byKey.get(k(p)) !== p.connected).map((p) => `${k(p)}: kernel ${p.connected ? 'connected' : 'blocked'}`);
  const ids = entries().map((e) => e.id);
  const report =
    mismatches.length === 0
      ? ''
      : [
          `=== ${label}`,
          ...mismatches,
          '--- cluster policies',
          JSON.stringify(clusterPolicies, null, 1),
          '--- policies',
          JSON.stringify(policies, null, 1),
          '--- kernel',
          renderMatrix(observed, ids),
          '--- evaluator',
          renderMatrix(want, ids),
          '--- table',
          node.table(),
        ].join('\n');
  return { mismatches, report, observed };
}
const connected = (m: MatrixResult, from: string, to: string, port: number, protocol: string): boolean | undefined =>
  m.probes.find((p) => p.from === from && p.to === to && p.port === port && p.protocol === protocol)?.connected;

// ---- shorthands ----

const sel = (labels: Record<string, string>): LabelSelector => ({ matchLabels: labels });
const cnp = (
  name: string,
  tier: CnpTier,
  priority: number,
  subject: ClusterNetworkPolicySubject,
  spec: Pick<ClusterNetworkPolicy['spec'] & object, 'ingress' | 'egress'>,
): ClusterNetworkPolicy => ({
  metadata: { name },
  spec: { tier, priority, subject, ...spec },
});
const inNs = (n: string): ClusterNetworkPolicySubject => ({ namespaces: sel({ ns: n }) });
const np = (ns: string, name: string, spec: NetworkPolicySpec): NetworkPolicy => ({ metadata: { namespace: ns, name }, spec });

describe('ClusterNetworkPolicy on the kernel: cases', () => {
  it.each<[string, ClusterNetworkPolicy[], NetworkPolicy[]]>([
    ['no policy at all', [], []],
    [
      'Admin Deny from y overrides a NetworkPolicy that allows it',
      [cnp('deny-y', 'Admin', 1, inNs('x'), { ingress: [{ action: 'Deny', from: [{ namespaces: sel({ ns: 'y' }) }] }] })],
      [np('x', 'allow-all', { ingress: [{}] })],
    ],
    [
      'Admin Pass hands y to the NetworkPolicy, Deny the rest',
      [
        cnp('pass-y', 'Admin', 1, inNs('x'), {
          ingress: [
            { action: 'Pass', from: [{ namespaces: sel({ ns: 'y' }) }] },
            { action: 'Deny', from: [{ namespaces: {} }] },
          ],
        }),
      ],
      [np('x', 'only-a', { ingress: [{ from: [{ namespaceSelector: {}, podSelector: sel({ pod: 'a' }) }] }] })],
    ],
    [
      'Baseline Deny for the pods no NetworkPolicy isolates',
      [cnp('default', 'Baseline', 5, { namespaces: {} }, { ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }] })],
      [np('z', 'open', { ingress: [{ ports: [{ port: 80 }] }] })],
    ],
    [
      'named ports, ranges, protocols',
      [
        cnp(
          'web',
          'Admin',
          2,
          { pods: { podSelector: {} } },
          {
            egress: [
              { action: 'Accept', to: [{ pods: { podSelector: sel({ pod: 'b' }) } }], protocols: [{ destinationNamedPort: 'web' }] },
              { action: 'Deny', to: [{ networks: [POD_CIDR] }], protocols: [{ tcp: { destinationPort: { range: { start: 80, end: 81 } } } }, { sctp: {} }] },
            ],
          },
        ),
      ],
      [],
    ],
    [
      'egress to the node: Deny, but Pass UDP 81 on to the NetworkPolicy own-node rule or the Baseline',
      [
        cnp(
          'nodes',
          'Admin',
          3,
          { namespaces: {} },
          {
            egress: [
              { action: 'Pass', to: [{ nodes: {} }], protocols: [{ udp: { destinationPort: { number: 81 } } }] },
              { action: 'Deny', to: [{ nodes: {} }], protocols: [{ tcp: {} }] },
            ],
          },
        ),
        cnp('bl', 'Baseline', 0, inNs('y'), { egress: [{ action: 'Deny', to: [{ networks: ['192.0.2.0/24'] }] }] }),
      ],
      [np('x', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] })],
    ],
  ])(
    '%s',
    async (name, cnps, nps) => {
      const r = await check(name, cnps, nps);
      expect(r.mismatches, r.report).toEqual([]);
      if (name.startsWith('egress to the node')) {
        // Not vacuous: the node answers, and the tiers decide both ways on its input hook.
        expect([
          connected(r.observed, 'x/a', NODE, 80, 'TCP'),
          connected(r.observed, 'y/a', NODE, 80, 'TCP'),
          connected(r.observed, 'z/a', NODE, 80, 'UDP'),
        ]).toEqual([false, false, true]);
        expect([
          connected(r.observed, 'x/a', NODE, 81, 'UDP'),
          connected(r.observed, 'y/b', NODE, 81, 'UDP'),
          connected(r.observed, NODE, 'y/b', 80, 'TCP'),
        ]).toEqual([true, false, true]);
      }
    },
    120_000,
  );
});

// ---- random policies ----

const podSel = fc.constantFrom<LabelSelector>({}, sel({ pod: 'a' }), sel({ pod: 'b' }), {
  matchExpressions: [{ key: 'pod', operator: 'NotIn', values: ['c'] }],
});
const nsSel = fc.constantFrom<LabelSelector>({}, sel({ ns: 'x' }), sel({ ns: 'y' }), { matchExpressions: [{ key: 'ns', operator: 'In', values: ['y', 'z'] }] });
const podsPeer = fc.oneof(
  nsSel.map((namespaces) => ({ namespaces })),
  fc.tuple(nsSel, podSel).map(([namespaceSelector, podSelector]) => ({ pods: { namespaceSelector, podSelector } })),
);
const PROTOS: ClusterNetworkPolicyProtocol[] = [
  { tcp: { destinationPort: { number: 80 } } },
  { udp: { destinationPort: { number: 81 } } },
  { sctp: {} },
  { tcp: { destinationPort: { range: { start: 80, end: 81 } } } },
];
const NAMED: ClusterNetworkPolicyProtocol[] = [{ destinationNamedPort: 'web' }, { destinationNamedPort: 'serve-81-udp' }];
const action = fc.constantFrom('Accept' as const, 'Deny' as const, 'Pass' as const);

/** Peers and protocols, resolved against the pod addresses once the node runs (networks around them). */
function cnpArb(slot: number, ips: readonly string[]): fc.Arbitrary<ClusterNetworkPolicy> {
  const other: fc.Arbitrary<ClusterNetworkPolicyEgressPeer> = fc.oneof(
    fc.constant({ nodes: {} }),
    fc.constantFrom(`${ips[0]}/32`, `${ips[4]}/32`, POD_CIDR, '0.0.0.0/0', '192.0.2.1/32').map((c) => ({ networks: [c] })),
  );
  const protocols = (named: boolean) =>
    fc.option(fc.uniqueArray(fc.constantFrom(...PROTOS, ...(named ? NAMED : [])), { minLength: 1, maxLength: 2 }), { nil: undefined, freq: 2 });
  // A rule drawn without protocols has no protocols member (not one set to undefined).
  const ingress = fc
    .record({ action, from: fc.array(podsPeer, { minLength: 1, maxLength: 2 }), protocols: protocols(true) })
    .map(({ protocols: ps, ...r }) => ({ ...r, ...(ps === undefined ? {} : { protocols: ps }) }));
  const egress = fc
    .record({ action, to: fc.array(fc.oneof(podsPeer, other), { minLength: 1, maxLength: 2 }), named: fc.boolean() })
    .chain(({ action: a, to, named }) =>
      protocols(named && to.every((p) => 'namespaces' in p || 'pods' in p)).map((ps) => ({ action: a, to, ...(ps === undefined ? {} : { protocols: ps }) })),
    );
  return fc
    .record({
      tier: fc.constantFrom<CnpTier>('Admin', 'Baseline'),
      priority: fc.constantFrom(1, 2, 2),
      subject: podsPeer,
      ingress: fc.array(ingress, { maxLength: 2 }),
      egress: fc.array(egress, { maxLength: 2 }),
    })
    .map(({ tier, priority, subject, ingress: i, egress: e }) =>
      cnp(`cnp${slot}`, tier, priority, subject, { ...(i.length ? { ingress: i } : {}), ...(e.length ? { egress: e } : {}) }),
    );
}
const NPS: NetworkPolicy[] = [
  np('x', 'deny-in', { podSelector: sel({ pod: 'a' }), policyTypes: ['Ingress'] }),
  np('y', 'from-x', { ingress: [{ from: [{ namespaceSelector: sel({ ns: 'x' }) }] }] }),
  np('z', 'deny-eg', { podSelector: {}, policyTypes: ['Egress'] }),
  np('x', 'eg-80', { podSelector: sel({ pod: 'b' }), policyTypes: ['Egress'], egress: [{ ports: [{ port: 80 }] }] }),
];

describe('ClusterNetworkPolicy on the kernel: random policies', () => {
  it(`${RUNS} random sets of ClusterNetworkPolicies and NetworkPolicies, synced as diffs: kernel matrix == evaluator matrix`, async () => {
    const ips = fx.node.pods.map((p) => p.ip);
    console.log(`tiers property seed ${SEED} (WEIR_CNP_SEED=${SEED} WEIR_CNP_RUNS=${RUNS} to replay)`);
    const arb = fc.record({
      cnps: fc.tuple(...[0, 1, 2].map((i) => fc.option(cnpArb(i, ips), { nil: null, freq: 4 }))),
      nps: fc.subarray(NPS, { maxLength: 2 }),
    });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(arb, async ({ cnps, nps }) => {
        run++;
        const r = await check(
          `tiers run ${run} (seed ${SEED})`,
          cnps.flatMap((c) => (c ? [c] : [])),
          nps,
        );
        if (r.mismatches.length > 0) console.log(r.report);
        expect(r.mismatches, r.report).toEqual([]);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    fx.node.apply([], undefined, undefined, []);
  }, 900_000);
});
