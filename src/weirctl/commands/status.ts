// weirctl status: the agent's health, its API watches per kind, the state it
// last applied, counts, the last sync, and errors.
import type { AgentStatus, CommandResult, Context } from '../context.ts';
import { byLabel, parsePrometheus } from '../metrics.ts';
import { formatAge, formatMs, paint, renderTable } from '../table.ts';

export const API_KINDS: readonly string[] = ['pods', 'namespaces', 'policies', 'nodes'];

/** The kinds the agent mirrors: the four every agent watches, plus any it reports besides (e.g. host firewall policies). */
export const kindsOf = (s: Pick<AgentStatus, 'api'>): string[] => [...API_KINDS, ...Object.keys(s.api.versions).filter((k) => !API_KINDS.includes(k))];

export interface ApiKindStatus {
  kind: string;
  /** The first list completed. */
  synced: boolean;
  /** weir_api_watch_up: 1 while the watch is established; undefined when the agent has not reported it. */
  watchUp: boolean | undefined;
  /** weir_api_errors_total: failed list/watch attempts. */
  errors: number;
  /** resourceVersion last seen. */
  resourceVersion: string;
  /** Objects cached and their digest (cache-digest.ts), when the agent reports them. */
  cached?: { count: number; hash: string };
}

export interface StatusReport {
  socket: string;
  version: string;
  node: string;
  healthy: boolean;
  ready: boolean;
  api: ApiKindStatus[];
  applied: AgentStatus['applied'];
  counts: AgentStatus['counts'];
  lastSync: { at: string; ageSeconds: number; durationMs: number } | null;
  errors: AgentStatus['errors'];
  config: AgentStatus['config'];
  /** The kernel-table self-check: last result, repairs, and incremental syncs that fell back to a full replacement. */
  kernel: (NonNullable<AgentStatus['kernel']> & { fallbacks: number }) | null;
  /** Whether the agent reads ClusterNetworkPolicies (absent: an agent that does not mirror them). */
  clusterPolicyApi?: NonNullable<AgentStatus['clusterPolicyApi']>;
}

export function buildStatus(socket: string, s: AgentStatus, healthy: boolean, metricsText: string, now = Date.now()): StatusReport {
  const samples = parsePrometheus(metricsText);
  const up = byLabel(samples, 'weir_api_watch_up', 'kind');
  const errs = byLabel(samples, 'weir_api_errors_total', 'kind');
  const api = kindsOf(s).map((kind) => {
    const u = up.get(kind);
    const c = s.cache?.[kind];
    return {
      kind,
      synced: s.api.synced.includes(kind),
      watchUp: u === undefined ? undefined : u === 1,
      errors: errs.get(kind) ?? 0,
      resourceVersion: s.api.versions[kind] ?? '',
      ...(c ? { cached: { count: c.count, hash: c.hash } } : {}),
    };
  });
  const fallbacks = [...byLabel(samples, 'weir_sync_fallbacks_total', 'reason').values()].reduce((a, b) => a + b, 0);
  const kernel = s.kernel ? { ...s.kernel, fallbacks } : null;
  const lastSync = s.applied
    ? { at: s.applied.at, ageSeconds: Math.max(0, Math.round((now - Date.parse(s.applied.at)) / 1000)), durationMs: s.applied.durationMs }
    : null;
  return {
    socket,
    version: s.version,
    node: s.node,
    healthy,
    ready: s.ready,
    api,
    applied: s.applied,
    counts: s.counts,
    lastSync,
    errors: s.errors,
    config: s.config,
    kernel,
    ...(s.clusterPolicyApi ? { clusterPolicyApi: s.clusterPolicyApi } : {}),
  };
}

export function formatStatus(r: StatusReport, color: boolean): string {
  const yes = (b: boolean | undefined, good = 'yes', bad = 'NO'): string =>
    b === undefined ? '?' : b ? paint(good, 'green', color) : paint(bad, 'red', color);
  const out: string[] = [];
  out.push(`Agent:     weir-agent ${r.version} on node ${r.node} (${r.socket})`);
  out.push(`Health:    ${yes(r.healthy, 'healthy', 'UNHEALTHY')}, ${yes(r.ready, 'ready', 'NOT READY (no full sync yet)')}`);
  if (r.lastSync) out.push(`Last sync: ${formatAge(r.lastSync.ageSeconds * 1000)} ago (${r.lastSync.at}), took ${formatMs(r.lastSync.durationMs)}`);
  else out.push('Last sync: never');
  if (r.applied) {
    const v = r.applied.versions;
    out.push(`Applied:   generation ${r.applied.generation}, ${r.applied.full ? 'full table replacement' : 'incremental'}, ${r.applied.operations} operations`);
    out.push(
      `           resourceVersions: ${r.api
        .map((a) => a.kind)
        .map((k) => `${k}=${v[k] ?? '-'}`)
        .join(' ')}`,
    );
  }
  const c = r.counts;
  out.push(`Counts:    ${c.localPods} local pods, ${c.pods} pods, ${c.namespaces} namespaces, ${c.policies} policies, ${c.nodes} nodes`);
  if (c.rules !== undefined)
    out.push(`Table:     inet weir: ${c.chains ?? '?'} chains, ${c.rules} rules, ${c.sets ?? '?'} sets/maps, ${c.elements ?? '?'} elements`);
  if (r.kernel) out.push(`Kernel:    ${kernelLine(r.kernel, color)}`);
  if (r.clusterPolicyApi) out.push(`CNP:       ${cnpLine(r.clusterPolicyApi, c.clusterPolicies, color)}`);
  out.push(
    `Config:    masquerade ${r.config.masquerade ? 'on' : 'off'}, host firewall ${r.config.hostFirewall ? 'on' : 'off'}, nflog group ${r.config.nflogGroup}`,
  );
  out.push('');
  out.push('API connection:');
  out.push(
    renderTable(
      ['KIND', 'SYNCED', 'WATCH', 'ERRORS', 'RESOURCEVERSION', 'CACHED', 'DIGEST'],
      r.api.map((k) => [
        k.kind,
        yes(k.synced),
        k.watchUp === undefined ? '?' : k.watchUp ? paint('up', 'green', color) : paint('DOWN', 'red', color),
        String(k.errors),
        k.resourceVersion || '-',
        k.cached ? String(k.cached.count) : '-',
        k.cached?.hash ?? '-',
      ]),
      { color, indent: '  ' },
    ),
  );
  const errors = [
    ...(r.errors.sync ? [`sync: ${r.errors.sync}`] : []),
    ...r.errors.policies.map((e) => `policy: ${e}`),
    ...r.errors.routes.map((e) => `route: ${e}`),
  ];
  out.push('');
  out.push(errors.length === 0 ? 'Errors:    none' : `Errors:\n${errors.map((e) => `  ${paint(e, 'red', color)}`).join('\n')}`);
  return out.join('\n');
}

/** ClusterNetworkPolicies in one line: how many, or why the agent cannot read them. */
export function cnpLine(a: NonNullable<StatusReport['clusterPolicyApi']>, count: number | undefined, color: boolean): string {
  if (a.available === null) return 'not listed yet';
  if (!a.available) return paint(`not available: ${a.reason ?? 'unknown reason'}`, 'yellow', color);
  return `${count ?? '?'} ClusterNetworkPolicies (policy.networking.k8s.io)`;
}

/** The kernel-table self-check in one line: the last result, repairs and fallbacks so far. */
export function kernelLine(k: NonNullable<StatusReport['kernel']>, color: boolean): string {
  const c = k.lastCheck;
  let last = 'not checked yet';
  if (c?.error) last = paint(`last check failed: ${c.error}`, 'red', color);
  else if (c?.clean) last = `${paint('matches the applied ruleset', 'green', color)} (${c.kind} check at ${c.at}, ${formatMs(c.ms)})`;
  else if (c) {
    const reasons = Object.entries(c.drift.counts)
      .map(([r, n]) => `${r} ${n}`)
      .join(', ');
    last = `${paint(`drift found at ${c.at}: ${reasons}`, 'yellow', color)}${c.repaired ? `, repaired${c.afterRepair?.clean ? '' : paint(' (still differs!)', 'red', color)}` : ', not repaired'}`;
  }
  return `${last}; ${k.repairs} repair(s), ${k.fallbacks} incremental sync(s) fell back to a full replacement; full checks at most every ${formatMs(k.fullCheckSpacingMs)}`;
}

export async function runStatus(ctx: Context): Promise<CommandResult> {
  const s = await ctx.status();
  const health = await ctx.call('/healthz', { accept: [500, 503] });
  const metrics = await ctx.call('/metrics', { accept: [500, 503] });
  const report = buildStatus(ctx.opts.socket, s, health.status === 200, metrics.status === 200 ? metrics.text : '');
  return { json: report, text: formatStatus(report, ctx.opts.color) };
}
