// The API side of the agent benchmark (scripts/bench-agent): runs inside the
// control plane's network namespace (the apiserver listens on 127.0.0.1
// there), started by scripts/bench/agent.ts as
//
//   ip netns exec NS node scripts/bench/agent-load.ts MODE --kubeconfig F ...
//
// Modes, each deterministic from (--pods, --nodes, --policies,
// --cluster-policies, --seed), the synthetic cluster of the policy benchmark
// (scripts/bench/policy/cluster.ts) and its ClusterNetworkPolicies
// (policy/cluster-policies.ts):
//   base     namespaces (with a `default` ServiceAccount each: there is no
//            controller manager), the Nodes (spec.podCIDRs and an InternalIP
//            in status), the NetworkPolicies and the ClusterNetworkPolicies;
//   load     the pods (created with spec.nodeName, then status patched with
//            their IPs, as a kubelet would), and a paged list of them all;
//   verify   the agent's view of every NetworkPolicy (its /policies) against
//            the API's, spec by spec;
//   changes  --changes writes alternating between a NetworkPolicy and a Pod,
//            each followed by polling the agent's socket until it has applied
//            the write's resourceVersion; per-change timings out, and what
//            a client watching what the agent watches received meanwhile
//            (agent/watch-traffic.ts).
// Requests go straight over HTTPS with a keep-alive pool (credentials from
// the kubeconfig via @kubernetes/client-node), --concurrency in flight.
// Progress on stderr; one JSON result line on stdout.
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { type ClusterNetworkPolicy, CNP_PATH } from '../../src/policy/cnp-types.ts';
import { compileOptionalSelector, selectorMatches } from '../../src/policy/selector.ts';
import type { NetworkPolicy, NetworkPolicySpec, Pod } from '../../src/policy/types.ts';
import { type Traffic, trafficDelta, watchTraffic } from './agent/watch-traffic.ts';
import { unlabelledSamples } from './lib/exposition.ts';
import { logger } from './lib/host.ts';
import { APPS, BENCH_NODE, BENCH_NODE_INDEX, makeCluster, makePod, NODE_COUNT, nodeIP, nodeName, podCIDR, podPrefix } from './policy/cluster.ts';
import { makeClusterPolicies } from './policy/cluster-policies.ts';

const log = logger('bench-agent');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    kubeconfig: { type: 'string' },
    socket: { type: 'string' },
    pods: { type: 'string', default: '10000' },
    policies: { type: 'string', default: '1000' },
    nodes: { type: 'string', default: String(NODE_COUNT) },
    'cluster-policies': { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '32' },
    changes: { type: 'string', default: '200' },
    'poll-ms': { type: 'string', default: '5' },
    'gap-ms': { type: 'string', default: '50' },
    'apply-timeout-s': { type: 'string', default: '10' },
  },
});
const MODE = positionals[0];
const PODS = Number(opt.pods);
const POLICIES = Number(opt.policies);
const NODES = Number(opt.nodes);
const CNPS = Number(opt['cluster-policies']);
const SEED = Number(opt.seed);
const CONCURRENCY = Number(opt.concurrency);
/** How long a change may take to be applied, and the agent's socket to answer (a sync blocks it). */
const APPLY_TIMEOUT_MS = 1000 * Number(opt['apply-timeout-s']);
if (!opt.kubeconfig || !['base', 'load', 'verify', 'changes'].includes(MODE ?? '')) {
  log('usage: agent-load.ts base|load|verify|changes --kubeconfig F [--socket S] [--pods N] [--policies N] [--seed N] ...');
  process.exit(2);
}

// ---- the API, over a keep-alive pool --------------------------------------------
const kc = new KubeConfig();
kc.loadFromFile(opt.kubeconfig);
const server = new URL(kc.getCurrentCluster()?.server ?? '');
const tls: https.RequestOptions = {};
await kc.applyToHTTPSOptions(tls);
const pool = new https.Agent({ keepAlive: true, maxSockets: CONCURRENCY + 4, ca: tls.ca, cert: tls.cert, key: tls.key });

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: API and agent replies read field by field.
  json: any;
  /** performance.now() when the request was sent and when the whole reply was in. */
  sent: number;
  done: number;
}

function request(method: string, p: string, body?: unknown, type = 'application/json'): Promise<Reply> {
  return new Promise((resolve, reject) => {
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
}

/** A request that must succeed; retried (a few times) on 429, 5xx and connection errors while loading. */
async function api(method: string, p: string, body?: unknown, type?: string, retries = 5): Promise<Reply> {
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
}

/** Runs fn over items with at most `n` in flight; fails on the first error. */
async function inParallel<T>(items: readonly T[], n: number, fn: (x: T, i: number) => Promise<void>, progress?: (done: number) => void): Promise<void> {
  let next = 0;
  let done = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i] as T, i);
      } catch (e) {
        failed ??= e;
      }
      done++;
      progress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

// ---- the cluster as API objects ------------------------------------------------------
const cluster = makeCluster({ pods: PODS, policies: POLICIES, nodes: NODES, seed: SEED });
const clusterPolicies = makeClusterPolicies(CNPS, cluster.namespaces, SEED);
const PAUSE = 'registry.k8s.io/pause:3.10';

function podObject(p: Pod): unknown {
  const m = p.metadata ?? {};
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: m.namespace, name: m.name, labels: m.labels },
    spec: {
      nodeName: p.spec?.nodeName,
      containers: [{ name: 'app', image: PAUSE, ports: p.spec?.containers?.[0]?.ports ?? [] }],
    },
  };
}

/** The status a kubelet would report for a running pod (so objects weigh what real ones do). */
function podStatus(p: Pod): unknown {
  const ip = p.status?.podIP as string;
  const host = nodeIP(Number((p.spec?.nodeName ?? '').slice(5)));
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const cond = (type: string) => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: now });
  return {
    status: {
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      hostIP: host,
      hostIPs: [{ ip: host }],
      startTime: now,
      qosClass: 'BestEffort',
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(cond),
      containerStatuses: [
        {
          name: 'app',
          image: PAUSE,
          imageID: 'registry.k8s.io/pause@sha256:ee6521f290b2168b6e0935a181d4cff9be1ac3f505666ef0e3c98fae8199917a',
          containerID: `containerd://${Buffer.from(`${p.metadata?.namespace}/${p.metadata?.name}`).toString('hex').padEnd(64, '0').slice(0, 64)}`,
          ready: true,
          started: true,
          restartCount: 0,
          state: { running: { startedAt: now } },
        },
      ],
    },
  };
}

const policyObject = (np: NetworkPolicy): unknown => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { namespace: np.metadata?.namespace, name: np.metadata?.name },
  spec: np.spec,
});

const rate = (n: number, ms: number): string => `${n} in ${(ms / 1000).toFixed(1)} s (${Math.round((n * 1000) / ms)}/s)`;
const out = (x: unknown): void => void process.stdout.write(`${JSON.stringify(x)}\n`);

// ---- base: namespaces and nodes ------------------------------------------------------------
async function base(): Promise<void> {
  const t0 = performance.now();
  await inParallel(cluster.state.namespaces, CONCURRENCY, async (ns) => {
    await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: ns.metadata });
    await api('POST', `/api/v1/namespaces/${ns.metadata?.name}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
  });
  const t1 = performance.now();
  await inParallel(
    Array.from({ length: NODES }, (_, k) => k),
    CONCURRENCY,
    async (k) => {
      const name = nodeName(k);
      const cidr = podCIDR(k);
      await api('POST', '/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' } },
        spec: { podCIDR: cidr, podCIDRs: [cidr] },
      });
      await api(
        'PATCH',
        `/api/v1/nodes/${name}/status`,
        {
          status: {
            addresses: [
              { type: 'InternalIP', address: nodeIP(k) },
              { type: 'Hostname', address: name },
            ],
          },
        },
        'application/merge-patch+json',
      );
    },
  );
  const t2 = performance.now();
  log(
    `base: ${cluster.state.namespaces.length} namespaces (+ServiceAccount) in ${((t1 - t0) / 1000).toFixed(1)} s, ${NODES} nodes (+status) in ${((t2 - t1) / 1000).toFixed(1)} s`,
  );
  await inParallel(
    cluster.state.policies,
    CONCURRENCY,
    async (np) => void (await api('POST', `/apis/networking.k8s.io/v1/namespaces/${np.metadata?.namespace}/networkpolicies`, policyObject(np))),
  );
  const t3 = performance.now();
  log(`base: policies ${rate(cluster.state.policies.length, t3 - t2)}`);
  await inParallel(clusterPolicies, CONCURRENCY, async (cnp) => void (await api('POST', CNP_PATH, { ...cnp, metadata: { name: cnp.metadata?.name } })));
  const t4 = performance.now();
  if (CNPS) log(`base: cluster policies ${rate(CNPS, t4 - t3)}`);
  out({
    namespaces: cluster.state.namespaces.length,
    nodes: NODES,
    policies: cluster.state.policies.length,
    clusterPolicies: CNPS,
    namespacesMs: t1 - t0,
    nodesMs: t2 - t1,
    policiesMs: t3 - t2,
    clusterPoliciesMs: t4 - t3,
  });
}

// ---- load: pods ---------------------------------------------------------------
async function load(): Promise<void> {
  const pods = cluster.state.pods;
  const t0 = performance.now();
  let lastLog = t0;
  await inParallel(
    pods,
    CONCURRENCY,
    async (p) => {
      const ns = p.metadata?.namespace;
      await api('POST', `/api/v1/namespaces/${ns}/pods`, podObject(p));
      await api('PATCH', `/api/v1/namespaces/${ns}/pods/${p.metadata?.name}/status`, podStatus(p), 'application/merge-patch+json');
    },
    (done) => {
      const now = performance.now();
      if (now - lastLog > 10_000 || done === pods.length) {
        lastLog = now;
        log(`load: pods ${rate(done, now - t0)}, 2 writes each`);
      }
    },
  );
  const t1 = performance.now();
  // What the API holds now, as a list (the way the agent will read it).
  const l0 = performance.now();
  let listed = 0;
  let bytes = 0;
  let cont = '';
  do {
    const r = await api('GET', `/api/v1/pods?limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
    listed += r.json.items.length;
    bytes += Buffer.byteLength(JSON.stringify(r.json));
    cont = r.json.metadata?.continue ?? '';
  } while (cont);
  const l1 = performance.now();
  out({ pods: pods.length, localPods: cluster.localPods, podsMs: t1 - t0, listedPods: listed, podListBytes: bytes, podListMs: l1 - l0 });
}

// ---- changes ----------------------------------------------------------------------------------
const agentPool = new http.Agent({ keepAlive: true, maxSockets: 1 });
function agentGetOnce(p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent: agentPool, socketPath: opt.socket, path: p, method: 'GET', timeout: APPLY_TIMEOUT_MS }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`agent socket GET ${p}: HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error(`agent socket GET ${p}: no answer in ${APPLY_TIMEOUT_MS / 1000} s`)));
    req.on('error', (e) => reject(new Error(`agent socket GET ${p}: ${e.message}`)));
    req.end();
  });
}
/** GETs are idempotent: one retry when a kept-alive connection was closed under us (the agent's server times idle ones out). */
async function agentGet(p: string): Promise<string> {
  try {
    return await agentGetOnce(p);
  } catch (e) {
    if (!/ECONNRESET|EPIPE|socket hang up/.test((e as Error).message)) throw e;
    return agentGetOnce(p);
  }
}

export interface Change {
  kind: 'policy' | 'pod';
  type: string;
  target: string;
  /** Write request latency (the last write, for a change made of two). */
  writeMs: number;
  /** Write response in, and write sent, to the agent's applied.at (its clock; ms resolution). */
  respToApplied: number;
  sentToApplied: number;
  /** Write response in to the poll that saw the version applied. */
  respToSeen: number;
  /** weir_event_to_applied_seconds and weir_sync_duration_seconds over this change's syncs (mean if more than one). */
  agentEventToApplied: number;
  agentSync: number;
  syncs: number;
  /** Operations of the transaction that applied it (the last sync's). */
  operations: number;
  /** What a client watching what the agent watches received for this change (up to the next change's write): bytes and events, all kinds. */
  watchBytes: number;
  watchEvents: number;
}

async function changes(): Promise<void> {
  if (!opt.socket) throw new Error('changes needs --socket');
  const total = Number(opt.changes);
  const pollMs = Number(opt['poll-ms']);
  const gapMs = Number(opt['gap-ms']);
  const local = cluster.state.pods.filter((p) => p.spec?.nodeName === BENCH_NODE);
  const byNs = new Map<string, Pod[]>();
  for (const p of local) byNs.set(p.metadata?.namespace ?? '', [...(byNs.get(p.metadata?.namespace ?? '') ?? []), p]);
  // Policies that select at least one pod on the bench node.
  const candidates = cluster.state.policies.filter((np) => {
    const sel = compileOptionalSelector(np.spec?.podSelector, 'everything');
    return (byNs.get(np.metadata?.namespace ?? '') ?? []).some((p) => selectorMatches(sel, p.metadata?.labels));
  });
  const withRules = candidates.filter((np) => (np.spec?.ingress?.length ?? 0) > 0 || (np.spec?.egress?.length ?? 0) > 0);
  if (withRules.length === 0) throw new Error('no policy with rules selects a pod on the bench node');
  const remote = cluster.state.pods.filter((p) => p.spec?.nodeName !== BENCH_NODE && byNs.has(p.metadata?.namespace ?? ''));
  // ClusterNetworkPolicies whose subject takes in a pod on the bench node.
  const nsLabels = new Map(cluster.state.namespaces.map((n) => [n.metadata?.name ?? '', n.metadata?.labels]));
  const cnpCandidates = clusterPolicies.filter((c) => {
    const s = c.spec?.subject ?? {};
    const nsSel = compileOptionalSelector(s.namespaces ?? s.pods?.namespaceSelector, 'everything');
    const podSel = compileOptionalSelector(s.pods?.podSelector, 'everything');
    return local.some((p) => selectorMatches(nsSel, nsLabels.get(p.metadata?.namespace ?? '')) && selectorMatches(podSel, p.metadata?.labels));
  });
  const policyTypes = cnpCandidates.length > 0 ? ['port', 'peer', 'select', 'cnp'] : ['port', 'peer', 'select'];
  const specs = new Map<string, NetworkPolicySpec>(
    cluster.state.policies.map((np) => [`${np.metadata?.namespace}/${np.metadata?.name}`, structuredClone(np.spec ?? {})]),
  );
  const labels = new Map<string, Record<string, string>>(
    cluster.state.pods.map((p) => [`${p.metadata?.namespace}/${p.metadata?.name}`, { ...(p.metadata?.labels ?? {}) }]),
  );
  log(
    `changes: ${candidates.length} policies select pods on ${BENCH_NODE} (${withRules.length} with rules), ${cnpCandidates.length} cluster policies; ${local.length} local pods, ${remote.length} pods elsewhere in their namespaces`,
  );

  const otherApp = (current: string | undefined, k: number): string => {
    const i = APPS.indexOf(current ?? '');
    return APPS[(Math.max(i, 0) + 1 + (k % (APPS.length - 1))) % APPS.length] as string;
  };
  let added = 0;
  let policyN = 0;
  let podN = 0;

  /** One change: its writes (the last one's resourceVersion is what must be applied). */
  async function write(k: number): Promise<{ kind: 'policy' | 'pod'; type: string; target: string; reply: Reply }> {
    if (k % 2 === 0) {
      const n = policyN++;
      const type = policyTypes[n % policyTypes.length] as string;
      const round = Math.floor(n / policyTypes.length);
      if (type === 'cnp') {
        // The port of its first ingress rule ('add' replaces a member that is there).
        const c = cnpCandidates[round % cnpCandidates.length] as ClusterNetworkPolicy;
        const name = c.metadata?.name as string;
        const patch = [{ op: 'add', path: '/spec/ingress/0/protocols', value: [{ tcp: { destinationPort: { number: 20000 + n } } }] }];
        const reply = await api('PATCH', `${CNP_PATH}/${name}`, patch, 'application/json-patch+json', 1);
        return { kind: 'policy', type, target: name, reply };
      }
      const pool = type === 'select' ? candidates : withRules;
      const np = pool[round % pool.length] as NetworkPolicy;
      const ns = np.metadata?.namespace as string;
      const key = `${ns}/${np.metadata?.name}`;
      const spec = specs.get(key) as NetworkPolicySpec;
      if (type === 'select') {
        const locals = byNs.get(ns) as Pod[];
        const app = locals[n % locals.length]?.metadata?.labels?.['app'] as string;
        spec.podSelector = { matchLabels: { app } };
      } else {
        const ingress = spec.ingress?.[0];
        const egress = spec.egress?.[spec.egress.length - 1];
        if (type === 'port') {
          const ports = [{ protocol: 'TCP', port: 20000 + n }];
          if (ingress) ingress.ports = ports;
          else if (egress) egress.ports = ports;
        } else {
          const peers = [{ podSelector: { matchLabels: { app: APPS[n % APPS.length] as string } } }];
          if (ingress) ingress.from = peers;
          else if (egress) egress.to = peers;
        }
      }
      const reply = await api(
        'PATCH',
        `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/${np.metadata?.name}`,
        [{ op: 'replace', path: '/spec', value: spec }],
        'application/json-patch+json',
        1,
      );
      return { kind: 'policy', type, target: key, reply };
    }
    const n = podN++;
    let type = ['relabel-local', 'relabel-peer', 'add-local'][n % 3] as string;
    if (type === 'add-local' && added >= 55) type = 'relabel-local';
    if (type === 'add-local') {
      // A new pod on the bench node, labelled like one a local-selecting policy picks.
      const np = candidates[added % candidates.length] as NetworkPolicy;
      const ns = np.metadata?.namespace as string;
      const app = (np.spec?.podSelector?.matchLabels?.['app'] ?? APPS[added % APPS.length]) as string;
      const pod = makePod(ns, `bench-add-${added}`, BENCH_NODE, `${podPrefix(BENCH_NODE_INDEX)}.${200 + added}`, { app, tier: 'backend', version: 'v1' });
      added++;
      await api('POST', `/api/v1/namespaces/${ns}/pods`, podObject(pod), undefined, 1);
      const reply = await api('PATCH', `/api/v1/namespaces/${ns}/pods/${pod.metadata?.name}/status`, podStatus(pod), 'application/merge-patch+json', 1);
      return { kind: 'pod', type, target: `${ns}/${pod.metadata?.name}`, reply };
    }
    const list = type === 'relabel-local' ? local : remote;
    const p = list[(Math.floor(n / 3) * 7) % list.length] as Pod;
    const key = `${p.metadata?.namespace}/${p.metadata?.name}`;
    const l = labels.get(key) as Record<string, string>;
    l['app'] = otherApp(l['app'], n);
    const reply = await api(
      'PATCH',
      `/api/v1/namespaces/${p.metadata?.namespace}/pods/${p.metadata?.name}`,
      { metadata: { labels: { app: l['app'] } } },
      'application/merge-patch+json',
      1,
    );
    return { kind: 'pod', type, target: key, reply };
  }

  const results: Change[] = [];
  let timeouts = 0;
  const watcher = await watchTraffic({ server, tls: { ca: tls.ca, cert: tls.cert, key: tls.key } });
  const traffic0 = watcher.snapshot();
  let before: Traffic = traffic0;
  /** Attributes what arrived since the last call to the last change measured. */
  const attribute = (): void => {
    const now = watcher.snapshot();
    const last = results[results.length - 1];
    if (last) {
      const d = Object.values(trafficDelta(before, now));
      last.watchBytes = d.reduce((a, v) => a + v.bytes, 0);
      last.watchEvents = d.reduce((a, v) => a + v.events, 0);
    }
    before = now;
  };
  const wall = (t: number): number => performance.timeOrigin + t;
  const hr0 = process.hrtime.bigint();
  const t0 = performance.now();
  for (let k = 0; k < total; k++) {
    await sleep(gapMs);
    attribute();
    const m0 = unlabelledSamples(await agentGet('/metrics'));
    const w = await write(k);
    const rv = Number(w.reply.json?.metadata?.resourceVersion);
    if (!Number.isFinite(rv)) throw new Error(`change ${k}: no resourceVersion in the reply`);
    const versionKey = w.type === 'cnp' ? 'clusterpolicies' : w.kind === 'policy' ? 'policies' : 'pods';
    // biome-ignore lint/suspicious/noExplicitAny: API and agent replies read field by field.
    let st: any;
    for (;;) {
      st = JSON.parse(await agentGet('/status'));
      if (Number(st.applied?.versions?.[versionKey] ?? 0) >= rv) break;
      if (performance.now() - w.reply.done > APPLY_TIMEOUT_MS) break;
      await sleep(pollMs);
    }
    const seen = performance.now();
    if (Number(st.applied?.versions?.[versionKey] ?? 0) < rv) {
      log(
        `change ${k} (${w.kind} ${w.type} ${w.target}, rv ${rv}) not applied within ${APPLY_TIMEOUT_MS / 1000} s; agent sync error: ${st.errors?.sync ?? 'none'}`,
      );
      if (++timeouts >= 3) throw new Error(`3 changes were not applied within ${APPLY_TIMEOUT_MS / 1000} s; giving up`);
      continue;
    }
    const m1 = unlabelledSamples(await agentGet('/metrics'));
    const d = (name: string): number => (m1[name] ?? NaN) - (m0[name] ?? NaN);
    const syncs = d('weir_sync_duration_seconds_count');
    const at = Date.parse(st.applied.at);
    results.push({
      kind: w.kind,
      type: w.type,
      target: w.target,
      writeMs: w.reply.done - w.reply.sent,
      respToApplied: at - wall(w.reply.done),
      sentToApplied: at - wall(w.reply.sent),
      respToSeen: seen - w.reply.done,
      agentEventToApplied: (d('weir_event_to_applied_seconds_sum') * 1000) / Math.max(1, d('weir_event_to_applied_seconds_count')),
      agentSync: (d('weir_sync_duration_seconds_sum') * 1000) / Math.max(1, syncs),
      syncs,
      operations: Number(st.applied.operations ?? 0),
      watchBytes: NaN,
      watchEvents: NaN,
    });
    if ((k + 1) % 50 === 0) log(`changes: ${k + 1}/${total} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const hr1 = process.hrtime.bigint();
  await sleep(Math.max(gapMs, 200));
  attribute();
  const watch = trafficDelta(traffic0, watcher.snapshot());
  watcher.stop();
  // The window, on the monotonic clock (process.hrtime = CLOCK_MONOTONIC, as V8's profiler timestamps).
  out({
    changes: results,
    timeouts,
    watch,
    cnpCandidates: cnpCandidates.length,
    candidates: candidates.length,
    localPods: local.length,
    windowUs: [Number(hr0 / 1000n), Number(hr1 / 1000n)],
    ms: performance.now() - t0,
  });
}

// ---- verify: the agent's policies against the API's ------------------------------------------
/** JSON with sorted keys. */
const canon = (v: unknown): string =>
  Array.isArray(v)
    ? `[${v.map(canon).join(',')}]`
    : v && typeof v === 'object'
      ? `{${Object.keys(v)
          .sort()
          .map((k) => `${JSON.stringify(k)}:${canon((v as Record<string, unknown>)[k])}`)
          .join(',')}}`
      : JSON.stringify(v);

async function verify(): Promise<void> {
  if (!opt.socket) throw new Error('verify needs --socket');
  const api_ = (await api('GET', '/apis/networking.k8s.io/v1/networkpolicies')).json.items as NetworkPolicy[];
  const agent = (JSON.parse(await agentGet('/policies')) as { policies: Array<{ ref: string; spec: unknown }> }).policies;
  const held = new Map(agent.map((p) => [p.ref, canon(p.spec)]));
  const differ: string[] = [];
  let missing = 0;
  for (const np of api_) {
    const ref = `${np.metadata?.namespace}/${np.metadata?.name}`;
    const mine = held.get(ref);
    if (mine === undefined) missing++;
    else if (mine !== canon(np.spec)) differ.push(ref);
  }
  // What differs, for the first one: the top-level keys of its rules on each side.
  let example = '';
  const first = differ[0];
  if (first) {
    const a = JSON.parse(held.get(first) as string) as NetworkPolicySpec;
    const b = api_.find((np) => `${np.metadata?.namespace}/${np.metadata?.name}` === first)?.spec as NetworkPolicySpec;
    const keys = (s: NetworkPolicySpec | undefined): string =>
      JSON.stringify({ ingress: (s?.ingress ?? []).map((r) => Object.keys(r)), egress: (s?.egress ?? []).map((r) => Object.keys(r)) });
    example = `${first}: rule keys in the API ${keys(b)}, in the agent ${keys(a)}`;
  }
  out({ policies: api_.length, agentPolicies: agent.length, missing, differ: differ.length, example });
}

try {
  if (MODE === 'base') await base();
  else if (MODE === 'load') await load();
  else if (MODE === 'verify') await verify();
  else await changes();
  pool.destroy();
  agentPool.destroy();
} catch (e) {
  log(`${MODE}: ${(e as Error).message}`);
  process.exit(1);
}
