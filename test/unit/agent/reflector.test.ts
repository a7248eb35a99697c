// The reflector against a scripted API (FakeListWatch), feeding the agent's
// cache through the same handlers the agent wires (ClusterCache.mirror), for
// every kind the agent watches. Each step is driven by hand: the test answers
// the reflector's requests in order and observes what the cache holds, what
// the reconciler was told, and the next request the reflector makes.
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterCache } from '../../../src/agent/cache.ts';
import { FakeListWatch, type FakeWatch } from '../../../src/agent/fake-list-watch.ts';
import { Reflector } from '../../../src/agent/reflector.ts';
import { ResourceExpiredError, WatchError, WeirError } from '../../../src/errors.ts';
import { idsOf, KINDS, type KindFixture } from './kinds.ts';

type Obj = { metadata?: { resourceVersion?: string } };

interface Rig {
  cache: ClusterCache;
  api: FakeListWatch<Obj>;
  reflector: Reflector<Obj>;
  /** What the reconciler was told, in order: 'list' or 'event' per change. */
  changes: string[];
  errors: unknown[];
  expired: unknown[];
  running: Promise<void>;
}

const rigs: Rig[] = [];
afterEach(async () => {
  for (const r of rigs.splice(0)) {
    r.reflector.stop();
    await r.running;
  }
});

function rig(f: KindFixture, pageSize = 500): Rig {
  const cache = new ClusterCache({ hostFirewall: true });
  const api = new FakeListWatch<Obj>();
  const changes: string[] = [];
  const errors: unknown[] = [];
  const expired: unknown[] = [];
  // No backoff: a retry follows at once, so each step is a request the test takes.
  const reflector = new Reflector<Obj>(
    f.kind,
    api,
    { ...cache.mirror(f.kind, (how) => changes.push(how)), error: (e) => errors.push(e), expired: (e) => expired.push(e) },
    { pageSize, minBackoffMs: 0, maxBackoffMs: 0 },
  );
  const r: Rig = { cache, api, reflector, changes, errors, expired, running: reflector.run() };
  rigs.push(r);
  return r;
}

/** Answers the next list with `items` at `rv` and returns the watch the reflector opens next, checking it starts from `rv`. */
async function listed(r: Rig, items: object[], rv: string): Promise<FakeWatch<Obj>> {
  (await r.api.nextList()).reply(items as Obj[], rv);
  const w = await r.api.nextWatch();
  expect(w.opts.resourceVersion).toBe(rv);
  expect(w.opts.allowWatchBookmarks).toBe(true);
  return w;
}

describe.each(KINDS)('reflector: $kind', (f) => {
  const [a, b, c] = idsOf(f);
  const ids = (r: Rig): string[] => f.ids(r.cache.snapshot());

  it('lists, then applies ADDED, MODIFIED and DELETED from the watch, telling the reconciler each time', async () => {
    const r = rig(f);
    const w = await listed(r, [f.make(a, '5')], '10');
    expect(ids(r)).toEqual([a]);
    expect(r.cache.synced.has(f.kind)).toBe(true);
    expect(r.changes).toEqual(['list']);

    w.added(f.make(b, '11'));
    expect(ids(r)).toEqual([a, b].sort());
    expect(r.reflector.resourceVersion).toBe('11');
    w.modified(f.make(a, '12', 'changed'));
    expect(f.v(r.cache.snapshot(), a)).toBe('changed');
    w.deleted(f.make(a, '13', 'changed'));
    expect(ids(r)).toEqual([b]);
    w.deleted(f.make(b, '14'));
    expect(ids(r)).toEqual([]);
    expect(r.cache.versions[f.kind]).toBe('14');
    expect(r.reflector.resourceVersion).toBe('14');
    expect(r.changes).toEqual(['list', 'event', 'event', 'event', 'event']);
    expect(r.api.lists).toHaveLength(1);
    expect(r.errors).toEqual([]);
  });

  it('pages the list with limit and continue, and replaces the cache only once it is complete', async () => {
    const r = rig(f, 2);
    const first = await r.api.nextList();
    expect(first.opts).toEqual({ limit: 2 });
    first.reply([f.make(a, '3'), f.make(b, '4')], '10', 'token-1');
    const second = await r.api.nextList();
    expect(second.opts).toEqual({ limit: 2, _continue: 'token-1' });
    expect(r.cache.synced.has(f.kind)).toBe(false);
    expect(r.changes).toEqual([]);
    second.reply([f.make(c, '5')], '10');
    const w = await r.api.nextWatch();
    expect(w.opts.resourceVersion).toBe('10');
    expect(ids(r)).toEqual([a, b, c].sort());
    expect(r.changes).toEqual(['list']);
  });

  it('a watch that ends resumes from the last resourceVersion, without a relist', async () => {
    const r = rig(f);
    const w1 = await listed(r, [f.make(a, '5')], '10');
    w1.added(f.make(b, '11'));
    w1.end();
    const w2 = await r.api.nextWatch();
    expect(w2.opts.resourceVersion).toBe('11');
    // The client's inactivity timer is an ordinary end too.
    w2.modified(f.make(b, '12', 'changed'));
    w2.break(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
    const w3 = await r.api.nextWatch();
    expect(w3.opts.resourceVersion).toBe('12');
    w3.deleted(f.make(a, '13'));
    expect(ids(r)).toEqual([b]);
    expect(f.v(r.cache.snapshot(), b)).toBe('changed');
    expect(r.api.lists).toHaveLength(1);
    expect(r.errors).toEqual([]);
    expect(r.expired).toEqual([]);
    expect(r.changes).toEqual(['list', 'event', 'event', 'event']);
  });

  it('410 as an ERROR event: relists, and forgets what the new list lacks', async () => {
    const r = rig(f);
    const w = await listed(r, [f.make(a, '5'), f.make(b, '6')], '10');
    w.error(410);
    // A line already in flight after the ERROR must not reach the cache.
    w.added(f.make(c, '11'));
    await w.whenAborted();
    const relist = await r.api.nextList();
    expect(relist.opts).toEqual({ limit: 500 });
    expect(ids(r)).toEqual([a, b].sort());
    relist.reply([f.make(b, '6')], '20');
    const w2 = await r.api.nextWatch();
    expect(w2.opts.resourceVersion).toBe('20');
    expect(ids(r)).toEqual([b]);
    expect(r.cache.versions[f.kind]).toBe('20');
    expect(r.changes).toEqual(['list', 'list']);
    expect(r.expired).toHaveLength(1);
    expect(r.expired[0]).toBeInstanceOf(ResourceExpiredError);
    expect(r.expired[0]).toBeInstanceOf(WeirError);
    expect((r.expired[0] as ResourceExpiredError).code).toBe('WEIR_RESOURCE_EXPIRED');
    expect((r.expired[0] as Error).message).toMatch(/ERROR event 410 Expired/);
    expect(r.errors).toEqual([]);
  });

  it('410 as the HTTP status of the watch request: relists', async () => {
    const r = rig(f);
    const w1 = await listed(r, [f.make(a, '5'), f.make(b, '6')], '10');
    w1.end();
    const w2 = await r.api.nextWatch();
    expect(w2.opts.resourceVersion).toBe('10');
    w2.status(410);
    const relist = await r.api.nextList();
    relist.reply([f.make(a, '5'), f.make(c, '15')], '20');
    const w3 = await r.api.nextWatch();
    expect(w3.opts.resourceVersion).toBe('20');
    expect(ids(r)).toEqual([a, c].sort());
    expect(r.expired).toHaveLength(1);
    expect(r.expired[0]).toBeInstanceOf(ResourceExpiredError);
    expect((r.expired[0] as Error).cause).toMatchObject({ statusCode: 410 });
    expect(r.errors).toEqual([]);
  });

  it('410 on a page of the list (the continue token expired): lists again from the start', async () => {
    const r = rig(f, 1);
    (await r.api.nextList()).reply([f.make(a, '5')], '10', 'token-1');
    const second = await r.api.nextList();
    expect(second.opts._continue).toBe('token-1');
    second.status(410);
    const again = await r.api.nextList();
    expect(again.opts).toEqual({ limit: 1 });
    again.reply([f.make(b, '6')], '30');
    expect((await r.api.nextWatch()).opts.resourceVersion).toBe('30');
    expect(ids(r)).toEqual([b]);
    expect(r.expired[0]).toBeInstanceOf(ResourceExpiredError);
    expect(r.changes).toEqual(['list']);
  });

  it('BOOKMARK advances the resourceVersion and changes no object', async () => {
    const r = rig(f);
    const w = await listed(r, [f.make(a, '5')], '10');
    const generation = r.cache.generation;
    const before = r.cache.snapshot();
    w.bookmark('15');
    expect(r.reflector.resourceVersion).toBe('15');
    expect(r.cache.versions[f.kind]).toBe('15');
    expect(r.cache.generation).toBe(generation);
    expect(r.cache.snapshot()).toEqual(before);
    expect(r.changes).toEqual(['list']);
    w.end();
    expect((await r.api.nextWatch()).opts.resourceVersion).toBe('15');
    expect(r.api.lists).toHaveLength(1);
  });

  it('a relist after the watch was down drops what was deleted meanwhile, and tells the reconciler', async () => {
    const r = rig(f);
    const w1 = await listed(r, [f.make(a, '5'), f.make(b, '6'), f.make(c, '7')], '10');
    // The connection breaks; the API server is unreachable for a while.
    w1.break(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    const w2 = await r.api.nextWatch();
    expect(w2.opts.resourceVersion).toBe('10');
    w2.status(503);
    const w3 = await r.api.nextWatch();
    w3.reject(new Error('connect ECONNREFUSED'));
    // Back, with the old version compacted away.
    const w4 = await r.api.nextWatch();
    expect(w4.opts.resourceVersion).toBe('10');
    expect(ids(r)).toEqual([a, b, c].sort());
    w4.status(410);
    (await r.api.nextList()).reply([f.make(c, '7')], '40');
    expect((await r.api.nextWatch()).opts.resourceVersion).toBe('40');
    expect(ids(r)).toEqual([c]);
    expect(r.changes).toEqual(['list', 'list']);
    expect(r.errors.map((e) => (e as Error).message)).toEqual(['read ECONNRESET', 'Service Unavailable', 'connect ECONNREFUSED']);
  });

  it('a relist that finds none left empties the cache and tells the reconciler', async () => {
    const r = rig(f);
    const w = await listed(r, [f.make(a, '5')], '10');
    w.error(410);
    (await r.api.nextList()).reply([], '20');
    await r.api.nextWatch();
    expect(ids(r)).toEqual([]);
    expect(r.changes).toEqual(['list', 'list']);
  });

  it('another ERROR event is a typed failure, retried from the same version without a relist', async () => {
    const r = rig(f);
    const w1 = await listed(r, [f.make(a, '5')], '10');
    w1.added(f.make(b, '11'));
    w1.error(500, 'InternalError', 'etcd leader changed');
    await w1.whenAborted();
    const w2 = await r.api.nextWatch();
    expect(w2.opts.resourceVersion).toBe('11');
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toBeInstanceOf(WatchError);
    expect(r.errors[0]).toMatchObject({ code: 'WEIR_WATCH', status: 500 });
    expect((r.errors[0] as Error).message).toMatch(/etcd leader changed/);
    expect(r.api.lists).toHaveLength(1);
    expect(r.expired).toEqual([]);
  });

  it('stop() ends the open watch and run()', async () => {
    const r = rig(f);
    const w = await listed(r, [f.make(a, '5')], '10');
    w.accept();
    w.added(f.make(b, '11'));
    r.reflector.stop();
    await r.running;
    await w.whenAborted();
    expect(r.api.untaken).toEqual({ lists: 0, watches: 0 });
    expect(r.api.watches).toHaveLength(1);
  });

  it('stop() before the watch request returns: run() ends, and the request is aborted once it does', async () => {
    const r = rig(f);
    const w = await listed(r, [f.make(a, '5')], '10');
    r.reflector.stop();
    await r.running;
    expect(w.aborted).toBe(false);
    w.accept();
    await w.whenAborted();
    expect(r.api.watches).toHaveLength(1);
  });

  it('stop() during a list: run() ends without waiting for it', async () => {
    const r = rig(f);
    const l = await r.api.nextList();
    r.reflector.stop();
    await r.running;
    l.reply([f.make(a, '5')], '10');
    expect(ids(r)).toEqual([]);
    expect(r.changes).toEqual([]);
    expect(r.api.watches).toHaveLength(0);
  });
});
