// The compiled Ruleset applied through FakeNft (the kernel's all-or-nothing
// semantics, no root): full replacement, diffs, and the PolicyEngine driving
// them. The key property: whatever sequence of cluster changes the engine
// goes through, the table it leaves behind is exactly the one a fresh full
// replacement with the last state gives.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeNft } from '../../../src/nft/fake.ts';
import { Transaction } from '../../../src/nft/transaction.ts';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { PolicyEngine } from '../../../src/policy/engine.ts';
import type { ClusterState, NetworkPolicy } from '../../../src/policy/index.ts';
import { diffTransaction, fullTransaction, type Ruleset } from '../../../src/policy/ruleset.ts';
import { ns, pod, policy } from '../policy/helpers.ts';
import { buildState, changeArb, clusterArb, NODES, statesOf } from './cluster.ts';

const compile = (s: ClusterState, node = 'n1'): Ruleset => compilePolicies(s, { nodeName: node }).ruleset;
const dumpAfter = (tx: Transaction): string => {
  const f = new FakeNft();
  f.run(tx);
  return f.dump();
};

/**
 * fullTransaction as it should order its operations: set and chain
 * definitions, then elements (verdict-map elements name chains, so chains
 * must exist first), then rules. Used as the reference table where
 * fullTransaction is compared against (it once added elements before chains).
 */
function orderedFull(rs: Ruleset): Transaction {
  const tx = new Transaction().add(rs.table).delete(rs.table).add(rs.table);
  const sets = [...rs.sets.keys()].sort().map((k) => rs.sets.get(k) as NonNullable<ReturnType<typeof rs.sets.get>>);
  const chains = [...rs.chains.keys()].sort().map((k) => rs.chains.get(k) as NonNullable<ReturnType<typeof rs.chains.get>>);
  for (const s of sets) tx.add(s.def);
  for (const c of chains) tx.add(c.def);
  for (const s of sets) for (const k of [...s.elements.keys()].sort()) tx.add(s.elements.get(k) as NonNullable<ReturnType<typeof s.elements.get>>);
  for (const c of chains) for (const r of c.rules) tx.add(r);
  return tx;
}

const n1 = { node: 'n1', hostIPs: ['192.168.0.1'] };
const n2 = { node: 'n2', hostIPs: ['192.168.0.2'] };
const basePods = [
  pod('x/web', { labels: { app: 'web' }, ips: ['10.1.0.1', 'fd00:1::1'], ...n1, ports: [{ name: 'http', containerPort: 8080 }] }),
  pod('x/db', { labels: { app: 'db' }, ips: ['10.1.0.2', 'fd00:1::2'], ...n1 }),
  pod('y/cli', { labels: { app: 'cli' }, ips: ['10.2.0.1', 'fd00:2::1'], ...n2 }),
];
const basePolicies: NetworkPolicy[] = [
  policy('x/web', {
    podSelector: { matchLabels: { app: 'web' } },
    ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'cli' } } }], ports: [{ port: 'http' }, { port: 80 }] }],
  }),
  policy('x/deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'], egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.3.0.0/16'] } }] }] }),
];
const cluster = (over: Partial<ClusterState> = {}): ClusterState => ({ namespaces: [ns('x'), ns('y')], pods: basePods, policies: basePolicies, ...over });

describe('full replacement through FakeNft', () => {
  it('a cluster without policies: applies to an empty FakeNft, and again over itself', () => {
    const f = new FakeNft();
    const rs = compile(cluster({ policies: [] }));
    f.run(fullTransaction(rs));
    const once = f.dump();
    f.run(fullTransaction(rs));
    expect(f.dump()).toBe(once);
    expect(once).toContain('add chain inet weir pod_ingress { type filter hook forward priority 1 ; policy accept ;');
  });

  // Regression: addAll once added each set or map together with its
  // elements, and only then the chains. A verdict-map
  // element (`10.1.0.1 : goto prof_..`) names a profile chain that does not
  // exist yet at that point of the batch, so nft refuses the transaction with
  // ENOENT (FakeNft does, and so does nft 1.0.6 on Linux 6.18): the first
  // sync of any node with an isolated pod fails, and so does every full
  // recovery. Fix: in addAll, add all set/map definitions, then all chain
  // definitions, then all elements, then all rules (as orderedFull does).
  it('a cluster with isolated pods: applies to an empty FakeNft', () => {
    const rs = compile(cluster());
    const f = new FakeNft();
    f.run(fullTransaction(rs));
    expect(f.dump()).toBe(dumpAfter(orderedFull(rs)));
  });

  // Same regression: it failed on the first full transaction already.
  it('a second full transaction replaces a populated table atomically', () => {
    const f = new FakeNft();
    f.run(fullTransaction(compile(cluster())));
    const next = compile(cluster({ policies: [basePolicies[0] as NetworkPolicy] }));
    f.run(fullTransaction(next));
    expect(f.dump()).toBe(dumpAfter(orderedFull(next)));
  });

  it('the reference ordering applies, and replaces a populated table atomically', () => {
    const f = new FakeNft();
    f.run(orderedFull(compile(cluster())));
    const next = compile(cluster({ policies: [basePolicies[0] as NetworkPolicy] }));
    f.run(orderedFull(next));
    const fresh = dumpAfter(orderedFull(next));
    expect(f.dump()).toBe(fresh);
    expect(fresh).not.toMatch(/_eg\b/); // x/deny's chains are gone
    expect(fresh).toMatch(/add element inet weir ingress4 \{ 10\.1\.0\.1 : goto prof_[0-9a-f]{12}_in \}/);
  });
});

describe('diffs', () => {
  it('between two equal states: no operation, and the engine does not touch the kernel', () => {
    const a = compile(cluster());
    const b = compile(cluster());
    const { tx, stats } = diffTransaction(a, b);
    expect(tx.size).toBe(0);
    expect(stats).toEqual({ setsAdded: 0, setsRemoved: 0, chainsAdded: 0, chainsRewritten: 0, chainsRemoved: 0, elementsAdded: 0, elementsRemoved: 0 });
    const f = new FakeNft();
    const e = new PolicyEngine(f, { nodeName: 'n1' });
    e.sync(cluster({ policies: [] }));
    const calls = f.calls;
    const report = e.sync(cluster({ policies: [] }));
    expect(report).toMatchObject({ full: false, operations: 0 });
    expect(f.calls).toBe(calls);
  });

  it('between two equal random states: empty, on both nodes', () => {
    fc.assert(
      fc.property(clusterArb, (m) => {
        for (const n of NODES) expect(diffTransaction(compile(buildState(m), n), compile(buildState(m), n)).tx.size).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('the order of pods, policies and namespaces in the snapshot changes nothing', () => {
    fc.assert(
      fc.property(clusterArb, fc.func(fc.integer()), (m, rank) => {
        const s = buildState(m);
        const shuffle = <T>(xs: readonly T[]): T[] =>
          xs
            .map((x, i) => ({ x, k: rank(i) }))
            .sort((a, b) => a.k - b.k)
            .map((e) => e.x);
        const t: ClusterState = { ...s, pods: shuffle(s.pods), policies: shuffle(s.policies), namespaces: shuffle(s.namespaces) };
        for (const n of NODES) expect(diffTransaction(compile(s, n), compile(t, n)).tx.size).toBe(0);
      }),
      { numRuns: 100 },
    );
  });

  it('a new peer pod is element additions only: no set or chain added or rewritten', () => {
    const before = compile(cluster());
    const extra = pod('y/cli2', { labels: { app: 'cli' }, ips: ['10.2.0.9', 'fd00:2::9'], ...n2 });
    const after = compile(cluster({ pods: [...basePods, extra] }));
    const { tx, stats } = diffTransaction(before, after);
    expect(stats).toEqual({ setsAdded: 0, setsRemoved: 0, chainsAdded: 0, chainsRewritten: 0, chainsRemoved: 0, elementsAdded: 2, elementsRemoved: 0 });
    expect(tx.operations.map((o) => `${o.verb} ${o.obj.kind}`)).toEqual(['add element', 'add element']);
    expect(tx.operations.map((o) => (o.obj.kind === 'element' ? `${o.obj.set} ${o.obj.key.join(' . ')}` : ''))).toEqual([
      expect.stringMatching(/^s[0-9a-f]{12}_pods4 10\.2\.0\.9$/),
      expect.stringMatching(/^s[0-9a-f]{12}_pods6 fd00:2::9$/),
    ]);
  });

  it('a new local pod with existing profiles is map (and named-port) elements only', () => {
    const before = compile(cluster());
    const extra = pod('x/web2', { labels: { app: 'web' }, ips: ['10.1.0.5'], ...n1, ports: [{ name: 'http', containerPort: 8081 }] });
    const { tx, stats } = diffTransaction(before, compile(cluster({ pods: [...basePods, extra] })));
    expect(stats).toMatchObject({ setsAdded: 0, setsRemoved: 0, chainsAdded: 0, chainsRewritten: 0, chainsRemoved: 0, elementsRemoved: 0 });
    expect(tx.operations.every((o) => o.verb === 'add' && o.obj.kind === 'element')).toBe(true);
    const targets = tx.operations.map((o) => (o.obj.kind === 'element' ? (o.obj.map ?? o.obj.set) : '')).sort();
    // egress and ingress dispatch, and x/web's named port resolved on the new subject (x/deny's peer is an ipBlock: no pod set)
    expect(targets).toEqual(['egress4', 'ingress4', expect.stringMatching(/^s[0-9a-f]{12}_named4$/)]);
  });

  it('a changed policy rewrites its own chain and nothing else', () => {
    const before = compile(cluster());
    const changed = policy('x/web', {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'cli' } } }], ports: [{ port: 'http' }] }],
    });
    const { stats } = diffTransaction(before, compile(cluster({ policies: [changed, basePolicies[1] as NetworkPolicy] })));
    expect(stats).toEqual({ setsAdded: 0, setsRemoved: 1, chainsAdded: 0, chainsRewritten: 1, chainsRemoved: 0, elementsAdded: 0, elementsRemoved: 0 });
  });
});

// ---- the engine over sequences of cluster states ----

const seqArb = fc.record({
  start: clusterArb,
  steps: fc.array(fc.array(changeArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 }),
});

describe('PolicyEngine over FakeNft: diffs reach the same table as a fresh full replacement', () => {
  // As the brief states it: the engine starts on the first state (a full
  // replacement), then follows the sequence with diffs (this failed while
  // fullTransaction put map elements before their chains).
  it('from the first state, with fullTransaction as the reference', () => {
    fc.assert(
      fc.property(seqArb, ({ start, steps }) => {
        for (const node of NODES) {
          const f = new FakeNft();
          const e = new PolicyEngine(f, { nodeName: node });
          const seq = statesOf(start, steps);
          for (const [i, s] of seq.entries()) expect(e.sync(s).full).toBe(i === 0);
          expect(f.dump()).toBe(dumpAfter(fullTransaction(compile(seq.at(-1) as ClusterState, node))));
        }
      }),
      { numRuns: 100 },
    );
  });

  // The same property with the engine started on an empty cluster (a full
  // replacement without map elements) and the
  // correctly ordered full replacement as the reference: this one checks
  // every diff. Each later sync must be a diff that applies (full: false;
  // the engine's fallback to a full replacement would hide a broken diff).
  it('from an empty cluster, checked after every step', () => {
    fc.assert(
      fc.property(seqArb, ({ start, steps }) => {
        for (const node of NODES) {
          const f = new FakeNft();
          const e = new PolicyEngine(f, { nodeName: node });
          expect(e.sync({ namespaces: [], pods: [], policies: [] }).full).toBe(true);
          for (const s of statesOf(start, steps)) {
            const report = e.sync(s);
            expect(report.full).toBe(false);
            expect(f.dump()).toBe(dumpAfter(orderedFull(compile(s, node))));
          }
        }
      }),
      { numRuns: 150 },
    );
  });
});
