// The API as agent-load.ts talks to it: HTTPS straight to the kubeconfig's
// apiserver over a keep-alive pool (credentials from the kubeconfig via
// @kubernetes/client-node), and the agent's local socket over one kept-alive
// connection.
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import type { ApiEndpoint } from './watch-traffic.ts';

export interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: API and agent replies read field by field.
  json: any;
  /** performance.now() when the request was sent and when the whole reply was in. */
  sent: number;
  done: number;
}

/** A request that must succeed; retried (`retries` times) on 429, 5xx and connection errors. */
export type Api = (method: string, p: string, body?: unknown, type?: string, retries?: number) => Promise<Reply>;

/** The API of the kubeconfig, with `maxSockets` connections at most. */
export async function connectApi(kubeconfig: string, maxSockets: number): Promise<{ api: Api; endpoint: ApiEndpoint; destroy: () => void }> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const server = new URL(kc.getCurrentCluster()?.server ?? '');
  const tls: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(tls);
  const pool = new https.Agent({ keepAlive: true, maxSockets, ca: tls.ca, cert: tls.cert, key: tls.key });
  const request = (method: string, p: string, body?: unknown, type = 'application/json'): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const sent = performance.now();
      const req = https.request(
        {
          agent: pool,
          host: server.hostname,
          port: server.port,
          path: p,
          method,
          timeout: 60_000,
          headers: { accept: 'application/json', ...(data ? { 'content-type': type, 'content-length': Buffer.byteLength(data) } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const done = performance.now();
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = JSON.parse(text);
            } catch {
              json = text;
            }
            resolve({ status: res.statusCode ?? 0, json, sent, done });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${p}: no answer in 60 s`)));
      req.on('error', reject);
      req.end(data);
    });
  const api: Api = async (method, p, body, type, retries = 5) => {
    for (let attempt = 0; ; attempt++) {
      let r: Reply | undefined;
      let err: unknown;
      try {
        r = await request(method, p, body, type);
      } catch (e) {
        err = e;
      }
      if (r && r.status >= 200 && r.status < 300) return r;
      const retriable = !r || r.status === 429 || r.status >= 500;
      if (!retriable || attempt >= retries) {
        throw new Error(
          `API ${method} ${p}: ${r ? `HTTP ${r.status} ${typeof r.json === 'object' ? (r.json?.message ?? JSON.stringify(r.json)) : r.json}` : String(err)}`.slice(
            0,
            600,
          ),
        );
      }
      await sleep(100 * 2 ** attempt);
    }
  };
  return { api, endpoint: { server, tls: { ca: tls.ca, cert: tls.cert, key: tls.key } }, destroy: () => pool.destroy() };
}

/** GETs on the agent's socket; `timeoutMs` is how long the agent may take to answer (a sync blocks it). */
export function agentSocket(socketPath: string | undefined, timeoutMs: number): { get: (p: string) => Promise<string>; destroy: () => void } {
  const agentPool = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const getOnce = (p: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = http.request({ agent: agentPool, socketPath, path: p, method: 'GET', timeout: timeoutMs }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`agent socket GET ${p}: HTTP ${res.statusCode}`))));
      });
      req.on('timeout', () => req.destroy(new Error(`agent socket GET ${p}: no answer in ${timeoutMs / 1000} s`)));
      req.on('error', (e) => reject(new Error(`agent socket GET ${p}: ${e.message}`)));
      req.end();
    });
  /** GETs are idempotent: one retry when a kept-alive connection was closed under us (the agent's server times idle ones out). */
  const get = async (p: string): Promise<string> => {
    try {
      return await getOnce(p);
    } catch (e) {
      if (!/ECONNRESET|EPIPE|socket hang up/.test((e as Error).message)) throw e;
      return getOnce(p);
    }
  };
  return { get, destroy: () => agentPool.destroy() };
}
