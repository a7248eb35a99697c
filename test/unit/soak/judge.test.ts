// The judge: a probe's outcome against every state the kernel may have
// been enforcing at its instant (the settle rule of timeline.ts), with the
// reference evaluator as the oracle.
import { describe, expect, it } from 'vitest';
import { combinations, EvaluatorCache, judge, type ProbeResult, reduceCandidates } from '../../../lab/soak/judge.ts';
import { KINDS, type Kind, KindTimeline, type KObject, type SettleRules, settleEnd } from '../../../lab/soak/timeline.ts';

const RULES: SettleRules = { graceMs: 1000, maxSettleMs: 60_000 };
const NODES = [
  { name: 'n1', internalIPs: ['172.18.0.2'] },
  { name: 'n2', internalIPs: ['172.18.0.3'] },
];

let rv = 100;
const meta = (name: string, namespace?: string, labels: Record<string, string> = {}) => ({
  name,
  ...(namespace ? { namespace } : {}),
  uid: `uid-${namespace ?? ''}-${name}`,
  resourceVersion: String(++rv),
  labels,
});
const ns = (name: string): KObject => ({ metadata: meta(name, undefined, { 'kubernetes.io/metadata.name': name }) });
const pod = (namespace: string, name: string, ip: string, node: string, labels: Record<string, string> = {}): KObject => ({
  metadata: meta(name, namespace, labels),
  spec: { nodeName: node, containers: [{ ports: [{ name: 'serve-80-tcp', containerPort: 80, protocol: 'TCP' }] }] },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
});
const denyIngress = (namespace: string): KObject => ({ metadata: meta('deny', namespace), spec: { podSelector: {}, policyTypes: ['Ingress'] } });

/** Timelines at t=0: a prober in `probe`, a server at 10.244.2.5 in `app`, no policy; all enforced. */
function world(): Record<Kind, KindTimeline> {
  const t = { pods: new KindTimeline('pods'), namespaces: new KindTimeline('namespaces'), networkpolicies: new KindTimeline('networkpolicies') };
  t.pods.initial(0, [pod('probe', 'p', '10.244.1.9', 'n1'), pod('app', 's', '10.244.2.5', 'n2')], '200');
  t.namespaces.initial(0, [ns('probe'), ns('app')], '200');
  t.networkpolicies.initial(0, [], '200');
  return t;
}

const probe = (start: number, connected: boolean): ProbeResult => ({
  from: 'probe/p',
  ip: '10.244.2.5',
  port: 80,
  start,
  ms: 3,
  connected,
  ...(connected ? {} : { error: 'timeout' }),
});

describe('judge', () => {
  it('allows what no policy forbids; a refused allowed connection is allowed-failed, not a finding', () => {
    const t = world();
    const ev = new EvaluatorCache(NODES);
    expect(judge(probe(500, true), t, ev, 1000, RULES)?.outcome).toBe('allowed-ok');
    expect(judge(probe(500, false), t, ev, 1000, RULES)?.outcome).toBe('allowed-failed');
  });

  it('a connection answered by another pod than the one holding the address is a finding, whatever policy allows', () => {
    const t = world();
    const ev = new EvaluatorCache(NODES);
    expect(judge({ ...probe(500, true), who: 'app/s' }, t, ev, 1000, RULES)?.outcome).toBe('allowed-ok');
    const wrong = judge({ ...probe(500, true), who: 'other/x' }, t, ev, 1000, RULES);
    expect(wrong?.outcome).toBe('forbidden');
    expect(wrong?.detail).toBe('answered by other/x, but the API gave 10.244.2.5 to app/s');
  });

  it('waits while a change is neither enforced nor past its maximum settle time', () => {
    const t = world();
    t.networkpolicies.event(1000, 'ADDED', denyIngress('app'));
    expect(judge(probe(1500, true), t, new EvaluatorCache(NODES), 2000, RULES)).toBeUndefined();
  });

  it('excuses the state before a change until it is enforced plus the grace, then forbids', () => {
    const t = world();
    const v = t.networkpolicies.event(1000, 'ADDED', denyIngress('app'));
    const marked = t.networkpolicies.markEnforced(v?.rv ?? '', 3000);
    expect(marked.map((m) => m.seq)).toEqual([v?.seq]);
    const ev = new EvaluatorCache(NODES);
    // Before enforced + grace (4000): both states are candidates.
    expect(judge(probe(1500, true), t, ev, 5000, RULES)?.outcome).toBe('allowed-ok');
    expect(judge(probe(3900, false), t, ev, 5000, RULES)?.outcome).toBe('unsettled');
    // After it: only the new state.
    const bad = judge(probe(4000, true), t, ev, 5000, RULES);
    expect(bad?.outcome).toBe('forbidden');
    expect(bad?.detail).toMatch(/networkpolicies: v\d+ \(ADDED app\/deny\)/);
    expect(bad?.detail).toMatch(/ingress denies \[deny\]/);
    expect(bad?.detail).toMatch(/dst app\/s \{\} on n2/);
    expect(bad?.detail).toMatch(/policies app\/deny \{"podSelector":\{\},"policyTypes":\["Ingress"\]\}/);
    expect(judge(probe(4000, false), t, ev, 5000, RULES)?.outcome).toBe('blocked-ok');
  });

  it('stops excusing the old state at the maximum settle time even when no agent reports the change', () => {
    const t = world();
    t.networkpolicies.event(1000, 'ADDED', denyIngress('app'));
    const ev = new EvaluatorCache(NODES);
    expect(judge(probe(61_000, true), t, ev, 61_500, RULES)?.outcome).toBe('forbidden');
    expect(judge(probe(60_500, true), t, ev, 61_500, RULES)?.outcome).toBe('allowed-ok');
  });

  it('judges a connect by every state while it was under way: a SYN retransmitted after a change that allows it', () => {
    const t = world();
    const deny = t.networkpolicies.event(1000, 'ADDED', denyIngress('app'));
    t.networkpolicies.markEnforced(deny?.rv ?? '', 1200);
    const gone = t.networkpolicies.event(10_500, 'DELETED', denyIngress('app'));
    t.networkpolicies.markEnforced(gone?.rv ?? '', 10_700);
    const ev = new EvaluatorCache(NODES);
    // Started while denied, connected 1 s later (the kernel's first SYN retransmission) after the policy went.
    expect(judge({ ...probe(10_000, true), ms: 1010 }, t, ev, 20_000, RULES)?.outcome).toBe('allowed-ok');
    // The same connect answered before the change: forbidden.
    expect(judge({ ...probe(10_000, true), ms: 5 }, t, ev, 20_000, RULES)?.outcome).toBe('forbidden');
  });

  it('a change the soak saw late (its watch was down) may have been in force from when the watch went down', () => {
    const t = world();
    const deny = t.networkpolicies.event(1000, 'ADDED', denyIngress('app'));
    t.networkpolicies.markEnforced(deny?.rv ?? '', 1200);
    // The watch went down at 20 s; the relist at 25 s shows the policy gone.
    const relist = t.networkpolicies.relist(25_000, [], String(++rv), 20_000);
    expect(relist?.earliest).toBe(20_000);
    t.networkpolicies.markEnforced(relist?.rv ?? '', 25_200);
    const ev = new EvaluatorCache(NODES);
    expect(judge(probe(22_000, true), t, ev, 30_000, RULES)?.outcome).toBe('allowed-ok');
    expect(judge(probe(19_000, true), t, ev, 30_000, RULES)?.outcome).toBe('forbidden');
  });

  it("follows relabels: a pod relabelled out of a policy's selector is allowed again once enforced", () => {
    const t = world();
    t.networkpolicies.event(10, 'ADDED', {
      metadata: meta('deny-web', 'app'),
      spec: { podSelector: { matchLabels: { app: 'web' } }, policyTypes: ['Ingress'] },
    });
    t.networkpolicies.markEnforced(String(rv), 20);
    const web = pod('app', 's', '10.244.2.5', 'n2', { app: 'web' });
    const v1 = t.pods.event(100, 'MODIFIED', web);
    t.pods.markEnforced(v1?.rv ?? '', 200);
    const ev = new EvaluatorCache(NODES);
    expect(judge(probe(2000, true), t, ev, 3000, RULES)?.outcome).toBe('forbidden');
    const v2 = t.pods.event(5000, 'MODIFIED', pod('app', 's', '10.244.2.5', 'n2', { app: 'db' }));
    t.pods.markEnforced(v2?.rv ?? '', 5200);
    expect(judge(probe(7000, true), t, ev, 8000, RULES)?.outcome).toBe('allowed-ok');
  });

  it('judges an address no pod holds by its ipBlock-less default: allowed (no policy selects it)', () => {
    const t = world();
    const gone = t.pods.event(100, 'DELETED', pod('app', 's', '10.244.2.5', 'n2'));
    expect(gone?.change).toBe('DELETED app/s');
    t.pods.markEnforced(gone?.rv ?? '', 150);
    expect(judge(probe(2000, false), t, new EvaluatorCache(NODES), 3000, RULES)?.outcome).toBe('allowed-failed');
  });
});

describe('reduceCandidates', () => {
  it("keeps one version per distinct view of the flow: changes to other pods and other namespaces' policies fold away", () => {
    const t = world();
    const other = t.pods.event(10, 'ADDED', pod('app', 'x', '10.244.2.7', 'n2'));
    const other2 = t.pods.event(20, 'MODIFIED', pod('app', 'x', '10.244.2.7', 'n2', { app: 'db' }));
    const dst = t.pods.event(30, 'MODIFIED', pod('app', 's', '10.244.2.5', 'n2', { app: 'web' }));
    const elsewhere = t.networkpolicies.event(40, 'ADDED', denyIngress('zzz'));
    const here = t.networkpolicies.event(50, 'ADDED', denyIngress('app'));
    const cands = {
      pods: [dst, other2, other, t.pods.versions[0]].map((v) => v!),
      namespaces: [t.namespaces.latest!],
      networkpolicies: [here, elsewhere, t.networkpolicies.versions[0]].map((v) => v!),
    };
    const r = reduceCandidates(cands, 'probe', 'p', '10.244.2.5');
    expect(r.pods.map((v) => v.seq)).toEqual([dst?.seq, other2?.seq]);
    expect(r.networkpolicies.map((v) => v.seq)).toEqual([here?.seq, elsewhere?.seq]);
  });
});

describe('timeline', () => {
  it('ignores an event that changes nothing (a repeat after a reconnect) and a relist equal to what it holds', () => {
    const t = new KindTimeline('namespaces');
    const a = ns('a');
    t.initial(0, [a], '1');
    expect(t.event(10, 'ADDED', a)).toBeUndefined();
    expect(t.event(10, 'DELETED', ns('zzz'))).toBeUndefined();
    expect(t.relist(20, [a], '5')).toBeUndefined();
    expect(t.relist(30, [], '6')?.change).toBe('relist');
  });

  it('settleEnd is enforcement + grace, capped at the maximum settle time, unknown before either', () => {
    const v = { seq: 1, at: 1000, rv: '5', objects: new Map(), change: 'x' };
    expect(settleEnd(v, RULES, 2000)).toBeUndefined();
    expect(settleEnd(v, RULES, 61_000)).toBe(61_000);
    expect(settleEnd({ ...v, enforcedAt: 3000 }, RULES, 2000)).toBe(4000);
    expect(settleEnd({ ...v, enforcedAt: 90_000 }, RULES, 2000)).toBe(61_000);
  });

  it('prunes versions no later probe can need, keeping the one in force', () => {
    const t = new KindTimeline('namespaces');
    t.initial(0, [], '1');
    for (let i = 1; i <= 5; i++) t.event(i * 10_000, 'ADDED', ns(`n${i}`));
    t.prune(100_000, RULES);
    expect(t.versions[0]?.at).toBe(40_000);
    expect(t.indexAt(100_000)).toBe(t.versions.length - 1);
  });

  it('combinations are the product of the candidates per kind', () => {
    const t = world();
    const one = Object.fromEntries(KINDS.map((k) => [k, [t[k].latest]])) as never;
    expect(combinations(one)).toHaveLength(1);
    const two = { ...(one as object), pods: [t.pods.latest, t.pods.latest], networkpolicies: [t.networkpolicies.latest, t.networkpolicies.latest] } as never;
    expect(combinations(two)).toHaveLength(4);
  });
});
