// The agent's HTTP front: one route table, two listeners.
//
//   * the public TCP listener (kubelet probes, Prometheus) serves only
//     /healthz, /readyz and /metrics; every other path is 404 there, so the
//     status API and the CNI endpoints never leave the node;
//   * the unix socket (root-only, 0600) serves every route: the CNI shim,
//     `weir status`, debugging.
//
// Bodies are JSON, at most 1 MiB (413 beyond), 400 when malformed; a known
// path with the wrong method is 405 with an Allow header; a handler that
// throws becomes 500 `{"error": message}` (plus `code` for a WeirError) and
// is logged. HEAD is answered by the GET handler without a body.
//
// The socket is never stolen: an existing path is removed only when it is a
// socket and a connect test is refused (a stale file left by a crash); when
// something answers, startServers fails instead.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { Registry } from 'prom-client';
import { InternalError, InvalidEnvironmentError, IoError, isWeirError } from '../errors.ts';

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
/** `"<METHOD> <path>"`, e.g. `"GET /healthz"`, `"POST /cni/add"`. */
export type RouteKey = `${Method} /${string}`;

export interface ApiRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  query: URLSearchParams;
  /** The parsed JSON body; `undefined` when the request had none. */
  body: unknown;
  headers: http.IncomingHttpHeaders;
  /** Which listener the request came in on. */
  listener: 'public' | 'local';
}

export interface ApiResponse {
  /** Default 200. */
  status?: number;
  /** Sent as JSON (wins over `text`). */
  json?: unknown;
  /** Sent as is; default content type `text/plain; charset=utf-8`. */
  text?: string;
  contentType?: string;
  headers?: Readonly<Record<string, string>>;
}

export type Handler = (req: ApiRequest) => Promise<ApiResponse>;
export type Routes = Readonly<Partial<Record<RouteKey, Handler>>>;
export type Logger = (msg: string, fields?: object) => void;

export interface ServerOptions {
  /** The public listener (health and metrics only). */
  http?: { host: string; port: number };
  /** The local listener (every route). */
  socketPath?: string;
  routes: Routes;
  log?: Logger;
  /** How long close() lets in-flight requests finish before cutting connections; default 5000 ms. */
  closeTimeoutMs?: number;
}

export interface RunningServers {
  /** The bound TCP port (useful with port 0). */
  httpPort?: number;
  /** Stops both listeners, closes keep-alive connections, removes the socket; idempotent. */
  close(): Promise<void>;
}

/** The only paths the public TCP listener serves. */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);
export const MAX_BODY_BYTES = 1 << 20;
/** How long the stale-socket test waits for a connect before calling the socket live. */
const PROBE_TIMEOUT_MS = 1000;

const METHODS: ReadonlySet<string> = new Set<Method>(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']);

/** A `/metrics` handler for a registry. */
export function metricsHandler(registry: Registry): Handler {
  return async () => ({ text: await registry.metrics(), contentType: registry.contentType });
}

type Table = ReadonlyMap<string, ReadonlyMap<string, Handler>>;

function compileRoutes(routes: Routes): Table {
  const table = new Map<string, Map<string, Handler>>();
  for (const [key, handler] of Object.entries(routes)) {
    if (handler === undefined) continue;
    const m = /^([A-Z]+) (\/\S*)$/.exec(key);
    if (!m || !METHODS.has(m[1] as string)) throw new InternalError(`bad route ${JSON.stringify(key)}: want "<METHOD> /path"`);
    const [, method, p] = m as unknown as [string, string, string];
    let byMethod = table.get(p);
    if (!byMethod) {
      byMethod = new Map();
      table.set(p, byMethod);
    }
    byMethod.set(method, handler);
  }
  return table;
}

function allowed(byMethod: ReadonlyMap<string, Handler>): string {
  const ms = new Set(byMethod.keys());
  if (ms.has('GET')) ms.add('HEAD');
  return [...ms].sort().join(', ');
}

const errMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

function send(res: http.ServerResponse, status: number, body: string, contentType: string, headers: Readonly<Record<string, string>> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    ...headers,
    ...(lifecycles.get(res)?.closing ? { connection: 'close' } : {}),
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

function sendJson(res: http.ServerResponse, status: number, value: unknown, headers?: Readonly<Record<string, string>>): void {
  send(res, status, `${JSON.stringify(value)}\n`, 'application/json', headers);
}

type BodyResult = { kind: 'ok'; bytes: Buffer } | { kind: 'too-large' };

/** Reads up to MAX_BODY_BYTES; past that, keeps draining but discards. */
function readBody(req: http.IncomingMessage): Promise<BodyResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (r: BodyResult | Error): void => {
      if (settled) return;
      settled = true;
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    req.on('data', (c: Buffer) => {
      if (settled) return;
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        chunks.length = 0;
        settle({ kind: 'too-large' });
      } else chunks.push(c);
    });
    req.on('end', () => settle({ kind: 'ok', bytes: Buffer.concat(chunks) }));
    req.on('error', (e) => settle(e));
    req.on('close', () => settle(new Error('request aborted')));
  });
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Set by close(): responses still in flight then carry `Connection: close`, so no connection outlives the server. */
interface Lifecycle {
  closing: boolean;
}
const lifecycles = new WeakMap<http.ServerResponse, Lifecycle>();

function makeListener(table: Table, scope: 'public' | 'local', log: Logger, life: Lifecycle): http.RequestListener {
  return (req, res) => {
    lifecycles.set(res, life);
    void serve(table, scope, log, req, res).catch((e: unknown) => {
      // Only a broken connection gets here (the handler's own errors are caught below).
      log('request failed', { error: errMessage(e), method: req.method, url: req.url });
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  };
}

async function serve(table: Table, scope: 'public' | 'local', log: Logger, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://localhost');
  } catch {
    sendJson(res, 400, { error: 'bad request target' });
    return;
  }
  const p = url.pathname;
  const byMethod = table.get(p);
  if (!byMethod || (scope === 'public' && !PUBLIC_PATHS.has(p))) {
    sendJson(res, 404, { error: `not found: ${p}` });
    return;
  }
  const method = req.method ?? 'GET';
  const handler = byMethod.get(method) ?? (method === 'HEAD' ? byMethod.get('GET') : undefined);
  if (!handler) {
    sendJson(res, 405, { error: `method ${method} not allowed on ${p}` }, { allow: allowed(byMethod) });
    return;
  }

  const tooLarge = (): void => sendJson(res, 413, { error: `request body exceeds ${MAX_BODY_BYTES} bytes` }, { connection: 'close' });
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    tooLarge();
    return;
  }
  const read = await readBody(req);
  if (read.kind === 'too-large') {
    tooLarge();
    return;
  }
  let body: unknown;
  if (read.bytes.length > 0) {
    try {
      body = JSON.parse(utf8.decode(read.bytes));
    } catch (e) {
      sendJson(res, 400, { error: `malformed JSON body: ${errMessage(e)}` });
      return;
    }
  }

  const route = `${method} ${p}`;
  try {
    const out = await handler({ method, path: p, query: url.searchParams, body, headers: req.headers, listener: scope });
    const status = out.status ?? 200;
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new InternalError(`handler returned bad status ${status}`);
    if (out.json !== undefined) {
      send(res, status, `${JSON.stringify(out.json)}\n`, out.contentType ?? 'application/json', out.headers);
    } else {
      send(res, status, out.text ?? '', out.contentType ?? 'text/plain; charset=utf-8', out.headers);
    }
  } catch (e) {
    const fields: Record<string, unknown> = { route, error: errMessage(e) };
    if (isWeirError(e)) fields['code'] = e.code;
    if (e instanceof Error && e.stack) fields['stack'] = e.stack;
    log('request handler failed', fields);
    sendJson(res, 500, isWeirError(e) ? { error: e.message, code: e.code } : { error: errMessage(e) });
  }
}

/** An answer written on the raw socket, for requests that never reach serve(). */
function endRaw(socket: net.Socket, status: number, reason: string, error: string): void {
  const body = `${JSON.stringify({ error })}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * Requests that never reach serve() get a status and a JSON `{"error": ...}`
 * like every other error: one Node's HTTP parser refuses (bad method, target
 * or header, a body cut short), which Node would answer with a bare 400; a
 * CONNECT, which would get no answer at all; and an Expect other than
 * 100-continue, which Node would answer with a bare 417.
 */
function guardRaw(server: http.Server): void {
  server.on('clientError', (e: Error & { code?: string }, socket: net.Socket) => {
    if (e.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    if (e.code === 'HPE_HEADER_OVERFLOW') endRaw(socket, 431, 'Request Header Fields Too Large', 'request headers too large');
    else if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') endRaw(socket, 408, 'Request Timeout', 'request timeout');
    else endRaw(socket, 400, 'Bad Request', `bad request: ${e.code ?? e.message}`);
  });
  server.on('connect', (_req: http.IncomingMessage, socket: net.Socket) => endRaw(socket, 405, 'Method Not Allowed', 'method CONNECT not allowed'));
  server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) =>
    sendJson(res, 417, { error: `expectation not supported: ${String(req.headers.expect)}` }, { connection: 'close' }),
  );
}

/**
 * Neither listener looks at Host (one is a unix socket, the other serves
 * probes), and Node's own refusal of an HTTP/1.1 request without it is a
 * bare 400 with no body.
 */
const SERVER_OPTIONS: http.ServerOptions = { requireHostHeader: false };

type SocketState = 'absent' | 'stale' | 'live';

/** Connects to `p`: answered → live, refused → stale (nobody listens), ENOENT → absent. */
function probeSocket(p: string): Promise<SocketState> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(p);
    const done = (r: SocketState | Error): void => {
      clearTimeout(timer);
      sock.destroy();
      if (r instanceof Error) reject(r);
      else resolve(r);
    };
    // A connect that hangs means a full backlog: somebody owns the socket.
    const timer = setTimeout(() => done('live'), PROBE_TIMEOUT_MS);
    sock.once('connect', () => done('live'));
    sock.once('error', (e) => {
      const code = errCode(e);
      if (code === 'ECONNREFUSED') done('stale');
      else if (code === 'ENOENT') done('absent');
      else if (code === 'EAGAIN') done('live');
      else done(new IoError(`cannot tell whether ${p} is in use: ${errMessage(e)}`, { cause: e }));
    });
  });
}

async function prepareSocketPath(p: string, log: Logger): Promise<void> {
  const dir = path.dirname(p);
  try {
    const created = await fs.promises.mkdir(dir, { recursive: true, mode: 0o755 });
    if (created !== undefined) await fs.promises.chmod(dir, 0o755); // mkdir's mode is subject to the umask
  } catch (e) {
    throw new IoError(`cannot create ${dir}: ${errMessage(e)}`, { cause: e });
  }
  let st: fs.Stats;
  try {
    st = await fs.promises.lstat(p);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return;
    throw new IoError(`cannot stat ${p}: ${errMessage(e)}`, { cause: e });
  }
  if (!st.isSocket()) throw new InvalidEnvironmentError(`${p} exists and is not a socket; refusing to replace it`);
  const state = await probeSocket(p);
  if (state === 'live') {
    throw new InvalidEnvironmentError(`another process (a running weir agent?) is listening on ${p}; refusing to take over its socket`);
  }
  if (state === 'stale') {
    log('removing stale socket', { path: p });
    try {
      await fs.promises.unlink(p);
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw new IoError(`cannot remove stale socket ${p}: ${errMessage(e)}`, { cause: e });
    }
  }
}

function listenOn(server: http.Server, bind: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once('error', onError);
    server.once('listening', () => {
      server.off('error', onError);
      server.on('error', (e) => void e); // after bind, errors are per connection
      resolve();
    });
    bind();
  });
}

/** Binds the socket with umask 0177 (so it is never reachable by others, even briefly), then chmods 0600. */
async function listenUnix(server: http.Server, p: string): Promise<{ dev: number; ino: number }> {
  await listenOn(server, () => {
    let old: number | undefined;
    try {
      old = process.umask(0o177);
    } catch {
      // worker threads cannot change the umask; the chmod below still applies
    }
    try {
      server.listen(p); // binds synchronously
    } finally {
      if (old !== undefined) process.umask(old);
    }
  });
  await fs.promises.chmod(p, 0o600);
  const st = await fs.promises.lstat(p);
  return { dev: st.dev, ino: st.ino };
}

function closeServer(server: http.Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      server.closeAllConnections();
      resolve();
      return;
    }
    const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Starts the listeners asked for: the socket first (it may refuse to start
 * when another agent owns it), then TCP. If either fails, whatever started is
 * closed again and the error is thrown.
 */
export async function startServers(opts: ServerOptions): Promise<RunningServers> {
  const log: Logger = opts.log ?? (() => {});
  const table = compileRoutes(opts.routes);
  const closeTimeoutMs = opts.closeTimeoutMs ?? 5000;
  if (!opts.http && opts.socketPath === undefined) throw new InternalError('startServers: neither http nor socketPath given');

  const servers: http.Server[] = [];
  const life: Lifecycle = { closing: false };
  let socketId: { dev: number; ino: number } | undefined;
  let httpPort: number | undefined;

  const removeOwnSocket = async (): Promise<void> => {
    const p = opts.socketPath;
    if (p === undefined || socketId === undefined) return;
    try {
      const st = await fs.promises.lstat(p);
      // libuv unlinks on close already; only remove what is still ours.
      if (st.dev === socketId.dev && st.ino === socketId.ino) await fs.promises.unlink(p);
    } catch (e) {
      if (errCode(e) !== 'ENOENT') log('cannot remove socket', { path: p, error: errMessage(e) });
    }
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    life.closing = true;
    closing ??= (async () => {
      await Promise.all(servers.map((s) => closeServer(s, closeTimeoutMs)));
      await removeOwnSocket();
    })();
    return closing;
  };

  try {
    if (opts.socketPath !== undefined) {
      const p = opts.socketPath;
      await prepareSocketPath(p, log);
      const local = http.createServer(SERVER_OPTIONS, makeListener(table, 'local', log, life));
      guardRaw(local);
      servers.push(local);
      socketId = await listenUnix(local, p);
      log('listening', { socket: p });
    }
    if (opts.http) {
      const { host, port } = opts.http;
      const pub = http.createServer(SERVER_OPTIONS, makeListener(table, 'public', log, life));
      guardRaw(pub);
      servers.push(pub);
      await listenOn(pub, () => pub.listen({ host, port }));
      const addr = pub.address();
      httpPort = typeof addr === 'object' && addr !== null ? addr.port : port;
      log('listening', { host, port: httpPort });
    }
  } catch (e) {
    await close();
    throw e;
  }
  return httpPort === undefined ? { close } : { httpPort, close };
}
