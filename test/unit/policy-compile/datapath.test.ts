// The compiled table judged as the kernel would, without the kernel: the
// interpreter of interp.ts runs packets through the compiled Ruleset of each
// node on the packet's path, and its verdict must equal the reference
// evaluator's (src/policy/evaluator.ts) for every connection between the
// pods, nodes and outside addresses of random clusters.
//
// The path of a packet is compare.ts's.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ClusterState } from '../../../src/policy/index.ts';
import { emptyRuleset, type Ruleset } from '../../../src/policy/ruleset.ts';
import { ns, pod, policy } from '../policy/helpers.ts';
import { buildState, type ClusterModel, clusterArb, NODE_IPS, NODES, podIps } from './cluster.ts';
import { compare } from './compare.ts';
import { Datapath, type L4, type Packet, parseRule } from './interp.ts';

// ---- the interpreter itself ----

describe('interpreter', () => {
  const table = { kind: 'table' as const, family: 'inet' as const, name: 'weir' };
  const rs = (chains: Record<string, string[]>, base: Record<string, number>): Ruleset => {
    const r = emptyRuleset(table);
    for (const [name, rules] of Object.entries(chains)) {
      const def = {
        kind: 'chain' as const,
        table,
        name,
        ...(name in base ? { type: 'filter' as const, hook: 'forward' as const, priority: base[name] as number, policy: 'accept' as const } : {}),
      };
      r.chains.set(name, { def, rules: rules.map((rule) => ({ kind: 'rule' as const, table, chain: name, rule })) });
    }
    return r;
  };
  const pkt = (saddr: string, daddr: string, dport = 80, proto: L4 = 'tcp'): Packet => ({ saddr, daddr, proto, dport, ctState: 'new' });

  it('refuses rule text outside the forms the compiler emits', () => {
    expect(() => parseRule('tcp dport 80 accept')).toThrow(/unknown rule text/);
    expect(() => parseRule('ip saddr 10.0.0.0/8 counter accept')).toThrow(/unknown rule text/);
    expect(() => parseRule('counter accept drop')).toThrow(/unknown rule text|after the verdict/);
    expect(() => new Datapath(rs({ c: ['meta mark 1 accept'] }, { c: 0 }))).toThrow(/unknown rule text/);
  });

  it('accept ends one base chain, drop ends the hook; jump returns, goto does not', () => {
    const r = rs({ a: ['jump j', 'accept'], j: ['counter'], b: ['goto g', 'accept'], g: ['counter'] }, { a: 0, b: 1 });
    // b: goto g falls through g back to b's caller, so b's policy (accept) applies, not b's own `accept`.
    expect(new Datapath(r).hook('forward', pkt('10.0.0.1', '10.0.0.2')).verdict).toBe('accept');
    const d = rs({ a: ['accept'], b: ['jump j', 'accept'], j: ['counter drop'] }, { a: 0, b: 1 });
    expect(new Datapath(d).hook('forward', pkt('10.0.0.1', '10.0.0.2'))).toEqual({ verdict: 'drop', trail: ['a: accept', 'j: counter drop'] });
  });

  it('ip matches only IPv4 packets and ip6 only IPv6; sets are looked up by their declared type', () => {
    const r = rs({ a: ['ip saddr @s4 counter drop', 'ip6 saddr @s6 counter drop', 'meta l4proto . th dport @p counter drop'] }, { a: 0 });
    r.sets.set('s4', {
      def: { kind: 'set', table, name: 's4', type: 'ipv4_addr', flags: ['interval'] },
      elements: new Map([['x', { kind: 'element', table, set: 's4', key: ['10.0.0.0-10.0.0.9'] }]]),
    });
    r.sets.set('s6', {
      def: { kind: 'set', table, name: 's6', type: 'ipv6_addr' },
      elements: new Map([['x', { kind: 'element', table, set: 's6', key: ['fd00::1'] }]]),
    });
    r.sets.set('p', {
      def: { kind: 'set', table, name: 'p', type: 'inet_proto . inet_service', flags: ['interval'] },
      elements: new Map([['x', { kind: 'element', table, set: 'p', key: ['udp', '50-60'] }]]),
    });
    const dp = new Datapath(r);
    expect(dp.hook('forward', pkt('10.0.0.9', '1.1.1.1')).verdict).toBe('drop');
    expect(dp.hook('forward', pkt('10.0.0.10', '1.1.1.1')).verdict).toBe('accept');
    expect(dp.hook('forward', pkt('fd00::1', 'fd00::2')).verdict).toBe('drop');
    expect(dp.hook('forward', pkt('fd00::0:1', 'fd00::2')).verdict).toBe('drop');
    expect(dp.hook('forward', pkt('fd00::2', 'fd00::1', 55, 'udp')).verdict).toBe('drop');
    expect(dp.hook('forward', pkt('fd00::2', 'fd00::1', 55, 'tcp')).verdict).toBe('accept');
    r.chains.get('a')?.rules.push({ kind: 'rule', table, chain: 'a', rule: 'ip daddr @p counter drop' });
    expect(() => new Datapath(r).hook('forward', pkt('10.1.0.0', '1.1.1.1'))).toThrow(/is of type inet_proto . inet_service/);
  });
});

// ---- the comparison ----

describe('compiled datapath agrees with the evaluator', () => {
  const namespaces = [ns('x'), ns('y', { team: 'red' })];
  const n1 = { node: 'n1', hostIPs: NODE_IPS.n1 as [string, string] };
  const n2 = { node: 'n2', hostIPs: NODE_IPS.n2 as [string, string] };
  const pods = [
    pod('x/web', { labels: { app: 'web' }, ips: podIps(0, 0), ...n1, ports: [{ name: 'http', containerPort: 8080 }] }),
    pod('x/db', { labels: { app: 'db' }, ips: podIps(1, 1), ...n2, ports: [{ name: 'http', containerPort: 80 }] }),
    pod('y/cli', { labels: { app: 'cli' }, ips: podIps(0, 2), ...n1 }),
    pod('y/far', { labels: { app: 'cli' }, ips: podIps(1, 3), ...n2 }),
    pod('x/host', { labels: { app: 'web' }, ips: n2.hostIPs, hostNetwork: true, ...n2 }),
  ];
  const nodes = NODES.map((n) => ({ name: n, internalIPs: NODE_IPS[n] as string[] }));
  const at = (policies: ClusterState['policies']): ClusterState => ({ namespaces, pods, nodes, policies });

  it.each([
    ['no policy', []],
    [
      'web ingress from team red on http',
      [
        policy('x/a', {
          podSelector: { matchLabels: { app: 'web' } },
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'red' } } }], ports: [{ port: 'http' }] }],
        }),
      ],
    ],
    ['default deny both ways in x', [policy('x/deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] })]],
    [
      'egress to named http of db pods, plus the nodes by ipBlock',
      [
        policy('x/e', {
          podSelector: {},
          policyTypes: ['Egress'],
          egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }], ports: [{ port: 'http' }] }, { to: [{ ipBlock: { cidr: '192.168.0.0/24' } }] }],
        }),
      ],
    ],
    [
      'ipBlock with except, both families',
      [
        policy('x/b', {
          podSelector: {},
          ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.2.0.0/16'] } }, { ipBlock: { cidr: 'fd00::/16', except: ['fd00:1::/32'] } }] }],
        }),
      ],
    ],
    [
      'two policies on one pod, port ranges and protocol-only',
      [
        policy('x/p', { podSelector: {}, ingress: [{ ports: [{ port: 8000, endPort: 9000 }] }] }),
        policy('x/q', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ ports: [{ protocol: 'UDP' }] }] }),
      ],
    ],
  ] as const)('%s', (_name, policies) => {
    const { mismatches, judged } = compare(at([...policies]));
    expect(judged).toBeGreaterThan(100);
    expect(mismatches).toEqual([]);
  });

  it('random clusters: the interpreter over both nodes\u2019 rulesets and the evaluator agree on every connection', () => {
    fc.assert(
      fc.property(clusterArb, (m: ClusterModel) => {
        const { mismatches } = compare(buildState(m));
        expect(mismatches).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });
});
