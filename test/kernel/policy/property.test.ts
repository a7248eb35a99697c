// Random NetworkPolicy on the real kernel vs the reference evaluator. Needs
// root and the built plugin (dist/bin/weir).
//
// The 9 pods of the e2e model (x, y, z x a, b, c on node n1, see
// test/helpers/policy-node.ts) get random labels, the namespaces too, and a
// random set of policies is drawn from a small vocabulary: selectors over the
// labels in use (matchLabels and every matchExpressions operator), pod,
// namespace, AND and ipBlock peers (CIDRs and excepts around the real pod
// addresses), numeric ports, ranges, protocol-only entries and named ports
// (including `web`, which means a different port or protocol per pod, and a
// name no pod declares), ingress, egress or both. Each run syncs the SAME
// engine, so every run after the first is a diff on the kernel's table
// (also a test of incremental updates), then the kernel's 9x9 matrix (ports
// 80/81, TCP/UDP/SCTP) must equal the evaluator's.
//
// Runs: WEIR_POLICY_RUNS (default 12); seed: WEIR_POLICY_SEED (printed). No
// shrinking (each run costs a real matrix): a failure prints the policies,
// the labels and both matrices.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type {
  LabelSelector,
  LabelSelectorRequirement,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NetworkPolicySpec,
} from '../../../src/policy/types.ts';
import { E2E_NAMESPACES, E2E_PODS, e2eModel, POD_CIDR, propertyRuns, usePolicyNode } from '../../helpers/policy-node.ts';

const fx = usePolicyNode({ prefix: 'polprop', ...e2eModel() });

const { runs: RUNS, seed: SEED } = propertyRuns('WEIR_POLICY', 12);

// ---- labels ----

const POD_KEYS = { role: ['web', 'db'], tier: ['1', '2'] } as const;
const NS_KEYS = { env: ['prod', 'dev'], team: ['a', 'b'] } as const;
const POD_IDS = E2E_NAMESPACES.flatMap((n) => E2E_PODS.map((p) => `${n}/${p}`));

const optional = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined, freq: 3 });
const labelsArb = (keys: Record<string, readonly string[]>): fc.Arbitrary<Record<string, string>> =>
  fc
    .record(Object.fromEntries(Object.entries(keys).map(([k, vs]) => [k, optional(fc.constantFrom(...vs))])))
    .map((r) => Object.fromEntries(Object.entries(r).filter(([, v]) => v !== undefined)) as Record<string, string>);
const podLabelsArb = fc
  .tuple(...POD_IDS.map(() => labelsArb(POD_KEYS)))
  .map((ls) => Object.fromEntries(POD_IDS.map((id, i) => [id, { pod: id.split('/')[1]!, ...ls[i] }])));
const nsLabelsArb = fc
  .tuple(...E2E_NAMESPACES.map(() => labelsArb(NS_KEYS)))
  .map((ls) => Object.fromEntries(E2E_NAMESPACES.map((n, i) => [n, { ns: n, ...ls[i] }])));

// ---- selectors ----

function selectorArb(keys: Record<string, readonly string[]>): fc.Arbitrary<LabelSelector> {
  const key = fc.constantFrom(...Object.keys(keys));
  const req: fc.Arbitrary<LabelSelectorRequirement> = key.chain((k) =>
    fc.oneof(
      fc.record({ key: fc.constant(k), operator: fc.constantFrom('In', 'NotIn'), values: fc.subarray([...keys[k]!], { minLength: 1 }) }),
      fc.record({ key: fc.constant(k), operator: fc.constantFrom('Exists', 'DoesNotExist') }),
    ),
  );
  const matchLabels = key.chain((k) => fc.constantFrom(...keys[k]!).map((v) => ({ [k]: v })));
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant({}) },
    { weight: 3, arbitrary: matchLabels.map((m) => ({ matchLabels: m })) },
    { weight: 3, arbitrary: fc.array(req, { minLength: 1, maxLength: 2 }).map((e) => ({ matchExpressions: e })) },
    { weight: 1, arbitrary: fc.tuple(matchLabels, req).map(([m, e]) => ({ matchLabels: m, matchExpressions: [e] })) },
  );
}
const podSelArb = selectorArb({ pod: [...E2E_PODS], ...POD_KEYS });
const nsSelArb = selectorArb({ ns: [...E2E_NAMESPACES], ...NS_KEYS });

// ---- ipBlocks around the real pod addresses (known once the node runs) ----

const ipToInt = (ip: string): number => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const intToIp = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
const cidrParts = (c: string): [number, number] => {
  const [ip, len] = c.split('/');
  const prefix = Number(len);
  const size = 2 ** (32 - prefix);
  return [Math.floor(ipToInt(ip!) / size) * size, prefix];
};
/** `inner` is a strict subset of `outer`. */
const strictlyInside = (inner: string, outer: string): boolean => {
  const [ib, ip] = cidrParts(inner);
  const [ob, op] = cidrParts(outer);
  return ip > op && ib >= ob && ib < ob + 2 ** (32 - op);
};

/** Symbolic ipBlock, resolved against the pod addresses when the policies are built. */
type IpBlockSpec = { around: number; prefix: 32 | 30 | 28 | 24 | 0; except: { around: number; prefix: 32 | 31 | 30 }[] };
const ipBlockArb: fc.Arbitrary<IpBlockSpec> = fc.record({
  around: fc.nat(8),
  prefix: fc.constantFrom(32, 30, 28, 24, 0),
  except: fc.array(fc.record({ around: fc.nat(8), prefix: fc.constantFrom(32, 31, 30) }), { maxLength: 2 }),
});

function resolveIpBlock(b: IpBlockSpec, ips: readonly string[]): NetworkPolicyPeer {
  const at = (i: number, prefix: number): string => {
    const size = 2 ** (32 - prefix);
    return prefix === 0 ? '0.0.0.0/0' : `${intToIp(Math.floor(ipToInt(ips[i % ips.length]!) / size) * size)}/${prefix}`;
  };
  const cidr = b.prefix === 24 ? POD_CIDR : at(b.around, b.prefix);
  // Only strict subsets are valid excepts; duplicates are harmless but dropped.
  const except = [...new Set(b.except.map((e) => at(e.around, e.prefix)).filter((e) => strictlyInside(e, cidr)))];
  // Half the time with host bits set in the cidr, as the API allows ("10.244.1.5/24" means the /24).
  const cidrText = b.prefix === 32 || b.prefix === 0 ? cidr : cidr.replace(/^[^/]+/, ips[b.around % ips.length]!);
  return { ipBlock: { cidr: b.around % 2 === 0 ? cidrText : cidr, ...(except.length ? { except } : {}) } };
}

// ---- peers, ports, rules, policies ----

type PeerSpec =
  | { kind: 'pod'; pod: LabelSelector }
  | { kind: 'ns'; ns: LabelSelector }
  | { kind: 'and'; ns: LabelSelector; pod: LabelSelector }
  | { kind: 'ip'; block: IpBlockSpec };
const peerArb: fc.Arbitrary<PeerSpec> = fc.oneof(
  fc.record({ kind: fc.constant('pod' as const), pod: podSelArb }),
  fc.record({ kind: fc.constant('ns' as const), ns: nsSelArb }),
  fc.record({ kind: fc.constant('and' as const), ns: nsSelArb, pod: podSelArb }),
  fc.record({ kind: fc.constant('ip' as const), block: ipBlockArb }),
);

const protoArb = fc.constantFrom('TCP', 'UDP', 'SCTP', undefined);
const portArb: fc.Arbitrary<NetworkPolicyPort> = fc
  .oneof(
    fc.record({ protocol: protoArb, port: fc.constantFrom(80, 81) }),
    fc.record({ protocol: protoArb, port: fc.constantFrom(79, 80, 81), endPort: fc.constantFrom(80, 81, 90) }).filter((p) => p.endPort >= p.port),
    fc.record({ protocol: fc.constantFrom('TCP', 'UDP', 'SCTP') }),
    fc.record({ protocol: protoArb, port: fc.constantFrom('serve-80-tcp', 'serve-81-udp', 'serve-80-sctp', 'serve-81-sctp', 'web', 'nope') }),
  )
  .map((p) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as NetworkPolicyPort);

type RuleSpec = { peers: PeerSpec[] | undefined; ports: NetworkPolicyPort[] | undefined };
const ruleArb: fc.Arbitrary<RuleSpec> = fc.record({
  peers: optional(fc.array(peerArb, { minLength: 1, maxLength: 2 })),
  ports: optional(fc.array(portArb, { minLength: 1, maxLength: 2 })),
});

type PolicySpec = {
  namespace: string;
  podSelector: LabelSelector;
  types: ('Ingress' | 'Egress')[] | undefined;
  ingress: RuleSpec[] | undefined;
  egress: RuleSpec[] | undefined;
};
const policyArb: fc.Arbitrary<PolicySpec> = fc.record({
  namespace: fc.constantFrom(...E2E_NAMESPACES),
  podSelector: podSelArb,
  types: fc.constantFrom(undefined, ['Ingress' as const], ['Egress' as const], ['Ingress' as const, 'Egress' as const]),
  ingress: optional(fc.array(ruleArb, { maxLength: 2 })),
  egress: optional(fc.array(ruleArb, { maxLength: 2 })),
});

function buildPolicies(specs: PolicySpec[], ips: readonly string[]): NetworkPolicy[] {
  const peer = (p: PeerSpec): NetworkPolicyPeer =>
    p.kind === 'pod'
      ? { podSelector: p.pod }
      : p.kind === 'ns'
        ? { namespaceSelector: p.ns }
        : p.kind === 'and'
          ? { namespaceSelector: p.ns, podSelector: p.pod }
          : resolveIpBlock(p.block, ips);
  const rules = (rs: RuleSpec[], key: 'from' | 'to') =>
    rs.map((r) => ({ ...(r.peers ? { [key]: r.peers.map(peer) } : {}), ...(r.ports ? { ports: r.ports } : {}) }));
  return specs.map((s, i) => {
    const spec: NetworkPolicySpec = { podSelector: s.podSelector };
    if (s.types) spec.policyTypes = s.types;
    if (s.ingress) spec.ingress = rules(s.ingress, 'from');
    if (s.egress) spec.egress = rules(s.egress, 'to');
    return { metadata: { namespace: s.namespace, name: `p${i}` }, spec };
  });
}

const caseArb = fc.record({
  podLabels: podLabelsArb,
  nsLabels: nsLabelsArb,
  policies: fc.array(policyArb, { minLength: 1, maxLength: 4 }),
});

const t0 = performance.now();
afterAll(() => {
  console.log(`policy property suite: ${((performance.now() - t0) / 1000).toFixed(1)} s (node set-up ${(fx.startupMs / 1000).toFixed(1)} s)`);
});

describe('random NetworkPolicy: kernel matrix == evaluator matrix', () => {
  it(`${RUNS} random clusters and policy sets, synced as diffs through one engine`, async () => {
    const node = fx.node;
    const ips = node.pods.map((p) => p.ip);
    console.log(`property seed ${SEED} (WEIR_POLICY_SEED=${SEED} WEIR_POLICY_RUNS=${RUNS} to replay)`);
    let run = 0;
    const stats = { full: 0, diff: 0, operations: 0, connected: 0, probes: 0 };
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        run++;
        const policies = buildPolicies(c.policies, ips);
        const rep = node.apply(policies, c.nsLabels, c.podLabels);
        if (rep.full) stats.full++;
        else stats.diff++;
        stats.operations += rep.operations;
        const cmp = await node.compare(`property run ${run} (seed ${SEED})`);
        stats.connected += cmp.observed.probes.filter((p) => p.connected).length;
        stats.probes += cmp.observed.probes.length;
        let report = cmp.report;
        if (cmp.mismatches.length > 0) {
          // Diagnosis: the same state applied as a whole new table (no diff). If the
          // kernel then agrees, the incremental update broke it; if not, the
          // compiler and the evaluator disagree on the semantics.
          const diffTable = node.table();
          node.engine.invalidate();
          node.apply(policies, c.nsLabels, c.podLabels);
          const again = await node.compare(`property run ${run}, after a full re-sync`);
          const verdict =
            again.mismatches.length === 0
              ? 'kernel == evaluator: the DIFF (incremental) update is suspect (compare the two tables)'
              : `${again.mismatches.length} mismatch(es) remain: the compiler and the evaluator disagree on this state`;
          report += `\n--- table after the diff sync\n${diffTable}\n--- after a FULL re-sync of the same state: ${verdict}\n${again.report}\n--- table after the full sync\n${node.table()}`;
          console.log(report);
        }
        expect(cmp.mismatches, report).toEqual([]);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    console.log(
      `property: ${run} runs, ${stats.full} full + ${stats.diff} diff syncs (${stats.operations} nft operations), ${stats.connected}/${stats.probes} probes connected`,
    );
    node.apply([]);
  }, 600_000);
});
