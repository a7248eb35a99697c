// Cache = API: the cache's per-kind digest follows every list and event
// incrementally and equals the digest of the same objects listed afresh, in
// any order; cacheMatchesApi() names what differs (missing, extra, stale).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ClusterCache } from '../../../src/agent/cache.ts';
import { API_KINDS, cacheMatchesApi, describeDifferences, digestOf, KindDigest } from '../../../src/agent/cache-digest.ts';
import { idsOf, KINDS } from './kinds.ts';

describe.each(KINDS)('digest of $kind', (f) => {
  const [a, b, c] = idsOf(f);

  it('follows ADDED, MODIFIED, DELETED and relists, and equals the digest of a fresh list', () => {
    const k = new ClusterCache({ hostFirewall: true });
    k.replace(f.kind, [f.make(a, '1'), f.make(b, '2')], '2');
    expect(k.digestView()[f.kind]).toMatchObject({ ...digestOf(f.kind, [f.make(b, '2'), f.make(a, '1')]), resourceVersion: '2' });
    k.apply(f.kind, 'MODIFIED', f.make(a, '3', 'x'), '3');
    k.apply(f.kind, 'ADDED', f.make(c, '4'), '4');
    // DELETED carries the last version, not the stored one: the stored entry is what leaves the sum.
    k.apply(f.kind, 'DELETED', f.make(b, '5'), '5');
    const api = [f.make(c, '4'), f.make(a, '3', 'x')];
    expect(k.digests[f.kind].json()).toEqual(digestOf(f.kind, api));
    expect(cacheMatchesApi(k.digestView(true), { [f.kind]: api })).toMatchObject({ ok: true, differences: [] });
    k.replace(f.kind, [], '6');
    expect(k.digests[f.kind].json()).toEqual({ count: 0, hash: '0'.repeat(16) });
  });

  it('names missing, extra and stale objects', () => {
    const k = new ClusterCache({ hostFirewall: true });
    k.replace(f.kind, [f.make(a, '1'), f.make(b, '2')], '2');
    const api = [f.make(a, '7'), f.make(c, '8')];
    const r = cacheMatchesApi(k.digestView(true), { [f.kind]: api });
    expect(r.ok).toBe(false);
    expect(r.differences).toEqual([
      expect.objectContaining({ kind: f.kind, missing: [c], extra: [b], stale: [{ key: a, cache: '1', api: '7', uidChanged: false }] }),
    ]);
    // From /status alone (no entries) the kind is flagged, not named.
    const fromStatus = cacheMatchesApi(k.digestView(), { [f.kind]: api });
    expect(fromStatus.differences[0]).toMatchObject({ kind: f.kind, digestOnly: true, cache: { count: 2 }, api: { count: 2 } });
    expect(describeDifferences(r)[0]).toContain(`missing ${c}`);
  });
});

describe('KindDigest', () => {
  it('is independent of order and incremental: any sequence of puts and deletes equals the digest of what is left', () => {
    const op = fc.record({ key: fc.constantFrom('a', 'b', 'c', 'd'), rv: fc.integer({ min: 1, max: 5 }), del: fc.boolean() });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const d = new KindDigest();
        const left = new Map<string, number>();
        for (const o of ops) {
          if (o.del) {
            d.delete(o.key);
            left.delete(o.key);
          } else {
            d.put(o.key, `uid-${o.key}`, String(o.rv));
            left.set(o.key, o.rv);
          }
        }
        const fresh = new KindDigest();
        for (const [key, rv] of [...left].reverse()) fresh.put(key, `uid-${key}`, String(rv));
        expect(d.json()).toEqual(fresh.json());
        expect(d.metricValue).toBe(fresh.metricValue);
      }),
      { numRuns: 200 },
    );
  });

  it('an object deleted and made again under the same name is another entry (uid)', () => {
    const d = new KindDigest();
    d.put('x/a', 'uid-1', '5');
    const before = d.hash;
    d.put('x/a', 'uid-2', '5');
    expect(d.hash).not.toBe(before);
  });
});

describe('cacheMatchesApi with a kubectl List', () => {
  it('sorts the items by kind; a kind with no item counts as empty', () => {
    const k = new ClusterCache();
    for (const f of KINDS.filter((x) => x.kind !== 'hostpolicies')) {
      const [a] = idsOf(f);
      k.replace(f.kind, [f.make(a, '1')], '1');
    }
    const items = KINDS.filter((x) => x.kind !== 'hostpolicies' && x.kind !== 'nodes').map((f) => ({
      kind: API_KINDS[f.kind].kind,
      ...f.make(idsOf(f)[0], '1'),
    }));
    const r = cacheMatchesApi(k.digestView(true), { apiVersion: 'v1', kind: 'List', items } as never);
    expect(r.kinds).toEqual(['pods', 'namespaces', 'policies', 'nodes', 'clusterpolicies']);
    expect(r.differences.map((d) => [d.kind, d.extra])).toEqual([['nodes', [idsOf(KINDS.find((x) => x.kind === 'nodes')!)[0]]]]);
  });
});
