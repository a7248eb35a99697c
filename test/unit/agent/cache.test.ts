// The cache's handling of lists and watch events, kind by kind: an object is
// found, replaced and forgotten under one key whatever event carries it.
import { describe, expect, it } from 'vitest';
import { ClusterCache, objectKey } from '../../../src/agent/cache.ts';
import { idsOf, KINDS } from './kinds.ts';

describe.each(KINDS)('cache: $kind', (f) => {
  const [a, b, c] = idsOf(f);
  const cache = (): ClusterCache => new ClusterCache({ hostFirewall: true });

  it('ADDED, MODIFIED and DELETED change the snapshot (and /state) accordingly', () => {
    const k = cache();
    k.replace(f.kind, [], '1');
    k.apply(f.kind, 'ADDED', f.make(a, '2'), '2');
    k.apply(f.kind, 'ADDED', f.make(b, '3'), '3');
    expect(f.ids(k.snapshot())).toEqual([a, b].sort());
    k.apply(f.kind, 'MODIFIED', f.make(a, '4', 'changed'), '4');
    expect(f.v(k.snapshot(), a)).toBe('changed');
    expect(f.v(k.snapshot(), b)).toBe('a');
    expect(f.ids(k.snapshot())).toEqual([a, b].sort());
    // A DELETED event carries the object's last state, which may differ from what was stored.
    k.apply(f.kind, 'DELETED', f.make(a, '5', 'final'), '5');
    expect(f.ids(k.snapshot())).toEqual([b]);
    expect(k.versions[f.kind]).toBe('5');
    k.apply(f.kind, 'DELETED', f.make(b, '6'), '6');
    expect(f.ids(k.snapshot())).toEqual([]);
    expect(k[f.kind].size).toBe(0);
  });

  it('a relist replaces everything: objects missing from it are forgotten', () => {
    const k = cache();
    k.replace(f.kind, [f.make(a, '1'), f.make(b, '2')], '2');
    const before = k.generation;
    k.replace(f.kind, [f.make(b, '2'), f.make(c, '7')], '7');
    expect(f.ids(k.snapshot())).toEqual([b, c].sort());
    expect(k.versions[f.kind]).toBe('7');
    expect(k.generation).toBeGreaterThan(before);
  });

  it('stores and deletes under the same key, whatever the event', () => {
    const k = cache();
    k.apply(f.kind, 'ADDED', f.make(a, '1'), '1');
    expect([...k[f.kind].keys()]).toEqual([objectKey(f.kind, f.make(a, '1'))]);
    expect(objectKey(f.kind, f.make(a, '1'))).toBe(a);
  });
});

describe('cache: keys', () => {
  it('namespaced kinds key by namespace/name, cluster-scoped ones by name', () => {
    expect(objectKey('pods', { metadata: { namespace: 'n', name: 'p' } })).toBe('n/p');
    expect(objectKey('policies', { metadata: { namespace: 'n', name: 'p' } })).toBe('n/p');
    for (const kind of ['namespaces', 'nodes', 'hostpolicies'] as const) expect(objectKey(kind, { metadata: { name: 'x' } })).toBe('x');
  });

  it('a deleted pod takes the addresses its CNI ADD reported with it', () => {
    const k = new ClusterCache();
    const pod = { metadata: { namespace: 'n', name: 'p', uid: 'u' }, spec: { nodeName: 'n1', containers: [] }, status: {} };
    k.apply('pods', 'ADDED', pod, '1');
    k.reportCni({ namespace: 'n', name: 'p', uid: 'u', containerID: 'c1', ips: ['10.1.0.9'] });
    expect(k.snapshot().pods[0]?.status?.podIPs).toEqual([{ ip: '10.1.0.9' }]);
    k.apply('pods', 'DELETED', pod, '2');
    expect(k.cni.size).toBe(0);
    expect(k.snapshot().pods).toEqual([]);
  });
});
