// The engine's element path without a kernel: element-only diffs (a pod
// coming, going, relabelled) go to the ElementWriter as one batch, here a
// recording fake over FakeNft, and everything else through the Nft backend.
// After every sync the table equals a fresh full replacement of the same
// state; a refused batch falls back to a full replacement (reported), or
// fails a strict engine.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeNft } from '../../../src/nft/fake.ts';
import { RecordingElementWriter } from '../../../src/nft/fake-element-writer.ts';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { IncrementalSyncError, PolicyEngine } from '../../../src/policy/engine.ts';
import type { ClusterState } from '../../../src/policy/index.ts';
import { fullTransaction } from '../../../src/policy/ruleset.ts';
import { ns, pod, policy } from '../policy/helpers.ts';
import { changeArb, clusterArb, NODES, statesOf } from './cluster.ts';

const freshDump = (s: ClusterState, node: string): string => {
  const f = new FakeNft();
  f.run(fullTransaction(compilePolicies(s, { nodeName: node }).ruleset));
  return f.dump();
};

const web = pod('x/web', { labels: { app: 'web' }, ips: ['10.1.0.10'], node: 'n1' });
const cli = (name: string, ip: string) => pod(`x/${name}`, { labels: { app: 'cli' }, ips: [ip], node: 'n1' });
const state = (pods = [web, cli('cli', '10.1.0.11')]): ClusterState => ({
  namespaces: [ns('x')],
  pods,
  policies: [
    policy('x/web-from-cli', { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }] }] }),
  ],
});

function engine(opts: { strict?: boolean } = {}) {
  const f = new FakeNft();
  const w = new RecordingElementWriter(f);
  return { f, w, e: new PolicyEngine(f, { nodeName: 'n1' }, w, opts) };
}

describe('the element path, with a recording writer', () => {
  it('a new peer pod is one batch of element additions, and the table equals a fresh one', () => {
    const { f, w, e } = engine();
    expect(e.sync(state()).full).toBe(true);
    expect(w.batches).toHaveLength(0);
    const next = state([web, cli('cli', '10.1.0.11'), cli('cli2', '10.1.0.12')]);
    const r = e.sync(next);
    expect(r).toMatchObject({ full: false, elementsOnly: true });
    expect(w.batches).toHaveLength(1);
    const batch = w.batches[0]!;
    expect(batch.every((c) => c.verb === 'add')).toBe(true);
    expect(batch.some((c) => c.key.includes('10.1.0.12'))).toBe(true);
    expect(f.dump()).toBe(freshDump(next, 'n1'));
  });

  it('a pod that goes is one batch of deletions', () => {
    const { f, w, e } = engine();
    e.sync(state([web, cli('cli', '10.1.0.11'), cli('cli2', '10.1.0.12')]));
    const r = e.sync(state());
    expect(r.elementsOnly).toBe(true);
    expect(w.batches.at(-1)!.every((c) => c.verb === 'delete')).toBe(true);
    expect(f.dump()).toBe(freshDump(state(), 'n1'));
  });

  it('a changed policy (new rules) goes through the backend, not the writer', () => {
    const { f, w, e } = engine();
    e.sync(state());
    const changed: ClusterState = {
      ...state(),
      policies: [
        policy('x/web-from-cli', {
          podSelector: { matchLabels: { app: 'web' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { app: 'cli' } } }], ports: [{ port: 80 }] }],
        }),
      ],
    };
    const r = e.sync(changed);
    expect(r).toMatchObject({ full: false, elementsOnly: false });
    expect(w.batches).toHaveLength(0);
    expect(f.dump()).toBe(freshDump(changed, 'n1'));
  });

  it('a refused batch falls back to a full replacement, reported with why; a strict engine refuses instead', () => {
    const { f, w, e } = engine();
    e.sync(state());
    w.failNext();
    const next = state([web, cli('cli', '10.1.0.11'), cli('cli2', '10.1.0.12')]);
    const r = e.sync(next);
    expect(r.full).toBe(true);
    expect(r.fallback?.message).toContain('element batch refused');
    expect(f.dump()).toBe(freshDump(next, 'n1'));

    const s = engine({ strict: true });
    s.e.sync(state());
    s.w.failNext();
    expect(() => s.e.sync(next)).toThrow(IncrementalSyncError);
  });

  it('through random changes: every element-only sync is one batch, and the table always equals a fresh one', () => {
    const seqArb = fc.record({ start: clusterArb, steps: fc.array(fc.array(changeArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 }) });
    fc.assert(
      fc.property(seqArb, ({ start, steps }) => {
        for (const node of NODES) {
          const f = new FakeNft();
          const w = new RecordingElementWriter(f);
          const e = new PolicyEngine(f, { nodeName: node }, w, { strict: true });
          for (const s of statesOf(start, steps)) {
            const before = w.batches.length;
            const r = e.sync(s);
            expect(w.batches.length - before).toBe(r.elementsOnly ? 1 : 0);
            expect(f.dump()).toBe(freshDump(s, node));
          }
        }
      }),
      { numRuns: 100 },
    );
  });
});
