// The report of scripts/bench-agent: what one run measured (scripts/bench/
// agent.ts collects it into `R`), as Markdown: the setup, one table of the
// issue's measures with target, measured value and verdict, the changes
// table, and the watch traffic per change that the fan-out estimate in
// docs/scale.md starts from. Pure: text in, text out.

import { f0, f1, mib as mb, secs } from '../lib/format.ts';
import { median, pct } from '../lib/stats.ts';
import type { Change } from './changes.ts';
import { type Traffic, trafficTotal } from './watch-traffic.ts';

export interface ReportContext {
  pods: number;
  nodes: number;
  policies: number;
  clusterPolicies: number;
  changes: number;
  idleS: number;
  pollMs: number;
  gapMs: number;
  /** --debounce-ms if given; the agent's default otherwise. */
  debounceMs: number | undefined;
  atScale: boolean;
  benchNode: string;
  /** Header lines (machine, agent, versions), already written. */
  header: string[];
  warningNewer: string | undefined;
  /** Everything agent.ts measured. */
  // biome-ignore lint/suspicious/noExplicitAny: the run's measurements, a record of many shapes gathered as the run goes.
  R: Record<string, any>;
}

export interface Targets {
  firstSyncMs: number;
  rssB: number;
  anonPerRemotePodB: number;
  changeP99Ms: number;
}

/** The issue's targets at scale; the smaller default run keeps its tighter RSS and latency targets. */
export const targetsFor = (atScale: boolean): Targets =>
  atScale
    ? { firstSyncMs: 10_000, rssB: 400e6, anonPerRemotePodB: 2048, changeP99Ms: 200 }
    : { firstSyncMs: 10_000, rssB: 150e6, anonPerRemotePodB: 2048, changeP99Ms: 100 };

// The metrics benchmark reads the percentile from here.
export { pct };

const kib = (b: number): string => `${(b / 1024).toFixed(2)} KiB`;

/** The report's lines and whether any judged row failed. */
export function report(c: ReportContext): { lines: string[]; failed: boolean } {
  const o: string[] = [...c.header];
  const tableOk = setup(c, o);
  // ---- the one table: target, measured, verdict ----
  const t = verdictTable(o);
  startRows(c, t);
  memoryRows(c, t);
  changeRows(c, t, tableOk);
  changesTable(c, o);
  afterword(c, o);
  return { lines: o, failed: t.failed() };
}

/** The cluster, the loading and the kernel's table; whether the agent's first table matches the reference compile (true without one). */
function setup(c: ReportContext, o: string[]): boolean {
  const { R } = c;
  const base = R.base;
  const load = R.load;
  const st = R.status;
  o.push(
    `cluster: ${base.namespaces} namespaces, ${base.nodes} nodes, ${load.pods} pods, ${base.policies} NetworkPolicies (${R.changes.candidates} select pods on ${c.benchNode}), ${base.clusterPolicies} ClusterNetworkPolicies (${R.changes.cnpCandidates} with pods on ${c.benchNode} in their subject); the agent holds ${st.counts.pods} pods, ${st.counts.policies} policies, ${st.counts.localPods} local`,
  );
  const podWrites = 2 * load.pods;
  o.push(
    `loading: control plane up in ${secs(R.cpMs)}; namespaces + ServiceAccounts ${secs(base.namespacesMs)}, nodes ${secs(base.nodesMs)}, NetworkPolicies ${secs(base.policiesMs)}, ClusterNetworkPolicies ${secs(base.clusterPoliciesMs)}; **pods ${secs(load.podsMs)}** (${podWrites} writes, create + status, ${Math.round((podWrites * 1000) / load.podsMs)} writes/s); a paged list of all pods (500 a page, JSON): ${(load.podListBytes / 2 ** 20).toFixed(1)} MiB in ${f0(load.podListMs)} ms (${f0(load.podListBytes / load.pods)} bytes a pod)`,
  );
  const k = R.kernel;
  o.push(
    `kernel: after the first sync ${st.counts.chains} chains, ${st.counts.rules} rules, ${st.counts.sets} sets, ${st.counts.elements} elements; \`nft list ruleset\` ${mb(k.textBytes)} of text, ${k.lines} lines, listed in ${f0(k.listMs)} ms; ${k.routes} routes (after the changes: ${R.statusEnd.counts.rules} rules, ${R.statusEnd.counts.sets} sets, ${R.statusEnd.counts.elements} elements)`,
  );
  const ref = reference(c);
  const tableOk = !ref || (['chains', 'rules', 'sets', 'elements'] as const).every((x) => ref[x] === st.counts[x]);
  if (ref)
    o.push(
      `reference: the same objects compiled in this process (this tree's src/policy) give ${ref.chains} chains, ${ref.rules} rules, ${ref.sets} sets, ${ref.elements} elements: the agent's first table ${tableOk ? 'matches' : '**DIFFERS**'}`,
    );
  else o.push("reference compile skipped: the agent measured is not built from this tree's current sources");
  if (c.warningNewer) o.push(c.warningNewer);
  return tableOk;
}

const reference = (c: ReportContext) => c.R.reference as { chains: number; rules: number; sets: number; elements: number } | undefined;

interface VerdictTable {
  judged: (label: string, target: string, measured: string, ok: boolean) => void;
  shown: (label: string, measured: string, ref_?: string) => void;
  failed: () => boolean;
}

function verdictTable(o: string[]): VerdictTable {
  let failed = false;
  o.push('', '| measure | target | measured | verdict |', '|---|---|---:|---|');
  return {
    judged: (label, target, measured, ok) => {
      if (!ok) failed = true;
      o.push(`| ${label} | ${target} | ${measured} | ${ok ? 'PASS' : '**FAIL**'} |`);
    },
    shown: (label, measured, ref_ = '') => void o.push(`| ${label} | ${ref_} | ${measured} | |`),
    failed: () => failed,
  };
}

/** From the agent's start to ready: the lists, the first sync, the CPU spent. */
function startRows(c: ReportContext, { judged, shown }: VerdictTable): void {
  const { R } = c;
  const T = targetsFor(c.atScale);
  const m = R.metricsReady;
  const firstSync = R.status.applied.durationMs as number;
  const listMs = R.firstAppliedMs - firstSync - R.ready.socketMs;
  judged('list + first sync: agent start → /readyz 200', `≤ ${secs(T.firstSyncMs)}`, secs(R.ready.readyMs), R.ready.readyMs <= T.firstSyncMs);
  shown('&nbsp;&nbsp;start → local socket answers (process start)', `${f0(R.ready.socketMs)} ms`);
  shown('&nbsp;&nbsp;socket → first sync begins (the lists, all kinds, paged)', `${f0(listMs)} ms`);
  shown(
    `&nbsp;&nbsp;the first sync itself (compile + transaction + routes; ${m['weir_sync_duration_seconds_count']} sync${m['weir_sync_duration_seconds_count'] === 1 ? '' : 's'} by ready)`,
    `${f0(firstSync)} ms`,
  );
  shown('&nbsp;&nbsp;CPU used from start to ready', `${R.atReady.cpuS.toFixed(2)} s`);
}

/** RSS after the sync, and the memory each remote pod adds. */
function memoryRows(c: ReportContext, { judged, shown }: VerdictTable): void {
  const { R } = c;
  const T = targetsFor(c.atScale);
  const rssSync = R.atReady.rssB as number;
  const remotePods = c.pods - R.load.localPods;
  const perRemote = (rssSync - R.baseline.rssB) / remotePods;
  const anonPerRemote = (R.atReady.anonB - R.baseline.anonB) / remotePods;
  const rssSteady = Math.max(rssSync, R.afterIdle.rssB);
  judged(
    `RSS after sync (larger of right after the first sync and after ${c.idleS} s idle)`,
    `≤ ${(T.rssB / 1e6).toFixed(0)} MB`,
    `${(rssSteady / 1e6).toFixed(1)} MB`,
    rssSteady <= T.rssB,
  );
  shown('&nbsp;&nbsp;of which anonymous / file-backed, after the first sync', `${mb(R.atReady.anonB)} / ${mb(R.atReady.fileB)}`);
  shown('&nbsp;&nbsp;the same agent before the pods (nodes, namespaces, policies): RSS / anonymous', `${mb(R.baseline.rssB)} / ${mb(R.baseline.anonB)}`);
  shown('&nbsp;&nbsp;after the changes / peak (VmHWM)', `${mb(R.afterChanges.rssB)} / ${mb(R.afterChanges.hwmB)}`);
  judged(
    `anonymous memory per remote pod (marginal: (after sync − before the pods) / ${remotePods})`,
    `≤ ${kib(T.anonPerRemotePodB)}`,
    kib(anonPerRemote),
    anonPerRemote <= T.anonPerRemotePodB,
  );
  shown('all memory (RSS) per remote pod, marginal', kib(perRemote), 'Cilium publishes 10.5 KiB per pod');
}

/** Change latencies, CPU, the table's size, and the agent's view of the API. */
function changeRows(c: ReportContext, { judged, shown }: VerdictTable, tableOk: boolean): void {
  const { R } = c;
  const T = targetsFor(c.atScale);
  const changes = R.changes.changes as Change[];
  const st = R.status;
  const ref = reference(c);
  const v = R.verify;
  const viewOk = v.missing === 0 && v.differ === 0 && v.agentPolicies === v.policies;
  const policy = changes.filter((x) => x.kind === 'policy');
  const pod = changes.filter((x) => x.kind === 'pod');
  const timeouts = R.changes.timeouts as number;
  for (const [label, xs] of [
    ['policy change → applied', policy],
    ['pod change → applied', pod],
  ] as const) {
    const d = xs.map((x) => x.respToApplied);
    judged(
      `${label} p99 (p50), ${xs.length} changes`,
      `≤ ${T.changeP99Ms} ms`,
      `${f0(pct(d, 0.99))} ms (${f0(pct(d, 0.5))} ms)`,
      pct(d, 0.99) <= T.changeP99Ms && timeouts === 0,
    );
  }
  shown(`idle CPU over ${c.idleS} s after the sync`, `${f1((100 * (R.afterIdle.cpuS - R.atReady.cpuS)) / c.idleS)}% of a core`);
  shown(`CPU during the ${changes.length} changes`, `${R.changesCpuS.toFixed(2)} s over ${secs(R.changes.ms)}`);
  shown('kernel table after the first sync: elements / rules / sets', `${st.counts.elements} / ${st.counts.rules} / ${st.counts.sets}`);
  judged(
    "the agent's copy of every NetworkPolicy spec = the API's",
    'all equal',
    `${v.agentPolicies} of ${v.policies} held, ${v.missing} missing, ${v.differ} differ`,
    viewOk,
  );
  if (ref)
    judged(
      'first table = a reference compile of the same objects',
      'equal counts',
      `elements ${st.counts.elements} vs ${ref.elements}, rules ${st.counts.rules} vs ${ref.rules}`,
      tableOk,
    );
  if (timeouts) judged('every change applied within the apply timeout', '0 not applied', `${timeouts} not applied`, false);
}

/** The changes table, by kind of change. */
function changesTable(c: ReportContext, o: string[]): void {
  const changes = c.R.changes.changes as Change[];
  const policy = changes.filter((x) => x.kind === 'policy');
  const pod = changes.filter((x) => x.kind === 'pod');
  const debounce = c.debounceMs ?? 20;
  o.push(
    '',
    `Changes (each waits ${c.gapMs} ms, then one write; times in ms; response→applied = the agent's /status applied.at minus the moment the write's response was in, both on this machine's clock, ms resolution; watch = what a client watching what the agent watches received for the change, medians):`,
    '',
  );
  o.push(
    '| change | n | write p50 | **response→applied p50** | **p99** | max | agent event→applied p50 / p99 | agent sync p50 / p99 | syncs | ops (median) | watch events | watch bytes |',
  );
  o.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const row = (label: string, xs: Change[]): void => {
    if (xs.length === 0) return;
    const v_ = (key: keyof Change): number[] => xs.map((x) => x[key] as number);
    o.push(
      `| ${label} | ${xs.length} | ${f1(pct(v_('writeMs'), 0.5))} | ${f0(pct(v_('respToApplied'), 0.5))} | ${f0(pct(v_('respToApplied'), 0.99))} | ${f0(Math.max(...v_('respToApplied')))} | ${f0(pct(v_('agentEventToApplied'), 0.5))} / ${f0(pct(v_('agentEventToApplied'), 0.99))} | ${f0(pct(v_('agentSync'), 0.5))} / ${f0(pct(v_('agentSync'), 0.99))} | ${(v_('syncs').reduce((a, b) => a + b, 0) / xs.length).toFixed(2)} | ${f0(median(v_('operations')))} | ${f0(median(v_('watchEvents')))} | ${f0(median(v_('watchBytes')))} |`,
    );
  };
  const names: Record<string, string> = {
    port: 'NetworkPolicy rule port',
    peer: 'NetworkPolicy rule peer selector',
    select: 'NetworkPolicy podSelector',
    cnp: 'ClusterNetworkPolicy rule port',
    'relabel-local': `relabel a pod on ${c.benchNode}`,
    'relabel-peer': 'relabel a pod elsewhere',
    'add-local': `add a pod on ${c.benchNode} (create + status)`,
  };
  row('**policy**', policy);
  for (const t of ['port', 'peer', 'select', 'cnp'])
    row(
      `&nbsp;&nbsp;${names[t]}`,
      policy.filter((x) => x.type === t),
    );
  row('**pod**', pod);
  for (const t of ['relabel-local', 'relabel-peer', 'add-local'])
    row(
      `&nbsp;&nbsp;${names[t]}`,
      pod.filter((x) => x.type === t),
    );
  row('all', changes);
  o.push(
    '',
    `agent event→applied and sync come from the agent's weir_event_to_applied_seconds and weir_sync_duration_seconds (_sum/_count deltas around each change; a mean when a change took more than one sync); event→applied includes the ${debounce} ms debounce. p99 is nearest-rank. Polling: /status every ${c.pollMs} ms until applied.versions reaches the write's resourceVersion (response→seen p50 ${f0(
      pct(
        changes.map((x) => x.respToSeen),
        0.5,
      ),
    )} ms).`,
  );
}

/** The watch traffic, the agent's memory by V8's account, its warnings and the profiles. */
function afterword(c: ReportContext, o: string[]): void {
  const { R } = c;
  const changes = R.changes.changes as Change[];
  const watch = R.changes.watch as Traffic;
  const total = trafficTotal(watch);
  o.push(
    '',
    `Watch traffic over the ${changes.length} changes (one client watching Pods, Namespaces, Nodes, NetworkPolicies and ClusterNetworkPolicies cluster-wide as JSON, as the agent does): ${total.events} events, ${(total.bytes / 1024).toFixed(1)} KiB, ${f0(total.bytes / Math.max(1, total.events))} bytes an event; by kind: ${Object.entries(
      watch,
    )
      .map(([kind, t]) => `${kind} ${t.events} events ${(t.bytes / 1024).toFixed(1)} KiB${t.bookmarks ? ` (+${t.bookmarks} bookmarks)` : ''}`)
      .join(', ')}.`,
  );
  const mem = R.memory;
  if (mem?.before) {
    // biome-ignore lint/suspicious/noExplicitAny: the run's measurements, a record of many shapes gathered as the run goes.
    const line = (x: any): string => {
      const u = x.usage;
      // biome-ignore lint/suspicious/noExplicitAny: the run's measurements, a record of many shapes gathered as the run goes.
      const space = (n: string): any => x.spaces.find((s: any) => s.name === n);
      const old = space('old_space');
      return `RSS ${mb(u.rss)}, V8 heap ${mb(u.heapUsed)} used of ${mb(u.heapTotal)} committed${old ? ` (old space ${mb(old.used)} of ${mb(old.size)})` : ''}, external ${mb(u.external)} (array buffers ${mb(u.arrayBuffers)}), so outside V8's heap (native: glibc arenas, code, stacks) ${mb(u.rss - u.heapTotal)}`;
    };
    o.push('', `Agent memory by V8's account (inspector, after the changes): ${line(mem.before)}; after a full collection: ${line(mem.after)}.`);
  } else if (mem?.error) o.push('', `Agent memory by V8's account: not read (${mem.error})`);
  if (R.warnings.length) o.push(`agent warnings/errors in its log: ${R.warnings.length}, e.g. ${R.warnings[0].slice(0, 300)}`);
  if (R.profile) o.push('', ...R.profile);
}
