import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Counter, Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ApiRequest, MAX_BODY_BYTES, metricsHandler, type Routes, type RunningServers, startServers } from '../../../src/agent/server.ts';
import { InvalidEnvironmentError, RangeExhaustedError } from '../../../src/errors.ts';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: () => unknown;
}

type Target = { socketPath: string } | { port: number };

let agent: http.Agent;

function request(
  target: Target,
  method: string,
  urlPath: string,
  body?: string | Buffer,
  opts: { headers?: http.OutgoingHttpHeaders; chunked?: boolean } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...opts.headers };
    if (body !== undefined && !opts.chunked) headers['content-length'] = Buffer.byteLength(body);
    const req = http.request(
      { ...('port' in target ? { host: '127.0.0.1', port: target.port } : { socketPath: target.socketPath }), method, path: urlPath, headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (body !== undefined && opts.chunked) {
      // several writes, no content-length: the server only learns the size while reading
      const buf = Buffer.from(body);
      for (let off = 0; off < buf.length; off += 64 * 1024) req.write(buf.subarray(off, off + 64 * 1024));
      req.end();
    } else req.end(body);
  });
}

let dir: string;
const running: RunningServers[] = [];
const listeners: net.Server[] = [];
let logs: { msg: string; fields?: object | undefined }[];
let seen: ApiRequest[];

const registry = new Registry();
new Counter({ name: 'weir_test_total', help: 'A test counter.', registers: [registry] }).inc(7);

const routes: Routes = {
  'GET /healthz': async () => ({ text: 'ok\n' }),
  'GET /readyz': async () => ({ status: 503, json: { ready: false } }),
  'GET /metrics': metricsHandler(registry),
  'GET /status': async (req) => {
    seen.push(req);
    return { json: { node: 'n1', verbose: req.query.get('verbose') } };
  },
  'GET /endpoints': async () => ({ json: [] }),
  'GET /policies': async () => ({ json: [] }),
  'POST /cni/add': async (req) => {
    seen.push(req);
    return { json: { echo: req.body } };
  },
  'POST /cni/del': async () => ({ status: 204 }),
  'POST /boom': async () => {
    throw new Error('kaboom');
  },
  'POST /exhausted': async () => {
    throw new RangeExhaustedError('no addresses left in 10.244.1.0/24');
  },
};

async function start(opts: Partial<Parameters<typeof startServers>[0]> = {}): Promise<RunningServers> {
  const s = await startServers({ routes, log: (msg, fields) => logs.push({ msg, fields }), ...opts });
  running.push(s);
  return s;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-agent-'));
  logs = [];
  seen = [];
  agent = new http.Agent({ keepAlive: true });
});

afterEach(async () => {
  agent.destroy();
  await Promise.all(running.splice(0).map((s) => s.close()));
  await Promise.all(listeners.splice(0).map((l) => new Promise((r) => l.close(r))));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('public TCP listener', () => {
  it('answers /healthz, /readyz and /metrics on an ephemeral port', async () => {
    const s = await start({ http: { host: '127.0.0.1', port: 0 } });
    expect(s.httpPort).toBeGreaterThan(0);
    const t = { port: s.httpPort as number };

    const h = await request(t, 'GET', '/healthz');
    expect(h.status).toBe(200);
    expect(h.text).toBe('ok\n');
    expect(h.headers['content-type']).toBe('text/plain; charset=utf-8');

    const r = await request(t, 'GET', '/readyz');
    expect(r.status).toBe(503);
    expect(r.json()).toEqual({ ready: false });
    expect(r.headers['content-type']).toBe('application/json');

    const m = await request(t, 'GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(m.text).toBe('# HELP weir_test_total A test counter.\n# TYPE weir_test_total counter\nweir_test_total 7\n');

    const head = await request(t, 'HEAD', '/healthz');
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('404s the local-only API and unknown paths', async () => {
    const s = await start({ http: { host: '127.0.0.1', port: 0 } });
    const t = { port: s.httpPort as number };
    for (const p of ['/status', '/endpoints', '/policies', '/nope', '/healthz/']) {
      const r = await request(t, 'GET', p);
      expect(r.status, p).toBe(404);
    }
    const add = await request(t, 'POST', '/cni/add', '{}');
    expect(add.status).toBe(404);
    expect(seen).toEqual([]);
  });

  it('405s a wrong method on a public path', async () => {
    const s = await start({ http: { host: '127.0.0.1', port: 0 } });
    const r = await request({ port: s.httpPort as number }, 'POST', '/healthz', '{}');
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('GET, HEAD');
  });
});

describe('unix socket listener', () => {
  it('serves every route, with query strings and JSON bodies', async () => {
    const socketPath = path.join(dir, 'run', 'weir', 'agent.sock');
    await start({ socketPath });
    const t = { socketPath };

    expect((await request(t, 'GET', '/healthz')).text).toBe('ok\n');
    expect((await request(t, 'GET', '/metrics')).text).toContain('weir_test_total 7\n');
    const st = await request(t, 'GET', '/status?verbose=1');
    expect(st.status).toBe(200);
    expect(st.json()).toEqual({ node: 'n1', verbose: '1' });
    expect(seen[0]?.listener).toBe('local');
    expect(seen[0]?.path).toBe('/status');
    expect((await request(t, 'GET', '/endpoints')).json()).toEqual([]);
    expect((await request(t, 'GET', '/policies')).json()).toEqual([]);

    const body = { containerId: 'abc', ifName: 'eth0', args: { K8S_POD_NAME: 'p "q"\n' } };
    const add = await request(t, 'POST', '/cni/add', JSON.stringify(body), { headers: { 'content-type': 'application/json' } });
    expect(add.status).toBe(200);
    expect(add.json()).toEqual({ echo: body });
    expect(seen[1]?.body).toEqual(body);
    expect(seen[1]?.method).toBe('POST');

    const del = await request(t, 'POST', '/cni/del', '{"containerId":"abc"}');
    expect(del.status).toBe(204);
    expect(del.text).toBe('');

    // no body at all: the handler sees undefined
    const empty = await request(t, 'POST', '/cni/add');
    expect(empty.json()).toEqual({});
    expect(seen[2]?.body).toBeUndefined();
  });

  it('creates the parent directory 0755 and the socket 0600, and removes the socket on close', async () => {
    const parent = path.join(dir, 'a', 'b');
    const socketPath = path.join(parent, 'agent.sock');
    const s = await start({ socketPath });
    expect(fs.statSync(parent).mode & 0o777).toBe(0o755);
    const st = fs.lstatSync(socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    await s.close();
    expect(fs.existsSync(socketPath)).toBe(false);
    await s.close(); // idempotent
  });

  it('answers 400 for malformed JSON and non-UTF-8 bodies', async () => {
    const socketPath = path.join(dir, 'agent.sock');
    await start({ socketPath });
    const bad = await request({ socketPath }, 'POST', '/cni/add', '{"containerId": ');
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual({ error: expect.stringMatching(/^malformed JSON body/) });
    const binary = await request({ socketPath }, 'POST', '/cni/add', Buffer.from([0x22, 0xff, 0x22]));
    expect(binary.status).toBe(400);
    expect(seen).toEqual([]);
  });

  it('answers 405 with Allow for a known path and a wrong method, 404 for an unknown path', async () => {
    const socketPath = path.join(dir, 'agent.sock');
    await start({ socketPath });
    const r = await request({ socketPath }, 'GET', '/cni/add');
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('POST');
    expect(r.json()).toEqual({ error: 'method GET not allowed on /cni/add' });
    const d = await request({ socketPath }, 'DELETE', '/status');
    expect(d.status).toBe(405);
    expect(d.headers.allow).toBe('GET, HEAD');
    expect((await request({ socketPath }, 'GET', '/missing')).status).toBe(404);
  });

  it('answers 413 beyond 1 MiB, whether declared or streamed, and accepts exactly 1 MiB', async () => {
    const socketPath = path.join(dir, 'agent.sock');
    await start({ socketPath });
    const big = JSON.stringify({ pad: 'x'.repeat(MAX_BODY_BYTES) });
    const declared = await request({ socketPath }, 'POST', '/cni/add', big);
    expect(declared.status).toBe(413);
    expect(declared.headers.connection).toBe('close');
    const streamed = await request({ socketPath }, 'POST', '/cni/add', big, { chunked: true });
    expect(streamed.status).toBe(413);
    expect(seen).toEqual([]);

    const exact = JSON.stringify({ pad: 'x'.repeat(MAX_BODY_BYTES - '{"pad":""}'.length) });
    expect(Buffer.byteLength(exact)).toBe(MAX_BODY_BYTES);
    const ok = await request({ socketPath }, 'POST', '/cni/add', exact);
    expect(ok.status).toBe(200);
  });

  it('turns a handler exception into 500 {"error"} and logs it', async () => {
    const socketPath = path.join(dir, 'agent.sock');
    await start({ socketPath });
    const r = await request({ socketPath }, 'POST', '/boom', '{}');
    expect(r.status).toBe(500);
    expect(r.json()).toEqual({ error: 'kaboom' });
    const logged = logs.find((l) => l.msg === 'request handler failed');
    expect(logged?.fields).toMatchObject({ route: 'POST /boom', error: 'kaboom' });

    const w = await request({ socketPath }, 'POST', '/exhausted');
    expect(w.status).toBe(500);
    expect(w.json()).toEqual({ error: 'no addresses left in 10.244.1.0/24', code: 'WEIR_RANGE_EXHAUSTED' });

    // the server is still fine afterwards
    expect((await request({ socketPath }, 'GET', '/healthz')).status).toBe(200);
  });

  it('removes a stale socket that nobody answers on', async () => {
    const socketPath = path.join(dir, 'agent.sock');
    // A socket file with no listener: bind elsewhere, hard-link, close (libuv unlinks the original).
    const tmp = path.join(dir, 'tmp.sock');
    const l = net.createServer();
    await new Promise<void>((r) => l.listen(tmp, r));
    fs.linkSync(tmp, socketPath);
    await new Promise((r) => l.close(r));
    expect(fs.lstatSync(socketPath).isSocket()).toBe(true);

    await start({ socketPath });
    expect(logs).toContainEqual({ msg: 'removing stale socket', fields: { path: socketPath } });
    expect((await request({ socketPath }, 'GET', '/healthz')).status).toBe(200);
    expect(fs.lstatSync(socketPath).mode & 0o777).toBe(0o600);
  });

  it('refuses to steal a socket that another process answers on', async () => {
    const socketPath = path.join(dir, 'agent.sock');
    const other = http.createServer((_req, res) => res.end('other agent'));
    listeners.push(other);
    await new Promise<void>((r) => other.listen(socketPath, r));

    const err = await startServers({ routes, socketPath }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidEnvironmentError);
    expect((err as Error).message).toMatch(/another process .* is listening on .*agent\.sock; refusing to take over/);
    // the other agent keeps its socket
    expect((await request({ socketPath }, 'GET', '/healthz')).text).toBe('other agent');
  });

  it('refuses to replace a path that is not a socket', async () => {
    const socketPath = path.join(dir, 'agent.sock');
    fs.writeFileSync(socketPath, 'precious');
    await expect(startServers({ routes, socketPath })).rejects.toThrow(/exists and is not a socket/);
    expect(fs.readFileSync(socketPath, 'utf8')).toBe('precious');
  });
});

describe('both listeners', () => {
  it('run together and close promptly even with idle keep-alive connections', async () => {
    const socketPath = path.join(dir, 'agent.sock');
    const s = await start({ socketPath, http: { host: '127.0.0.1', port: 0 }, closeTimeoutMs: 30_000 });
    const tcp = { port: s.httpPort as number };
    // keep-alive connections stay open in the agent's pool after these
    expect((await request(tcp, 'GET', '/healthz')).status).toBe(200);
    expect((await request({ socketPath }, 'GET', '/status')).status).toBe(200);
    expect((await request(tcp, 'GET', '/status')).status).toBe(404);
    const t0 = Date.now();
    await s.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(fs.existsSync(socketPath)).toBe(false);
    await expect(request(tcp, 'GET', '/healthz')).rejects.toThrow();
  });

  it('lets an in-flight request finish on close', async () => {
    const socketPath = path.join(dir, 'agent.sock');
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let entered: () => void = () => {};
    const inHandler = new Promise<void>((r) => {
      entered = r;
    });
    const s = await start({
      socketPath,
      routes: {
        ...routes,
        'GET /slow': async () => {
          entered();
          await gate;
          return { json: { done: true } };
        },
      },
    });
    const pending = request({ socketPath }, 'GET', '/slow');
    // The request is in flight once its handler runs.
    await inHandler;
    const t0 = Date.now();
    const closed = s.close();
    release();
    const r = await pending;
    expect(r.json()).toEqual({ done: true });
    expect(r.headers.connection).toBe('close'); // the client must not reuse it
    await closed;
    expect(Date.now() - t0).toBeLessThan(2000); // not the 5 s close timeout
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('cleans up the socket when the TCP listener cannot bind', async () => {
    const blocker = net.createServer();
    listeners.push(blocker);
    await new Promise<void>((r) => blocker.listen({ host: '127.0.0.1', port: 0 }, r));
    const port = (blocker.address() as net.AddressInfo).port;
    const socketPath = path.join(dir, 'agent.sock');
    await expect(startServers({ routes, socketPath, http: { host: '127.0.0.1', port } })).rejects.toThrow(/EADDRINUSE/);
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it('rejects bad route keys and an empty listener set', async () => {
    await expect(startServers({ routes: { 'GET healthz': async () => ({}) } as unknown as Routes, socketPath: path.join(dir, 's') })).rejects.toThrow(
      /bad route/,
    );
    await expect(startServers({ routes })).rejects.toThrow(/neither http nor socketPath/);
  });
});
