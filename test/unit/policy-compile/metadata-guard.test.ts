// The cloud metadata guard (src/policy/metadata-guard.ts): the chain and sets
// it compiles to, who is exempt (the opt-in label on the pod or its
// namespace, an egress rule naming the address exactly), the reference
// evaluator's verdict, and the interpreter over the compiled table against
// that evaluator (compare.ts), with the guard on, relabelled and off.
import { describe, expect, it } from 'vitest';
import { parseDrop } from '../../../src/agent/drops.ts';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { ipEndpoint, PolicyEvaluator, podEndpoint } from '../../../src/policy/evaluator.ts';
import { formatVerdict } from '../../../src/policy/explain.ts';
import type { ClusterState, NetworkPolicy } from '../../../src/policy/index.ts';
import { checkOptInLabel, hasOptInLabel, type MetadataGuardSetting } from '../../../src/policy/metadata-guard.ts';
import { decidingRule } from '../../../src/weirctl/commands/trace.ts';
import { cnp } from '../policy/cnp-fixtures.ts';
import { ns, pod, policy } from '../policy/helpers.ts';
import { compare } from './compare.ts';

const OPT_IN = { 'weir.dev/metadata-access': 'true' };
/** x/plain and x/labelled on n1, y/any on n1 (namespace y opted in), x/far on n2. */
const world = (policies: NetworkPolicy[] = [], extra: Partial<ClusterState> = {}): ClusterState => ({
  namespaces: [ns('x'), ns('y', OPT_IN)],
  pods: [
    pod('x/plain', { ips: ['10.1.0.2', 'fd00:1::2'], node: 'n1' }),
    pod('x/labelled', { ips: ['10.1.0.3', 'fd00:1::3'], node: 'n1', labels: { pod: 'labelled', ...OPT_IN } }),
    pod('y/any', { ips: ['10.1.0.4', 'fd00:1::4'], node: 'n1' }),
    pod('x/far', { ips: ['10.2.0.2', 'fd00:2::2'], node: 'n2' }),
  ],
  nodes: [
    { name: 'n1', internalIPs: ['192.168.0.1', 'fd01::1'] },
    { name: 'n2', internalIPs: ['192.168.0.2', 'fd01::2'] },
  ],
  policies,
  ...extra,
});
const toMetadata = (cidr: string, name = 'md', podSelector = { matchLabels: { pod: 'plain' } }, port = 80): NetworkPolicy =>
  policy(`x/${name}`, { podSelector, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr } }], ports: [{ port }] }] });
const exempt = (state: ClusterState, setting?: MetadataGuardSetting): Record<string, string[]> => {
  const rs = compilePolicies(state, { nodeName: 'n1', ...(setting !== undefined ? { metadataGuard: setting } : {}) }).ruleset;
  return Object.fromEntries([4, 6].map((f) => [`${f}`, [...(rs.sets.get(`metadata_ok${f}`)?.elements.values() ?? [])].map((e) => e.key.join(' ')).sort()]));
};
const judge = (state: ClusterState, from: string, to: string, port = 80, setting?: MetadataGuardSetting) => {
  const [namespace, name] = from.split('/') as [string, string];
  return new PolicyEvaluator(state, { metadataGuard: setting }).evaluate({ src: podEndpoint(namespace, name), dst: ipEndpoint(to), protocol: 'TCP', port });
};

describe('the compiled guard', () => {
  it('a prerouting chain ahead of every tier: the node on lo passes, other sources not exempt go to the logged drop', () => {
    const rs = compilePolicies(world(), { nodeName: 'n1', nflogGroup: 7 }).ruleset;
    expect(rs.chains.get('metadata_guard')?.def).toMatchObject({ type: 'filter', hook: 'prerouting', priority: 0, policy: 'accept' });
    expect(rs.chains.get('metadata_guard')?.rules.map((r) => r.rule)).toEqual([
      'iif "lo" accept',
      'ip daddr 169.254.169.254 ip saddr != @metadata_ok4 goto metadata_deny',
      'ip6 daddr fd00:ec2::254 ip6 saddr != @metadata_ok6 goto metadata_deny',
    ]);
    expect(rs.chains.get('metadata_deny')?.rules.map((r) => r.rule)).toEqual([
      'limit rate 10/second burst 20 packets log prefix "weir deny eg metadata-guard: " group 7',
      'counter drop',
    ]);
  });

  it('the drop log names the guard', () => {
    const r = parseDrop({ prefix: 'weir deny eg metadata-guard: ', payload: Buffer.alloc(0), family: 4 } as never, 1);
    expect(r).toMatchObject({ direction: 'egress', chain: 'metadata-guard', audit: false });
  });

  it('exempt: the opt-in label on the pod or on its namespace, both families; nobody else', () => {
    expect(exempt(world())).toEqual({ 4: ['10.1.0.3', '10.1.0.4'], 6: ['fd00:1::3', 'fd00:1::4'] });
  });

  it('the label the agent names: a key alone matches any value; empty: no label exempts', () => {
    const state = world([], { pods: [pod('x/k', { ips: ['10.1.0.9'], node: 'n1', labels: { cloud: 'no' } })] });
    expect(exempt(state, { optInLabel: 'cloud' })).toEqual({ 4: ['10.1.0.9'], 6: [] });
    expect(exempt(state, { optInLabel: 'cloud=yes' })).toEqual({ 4: [], 6: [] });
    expect(exempt(world(), { optInLabel: '' })).toEqual({ 4: [], 6: [] });
    expect(hasOptInLabel('a/b=c', { 'a/b': 'c' })).toBe(true);
    expect(() => checkOptInLabel('weir.dev/metadata-access')).not.toThrow();
    expect(() => checkOptInLabel('a=b=c')).toThrow(/metadata-guard-optin-label/);
  });

  it('a NetworkPolicy egress ipBlock of exactly the address exempts the pods it selects, in that family; a wider CIDR does not', () => {
    expect(exempt(world([toMetadata('169.254.169.254/32')]))['4']).toContain('10.1.0.2');
    expect(exempt(world([toMetadata('169.254.169.254/32')]))['6']).not.toContain('fd00:1::2');
    expect(exempt(world([toMetadata('fd00:ec2::254/128')]))['6']).toContain('fd00:1::2');
    expect(exempt(world([toMetadata('169.254.0.0/16')]))['4']).not.toContain('10.1.0.2');
    expect(exempt(world([toMetadata('0.0.0.0/0')]))['4']).not.toContain('10.1.0.2');
  });

  it('a ClusterNetworkPolicy Accept naming the address exempts its subjects; Deny and Pass do not', () => {
    const subj = { namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } } };
    const withCnp = (action: 'Accept' | 'Deny' | 'Pass'): ClusterState =>
      world([], { clusterPolicies: [cnp('md', 'Admin', 1, subj, { egress: [{ action, to: [{ networks: ['169.254.169.254/32'] }] }] })] });
    expect(exempt(withCnp('Accept'))['4']).toContain('10.1.0.2');
    expect(exempt(withCnp('Deny'))['4']).not.toContain('10.1.0.2');
    expect(exempt(withCnp('Pass'))['4']).not.toContain('10.1.0.2');
  });

  it('off: no chain, no set', () => {
    const rs = compilePolicies(world(), { nodeName: 'n1', metadataGuard: false }).ruleset;
    expect([...rs.chains.keys()].filter((c) => c.startsWith('metadata'))).toEqual([]);
    expect([...rs.sets.keys()].filter((c) => c.startsWith('metadata'))).toEqual([]);
  });
});

describe('the evaluator', () => {
  it('denies a pod not exempt, whatever the policies allow, and says it was the guard', () => {
    const v = judge(world([toMetadata('0.0.0.0/0')]), 'x/plain', '169.254.169.254');
    expect(v.allowed).toBe(false);
    expect(v.egress.reasons).toEqual([{ kind: 'metadata-guard' }]);
    expect(formatVerdict(v, 'TCP', 80)).toMatch(/denied by the metadata guard/);
    expect(decidingRule(v.egress)).toEqual({ kind: 'MetadataGuard', policy: 'metadata-guard', rule: 'egress', action: 'Deny' });
  });

  it('an exempt pod is judged as usual: the rule naming the address still has its ports', () => {
    const state = world([toMetadata('169.254.169.254/32')]);
    expect(judge(state, 'x/plain', '169.254.169.254', 80).allowed).toBe(true);
    expect(judge(state, 'x/plain', '169.254.169.254', 81).egress.reasons).toEqual([{ kind: 'no-rule-matched' }]);
    expect(judge(state, 'x/labelled', '169.254.169.254', 81).allowed).toBe(true);
    expect(judge(state, 'y/any', '169.254.169.254').allowed).toBe(true);
  });

  it('other addresses and the guard off: untouched', () => {
    expect(judge(world(), 'x/plain', '169.254.169.253').allowed).toBe(true);
    expect(judge(world(), 'x/plain', '169.254.169.254', 80, false).allowed).toBe(true);
  });
});

describe('compiled guard against the evaluator', () => {
  const subj = { namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } } };
  const cases: [string, ClusterState, MetadataGuardSetting][] = [
    ['default label', world(), undefined],
    [
      'policies naming it, exactly and not',
      world([toMetadata('169.254.169.254/32'), toMetadata('169.254.0.0/16', 'wide', { matchLabels: { pod: 'far' } })]),
      undefined,
    ],
    [
      'an Admin Accept naming it',
      world([], { clusterPolicies: [cnp('md', 'Admin', 1, subj, { egress: [{ action: 'Accept', to: [{ networks: ['fd00:ec2::254/128'] }] }] })] }),
      undefined,
    ],
    ['another label', world(), { optInLabel: 'pod=plain' }],
    ['off', world([toMetadata('0.0.0.0/0')]), false],
  ];
  for (const [name, state, setting] of cases) {
    it(name, () => {
      const r = compare(state, 5, setting === undefined ? {} : { metadataGuard: setting });
      expect(r.mismatches).toEqual([]);
      expect(r.judged).toBeGreaterThan(0);
    });
  }
});
