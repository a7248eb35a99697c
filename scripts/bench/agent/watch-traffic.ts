// What one agent receives from the API server while the benchmark's changes
// run, measured on a client of its own that watches exactly what the agent
// watches (src/agent/run.ts: every Pod, Namespace, Node and NetworkPolicy of
// the cluster, and ClusterNetworkPolicies, with no field or label selector,
// JSON, bookmarks on): bytes of the response bodies and events per kind. The
// agent cannot filter (it needs every pod's address and labels for the peer
// sets), so this is also what each of N agents receives: the basis of the
// fan-out estimate in docs/scale.md.
import https from 'node:https';

/** The agent's list-watch paths (src/agent/run.ts; the ClusterNetworkPolicy path is CNP_PATH). */
export const AGENT_WATCHES: Readonly<Record<string, string>> = {
  pods: '/api/v1/pods',
  namespaces: '/api/v1/namespaces',
  nodes: '/api/v1/nodes',
  policies: '/apis/networking.k8s.io/v1/networkpolicies',
  clusterpolicies: '/apis/policy.networking.k8s.io/v1beta1/clusternetworkpolicies',
};

export interface KindTraffic {
  bytes: number;
  /** ADDED, MODIFIED, DELETED (BOOKMARK counted apart). */
  events: number;
  bookmarks: number;
}
export type Traffic = Record<string, KindTraffic>;

export interface WatchTraffic {
  /** A copy of the counters now. */
  snapshot(): Traffic;
  stop(): void;
}

export interface ApiEndpoint {
  server: URL;
  tls: Pick<https.RequestOptions, 'ca' | 'cert' | 'key'>;
}

// biome-ignore lint/suspicious/noExplicitAny: API replies read field by field.
function get(api: ApiEndpoint, agent: https.Agent, p: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const req = https.request({ agent, host: api.server.hostname, port: api.server.port, path: p, headers: { accept: 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(text)) : reject(new Error(`GET ${p}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Starts one watch per kind from the current resourceVersion (a list of one
 * item gives it); resolves once every stream is open. A kind the API does not
 * serve (the ClusterNetworkPolicy CRD not installed) is left out.
 */
export async function watchTraffic(api: ApiEndpoint): Promise<WatchTraffic> {
  const agent = new https.Agent({ keepAlive: true, ...api.tls });
  const counts: Traffic = {};
  const requests: ReturnType<typeof https.request>[] = [];
  await Promise.all(
    Object.entries(AGENT_WATCHES).map(async ([kind, p]) => {
      let rv: string;
      try {
        rv = (await get(api, agent, `${p}?limit=1`)).metadata.resourceVersion;
      } catch (e) {
        if (kind === 'clusterpolicies' && /HTTP 404/.test((e as Error).message)) return;
        throw e;
      }
      const c: KindTraffic = { bytes: 0, events: 0, bookmarks: 0 };
      counts[kind] = c;
      await new Promise<void>((resolve, reject) => {
        let open = false;
        const req = https.request(
          {
            agent,
            host: api.server.hostname,
            port: api.server.port,
            path: `${p}?watch=1&allowWatchBookmarks=true&timeoutSeconds=3600&resourceVersion=${rv}`,
            headers: { accept: 'application/json' },
          },
          (res) => {
            if (res.statusCode !== 200) return reject(new Error(`watch ${p}: HTTP ${res.statusCode}`));
            open = true;
            resolve();
            let rest = '';
            res.on('data', (chunk: Buffer) => {
              c.bytes += chunk.length;
              // One JSON event per line: its type is near the start.
              rest += chunk.toString('utf8');
              const lines = rest.split('\n');
              rest = lines.pop() ?? '';
              for (const l of lines) {
                if (l.startsWith('{"type":"BOOKMARK"')) c.bookmarks++;
                else if (l.length > 0) c.events++;
              }
            });
            res.on('error', () => {});
          },
        );
        // After stop() (destroy) an error is expected; before the stream opened it is a failure.
        req.on('error', (e) => (open ? undefined : reject(e)));
        req.end();
        requests.push(req);
      });
    }),
  );
  return {
    snapshot: () => structuredClone(counts),
    stop: () => {
      for (const r of requests) r.destroy();
      agent.destroy();
    },
  };
}

/** b − a, kind by kind. */
export function trafficDelta(a: Traffic, b: Traffic): Traffic {
  const out: Traffic = {};
  for (const [k, v] of Object.entries(b))
    out[k] = { bytes: v.bytes - (a[k]?.bytes ?? 0), events: v.events - (a[k]?.events ?? 0), bookmarks: v.bookmarks - (a[k]?.bookmarks ?? 0) };
  return out;
}

export const trafficTotal = (t: Traffic): KindTraffic =>
  Object.values(t).reduce((s, v) => ({ bytes: s.bytes + v.bytes, events: s.events + v.events, bookmarks: s.bookmarks + v.bookmarks }), {
    bytes: 0,
    events: 0,
    bookmarks: 0,
  });
