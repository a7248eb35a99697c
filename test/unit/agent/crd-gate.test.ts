// The ClusterNetworkPolicy reflector behind the watch of its CRD
// (crd-watch.ts, crd-gate.ts), over scripted API servers (FakeListWatch) for
// the CRD and the kind, with the lister and cache the agent wires: the kind
// is listed again the moment the CRD is Established, whatever its own
// back-off; a deleted CRD empties the kind at once and stops its reflector;
// a CRD the agent may not read leaves the kind to its own retries, and says
// so once.

import { afterEach, describe, expect, it } from 'vitest';
import { ClusterCache } from '../../../src/agent/cache.ts';
import { CrdGate } from '../../../src/agent/crd-gate.ts';
import { type Crd, crdReflector, isEstablished } from '../../../src/agent/crd-watch.ts';
import { FakeListWatch } from '../../../src/agent/fake-list-watch.ts';
import { type ApiAvailability, CLUSTER_POLICY_KIND, NotServedYetError, optionalLister } from '../../../src/agent/optional-api.ts';
import { Reflector } from '../../../src/agent/reflector.ts';
import { cnp } from '../policy/cnp-fixtures.ts';

type Obj = { metadata?: { name?: string; resourceVersion?: string } };

const NAME = 'clusternetworkpolicies.policy.networking.k8s.io';
/** Longer than any test: a kind reflector in back-off lists again only if something wakes it. */
const LONG_BACKOFF_MS = 600_000;

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

const crd = (rv: string, established: boolean, name = NAME): Crd => ({
  metadata: { name, resourceVersion: rv },
  status: { conditions: [{ type: 'NamesAccepted', status: 'True' }, ...(established ? [{ type: 'Established', status: 'True' }] : [])] },
});
const policy = (name: string, rv: string) => ({
  ...cnp(name, 'Admin', 10, { namespaces: {} }, { ingress: [{ name: 'no-web', action: 'Deny', from: [{ namespaces: {} }] }] }),
  metadata: { name, uid: `uid-${name}`, resourceVersion: rv },
});
const until = async (what: string, ok: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 2));
  if (!ok()) throw new Error(`not reached: ${what}`);
};

function rig() {
  const cache = new ClusterCache();
  const api = new FakeListWatch<Obj>({ path: '/apis/policy.networking.k8s.io/v1beta1/clusternetworkpolicies' });
  const crdApi = new FakeListWatch<Crd>({ path: '/apis/apiextensions.k8s.io/v1/customresourcedefinitions' });
  const state: ApiAvailability = { available: undefined, reason: undefined };
  const lister = optionalLister(api.list, state, CLUSTER_POLICY_KIND);
  const handlers = cache.mirror<Obj>('clusterpolicies', () => {});
  let made = 0;
  const readable: boolean[] = [];
  const gate = new CrdGate<Obj>({
    crd: NAME,
    crdApi,
    make: () => {
      made++;
      return new Reflector<Obj>('clusterpolicies', { list: lister, watch: (o, e, d) => api.watch(o, e, d) }, handlers, {
        minBackoffMs: LONG_BACKOFF_MS,
        maxBackoffMs: LONG_BACKOFF_MS,
      });
    },
    available: () => state.available,
    absent: () => {
      lister.absent();
      handlers.replace([], '');
    },
    readable: (ok) => readable.push(ok),
    options: { minBackoffMs: 0, maxBackoffMs: 0 },
  });
  const running = gate.run();
  stops.push(async () => {
    gate.stop();
    await running;
  });
  return { cache, api, crdApi, state, gate, readable, made: () => made };
}

describe('isEstablished', () => {
  it('is the Established condition being True, and nothing else', () => {
    expect(isEstablished(crd('1', true))).toBe(true);
    expect(isEstablished(crd('1', false))).toBe(false);
    expect(isEstablished({ status: { conditions: [{ type: 'Established', status: 'False' }] } })).toBe(false);
    expect(isEstablished({ metadata: { name: NAME } })).toBe(false);
    expect(isEstablished(undefined)).toBe(false);
  });
});

describe('crdReflector', () => {
  it('reports changes of state, not events: first list, Established, deleted; a 403 once until the CRD is read again', async () => {
    const api = new FakeListWatch<Crd>();
    const seen: string[] = [];
    const r = crdReflector(
      NAME,
      api,
      { served: (e) => seen.push(`served ${e}`), readable: (ok) => seen.push(`readable ${ok}`) },
      { minBackoffMs: 0, maxBackoffMs: 0 },
    );
    const running = r.run();
    stops.push(async () => {
      r.stop();
      await running;
    });
    for (let i = 0; i < 3; i++) (await api.nextList()).status(403, 'Forbidden');
    (await api.nextList()).reply([], '1');
    const w = await api.nextWatch();
    w.added(crd('2', false));
    w.modified(crd('3', true));
    w.modified(crd('4', true));
    // Another CRD's event (the field selector keeps them out; a server that ignores it does not change the state).
    w.deleted(crd('5', true, 'other.example.com'));
    w.deleted(crd('6', true));
    expect(seen).toEqual(['readable false', 'readable true', 'served false', 'served true', 'served false']);
  });
});

describe('CrdGate', () => {
  it('the CRD Established while the kind waits out its back-off: the kind is listed at once and mirrored', async () => {
    const { cache, api, crdApi, state, gate, made } = rig();
    (await api.nextList()).status(404, 'NotFound');
    (await api.nextWatch()).status(404, 'Not Found');
    expect(state.available).toBe(false);
    // The CRD watch starts: not there.
    (await crdApi.nextList()).reply([], '1');
    const w = await crdApi.nextWatch();
    expect(gate.running).toBe(false);
    w.added(crd('2', false));
    expect(made()).toBe(1);
    w.modified(crd('3', true));
    expect(gate.running).toBe(true);
    expect(made()).toBe(2);
    // The new reflector lists now, not after LONG_BACKOFF_MS.
    (await api.nextList()).reply([policy('deny-web', '10')], '10');
    const kindWatch = await api.nextWatch();
    kindWatch.accept();
    expect(state).toEqual({ available: true, reason: undefined });
    expect([...cache.clusterpolicies.keys()]).toEqual(['deny-web']);

    // Deleted: the policies go at once, with no grace, and the kind's reflector stops.
    w.deleted(crd('4', true));
    expect(cache.clusterpolicies.size).toBe(0);
    expect(state.available).toBe(false);
    expect(state.reason).toMatch(/CRD \(clusternetworkpolicies\.policy\.networking\.k8s\.io\) is not installed/);
    expect(gate.running).toBe(false);
    await kindWatch.whenAborted();
    // Installed again: mirrored again.
    w.added(crd('5', true));
    (await api.nextList()).reply([policy('deny-db', '12')], '12');
    await api.nextWatch();
    expect([...cache.clusterpolicies.keys()]).toEqual(['deny-db']);
    expect(made()).toBe(3);
  });

  it('a kind already served when the CRD watch first lists it is not listed again', async () => {
    const { api, crdApi, state, made } = rig();
    (await api.nextList()).reply([policy('deny-web', '10')], '10');
    (await api.nextWatch()).accept();
    (await crdApi.nextList()).reply([crd('1', true)], '1');
    await crdApi.nextWatch();
    expect(state.available).toBe(true);
    expect(made()).toBe(1);
    expect(api.untaken).toEqual({ lists: 0, watches: 0 });
  });

  it('a CRD the agent may not read: the kind keeps its own retries, restarted if the CRD watch had stopped them', async () => {
    const { api, crdApi, gate, readable, made } = rig();
    (await api.nextList()).status(404, 'NotFound');
    (await crdApi.nextList()).reply([], '1');
    const w = await crdApi.nextWatch();
    expect(gate.running).toBe(false);
    // The CRD watch is refused (a ClusterRole rolled back, say): the kind's reflector runs again.
    w.status(403, 'Forbidden');
    await until('the refusal reported', () => readable.length > 0);
    expect(readable).toEqual([false]);
    expect(gate.running).toBe(true);
    expect(made()).toBe(2);
    (await api.nextList()).status(404, 'NotFound');
    for (let i = 0; i < 3; i++) (await crdApi.nextWatch()).status(403, 'Forbidden');
    expect(readable).toEqual([false]);
    expect(made()).toBe(2);
  });
});

describe('optionalLister.absent', () => {
  it('a 404 after the CRD was deleted lists empty at once; without it, the API that served the kind gets its grace', async () => {
    const api = new FakeListWatch<Obj>();
    const state: ApiAvailability = { available: undefined, reason: undefined };
    const lister = optionalLister(api.list, state, CLUSTER_POLICY_KIND);
    const list = async () => {
      const p = lister({ limit: 10 });
      (await api.nextList()).status(404, 'NotFound');
      return p;
    };
    const first = lister({ limit: 10 });
    (await api.nextList()).reply([], '1');
    await first;
    await expect(list()).rejects.toBeInstanceOf(NotServedYetError);
    lister.absent();
    expect(state.available).toBe(false);
    await expect(list()).resolves.toEqual({ items: [], metadata: { resourceVersion: '' } });
  });
});
