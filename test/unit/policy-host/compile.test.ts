// What host-firewall mode adds to `inet weir` (src/policy/host-compile.ts), as an
// operator reads it: the base chains and their order (failsafes before any
// policy), the dispatch of hostNetwork pods' ports to the same policy chains
// pods use, HostFirewallPolicy chains, the audit variants, and that with
// the mode off none of it exists.
import { describe, expect, it } from 'vitest';
import { parseDrop } from '../../../src/agent/drops.ts';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { parsePortRanges } from '../../../src/policy/host-normalize.ts';
import { diffTransaction, fullTransaction, type Ruleset } from '../../../src/policy/ruleset.ts';
import { policy } from '../policy/helpers.ts';
import { compileHostOn, elems, hfp, N1, rules, state } from './fixtures.ts';

/** The one set of kind `what` (`pods4`, `named6`, ...) the rules of `chain` use: sets are shared, named by a hash of their definition. */
const setOf = (rs: Ruleset, chain: string, what: string): string => {
  const names = new Set(
    (rs.chains.get(chain)?.rules ?? []).flatMap((x) =>
      x.rule
        .split(/\s+/)
        .filter((t) => t.startsWith('@') && t.endsWith(`_${what}`))
        .map((t) => t.slice(1)),
    ),
  );
  if (names.size !== 1) throw new Error(`${chain}: ${names.size} sets of kind ${what}: ${[...names].join(', ')}`);
  return [...names][0] as string;
};

const HOST_CHAIN = /^(host_|hprof_|h[0-9a-f]{12}_)/;
const hnIngress = policy('x/hn-in', {
  podSelector: { matchLabels: { app: 'hn' } },
  ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } }, namespaceSelector: {} }], ports: [{ port: 'http' }] }],
});
const denyAll = hfp('deny-all', { nodeSelector: {}, policyTypes: ['Ingress', 'Egress'] });
/** Index of the first rule that can drop, dispatch or jump (anything but a plain accept). */
const firstDecision = (list: string[]): number => list.findIndex((r) => !/ accept$/.test(r) || / vmap /.test(r));

describe('mode off', () => {
  it('no host chain, set or map exists, and hostNetwork pods are not subjects', () => {
    const r = compilePolicies(state([hnIngress], [denyAll]), { nodeName: 'n1' });
    expect([...r.ruleset.chains.keys()].filter((c) => HOST_CHAIN.test(c))).toEqual([]);
    expect([...r.ruleset.sets.keys()].filter((s) => s.startsWith('host_'))).toEqual([]);
    expect(r.host).toBeUndefined();
    // Only hostNetwork pods are selected: the policy has nothing to enforce here.
    expect(r.policyChains.has('x/hn-in')).toBe(false);
    expect(fullTransaction(r.ruleset).compile().script).not.toMatch(/hook (input|output)/);
  });

  it('turning it off removes every host rule: the diff deletes exactly the host chains and sets', () => {
    const on = compileHostOn(state([hnIngress], [denyAll]));
    const off = compilePolicies(state([hnIngress], [denyAll]), { nodeName: 'n1' });
    const { tx, stats } = diffTransaction(on.ruleset, off.ruleset);
    const removed = [...on.ruleset.chains.keys()].filter((c) => !off.ruleset.chains.has(c));
    expect(removed.length).toBeGreaterThan(0);
    expect(
      removed.every((c) => HOST_CHAIN.test(c) || c.startsWith('p')),
      removed.join(' '),
    ).toBe(true);
    expect(removed).toEqual(expect.arrayContaining(['host_input', 'host_output']));
    expect(stats.chainsRemoved).toBe(removed.length);
    expect(tx.compile().script).toMatch(/delete chain inet weir host_input/);
  });
});

describe('base chains', () => {
  it('input and output hooks at filter priority, policy accept; established, loopback, IPv6 ND, then the failsafes, before any decision', () => {
    const r = compileHostOn(state([hnIngress], [denyAll]));
    const input = r.ruleset.chains.get('host_input');
    const output = r.ruleset.chains.get('host_output');
    expect(input?.def).toMatchObject({ type: 'filter', hook: 'input', priority: 0, policy: 'accept' });
    expect(output?.def).toMatchObject({ type: 'filter', hook: 'output', priority: 0, policy: 'accept' });
    const inRules = rules(r.ruleset, 'host_input');
    expect(inRules.slice(0, 4)).toEqual([
      'ct state established,related accept',
      'iif "lo" accept',
      'icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept',
      'meta l4proto . th dport @host_failsafe_in accept',
    ]);
    expect(firstDecision(inRules)).toBeGreaterThan(3);
    const outRules = rules(r.ruleset, 'host_output');
    expect(outRules.slice(0, 4)).toEqual([
      'ct state established,related accept',
      'oif "lo" accept',
      'icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept',
      'meta l4proto . th dport @host_failsafe_out accept',
    ]);
    expect(firstDecision(outRules)).toBeGreaterThan(3);
    // Own pods after the hostNetwork port dispatch (a local pod is judged like any pod there), before host policies.
    expect(inRules.indexOf('iifname "weir*" accept')).toBe(inRules.indexOf('meta l4proto . th dport vmap @host_ports') + 1);
    expect(inRules.indexOf('iifname "weir*" accept')).toBeLessThan(inRules.findIndex((x) => x.startsWith('jump ')));
  });

  it('failsafe sets: the defaults, merged per protocol; configurable, and empty when configured so', () => {
    const r = compileHostOn(state());
    expect(elems(r.ruleset, 'host_failsafe_in')).toEqual(['tcp . 10250', 'tcp . 22', 'tcp . 2379-2380', 'tcp . 6443', 'udp . 546-547', 'udp . 67-68']);
    expect(elems(r.ruleset, 'host_failsafe_out')).toEqual(['tcp . 2379-2380', 'tcp . 53', 'tcp . 6443', 'udp . 53', 'udp . 546-547', 'udp . 67-68']);
    expect(r.host?.failsafe.inbound).toEqual(['tcp:22', 'tcp:6443', 'tcp:10250', 'tcp:2379-2380', 'udp:67-68', 'udp:546-547']);
    const c = compileHostOn(state(), { failsafeInbound: parsePortRanges('tcp:22,tcp:20-30,sctp:9'), failsafeOutbound: [] });
    expect(elems(c.ruleset, 'host_failsafe_in')).toEqual(['sctp . 9', 'tcp . 20-30']);
    expect(elems(c.ruleset, 'host_failsafe_out')).toEqual([]);
    // With no policy at all, nothing is isolated: the chains end without a drop.
    expect(rules(c.ruleset, 'host_input').some((x) => / drop/.test(x))).toBe(false);
    expect(c.host).toMatchObject({ ingress: 'open', egress: 'open', policies: [] });
  });

  it("the agent's API server is reachable whatever the policies say, matched before DNAT", () => {
    const r = compileHostOn(state([], [denyAll]), {
      apiServers: [
        { ip: '10.96.0.1', port: 443 },
        { ip: 'fd00::1', port: 6443 },
      ],
    });
    const out = rules(r.ruleset, 'host_output');
    expect(out).toContain('meta l4proto tcp ct original ip daddr 10.96.0.1 ct original proto-dst 443 accept');
    expect(out).toContain('meta l4proto tcp ct original ip6 daddr fd00::1 ct original proto-dst 6443 accept');
    expect(out.indexOf('meta l4proto tcp ct original ip daddr 10.96.0.1 ct original proto-dst 443 accept')).toBeLessThan(out.indexOf('counter drop'));
  });
});

describe('hostNetwork pods under NetworkPolicy', () => {
  it("each declared port (containerPort, hostPort; TCP, UDP) goes to a host profile that jumps to the policy's own chain", () => {
    const r = compileHostOn(state([hnIngress]));
    const id = r.policyChains.get('x/hn-in');
    expect(id).toBeDefined();
    const ports = elems(r.ruleset, 'host_ports');
    expect(ports).toHaveLength(2);
    expect(ports[0]).toMatch(/^tcp \. 8080 : goto hprof_[0-9a-f]{12}_in$/);
    expect(ports[1]).toMatch(/^udp \. 5353 : goto hprof_[0-9a-f]{12}_in$/);
    const prof = (ports[0] as string).split('goto ')[1] as string;
    expect(rules(r.ruleset, prof)).toEqual([
      'ct state invalid counter drop',
      `jump ${id}_in`,
      `limit rate 10/second burst 20 packets log prefix "weir deny host ${prof}: " group 100`,
      'counter drop',
    ]);
    // Named ports resolve at the node's address; peers as for any pod (here: every namespace's clients).
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'named4'))).toEqual([`${N1} . tcp . 8080`]);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'named6'))).toEqual(['fd01::1 . tcp . 8080']);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'pods4'))).toEqual(['10.1.0.5', '10.2.0.5']);
    expect(r.host?.hostNetworkPods.find((p) => p.name === 'hn')).toEqual({
      namespace: 'x',
      name: 'hn',
      ports: ['tcp:8080', 'udp:5353'],
      ingress: { chain: prof, policies: ['x/hn-in'] },
    });
    // Not a pod endpoint: the pod chains' maps know nothing of it.
    expect(r.endpoints.some((e) => e.name === 'hn')).toBe(false);
    expect(elems(r.ruleset, 'ingress4')).toEqual([]);
  });

  it('one policy selecting an ordinary pod and a hostNetwork pod is one chain, jumped to by both profiles', () => {
    const both = policy('x/both', {
      podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['hn', 'other'] }] },
      ingress: [{ ports: [{ port: 'http' }] }],
    });
    const r = compileHostOn(state([both]));
    const id = r.policyChains.get('x/both') as string;
    const podProf = r.endpoints.find((e) => e.name === 'other')?.ingress?.chain as string;
    const hostProf = r.host?.hostNetworkPods.find((p) => p.name === 'hn')?.ingress?.chain as string;
    expect(rules(r.ruleset, podProf)).toContain(`jump ${id}_in`);
    expect(rules(r.ruleset, hostProf)).toContain(`jump ${id}_in`);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'named4'))).toEqual(['10.1.0.6 . tcp . 80', `${N1} . tcp . 8080`]);
  });

  it("a port declared by two isolated hostNetwork pods is judged by both pods' policies", () => {
    const a = policy('x/a', { podSelector: { matchLabels: { app: 'hn' } }, ingress: [{}] });
    const b = policy('x/b', { podSelector: { matchLabels: { app: 'hn2' } }, ingress: [{}] });
    const s = state([a, b]);
    const pods = s.pods.map((p) =>
      p.metadata?.name === 'hn2' ? { ...p, spec: { ...p.spec, containers: [{ ports: [{ containerPort: 8080 }, { containerPort: 9100 }] }] } } : p,
    );
    const r = compileHostOn({ ...s, pods });
    const prof = elems(r.ruleset, 'host_ports')
      .find((e) => e.startsWith('tcp . 8080'))
      ?.split('goto ')[1] as string;
    expect(rules(r.ruleset, prof).filter((x) => x.startsWith('jump'))).toEqual(
      [`jump ${r.policyChains.get('x/a')}_in`, `jump ${r.policyChains.get('x/b')}_in`].sort(),
    );
  });

  it("egress: enforced through the pod's cgroup when known (socket cgroupv2), else reported as not enforced", () => {
    const eg = policy('x/hn-eg', {
      podSelector: { matchLabels: { app: 'hn' } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' } }] }],
    });
    const without = compileHostOn(state([eg]), { egressUnsupported: 'no --host-network-cgroup-template' });
    expect(rules(without.ruleset, 'host_output').some((x) => x.includes('cgroupv2'))).toBe(false);
    expect(without.host?.hostNetworkPods.find((p) => p.name === 'hn')?.egress).toEqual({
      chain: undefined,
      policies: ['x/hn-eg'],
      enforced: false,
      reason: 'no --host-network-cgroup-template',
    });
    const cg = 'kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podabc.slice';
    const withCg = compileHostOn(state([eg]), { cgroups: new Map([['x/hn', { path: cg, level: 3 }]]) });
    const out = rules(withCg.ruleset, 'host_output');
    const rule = out.find((x) => x.includes('cgroupv2')) as string;
    expect(rule).toMatch(new RegExp(`^socket cgroupv2 level 3 "${cg}" goto hprof_[0-9a-f]{12}_eg$`));
    expect(out.indexOf(rule)).toBeGreaterThan(out.indexOf('meta l4proto . th dport @host_failsafe_out accept'));
    expect(out.indexOf(rule)).toBeLessThan(out.indexOf('oifname "weir*" accept'));
    expect(withCg.host?.hostNetworkPods.find((p) => p.name === 'hn')?.egress).toMatchObject({ enforced: true, policies: ['x/hn-eg'] });
    // A path that could break the rule text is never written into it.
    const bad = compileHostOn(state([eg]), { cgroups: new Map([['x/hn', { path: 'a" accept; #', level: 1 }]]) });
    expect(rules(bad.ruleset, 'host_output').some((x) => x.includes('cgroupv2'))).toBe(false);
  });
});

describe('HostFirewallPolicy', () => {
  it("Enforce: the node jumps to its chain and then logs and drops; the policy's peers are sets as for pods, plus node addresses", () => {
    const p = hfp('from-cp', {
      nodeSelector: { matchLabels: { role: 'worker' } },
      ingress: [
        {
          from: [
            { nodeSelector: { matchLabels: { role: 'cp' } } },
            { podSelector: { matchLabels: { app: 'client' } } },
            { ipBlock: { cidr: '203.0.113.0/24' } },
          ],
          ports: [{ port: 9100 }, { port: 'metrics' }],
        },
      ],
    });
    const r = compileHostOn(state([], [p]));
    expect(r.host?.policies).toEqual([{ name: 'from-cp', mode: 'Enforce', chain: expect.stringMatching(/^h[0-9a-f]{12}$/), ingress: true, egress: false }]);
    const id = r.host?.policies[0]?.chain as string;
    const inRules = rules(r.ruleset, 'host_input');
    expect(inRules.slice(-3)).toEqual([
      `jump ${id}_in`,
      'limit rate 10/second burst 20 packets log prefix "weir deny host host_input: " group 100',
      'counter drop',
    ]);
    expect(rules(r.ruleset, 'host_output').some((x) => x.startsWith('jump') || x.includes('drop'))).toBe(false);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'nodes4'))).toEqual(['192.168.0.2']);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'pods4'))).toEqual(['10.1.0.5', '10.2.0.5']);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'cidr4'))).toEqual(['203.0.113.0-203.0.113.255']);
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'ports'))).toEqual(['tcp . 9100']);
    // A named ingress port names a port of the node's hostNetwork pods.
    expect(elems(r.ruleset, setOf(r.ruleset, `${id}_in`, 'named4'))).toEqual([`${N1} . tcp . 9100`]);
    expect(r.host).toMatchObject({ ingress: 'enforce', egress: 'open' });
  });

  it('a policy whose nodeSelector does not select this node adds nothing', () => {
    const r = compileHostOn(state([], [hfp('cp-only', { nodeSelector: { matchLabels: { role: 'cp' } } })]));
    expect(r.host?.policies).toEqual([]);
    expect(rules(r.ruleset, 'host_input').some((x) => x.startsWith('jump') || x.includes('drop'))).toBe(false);
  });

  it('Audit only: logs "weir audit host" and accepts; with an Enforce policy too, only the Enforce one decides', () => {
    const audit = hfp('watch', { nodeSelector: {}, mode: 'Audit', ingress: [{ ports: [{ port: 80 }] }] });
    const a = compileHostOn(state([], [audit]));
    const aid = a.host?.policies[0]?.chain as string;
    expect(rules(a.ruleset, 'host_input').slice(-3)).toEqual([
      `jump ${aid}_in`,
      'limit rate 10/second burst 20 packets log prefix "weir audit host host_input: " group 100',
      'counter accept',
    ]);
    expect(a.host?.ingress).toBe('audit');
    const mixed = compileHostOn(state([], [audit, denyAll]));
    const ids = new Map(mixed.host?.policies.map((p) => [p.name, p.chain]));
    const inRules = rules(mixed.ruleset, 'host_input');
    expect(inRules).toContain(`jump ${ids.get('deny-all')}_in`);
    expect(inRules).not.toContain(`jump ${ids.get('watch')}_in`);
    expect(inRules.at(-1)).toBe('counter drop');
    expect(mixed.host).toMatchObject({ ingress: 'enforce', egress: 'enforce' });
  });

  it('node-wide audit: every host drop becomes log-as-audit and accept, host profiles included', () => {
    const r = compileHostOn(state([hnIngress], [denyAll]), { audit: true });
    const all = [...r.ruleset.chains.keys()].filter((c) => HOST_CHAIN.test(c)).flatMap((c) => rules(r.ruleset, c));
    expect(all.filter((x) => / drop$/.test(x))).toEqual([]);
    expect(all.filter((x) => x.includes('log prefix')).every((x) => x.includes('"weir audit host '))).toBe(true);
    expect(rules(r.ruleset, 'host_input').at(-1)).toBe('counter accept');
    expect(r.host).toMatchObject({ audit: true, ingress: 'audit', egress: 'audit' });
    // The pod chains are not affected by the host audit flag.
    const pods = compileHostOn(state([policy('x/p', { podSelector: {}, ingress: [] })]), { audit: true });
    const prof = pods.endpoints.find((e) => e.name === 'client')?.ingress?.chain as string;
    expect(rules(pods.ruleset, prof).at(-1)).toBe('counter drop');
  });

  it("log prefixes are the ones the agent's drop log parses", () => {
    const r = compileHostOn(state([hnIngress], [denyAll]));
    const prefixes = [...r.ruleset.chains.values()]
      .flatMap((c) => c.rules.map((x) => /log prefix "([^"]*)"/.exec(x.rule)?.[1]))
      .filter((x): x is string => x !== undefined);
    const host = prefixes.filter((p) => p.includes(' host '));
    expect(host.length).toBeGreaterThanOrEqual(3);
    for (const prefix of host) {
      const d = parseDrop({ prefix, payload: Buffer.alloc(0), family: 4 } as never, 1);
      expect(d, prefix).toMatchObject({ direction: 'host', audit: false });
      expect(prefix.length).toBeLessThan(64);
    }
  });

  it('a policy weir cannot express is enforced deny-all on its nodes and reported', () => {
    const bad = { metadata: { name: 'bad' }, spec: { nodeSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: 'nope' } }] }] } };
    const r = compileHostOn(state([], [bad]));
    expect(r.errors.map((e) => e.message)).toEqual(['HostFirewallPolicy bad: spec.ingress[0].from[0].ipBlock.cidr: not a valid CIDR: "nope"']);
    const id = r.host?.policies[0]?.chain as string;
    expect(rules(r.ruleset, `${id}_in`)).toEqual([]);
    expect(rules(r.ruleset, 'host_input').at(-1)).toBe('counter drop');
  });

  it('the whole table is one nft script nft can read: every host rule renders', () => {
    const r = compileHostOn(
      state([hnIngress], [denyAll, hfp('w', { nodeSelector: {}, egress: [{ to: [{ nodeSelector: {} }], ports: [{ port: 'http' }] }] })]),
      {
        cgroups: new Map([['x/hn', { path: 'kubepods/pod1', level: 2 }]]),
      },
    );
    const script = fullTransaction(r.ruleset).compile().script;
    expect(script).toContain('add chain inet weir host_input { type filter hook input priority 0 ; policy accept ;');
    expect(script).toContain('add map inet weir host_ports { type inet_proto . inet_service : verdict ;');
  });
});
