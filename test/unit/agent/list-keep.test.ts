// A list is cut down page by page (ReflectorHandlers.keep, supplied by the
// cache for Pods and Nodes): the agent never holds a whole list of the API's
// full objects, and what the cache then stores, its digest and the snapshot
// policy reads are exactly what storing the full objects gave.
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterCache, listedSlim } from '../../../src/agent/cache.ts';
import { FakeListWatch } from '../../../src/agent/fake-list-watch.ts';
import { Reflector } from '../../../src/agent/reflector.ts';
import { KINDS } from './kinds.ts';

type Obj = { metadata?: { resourceVersion?: string } };

/** A pod as a kubelet leaves it: much the agent does not read. */
const fullPod = (i: number) => ({
  metadata: {
    namespace: 'ns',
    name: `p${i}`,
    uid: `u${i}`,
    resourceVersion: String(10 + i),
    labels: { app: 'web' },
    annotations: { note: 'x'.repeat(200) },
    managedFields: [{ manager: 'kubelet', fieldsV1: { f: {} } }],
  },
  spec: {
    nodeName: 'n1',
    volumes: [{ name: 'token', projected: { sources: [] } }],
    containers: [{ name: 'c', image: 'i', env: [{ name: 'A', value: 'b' }], ports: [{ name: 'http', containerPort: 80, protocol: 'TCP' }] }],
    initContainers: [
      { name: 'side', image: 'i', restartPolicy: 'Always', ports: [{ name: 'm', containerPort: 9090, protocol: 'TCP' }] },
      { name: 'init', image: 'i' },
    ],
  },
  status: {
    phase: 'Running',
    podIP: `10.1.0.${i}`,
    podIPs: [{ ip: `10.1.0.${i}` }],
    hostIP: '192.168.0.2',
    hostIPs: [{ ip: '192.168.0.2' }],
    conditions: [{ type: 'Ready', status: 'True' }],
    containerStatuses: [{ name: 'c', ready: true }],
  },
});
const fullNode = (i: number) => ({
  metadata: { name: `n${i}`, uid: `nu${i}`, resourceVersion: String(100 + i), labels: { zone: 'a' }, managedFields: [{ manager: 'kubelet' }] },
  spec: { podCIDR: `10.1.${i}.0/24`, podCIDRs: [`10.1.${i}.0/24`], providerID: 'kind://x' },
  status: {
    addresses: [
      { type: 'InternalIP', address: `192.168.0.${i}` },
      { type: 'Hostname', address: `n${i}` },
    ],
    images: [{ names: ['a'], sizeBytes: 1 }],
    conditions: [{ type: 'Ready', status: 'True' }],
  },
});

const reflectors: Array<{ r: Reflector<Obj>; running: Promise<void> }> = [];
afterEach(async () => {
  for (const x of reflectors.splice(0)) {
    x.r.stop();
    await x.running;
  }
});

describe('listing: full objects are cut down page by page', () => {
  it('each page is kept as it arrives, before the next page is asked for', async () => {
    const api = new FakeListWatch<Obj>();
    const kept: string[] = [];
    const replaced: Obj[][] = [];
    const r = new Reflector<Obj>(
      'pods',
      api,
      {
        keep: (o) => {
          kept.push((o as { metadata: { name: string } }).metadata.name);
          return o.metadata === undefined ? {} : { metadata: o.metadata };
        },
        replace: (items) => replaced.push(items),
        event: () => {},
      },
      { pageSize: 2 },
    );
    reflectors.push({ r, running: r.run() });
    (await api.nextList()).reply([fullPod(1), fullPod(2)] as Obj[], '5', 'c1');
    const second = await api.nextList();
    expect(second.opts._continue).toBe('c1');
    expect(kept).toEqual(['p1', 'p2']);
    expect(replaced).toEqual([]);
    second.reply([fullPod(3)] as Obj[], '5');
    await api.nextWatch();
    expect(kept).toEqual(['p1', 'p2', 'p3']);
    // The whole list is what keep made of each item, in order.
    expect(replaced).toHaveLength(1);
    expect(replaced[0]).toEqual([1, 2, 3].map((i) => ({ metadata: fullPod(i).metadata })));
  });

  for (const [kind, make] of [
    ['pods', fullPod],
    ['nodes', fullNode],
  ] as const) {
    it(`${kind}: the cache holds, digests and snapshots a cut-down list exactly as the full one`, () => {
      const full: object[] = [1, 2, 3].map((i) => make(i));
      const a = new ClusterCache();
      const b = new ClusterCache();
      a.replace(kind, full, '7');
      const keep = b.mirror(kind, () => {}).keep;
      expect(keep).toBeDefined();
      b.replace(
        kind,
        full.map((o) => keep?.(o)),
        '7',
      );
      expect(b.snapshot()).toEqual(a.snapshot());
      expect(b.digestView(true)).toEqual(a.digestView(true));
      // Cut down for real: none of what policy does not read is left.
      const text = JSON.stringify(full.map((o) => listedSlim(kind, o)));
      for (const gone of ['managedFields', 'annotations', 'volumes', 'env', 'conditions', 'images', 'providerID', 'containerStatuses'])
        expect(text).not.toContain(gone);
    });
  }

  it('the other kinds are listed as the API sends them (few, and slimmed when stored)', () => {
    const cache = new ClusterCache({ hostFirewall: true });
    for (const f of KINDS) if (f.kind !== 'pods' && f.kind !== 'nodes') expect(cache.mirror(f.kind, () => {}).keep).toBeUndefined();
  });
});
