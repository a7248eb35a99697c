// ClusterNetworkPolicy tiers in the compiled table (src/policy/cnp-compile.ts):
// what the chains say, and the interpreter over the compiled rulesets of
// both nodes against the reference evaluator, on hand-made and on random
// clusters mixing both tiers with NetworkPolicies.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDrop } from '../../../src/agent/drops.ts';
import type { NflogPacket } from '../../../src/netlink/nflog.ts';
import { FakeNft } from '../../../src/nft/fake.ts';
import type { ClusterNetworkPolicy } from '../../../src/policy/cnp-types.ts';
import { type CompileResult, compilePolicies } from '../../../src/policy/compile.ts';
import { PolicyEngine } from '../../../src/policy/engine.ts';
import type { ClusterState, NetworkPolicy, Pod } from '../../../src/policy/index.ts';
import type { Ruleset } from '../../../src/policy/ruleset.ts';
import { cnp } from '../policy/cnp-fixtures.ts';
import { policy } from '../policy/helpers.ts';
import { buildState, type ClusterModel, type PodModel } from './cluster.ts';
import { tieredClusterArb } from './cnp-arb.ts';
import { compare } from './compare.ts';

const p = (ns: number, node: number, app: string | undefined, ports: number[] = []): PodModel => ({ ns, node, app, tier: undefined, kind: 'normal', ports });
/** x/p0 web on n1, x/p1 db on n1, y/p2 web on n2, z/p3 on n1, y/p4 hostNetwork on n1, x/p5 db on n2 (http:8080 and dns:53/udp on the web pods). */
const MODEL: ClusterModel = {
  teams: ['red', undefined, 'blue'],
  zObject: true,
  pods: [
    p(0, 0, 'web', [0, 2]),
    p(0, 0, 'db'),
    p(1, 1, 'web', [0, 2]),
    p(2, 0, undefined),
    { ...p(1, 0, 'web'), kind: 'hostNetwork' },
    p(0, 1, 'db'),
    null,
    null,
  ],
  policies: [],
  learned: ['www.example.com'],
};
const at = (clusterPolicies: ClusterNetworkPolicy[], policies: NetworkPolicy[] = []): ClusterState => ({
  ...buildState({ ...MODEL, policies }),
  clusterPolicies,
});
const everyone = { namespaces: {} };
const inX = { namespaces: { matchLabels: { 'kubernetes.io/metadata.name': 'x' } } };

const chain = (rs: Ruleset, name: string): { rule: string; comment?: string }[] => {
  const c = rs.chains.get(name);
  if (!c) throw new Error(`no chain ${name}; have ${[...rs.chains.keys()].join(', ')}`);
  return c.rules.map((r) => ({ rule: r.rule, ...(r.comment ? { comment: r.comment } : {}) }));
};
const idOf = (r: CompileResult, name: string): string => {
  const id = r.clusterPolicyChains.get(name);
  if (!id) throw new Error(`no chains for ${name}`);
  return id;
};

describe('the table', () => {
  it('without a ClusterNetworkPolicy: exactly the NetworkPolicy table', () => {
    const r = compilePolicies(at([]), { nodeName: 'n1' });
    const withNone = compilePolicies({ ...buildState(MODEL) }, { nodeName: 'n1' });
    expect([...r.ruleset.chains.keys()].sort()).toEqual([...withNone.ruleset.chains.keys()].sort());
    expect([...r.ruleset.sets.keys()].some((n) => n.startsWith('admin_'))).toBe(false);
    expect(r.ruleset.chains.has('pod_local')).toBe(false);
  });

  it('base chains: the Admin map before the NetworkPolicy map, the Baseline map after; pod_local on the input hook', () => {
    const rs = compilePolicies(at([cnp('a', 'Admin', 1, everyone, { egress: [{ action: 'Deny', to: [{ nodes: {} }] }] })]), {
      nodeName: 'n1',
      guardCIDRs: ['10.1.0.0/24'],
    }).ruleset;
    const guard = 'ip saddr 10.1.0.0/24 ip saddr != @known4 counter drop';
    expect(chain(rs, 'pod_egress').map((r) => r.rule)).toEqual([
      'ct state established,related accept',
      'ct state new tcp flags & (syn | ack) != syn counter drop',
      guard,
      'ip saddr vmap @admin_egress4',
      'ip6 saddr vmap @admin_egress6',
      'ip saddr vmap @egress4',
      'ip6 saddr vmap @egress6',
      'ip saddr vmap @baseline_egress4',
      'ip6 saddr vmap @baseline_egress6',
    ]);
    expect(chain(rs, 'pod_ingress').map((r) => r.rule)).toEqual([
      'ct state established,related accept',
      'ip daddr 10.1.0.0/24 ip daddr != @known4 counter drop',
      'ip daddr vmap @admin_ingress4',
      'ip6 daddr vmap @admin_ingress6',
      'ip daddr vmap @ingress4',
      'ip6 daddr vmap @ingress6',
      'ip daddr vmap @baseline_ingress4',
      'ip6 daddr vmap @baseline_ingress6',
    ]);
    expect(rs.chains.get('pod_local')?.def).toMatchObject({ hook: 'input', priority: 0, policy: 'accept' });
    // no window at pod start on this path either: an address of the node's range weir does not know yet is dropped
    expect(chain(rs, 'pod_local').map((r) => r.rule)).toEqual([
      'ct state established,related accept',
      guard,
      'ip saddr vmap @admin_egress4',
      'ip6 saddr vmap @admin_egress6',
      'goto egress_local',
    ]);
    expect(chain(rs, 'egress_pass').map((r) => r.rule)).toEqual([
      'fib daddr type local goto egress_local',
      'ip saddr vmap @egress4',
      'ip6 saddr vmap @egress6',
      'ip saddr vmap @baseline_egress4',
      'ip6 saddr vmap @baseline_egress6',
      'counter accept',
    ]);
  });

  it('one chain per policy and direction, a rule per peer kind and family, each action as its verdict, named in comments and the drop log', () => {
    const c = cnp('gress', 'Admin', 15, inX, {
      egress: [
        {
          name: 'no "db"',
          action: 'Deny',
          to: [{ pods: { podSelector: { matchLabels: { app: 'db' } } } }],
          protocols: [{ tcp: { destinationPort: { number: 80 } } }],
        },
        { action: 'Pass', to: [{ networks: ['10.0.0.0/8', 'fd00::/16'] }] },
        { action: 'Accept', to: [{ domainNames: ['www.example.com'] }] },
      ],
    });
    const base = cnp('base', 'Baseline', 3, inX, { ingress: [{ action: 'Pass', from: [{ namespaces: {} }] }] });
    const r = compilePolicies(at([c, base]), { nodeName: 'n1', nflogGroup: 7 });
    const id = idOf(r, 'gress');
    const eg = chain(r.ruleset, `${id}_eg`);
    expect(r.ruleset.chains.get(`${id}_eg`)?.def.comment).toBe('ClusterNetworkPolicy gress egress');
    expect(eg.map((x) => x.rule.replace(/@s[0-9a-f]{12}_/g, '@'))).toEqual([
      'ip daddr @pods4 meta l4proto . th dport @ports limit rate 10/second burst 20 packets log prefix "weir deny eg cnp:gress[0]: " group 7',
      'ip daddr @pods4 meta l4proto . th dport @ports counter drop',
      'ip6 daddr @pods6 meta l4proto . th dport @ports limit rate 10/second burst 20 packets log prefix "weir deny eg cnp:gress[0]: " group 7',
      'ip6 daddr @pods6 meta l4proto . th dport @ports counter drop',
      'ip daddr @cidr4 counter goto egress_pass',
      'ip6 daddr @cidr6 counter goto egress_pass',
      'ip daddr @dns4 counter accept',
      'ip6 daddr @dns6 counter accept',
    ]);
    expect([...new Set(eg.map((x) => x.comment))]).toEqual(["cnp gress egress[0] Deny no 'db'", 'cnp gress egress[1] Pass', 'cnp gress egress[2] Accept']);
    const dns4 = eg[6]?.rule.split(' ')[2]?.slice(1) as string;
    expect([...(r.ruleset.sets.get(dns4)?.elements.keys() ?? [])]).toEqual(['203.0.113.5']);
    const baseIn = chain(r.ruleset, `${idOf(r, 'base')}_in`);
    expect(baseIn.map((x) => x.rule.replace(/@s[0-9a-f]{12}_/g, '@'))).toEqual(['ip saddr @pods4 counter accept', 'ip6 saddr @pods6 counter accept']);
    expect(baseIn[0]?.comment).toBe('cnp base ingress[0] Pass (to the default: allow)');
  });

  it('pods dispatch to profile chains of their tier, policies in order of precedence; endpoints name them', () => {
    const a = cnp('b-second', 'Admin', 5, everyone, { egress: [{ action: 'Accept', to: [{ nodes: {} }] }] });
    const b = cnp('a-first', 'Admin', 5, inX, { egress: [{ action: 'Deny', to: [{ nodes: {} }] }] });
    const z = cnp('zero', 'Admin', 0, { pods: { podSelector: { matchLabels: { app: 'db' } } } }, { egress: [{ action: 'Pass', to: [{ nodes: {} }] }] });
    const r = compilePolicies(at([a, b, z]), { nodeName: 'n1' });
    const byName = new Map(r.endpoints.map((e) => [`${e.namespace}/${e.name}`, e]));
    expect(byName.get('x/p0')?.tiers?.admin?.egress?.policies).toEqual(['a-first', 'b-second']);
    expect(byName.get('x/p1')?.tiers?.admin?.egress?.policies).toEqual(['zero', 'a-first', 'b-second']);
    expect(byName.get('z/p3')?.tiers?.admin?.egress?.policies).toEqual(['b-second']);
    const prof = byName.get('x/p1')?.tiers?.admin?.egress?.chain as string;
    expect(chain(r.ruleset, prof).map((x) => x.rule)).toEqual([
      'ct state invalid counter drop',
      `jump ${idOf(r, 'zero')}_eg`,
      `jump ${idOf(r, 'a-first')}_eg`,
      `jump ${idOf(r, 'b-second')}_eg`,
    ]);
    expect(chain(r.ruleset, prof).map((x) => x.comment)).toEqual([
      'conntrack-invalid packets of a policed pod',
      'ClusterNetworkPolicy zero (Admin tier, priority 0)',
      'ClusterNetworkPolicy a-first (Admin tier, priority 5)',
      'ClusterNetworkPolicy b-second (Admin tier, priority 5)',
    ]);
    const map = r.ruleset.sets.get('admin_egress4');
    expect(map?.elements.get('10.1.0.14')?.value).toBe(`jump ${prof}`);
    // hostNetwork pods are never subjects
    expect(byName.has('y/p4')).toBe(false);
    expect([...(map?.elements.keys() ?? [])].sort()).toEqual(['10.1.0.14', '10.1.0.3', '10.1.0.40']);
  });

  it('a policy weir cannot express: "Deny all" for its subjects, and reported', () => {
    const bad = cnp('bad', 'Admin', 9, inX, { ingress: [{ action: 'Deny', from: [] }] });
    const r = compilePolicies(at([bad]), { nodeName: 'n1' });
    expect(r.errors.map((e) => `${e.policy?.kind} ${e.policy?.name}: ${e.field}`)).toEqual(['ClusterNetworkPolicy bad: spec.ingress[0].from']);
    expect(chain(r.ruleset, `${idOf(r, 'bad')}_in`).map((x) => x.rule)).toEqual([
      'limit rate 10/second burst 20 packets log prefix "weir deny in cnp:bad[0]: " group 100',
      'counter drop',
    ]);
  });
});

describe('names at their longest, and the drop log', () => {
  it('a 253-character policy name and a rule name with quotes stay within nft limits, and the table loads', () => {
    const name = `${'a'.repeat(120)}.${'b'.repeat(132)}`;
    const c = cnp(name, 'Admin', 1, everyone, { egress: [{ name: `say "no" ${'x'.repeat(90)}`, action: 'Deny', to: [{ namespaces: {} }] }] });
    const r = compilePolicies(at([c]), { nodeName: 'n1' });
    const rules = chain(r.ruleset, `${idOf(r, name)}_eg`);
    const prefix = /log prefix "([^"]*)"/.exec(rules[0]?.rule ?? '')?.[1] ?? '';
    expect(Buffer.byteLength(prefix)).toBeLessThanOrEqual(127);
    expect(prefix).toMatch(/^weir deny eg cnp:a{64}~c[0-9a-f]{12}\[0\]: $/);
    for (const x of rules) expect(Buffer.byteLength(x.comment ?? '')).toBeLessThanOrEqual(128);
    expect(rules[0]?.comment).not.toContain('"');
    // FakeNft validates names, comments and references as nft would
    new PolicyEngine(new FakeNft(), { nodeName: 'n1' }).sync(at([c]));
  });

  it("the agent's drop log reads a ClusterNetworkPolicy denial as any other: direction and the rule that denied it", () => {
    const rec = parseDrop({ group: 100, prefix: 'weir deny eg cnp:gress[3]: ', hook: 2, payload: Buffer.alloc(0), family: 4 } as NflogPacket, 1);
    expect(rec).toMatchObject({ direction: 'egress', chain: 'cnp:gress[3]', audit: false });
  });
});

describe('incremental: events that only move set elements', () => {
  const cnps = [
    cnp(
      'web-in',
      'Admin',
      1,
      { pods: { podSelector: { matchLabels: { app: 'web' } } } },
      {
        ingress: [
          {
            action: 'Deny',
            from: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'db' } } } }],
            protocols: [{ destinationNamedPort: 'http' }],
          },
        ],
      },
    ),
    cnp('fqdn', 'Admin', 2, everyone, { egress: [{ action: 'Accept', to: [{ domainNames: ['*.example.com'] }] }] }),
    cnp('default', 'Baseline', 1, everyone, { egress: [{ action: 'Deny', to: [{ networks: ['0.0.0.0/0'] }] }] }),
  ];
  const stateOf = (m: ClusterModel): ClusterState => ({ ...buildState(m), clusterPolicies: cnps });
  const sync = (engine: PolicyEngine, s: ClusterState) => engine.sync(s).stats;
  const elementsOnly = { setsAdded: 0, setsRemoved: 0, chainsAdded: 0, chainsRewritten: 0, chainsRemoved: 0 };

  it('a pod coming, relabelled, going, and new learned addresses: element changes only, landing what a fresh engine makes', () => {
    const engine = new PolicyEngine(new FakeNft(), { nodeName: 'n1' });
    const first = stateOf(MODEL);
    sync(engine, first);
    const pods = [...MODEL.pods];
    pods[6] = p(0, 0, 'web', [0]);
    const added = { ...first, pods: [...first.pods, buildState({ ...MODEL, pods }).pods.at(-1) as Pod] };
    const steps: ClusterState[] = [
      added,
      { ...added, pods: added.pods.map((x) => (x.metadata?.name === 'p6' ? { ...x, metadata: { ...x.metadata, labels: { app: 'db' } } } : x)) },
      first,
      { ...first, domainAddresses: new Map([['www.example.com', ['203.0.113.5', '198.51.100.1']]]) },
    ];
    for (const s of steps) {
      const stats = sync(engine, s);
      expect(stats).toMatchObject(elementsOnly);
      expect((stats?.elementsAdded ?? 0) + (stats?.elementsRemoved ?? 0)).toBeGreaterThan(0);
    }
  });
});

describe('compiled tiers agree with the evaluator', () => {
  it.each<[string, ClusterNetworkPolicy[], NetworkPolicy[]]>([
    [
      'admin deny to db pods, except what passes',
      [
        cnp('pass', 'Admin', 1, everyone, { egress: [{ action: 'Pass', to: [{ pods: { podSelector: {} } }], protocols: [{ destinationNamedPort: 'http' }] }] }),
        cnp('deny', 'Admin', 2, everyone, { egress: [{ action: 'Deny', to: [{ namespaces: {} }] }] }),
      ],
      [],
    ],
    [
      'admin pass to a NetworkPolicy that isolates',
      [cnp('pass', 'Admin', 1, inX, { ingress: [{ action: 'Pass', from: [{ namespaces: {} }] }] })],
      [policy('x/only-web', { ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] })],
    ],
    [
      'baseline deny-all under a NetworkPolicy',
      [
        cnp('default', 'Baseline', 10, everyone, {
          ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }],
          egress: [{ action: 'Deny', to: [{ networks: ['0.0.0.0/0', '::/0'] }] }],
        }),
      ],
      [policy('x/open', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{}] })],
    ],
    [
      'deny the nodes, pass their dns, to the own node too',
      [
        cnp('nodes', 'Admin', 3, everyone, {
          egress: [
            { action: 'Pass', to: [{ nodes: { matchLabels: { zone: 'a' } } }], protocols: [{ udp: { destinationPort: { number: 53 } } }] },
            { action: 'Deny', to: [{ nodes: {} }] },
          ],
        }),
        cnp('bl', 'Baseline', 0, everyone, { egress: [{ action: 'Deny', to: [{ nodes: {} }], protocols: [{ udp: {} }] }] }),
      ],
      [policy('x/e', { podSelector: {}, policyTypes: ['Egress'] })],
    ],
    [
      'domain names allowed over a baseline deny',
      [
        cnp('fqdn', 'Admin', 0, everyone, { egress: [{ action: 'Accept', to: [{ domainNames: ['*.example.com'] }] }] }),
        cnp('out', 'Baseline', 0, everyone, { egress: [{ action: 'Deny', to: [{ networks: ['0.0.0.0/0', '::/0'] }] }] }),
      ],
      [],
    ],
  ])('%s', (_name, cnps, nps) => {
    const { mismatches, judged } = compare(at(cnps, nps));
    expect(judged).toBeGreaterThan(100);
    expect(mismatches).toEqual([]);
  });

  it('random clusters with random policies of both tiers and NetworkPolicies: the interpreter over both nodes and the evaluator agree on every connection', () => {
    const decided = { Admin: 0, NetworkPolicy: 0, Baseline: 0, default: 0, denied: 0, passed: 0 };
    fc.assert(
      fc.property(tieredClusterArb, (m) => {
        const state = buildState(m);
        const { mismatches } = compare(state, 5, {}, (v) => {
          for (const d of [v.egress, v.ingress]) {
            if (!d.clusterPolicies) continue;
            decided[d.tier ?? 'default']++;
            if (!d.allowed) decided.denied++;
            if (d.reasons.some((r) => r.kind === 'cluster-rule' && r.action === 'Pass')) decided.passed++;
          }
        });
        expect(mismatches).toEqual([]);
      }),
      { numRuns: 200 },
    );
    // The clusters are not trivial: every tier decides, some traffic is denied, some passed on.
    for (const [k, n] of Object.entries(decided)) expect(n, k).toBeGreaterThan(500);
  });
});
