// The `changes` mode of agent-load.ts: --changes writes alternating between a
// policy and a Pod, each followed by polling the agent's socket until it has
// applied the write's resourceVersion; per-change timings out, and what a
// client watching what the agent watches received meanwhile
// (watch-traffic.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { type ClusterNetworkPolicy, CNP_PATH } from '../../../src/policy/cnp-types.ts';
import { compileOptionalSelector, selectorMatches } from '../../../src/policy/selector.ts';
import type { NetworkPolicy, NetworkPolicySpec, Pod } from '../../../src/policy/types.ts';
import { unlabelledSamples } from '../lib/exposition.ts';
import { APPS, BENCH_NODE, BENCH_NODE_INDEX, type Cluster, makePod, podPrefix } from '../policy/cluster.ts';
import type { Api, Reply } from './api.ts';
import { podObject, podStatus } from './api-objects.ts';
import { type ApiEndpoint, type Traffic, trafficDelta, watchTraffic } from './watch-traffic.ts';

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

export interface ChangesRun {
  api: Api;
  endpoint: ApiEndpoint;
  /** A GET on the agent's socket. */
  agentGet: (p: string) => Promise<string>;
  cluster: Cluster;
  clusterPolicies: ClusterNetworkPolicy[];
  total: number;
  pollMs: number;
  gapMs: number;
  /** How long a change may take to be applied. */
  applyTimeoutMs: number;
  log: (s: string) => void;
  out: (x: unknown) => void;
}

/** What the changes pick from: the objects that bear on the bench node. */
interface Targets {
  local: Pod[];
  byNs: Map<string, Pod[]>;
  /** Policies that select at least one pod on the bench node. */
  candidates: NetworkPolicy[];
  withRules: NetworkPolicy[];
  remote: Pod[];
  /** ClusterNetworkPolicies whose subject takes in a pod on the bench node. */
  cnpCandidates: ClusterNetworkPolicy[];
  policyTypes: string[];
}

function changeTargets(cluster: Cluster, clusterPolicies: ClusterNetworkPolicy[]): Targets {
  const local = cluster.state.pods.filter((p) => p.spec?.nodeName === BENCH_NODE);
  const byNs = new Map<string, Pod[]>();
  for (const p of local) byNs.set(p.metadata?.namespace ?? '', [...(byNs.get(p.metadata?.namespace ?? '') ?? []), p]);
  const candidates = cluster.state.policies.filter((np) => {
    const sel = compileOptionalSelector(np.spec?.podSelector, 'everything');
    return (byNs.get(np.metadata?.namespace ?? '') ?? []).some((p) => selectorMatches(sel, p.metadata?.labels));
  });
  const withRules = candidates.filter((np) => (np.spec?.ingress?.length ?? 0) > 0 || (np.spec?.egress?.length ?? 0) > 0);
  if (withRules.length === 0) throw new Error('no policy with rules selects a pod on the bench node');
  const remote = cluster.state.pods.filter((p) => p.spec?.nodeName !== BENCH_NODE && byNs.has(p.metadata?.namespace ?? ''));
  const nsLabels = new Map(cluster.state.namespaces.map((n) => [n.metadata?.name ?? '', n.metadata?.labels]));
  const cnpCandidates = clusterPolicies.filter((c) => {
    const s = c.spec?.subject ?? {};
    const nsSel = compileOptionalSelector(s.namespaces ?? s.pods?.namespaceSelector, 'everything');
    const podSel = compileOptionalSelector(s.pods?.podSelector, 'everything');
    return local.some((p) => selectorMatches(nsSel, nsLabels.get(p.metadata?.namespace ?? '')) && selectorMatches(podSel, p.metadata?.labels));
  });
  const policyTypes = cnpCandidates.length > 0 ? ['port', 'peer', 'select', 'cnp'] : ['port', 'peer', 'select'];
  return { local, byNs, candidates, withRules, remote, cnpCandidates, policyTypes };
}

/** One change's writes (the last one's resourceVersion is what must be applied). */
interface Written {
  kind: 'policy' | 'pod';
  type: string;
  target: string;
  reply: Reply;
}

/** The changes' writes, in turn: even ones a policy (port, peer, podSelector, a ClusterNetworkPolicy's port), odd ones a Pod. */
class ChangeWriter {
  readonly #api: Api;
  readonly #t: Targets;
  readonly #specs: Map<string, NetworkPolicySpec>;
  readonly #labels: Map<string, Record<string, string>>;
  #added = 0;
  #policyN = 0;
  #podN = 0;

  constructor(api: Api, cluster: Cluster, t: Targets) {
    this.#api = api;
    this.#t = t;
    this.#specs = new Map(cluster.state.policies.map((np) => [`${np.metadata?.namespace}/${np.metadata?.name}`, structuredClone(np.spec ?? {})]));
    this.#labels = new Map(cluster.state.pods.map((p) => [`${p.metadata?.namespace}/${p.metadata?.name}`, { ...(p.metadata?.labels ?? {}) }]));
  }

  write(k: number): Promise<Written> {
    return k % 2 === 0 ? this.#policy() : this.#pod();
  }

  async #policy(): Promise<Written> {
    const t = this.#t;
    const n = this.#policyN++;
    const type = t.policyTypes[n % t.policyTypes.length] as string;
    const round = Math.floor(n / t.policyTypes.length);
    if (type === 'cnp') {
      // The port of its first ingress rule ('add' replaces a member that is there).
      const c = t.cnpCandidates[round % t.cnpCandidates.length] as ClusterNetworkPolicy;
      const name = c.metadata?.name as string;
      const patch = [{ op: 'add', path: '/spec/ingress/0/protocols', value: [{ tcp: { destinationPort: { number: 20000 + n } } }] }];
      const reply = await this.#api('PATCH', `${CNP_PATH}/${name}`, patch, 'application/json-patch+json', 1);
      return { kind: 'policy', type, target: name, reply };
    }
    const pool = type === 'select' ? t.candidates : t.withRules;
    const np = pool[round % pool.length] as NetworkPolicy;
    const ns = np.metadata?.namespace as string;
    const key = `${ns}/${np.metadata?.name}`;
    const spec = this.#specs.get(key) as NetworkPolicySpec;
    if (type === 'select') {
      const locals = t.byNs.get(ns) as Pod[];
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
    const reply = await this.#api(
      'PATCH',
      `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/${np.metadata?.name}`,
      [{ op: 'replace', path: '/spec', value: spec }],
      'application/json-patch+json',
      1,
    );
    return { kind: 'policy', type, target: key, reply };
  }

  async #pod(): Promise<Written> {
    const t = this.#t;
    const n = this.#podN++;
    let type = ['relabel-local', 'relabel-peer', 'add-local'][n % 3] as string;
    if (type === 'add-local' && this.#added >= 55) type = 'relabel-local';
    if (type === 'add-local') {
      // A new pod on the bench node, labelled like one a local-selecting policy picks.
      const added = this.#added;
      const np = t.candidates[added % t.candidates.length] as NetworkPolicy;
      const ns = np.metadata?.namespace as string;
      const app = (np.spec?.podSelector?.matchLabels?.['app'] ?? APPS[added % APPS.length]) as string;
      const pod = makePod(ns, `bench-add-${added}`, BENCH_NODE, `${podPrefix(BENCH_NODE_INDEX)}.${200 + added}`, { app, tier: 'backend', version: 'v1' });
      this.#added++;
      await this.#api('POST', `/api/v1/namespaces/${ns}/pods`, podObject(pod), undefined, 1);
      const reply = await this.#api('PATCH', `/api/v1/namespaces/${ns}/pods/${pod.metadata?.name}/status`, podStatus(pod), 'application/merge-patch+json', 1);
      return { kind: 'pod', type, target: `${ns}/${pod.metadata?.name}`, reply };
    }
    const list = type === 'relabel-local' ? t.local : t.remote;
    const p = list[(Math.floor(n / 3) * 7) % list.length] as Pod;
    const key = `${p.metadata?.namespace}/${p.metadata?.name}`;
    const l = this.#labels.get(key) as Record<string, string>;
    l['app'] = otherApp(l['app'], n);
    const reply = await this.#api(
      'PATCH',
      `/api/v1/namespaces/${p.metadata?.namespace}/pods/${p.metadata?.name}`,
      { metadata: { labels: { app: l['app'] } } },
      'application/merge-patch+json',
      1,
    );
    return { kind: 'pod', type, target: key, reply };
  }
}

const otherApp = (current: string | undefined, k: number): string => {
  const i = APPS.indexOf(current ?? '');
  return APPS[(Math.max(i, 0) + 1 + (k % (APPS.length - 1))) % APPS.length] as string;
};

export async function changes(r: ChangesRun): Promise<void> {
  const t = changeTargets(r.cluster, r.clusterPolicies);
  const writer = new ChangeWriter(r.api, r.cluster, t);
  r.log(
    `changes: ${t.candidates.length} policies select pods on ${BENCH_NODE} (${t.withRules.length} with rules), ${t.cnpCandidates.length} cluster policies; ${t.local.length} local pods, ${t.remote.length} pods elsewhere in their namespaces`,
  );
  const results: Change[] = [];
  let timeouts = 0;
  const watcher = await watchTraffic(r.endpoint);
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
  const hr0 = process.hrtime.bigint();
  const t0 = performance.now();
  for (let k = 0; k < r.total; k++) {
    await sleep(r.gapMs);
    attribute();
    const change = await timedChange(r, writer, k);
    if (change) results.push(change);
    else if (++timeouts >= 3) throw new Error(`3 changes were not applied within ${r.applyTimeoutMs / 1000} s; giving up`);
    if (change && (k + 1) % 50 === 0) r.log(`changes: ${k + 1}/${r.total} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const hr1 = process.hrtime.bigint();
  await sleep(Math.max(r.gapMs, 200));
  attribute();
  const watch = trafficDelta(traffic0, watcher.snapshot());
  watcher.stop();
  // The window, on the monotonic clock (process.hrtime = CLOCK_MONOTONIC, as V8's profiler timestamps).
  r.out({
    changes: results,
    timeouts,
    watch,
    cnpCandidates: t.cnpCandidates.length,
    candidates: t.candidates.length,
    localPods: t.local.length,
    windowUs: [Number(hr0 / 1000n), Number(hr1 / 1000n)],
    ms: performance.now() - t0,
  });
}

/** Change `k`: written, then the agent's /status polled until it has applied it; undefined (logged) when it did not in time. */
async function timedChange(r: ChangesRun, writer: ChangeWriter, k: number): Promise<Change | undefined> {
  const wall = (t: number): number => performance.timeOrigin + t;
  const m0 = unlabelledSamples(await r.agentGet('/metrics'));
  const w = await writer.write(k);
  const rv = Number(w.reply.json?.metadata?.resourceVersion);
  if (!Number.isFinite(rv)) throw new Error(`change ${k}: no resourceVersion in the reply`);
  const versionKey = w.type === 'cnp' ? 'clusterpolicies' : w.kind === 'policy' ? 'policies' : 'pods';
  // biome-ignore lint/suspicious/noExplicitAny: API and agent replies read field by field.
  let st: any;
  for (;;) {
    st = JSON.parse(await r.agentGet('/status'));
    if (Number(st.applied?.versions?.[versionKey] ?? 0) >= rv) break;
    if (performance.now() - w.reply.done > r.applyTimeoutMs) break;
    await sleep(r.pollMs);
  }
  const seen = performance.now();
  if (Number(st.applied?.versions?.[versionKey] ?? 0) < rv) {
    r.log(
      `change ${k} (${w.kind} ${w.type} ${w.target}, rv ${rv}) not applied within ${r.applyTimeoutMs / 1000} s; agent sync error: ${st.errors?.sync ?? 'none'}`,
    );
    return undefined;
  }
  const m1 = unlabelledSamples(await r.agentGet('/metrics'));
  const d = (name: string): number => (m1[name] ?? NaN) - (m0[name] ?? NaN);
  const syncs = d('weir_sync_duration_seconds_count');
  const at = Date.parse(st.applied.at);
  return {
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
  };
}
