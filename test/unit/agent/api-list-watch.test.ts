// The real ListWatch (client-node's Watch and jsonLister) against a local
// HTTP server playing the API server: it behaves as FakeListWatch models it
// (the fake's contract), and the reflector over it lists, watches and
// relists on a 410 as it does over the fake.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import { Watch } from '@kubernetes/client-node/dist/watch.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApiStatusError, apiListWatch, jsonLister } from '../../../src/agent/api-list.ts';
import { ClusterCache } from '../../../src/agent/cache.ts';
import { Reflector } from '../../../src/agent/reflector.ts';
import { CniCode, ResourceExpiredError } from '../../../src/errors.ts';

type Obj = { metadata?: { name?: string; resourceVersion?: string } };
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void;

/** A local API server: each request goes to the next handler the test queued, in order; `requests` records their URLs. */
class Api {
  readonly requests: URL[] = [];
  readonly #handlers: Handler[] = [];
  readonly server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://api');
    this.requests.push(url);
    const h = this.#handlers.shift();
    if (h) h(req, res, url);
    else res.writeHead(500).end('no handler queued');
  });

  answer(h: Handler): this {
    this.#handlers.push(h);
    return this;
  }
}

const json = (res: http.ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
};
const status410 = { kind: 'Status', apiVersion: 'v1', status: 'Failure', code: 410, reason: 'Expired', message: 'too old resource version: 10 (20)' };
const line = (type: string, object: unknown): string => `${JSON.stringify({ type, object })}\n`;

let api: Api;
let kc: KubeConfig;
const open: http.ServerResponse[] = [];

beforeEach(async () => {
  api = new Api();
  await new Promise<void>((r) => api.server.listen(0, '127.0.0.1', r));
  const { port } = api.server.address() as AddressInfo;
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
});
afterEach(async () => {
  for (const r of open.splice(0)) r.destroy();
  api.server.closeAllConnections();
  await new Promise((r) => api.server.close(r));
});

describe('apiListWatch over client-node (the contract FakeListWatch models)', () => {
  const PATH = '/api/v1/namespaces';

  it('a watch refused with HTTP 410 calls onDone with statusCode 410 before watch() resolves', async () => {
    api.answer((_q, res) => json(res, 410, status410));
    const lw = apiListWatch<Obj>(new Watch(kc), PATH, jsonLister(kc, PATH));
    const order: string[] = [];
    let doneErr: unknown;
    const handle = await lw.watch(
      { resourceVersion: '10', allowWatchBookmarks: true, timeoutSeconds: 5 },
      () => order.push('event'),
      (err) => {
        doneErr = err;
        order.push('done');
      },
    );
    order.push('resolved');
    expect(order).toEqual(['done', 'resolved']);
    expect(doneErr).toMatchObject({ statusCode: 410 });
    expect(typeof handle.abort).toBe('function');
    const url = api.requests[0] as URL;
    expect(url.pathname).toBe(PATH);
    expect(Object.fromEntries(url.searchParams)).toEqual({ watch: 'true', resourceVersion: '10', allowWatchBookmarks: 'true', timeoutSeconds: '5' });
  });

  it('events arrive as sent; an abort ends the stream with an AbortError; a server close with no error', async () => {
    api.answer((_q, res) => {
      open.push(res);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(line('ADDED', { metadata: { name: 'a', resourceVersion: '11' } }));
      res.write(line('BOOKMARK', { metadata: { resourceVersion: '12' } }));
      res.write(line('ERROR', status410));
    });
    const lw = apiListWatch<Obj>(new Watch(kc), PATH, jsonLister(kc, PATH));
    const events: string[] = [];
    let third!: () => void;
    const gotThree = new Promise<void>((r) => (third = r));
    let ended!: (e: unknown) => void;
    const done = new Promise<unknown>((r) => (ended = r));
    const handle = await lw.watch(
      { resourceVersion: '10', allowWatchBookmarks: true, timeoutSeconds: 5 },
      (type, obj) => {
        events.push(`${type} ${(obj as { code?: number }).code ?? obj.metadata?.resourceVersion}`);
        if (events.length === 3) third();
      },
      ended,
    );
    await gotThree;
    expect(events).toEqual(['ADDED 11', 'BOOKMARK 12', 'ERROR 410']);
    handle.abort();
    expect((await done) as Error).toMatchObject({ name: 'AbortError' });

    api.answer((_q, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(line('DELETED', { metadata: { name: 'a', resourceVersion: '13' } }));
    });
    const seen: string[] = [];
    const err = await new Promise<unknown>((resolve) => {
      void lw.watch({ resourceVersion: '12', allowWatchBookmarks: true, timeoutSeconds: 5 }, (type) => seen.push(type), resolve);
    });
    expect(seen).toEqual(['DELETED']);
    expect(err).toBeNull();
  });

  it('a list refused with 410 is an ApiStatusError with status 410; a page carries its continue token', async () => {
    api.answer((_q, res) => json(res, 200, { metadata: { resourceVersion: '7', continue: 'tok' }, items: [{ metadata: { name: 'a' } }] }));
    api.answer((_q, res) => json(res, 410, status410));
    const list = jsonLister<Obj>(kc, PATH);
    expect(await list({ limit: 1 })).toEqual({ items: [{ metadata: { name: 'a' } }], metadata: { resourceVersion: '7', _continue: 'tok' } });
    const err = await list({ limit: 1, _continue: 'tok' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiStatusError);
    expect(err).toMatchObject({ status: 410, code: 'WEIR_API_STATUS', cniCode: CniCode.TryAgainLater });
    expect(api.requests[1]?.searchParams.get('continue')).toBe('tok');
  });

  it('the reflector over the real client: list, watch, 410 in the stream, relist that drops a deleted object', async () => {
    const ns = (name: string, rv: string) => ({ metadata: { name, uid: `u-${name}`, resourceVersion: rv, labels: {} } });
    api
      .answer((_q, res) => json(res, 200, { metadata: { resourceVersion: '10' }, items: [ns('a', '5'), ns('b', '6')] }))
      .answer((_q, res) => {
        open.push(res);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(line('DELETED', ns('a', '11')));
        res.write(line('ERROR', status410));
      })
      .answer((_q, res) => json(res, 200, { metadata: { resourceVersion: '30' }, items: [ns('c', '25')] }))
      .answer((_q, res) => {
        open.push(res);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(line('ADDED', ns('d', '31')));
      });
    const cache = new ClusterCache();
    const changes: string[] = [];
    const expired: unknown[] = [];
    const errors: unknown[] = [];
    let added!: () => void;
    const gotD = new Promise<void>((r) => (added = r));
    const r = new Reflector<Obj>(
      'namespaces',
      apiListWatch<Obj>(new Watch(kc), PATH, jsonLister(kc, PATH)),
      {
        ...cache.mirror('namespaces', (how) => changes.push(how)),
        event: (type, obj, rv) => {
          cache.apply('namespaces', type, obj, rv);
          changes.push('event');
          if (obj.metadata?.name === 'd') added();
        },
        expired: (e) => expired.push(e),
        error: (e) => errors.push(e),
      },
      { minBackoffMs: 0, maxBackoffMs: 0, watchTimeoutSeconds: 5 },
    );
    const running = r.run();
    await gotD;
    r.stop();
    await running;
    expect(errors).toEqual([]);
    expect([...cache.namespaces.keys()].sort()).toEqual(['c', 'd']);
    expect(changes).toEqual(['list', 'event', 'list', 'event']);
    expect(expired).toHaveLength(1);
    expect(expired[0]).toBeInstanceOf(ResourceExpiredError);
    expect(api.requests.map((u) => `${u.searchParams.get('watch') ? 'watch' : 'list'} ${u.searchParams.get('resourceVersion') ?? ''}`)).toEqual([
      'list ',
      'watch 10',
      'list ',
      'watch 30',
    ]);
  });
});
