// What an operator reads in `nft list table inet weir` after compilePolicies
// (src/policy/compile.ts), on small hand-made clusters: which chains exist,
// what their rules and comments say, which addresses and ports the sets
// hold, and how pods are dispatched to profiles.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesToBigint, parseIp } from '../../../src/ip.ts';
import { type CompileResult, compilePolicies } from '../../../src/policy/compile.ts';
import type { ClusterState, NetworkPolicy, NetworkPolicySpec } from '../../../src/policy/index.ts';
import { fullTransaction, type Ruleset } from '../../../src/policy/ruleset.ts';
import { ns, pod, policy } from '../policy/helpers.ts';
import { buildState, clusterArb } from './cluster.ts';

const n1 = { node: 'n1', hostIPs: ['192.168.0.1', 'fd01::1'] };
const n2 = { node: 'n2', hostIPs: ['192.168.0.2', 'fd01::2'] };
const PODS = [
  pod('x/web', {
    labels: { app: 'web' },
    ips: ['10.1.0.1', 'fd00:1::1'],
    ...n1,
    ports: [
      { name: 'http', containerPort: 8080 },
      { name: 'dns', containerPort: 53, protocol: 'UDP' },
    ],
  }),
  pod('x/web2', { labels: { app: 'web' }, ips: ['10.1.0.2', 'fd00:1::2'], ...n1, ports: [{ name: 'http', containerPort: 80 }] }),
  pod('x/db', { labels: { app: 'db' }, ips: ['10.1.0.3', 'fd00:1::3'], ...n1 }),
  pod('y/cli', { labels: { app: 'cli' }, ips: ['10.1.0.4'], ...n1 }),
  pod('x/remote', { labels: { app: 'db', pod: 'remote' }, ips: ['10.2.0.1', 'fd00:2::1'], ...n2, ports: [{ name: 'http', containerPort: 8443 }] }),
  pod('y/far', { labels: { app: 'cli' }, ips: ['10.2.0.2', 'fd00:2::2'], ...n2, ports: [{ name: 'http', containerPort: 8081 }] }),
  // never subjects or peers: hostNetwork, terminated, not yet addressed
  pod('x/host', { labels: { app: 'web' }, ips: ['192.168.0.1', 'fd01::1'], hostNetwork: true, ...n1, ports: [{ name: 'http', containerPort: 8080 }] }),
  pod('x/done', { labels: { app: 'web' }, ips: ['10.1.0.9', 'fd00:1::9'], phase: 'Succeeded', ...n1, ports: [{ name: 'http', containerPort: 8080 }] }),
  pod('x/failed', { labels: { app: 'web' }, ips: ['10.2.0.10'], phase: 'Failed', ...n2, ports: [{ name: 'http', containerPort: 8080 }] }),
  pod('x/pending', { labels: { app: 'web' }, phase: 'Pending', ...n1 }),
];
const NEVER = ['192.168.0.1', 'fd01::1', '10.1.0.9', 'fd00:1::9', '10.2.0.10'];

const state = (policies: NetworkPolicy[]): ClusterState => ({ namespaces: [ns('x'), ns('y', { team: 'red' })], pods: PODS, policies });
const compile = (policies: NetworkPolicy[], node = 'n1'): CompileResult => compilePolicies(state(policies), { nodeName: node });
const web = { matchLabels: { app: 'web' } };
const pol = (spec: NetworkPolicySpec, id = 'x/p'): NetworkPolicy => policy(id, spec);

/** Element texts of a set or map: `key . parts` or `key : value`, sorted. */
const elems = (rs: Ruleset, name: string): string[] => {
  const s = rs.sets.get(name);
  if (!s) throw new Error(`no set ${name}; have ${[...rs.sets.keys()].join(', ')}`);
  return [...s.elements.values()].map((e) => e.key.join(' . ') + (e.value === undefined ? '' : ` : ${e.value}`)).sort();
};
const rules = (rs: Ruleset, chain: string): string[] => {
  const c = rs.chains.get(chain);
  if (!c) throw new Error(`no chain ${chain}; have ${[...rs.chains.keys()].join(', ')}`);
  return c.rules.map((r) => r.rule);
};
/**
 * The set of kind `what` (`pods4`, `cidr6`, `ports`, `named4`, ...) that the
 * rules of one policy rule (by comment, e.g. `x/p ingress[0]`) use. Sets are
 * shared and named by a hash of their definition, so tests find them
 * through the rules that refer to them.
 */
const setOf = (rs: Ruleset, chain: string, comment: string, what: string): string => {
  const names = new Set(
    (rs.chains.get(chain)?.rules ?? [])
      .filter((x) => x.comment === comment)
      .flatMap((x) =>
        x.rule
          .split(/\s+/)
          .filter((t) => t.startsWith('@') && t.endsWith(`_${what}`))
          .map((t) => t.slice(1)),
      ),
  );
  if (names.size !== 1) throw new Error(`${chain} ${comment}: ${names.size} sets of kind ${what}: ${[...names].join(', ')}`);
  return [...names][0] as string;
};
/** The chain base (`p<hash>`) of a policy on this node. */
const idOf = (r: CompileResult, ref = 'x/p'): string => {
  const id = r.policyChains.get(ref);
  if (!id) throw new Error(`no chains for ${ref}`);
  return id;
};
const mapOf = (r: CompileResult, map: string): Record<string, string> =>
  Object.fromEntries([...(r.ruleset.sets.get(map)?.elements.values() ?? [])].map((e) => [e.key[0], e.value as string]));
const profileOf = (r: CompileResult, dir: 'ingress' | 'egress', ip: string): string | undefined =>
  mapOf(r, `${dir}${ip.includes(':') ? 6 : 4}`)[ip]?.replace(/^goto /, '');

describe('which policies get chains', () => {
  it('only policies selecting a pod on this node, and only the directions they govern', () => {
    const policies = [
      pol({ podSelector: web, ingress: [{}] }, 'x/web'),
      pol({ podSelector: { matchLabels: { pod: 'remote' } }, ingress: [{}] }, 'x/only-remote'),
      pol({ podSelector: {}, ingress: [{}] }, 'z/empty-ns'),
      pol({ podSelector: { matchLabels: { app: 'cli' } }, policyTypes: ['Egress'] }, 'y/cli-egress'),
    ];
    const r1 = compile(policies, 'n1');
    expect([...r1.policyChains.keys()].sort()).toEqual(['x/web', 'y/cli-egress']);
    const names = [...r1.ruleset.chains.keys()].filter((c) => /^p[0-9a-f]{12}_/.test(c)).sort();
    expect(names).toEqual([`${idOf(r1, 'x/web')}_in`, `${idOf(r1, 'y/cli-egress')}_eg`].sort());
    const r2 = compile(policies, 'n2');
    expect([...r2.policyChains.keys()].sort()).toEqual(['x/only-remote', 'y/cli-egress']);
  });

  it('a policy selecting only hostNetwork, terminated or unaddressed pods gets none', () => {
    const r = compile([
      pol({ podSelector: { matchExpressions: [{ key: 'pod', operator: 'In', values: ['host', 'done', 'failed', 'pending'] }] }, ingress: [] }),
    ]);
    expect(r.policyChains.size).toBe(0);
    expect([...r.ruleset.chains.keys()].sort()).toEqual(['metadata_deny', 'metadata_guard', 'pod_egress', 'pod_ingress']);
  });

  it('base chains: forward hook, egress before ingress, established first, then the vmap dispatch', () => {
    const rs = compile([]).ruleset;
    expect(rs.chains.get('pod_egress')?.def).toMatchObject({ type: 'filter', hook: 'forward', priority: 0, policy: 'accept' });
    expect(rs.chains.get('pod_ingress')?.def).toMatchObject({ type: 'filter', hook: 'forward', priority: 1, policy: 'accept' });
    expect(rules(rs, 'pod_egress')).toEqual([
      'ct state established,related accept',
      'ct state new tcp flags & (syn | ack) != syn counter drop',
      'ip saddr vmap @egress4',
      'ip6 saddr vmap @egress6',
    ]);
    expect(rules(rs, 'pod_ingress')).toEqual(['ct state established,related accept', 'ip daddr vmap @ingress4', 'ip6 daddr vmap @ingress6']);
  });
});

describe('policy chains: one or more rules per NetworkPolicy rule', () => {
  it('each with a counter and a comment naming ns/name and the rule', () => {
    const r = compile([
      pol({
        podSelector: web,
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ podSelector: {} }, { ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 80 }, { port: 'http' }] }, {}],
        egress: [{ to: [{ namespaceSelector: {} }] }],
      }),
    ]);
    const id = idOf(r);
    const inRules = r.ruleset.chains.get(`${id}_in`)?.rules ?? [];
    const egRules = r.ruleset.chains.get(`${id}_eg`)?.rules ?? [];
    for (const x of [...inRules, ...egRules]) expect(x.rule).toMatch(/ counter accept$|^counter accept$/);
    expect([...new Set(inRules.map((x) => x.comment))]).toEqual(['x/p ingress[0]', 'x/p ingress[1]']);
    expect([...new Set(egRules.map((x) => x.comment))]).toEqual(['x/p egress[0]']);
    // peers {pods, ipBlock v4} x ports {numeric, named} x families, and an empty rule: one `counter accept`
    expect(inRules.filter((x) => x.comment === 'x/p ingress[0]')).toHaveLength(6);
    expect(inRules.filter((x) => x.comment === 'x/p ingress[1]').map((x) => x.rule)).toEqual(['counter accept']);
    expect(egRules.map((x) => x.rule)).toEqual([
      `ip daddr @${setOf(r.ruleset, `${id}_eg`, 'x/p egress[0]', 'pods4')} counter accept`,
      `ip6 daddr @${setOf(r.ruleset, `${id}_eg`, 'x/p egress[0]', 'pods6')} counter accept`,
    ]);
    expect(r.ruleset.chains.get(`${id}_in`)?.def.comment).toBe('x/p ingress');
  });

  it('peer pods of every node land in the set of their family', () => {
    const r = compile([
      pol({
        podSelector: web,
        ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'cli'] }] }, namespaceSelector: {} }] }],
      }),
    ]);
    const id = idOf(r);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'x/p ingress[0]', 'pods4'))).toEqual(['10.1.0.3', '10.1.0.4', '10.2.0.1', '10.2.0.2']);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'x/p ingress[0]', 'pods6'))).toEqual(['fd00:1::3', 'fd00:2::1', 'fd00:2::2']);
    expect(rules(r.ruleset, `${id}_in`)).toEqual([
      `ip saddr @${setOf(r.ruleset, `${id}_in`, 'x/p ingress[0]', 'pods4')} counter accept`,
      `ip6 saddr @${setOf(r.ruleset, `${id}_in`, 'x/p ingress[0]', 'pods6')} counter accept`,
    ]);
  });

  it('a podSelector peer alone means the policy namespace; a namespaceSelector picks namespaces by label', () => {
    const r = compile([
      pol({
        podSelector: web,
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }] }, { from: [{ namespaceSelector: { matchLabels: { team: 'red' } } }] }],
      }),
    ]);
    const id = idOf(r);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'x/p ingress[0]', 'pods4'))).toEqual([]);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'x/p ingress[1]', 'pods4'))).toEqual(['10.1.0.4', '10.2.0.2']);
  });

  it('hostNetwork, terminated and unaddressed pods are in no set and no map', () => {
    const r = compile([
      pol({
        podSelector: {},
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] }],
        egress: [{ to: [{ podSelector: {} }], ports: [{ port: 'http' }] }, { ports: [{ port: 'http' }] }],
      }),
    ]);
    const all = [...r.ruleset.sets.values()].flatMap((s) => [...s.elements.values()].flatMap((e) => e.key));
    expect(all.length).toBeGreaterThan(10);
    for (const ip of NEVER) expect(all).not.toContain(ip);
    expect(r.endpoints.map((e) => `${e.namespace}/${e.name}`).sort()).toEqual(['x/db', 'x/web', 'x/web2', 'y/cli']);
  });

  it('ipBlock: cidr minus except as merged intervals, per family; a family without a block gets no rule', () => {
    const r = compile([
      pol({
        podSelector: web,
        ingress: [
          {
            from: [
              { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '10.1.2.0/24'] } },
              { ipBlock: { cidr: '10.1.0.0/24' } },
              { ipBlock: { cidr: 'fd00::/16', except: ['fd00::/32'] } },
            ],
          },
          { from: [{ ipBlock: { cidr: '192.168.7.7/24', except: ['192.168.7.0/25'] } }] },
        ],
      }),
    ]);
    const id = idOf(r);
    const rs = r.ruleset;
    expect(rs.sets.get(setOf(rs, `${id}_in`, 'x/p ingress[0]', 'cidr4'))?.def).toMatchObject({ type: 'ipv4_addr', flags: ['interval'] });
    expect(elems(rs, setOf(rs, `${id}_in`, 'x/p ingress[0]', 'cidr4'))).toEqual(['10.0.0.0-10.1.0.255', '10.2.0.0-10.255.255.255']);
    expect(elems(rs, setOf(rs, `${id}_in`, 'x/p ingress[0]', 'cidr6'))).toEqual(['fd00:1::-fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff']);
    expect(elems(rs, setOf(rs, `${id}_in`, 'x/p ingress[1]', 'cidr4'))).toEqual(['192.168.7.128-192.168.7.255']);
    expect([...rs.sets.keys()].filter((n) => n.endsWith('_cidr6'))).toEqual([setOf(rs, `${id}_in`, 'x/p ingress[0]', 'cidr6')]);
    expect(rules(rs, `${id}_in`)).toEqual([
      `ip saddr @${setOf(rs, `${id}_in`, 'x/p ingress[0]', 'cidr4')} counter accept`,
      `ip6 saddr @${setOf(rs, `${id}_in`, 'x/p ingress[0]', 'cidr6')} counter accept`,
      `ip saddr @${setOf(rs, `${id}_in`, 'x/p ingress[1]', 'cidr4')} counter accept`,
    ]);
  });

  it('ports: proto . port[-end], protocol-only as proto . 0-65535, TCP by default', () => {
    const r = compile([
      pol({
        podSelector: web,
        ingress: [
          {
            ports: [{ port: 80 }, { protocol: 'UDP', port: 53 }, { port: 8000, endPort: 8100 }, { protocol: 'SCTP' }, { protocol: 'UDP', port: 9, endPort: 9 }],
          },
        ],
      }),
    ]);
    const id = idOf(r);
    expect(r.ruleset.sets.get(setOf(r.ruleset, `${id}_in`, 'x/p ingress[0]', 'ports'))?.def).toMatchObject({
      type: 'inet_proto . inet_service',
      flags: ['interval'],
    });
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'x/p ingress[0]', 'ports'))).toEqual([
      'sctp . 0-65535',
      'tcp . 80',
      'tcp . 8000-8100',
      'udp . 53',
      'udp . 9',
    ]);
    // free of family-specific parts: emitted once, not per family
    expect(rules(r.ruleset, `${id}_in`)).toEqual([`meta l4proto . th dport @${setOf(r.ruleset, `${id}_in`, 'x/p ingress[0]', 'ports')} counter accept`]);
  });

  it('named ports resolve on the destination: the subject for ingress, the peer for egress', () => {
    const r = compile([
      pol({
        podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'db'] }] },
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{ ports: [{ port: 'http' }, { protocol: 'UDP', port: 'dns' }, { port: 'dns' }] }],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { team: 'red' } } }, { podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 'http' }] }],
      }),
    ]);
    const id = idOf(r);
    const rs = r.ruleset;
    // ingress: the local subjects' own ports (x/remote is a subject of n2, not of n1); UDP dns only where declared UDP
    expect(elems(rs, setOf(rs, `${id}_in`, 'x/p ingress[0]', 'named4'))).toEqual(['10.1.0.1 . tcp . 8080', '10.1.0.1 . udp . 53', '10.1.0.2 . tcp . 80']);
    expect(elems(rs, setOf(rs, `${id}_in`, 'x/p ingress[0]', 'named6'))).toEqual(['fd00:1::1 . tcp . 8080', 'fd00:1::1 . udp . 53', 'fd00:1::2 . tcp . 80']);
    expect(rules(rs, `${id}_in`)).toEqual([
      `ip daddr . meta l4proto . th dport @${setOf(rs, `${id}_in`, 'x/p ingress[0]', 'named4')} counter accept`,
      `ip6 daddr . meta l4proto . th dport @${setOf(rs, `${id}_in`, 'x/p ingress[0]', 'named6')} counter accept`,
    ]);
    // egress: the peers' ports (y/far and x/remote on n2), not the subjects'. One
    // rule per peer (its own address set, shared by any rule with the same
    // peer), each with the named ports of that peer's pods.
    const pairs = rules(rs, `${id}_eg`).map((t) => {
      const m = /^(ip6?) daddr @(\S+) \1 daddr \. meta l4proto \. th dport @(\S+) counter accept$/.exec(t);
      if (!m) throw new Error(`unexpected rule ${t}`);
      return [m[1], elems(rs, m[2] as string), elems(rs, m[3] as string)];
    });
    expect(pairs).toEqual([
      ['ip', ['10.1.0.4', '10.2.0.2'], ['10.2.0.2 . tcp . 8081']],
      ['ip', ['10.1.0.3', '10.2.0.1'], ['10.2.0.1 . tcp . 8443']],
      ['ip6', ['fd00:2::2'], ['fd00:2::2 . tcp . 8081']],
      ['ip6', ['fd00:1::3', 'fd00:2::1'], ['fd00:2::1 . tcp . 8443']],
    ]);
  });

  it('an egress named port with an ipBlock or any peer resolves on every addressed pod', () => {
    const r = compile([pol({ podSelector: { matchLabels: { app: 'cli' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] }, 'y/p')]);
    expect(elems(r.ruleset, setOf(r.ruleset, `${idOf(r, 'y/p')}_eg`, 'y/p egress[0]', 'named4'))).toEqual([
      '10.1.0.1 . tcp . 8080',
      '10.1.0.2 . tcp . 80',
      '10.2.0.1 . tcp . 8443',
      '10.2.0.2 . tcp . 8081',
    ]);
  });
  it('sets are shared: the same peers or ports in rules of different policies are one set, with a neutral comment', () => {
    const same = { from: [{ podSelector: { matchLabels: { app: 'db' } } }, { ipBlock: { cidr: '10.9.0.0/16' } }], ports: [{ port: 80 }, { port: 'http' }] };
    const r = compile([
      pol({ podSelector: web, ingress: [same, { from: [{ podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 80 }] }] }, 'x/a'),
      pol({ podSelector: web, ingress: [same] }, 'x/b'),
    ]);
    const rs = r.ruleset;
    const [a, b] = [idOf(r, 'x/a'), idOf(r, 'x/b')];
    for (const what of ['pods4', 'pods6', 'cidr4', 'ports', 'named4', 'named6'])
      expect(setOf(rs, `${a}_in`, 'x/a ingress[0]', what)).toBe(setOf(rs, `${b}_in`, 'x/b ingress[0]', what));
    expect(setOf(rs, `${a}_in`, 'x/a ingress[1]', 'pods4')).toBe(setOf(rs, `${a}_in`, 'x/a ingress[0]', 'pods4'));
    // numeric ports `tcp . 80` in both rules: one set (the named ports are a set of their own)
    expect(setOf(rs, `${a}_in`, 'x/a ingress[1]', 'ports')).toBe(setOf(rs, `${a}_in`, 'x/a ingress[0]', 'ports'));
    expect(elems(rs, setOf(rs, `${a}_in`, 'x/a ingress[0]', 'pods4'))).toEqual(['10.1.0.3', '10.2.0.1']);
    // one pods set per family, one ipBlock set, one port set, one named-port set per family
    expect([...rs.sets.keys()].filter((n) => /^s[0-9a-f]{12}_/.test(n))).toHaveLength(2 + 1 + 1 + 2);
    expect(rs.sets.get(setOf(rs, `${a}_in`, 'x/a ingress[0]', 'pods4'))?.def.comment).toBe('peer pods');
    // the rules keep their own comments (and counters)
    expect(rules(rs, `${a}_in`)).toEqual(
      rules(rs, `${b}_in`).concat([
        `ip saddr @${setOf(rs, `${a}_in`, 'x/a ingress[1]', 'pods4')} meta l4proto . th dport @${setOf(rs, `${a}_in`, 'x/a ingress[1]', 'ports')} counter accept`,
        `ip6 saddr @${setOf(rs, `${a}_in`, 'x/a ingress[1]', 'pods6')} meta l4proto . th dport @${setOf(rs, `${a}_in`, 'x/a ingress[1]', 'ports')} counter accept`,
      ]),
    );
    expect([...new Set(rs.chains.get(`${b}_in`)?.rules.map((x) => x.comment))]).toEqual(['x/b ingress[0]']);
  });
});

describe('profiles and dispatch', () => {
  it('ingress: [] isolates with no allow rule: the profile jumps to an empty chain and drops', () => {
    const r = compile([pol({ podSelector: web, ingress: [] })]);
    const id = idOf(r);
    expect(rules(r.ruleset, `${id}_in`)).toEqual([]);
    const prof = profileOf(r, 'ingress', '10.1.0.1') as string;
    expect(prof).toMatch(/^prof_[0-9a-f]{12}_in$/);
    expect(rules(r.ruleset, prof)).toEqual([
      'ct state invalid counter drop',
      `jump ${id}_in`,
      `limit rate 10/second burst 20 packets log prefix "weir deny in ${prof}: " group 100`,
      'counter drop',
    ]);
    expect(r.ruleset.chains.get(prof)?.rules.at(-1)?.comment).toBe('ingress default deny');
  });

  it('a pod selected by two policies has one profile jumping to both; pods with the same policies share it', () => {
    const r = compile([
      pol({ podSelector: web, ingress: [{ ports: [{ port: 80 }] }] }, 'x/a'),
      pol({ podSelector: {}, ingress: [{ ports: [{ port: 443 }] }] }, 'x/b'),
    ]);
    const [a, b] = [idOf(r, 'x/a'), idOf(r, 'x/b')];
    const webProf = profileOf(r, 'ingress', '10.1.0.1') as string;
    expect(profileOf(r, 'ingress', 'fd00:1::1')).toBe(webProf);
    expect(profileOf(r, 'ingress', '10.1.0.2')).toBe(webProf);
    expect(rules(r.ruleset, webProf).filter((x) => x.startsWith('jump'))).toEqual([`jump ${a}_in`, `jump ${b}_in`]);
    const dbProf = profileOf(r, 'ingress', '10.1.0.3') as string;
    expect(dbProf).not.toBe(webProf);
    expect(rules(r.ruleset, dbProf).filter((x) => x.startsWith('jump'))).toEqual([`jump ${b}_in`]);
    expect([...r.ruleset.chains.keys()].filter((c) => c.startsWith('prof_'))).toHaveLength(2);
    expect(r.endpoints.find((e) => e.name === 'web')?.ingress).toEqual({ chain: webProf, policies: ['x/a', 'x/b'] });
  });

  it('a pod no policy selects has no map element; other namespaces are untouched', () => {
    const r = compile([pol({ podSelector: web, ingress: [] })]);
    expect(Object.keys(mapOf(r, 'ingress4')).sort()).toEqual(['10.1.0.1', '10.1.0.2']);
    expect(Object.keys(mapOf(r, 'ingress6')).sort()).toEqual(['fd00:1::1', 'fd00:1::2']);
    expect(r.endpoints.find((e) => e.name === 'db')).toEqual({ namespace: 'x', name: 'db', ips: ['10.1.0.3', 'fd00:1::3'] });
  });

  it('an egress-only policy isolates for egress only', () => {
    const r = compile([pol({ podSelector: web, policyTypes: ['Egress'], egress: [{ ports: [{ port: 53, protocol: 'UDP' }] }], ingress: [{}] })]);
    expect(mapOf(r, 'ingress4')).toEqual({});
    expect(Object.keys(mapOf(r, 'egress4')).sort()).toEqual(['10.1.0.1', '10.1.0.2']);
    expect(r.ruleset.chains.has(`${idOf(r)}_in`)).toBe(false);
  });

  it('egress: [] without policyTypes does not isolate for egress (the API default)', () => {
    const r = compile([pol({ podSelector: web, egress: [] })]);
    expect(mapOf(r, 'egress4')).toEqual({});
    expect(Object.keys(mapOf(r, 'ingress4')).sort()).toEqual(['10.1.0.1', '10.1.0.2']);
  });
});

describe('invalid policies fail closed', () => {
  it.each([
    ['endPort below port', { podSelector: web, ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }, 'spec.ingress[0].ports[0].endPort', ['ingress']],
    [
      'except outside its cidr',
      { podSelector: web, policyTypes: ['Ingress', 'Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.9.0.0/24'] } }] }] },
      'spec.egress[0].to[0].ipBlock.except[0]',
      ['ingress', 'egress'],
    ],
    [
      'unknown protocol',
      { podSelector: web, policyTypes: ['Egress'], egress: [{ ports: [{ protocol: 'ICMP' }] }] },
      'spec.egress[0].ports[0].protocol',
      ['egress'],
    ],
  ] as const)('%s: reported, and the pods it selects are isolated with no allow rule', (_n, spec, field, dirs) => {
    const r = compile([pol(spec as unknown as NetworkPolicySpec, 'x/bad'), pol({ podSelector: { matchLabels: { app: 'db' } }, ingress: [{}] }, 'x/ok')]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatchObject({ field });
    const id = idOf(r, 'x/bad');
    for (const d of ['ingress', 'egress'] as const) {
      const short = d === 'ingress' ? 'in' : 'eg';
      if (dirs.includes(d as never)) {
        expect(rules(r.ruleset, `${id}_${short}`)).toEqual([]);
        expect(profileOf(r, d, '10.1.0.1')).toBeDefined();
        expect(r.endpoints.find((e) => e.name === 'web')?.[d]?.policies).toEqual(['x/bad']);
      } else expect(r.ruleset.chains.has(`${id}_${short}`)).toBe(false);
    }
    // the valid policy still compiles, with its rule
    expect(rules(r.ruleset, `${idOf(r, 'x/ok')}_in`)).toEqual(['counter accept']);
  });

  it('an unusable podSelector isolates every pod of the namespace', () => {
    const r = compile([pol({ podSelector: { matchExpressions: [{ key: 'app', operator: 'Matches', values: ['web'] }] }, ingress: [{}] }, 'x/bad')]);
    expect(r.errors).toHaveLength(1);
    expect(Object.keys(mapOf(r, 'ingress4')).sort()).toEqual(['10.1.0.1', '10.1.0.2', '10.1.0.3']);
    expect(rules(r.ruleset, `${idOf(r, 'x/bad')}_in`)).toEqual([]);
  });
});

// ---- what nft itself would refuse (FakeNft does not model these) ----

/** Pairs of elements of an interval set that overlap (nft refuses them with EEXIST). */
function overlaps(rs: Ruleset, only?: RegExp): string[] {
  const out: string[] = [];
  const bound = (part: string): [bigint, bigint] => {
    const [a, b] = part.includes('-') ? part.split('-') : [part, part];
    const v = (x: string): bigint =>
      /^\d+$/.test(x) ? BigInt(x) : x.includes('.') || x.includes(':') ? bytesToBigint(parseIp(x).bytes) : BigInt(['tcp', 'udp', 'sctp'].indexOf(x) + 1000);
    return [v(a as string), v(b as string)];
  };
  for (const [name, s] of rs.sets) {
    if (s.def.kind !== 'set' || !(s.def.flags ?? []).includes('interval') || (only && !only.test(name))) continue;
    const es = [...s.elements.values()].map((e) => ({ text: e.key.join(' . '), parts: e.key.map(bound) }));
    for (let i = 0; i < es.length; i++) {
      for (let j = i + 1; j < es.length; j++) {
        const [x, y] = [es[i], es[j]] as [(typeof es)[number], (typeof es)[number]];
        if (x.parts.every(([a, b], k) => a <= (y.parts[k] as [bigint, bigint])[1] && (y.parts[k] as [bigint, bigint])[0] <= b))
          out.push(`${name}: ${x.text} overlaps ${y.text}`);
      }
    }
  }
  return out;
}

describe('what the kernel would refuse', () => {
  // Regression (compileRule, the `_ports` set): port entries of one rule
  // were emitted as they are, so overlapping entries
  // (valid in NetworkPolicy: `80` and `80-90`, or `UDP` and `UDP 53`) give
  // overlapping elements in one interval set. nft refuses them (checked on
  // nft 1.0.6 / Linux 6.18: `add element ... { tcp . 80, tcp . 80-90 }` ->
  // "Could not process rule: File exists"), so the whole transaction fails,
  // and with it every policy on the node. They are merged per protocol.
  it('port entries that overlap are merged into disjoint elements', () => {
    const r = compile([
      pol({ podSelector: web, ingress: [{ ports: [{ port: 80 }, { port: 80, endPort: 90 }, { protocol: 'UDP' }, { protocol: 'UDP', port: 53 }] }] }),
    ]);
    expect(overlaps(r.ruleset)).toEqual([]);
  });

  it('ipBlock intervals are disjoint in random clusters', () => {
    fc.assert(
      fc.property(clusterArb, (m) => {
        for (const node of ['n1', 'n2']) expect(overlaps(compilePolicies(buildState(m), { nodeName: node }).ruleset, /_cidr[46]$/)).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });

  // Regression (chain, set and rule comments are built from the policy
  // reference): a NetworkPolicy name may be 253 characters and
  // a namespace 63, but nft comments are at most 128 bytes (nft: "comment too
  // long, 128 characters maximum allowed"; Transaction refuses it with
  // EINVAL), so one policy with a name over ~90 characters makes the node's
  // whole sync fail. Comments use a capped label (commentLabel).
  it('comments fit in nft\u2019s 128 bytes with the longest valid names', () => {
    const long = `${'n'.repeat(63)}`;
    const name = `${'a'.repeat(120)}.${'b'.repeat(120)}`;
    const st: ClusterState = {
      namespaces: [ns(long)],
      pods: [pod(`${long}/w`, { labels: { app: 'web' }, ips: ['10.1.0.7'], ...n1 })],
      policies: [
        policy(`${long}/${name}`, {
          podSelector: {},
          ingress: [{ from: [{ podSelector: {} }, { ipBlock: { cidr: '10.0.0.0/8' } }], ports: [{ port: 80 }, { port: 'http' }] }],
        }),
      ],
    };
    const rs = compilePolicies(st, { nodeName: 'n1' }).ruleset;
    expect(fullTransaction(rs).error).toBeUndefined();
  });
});
