// `scripts/lab wait [--timeout 120]`: returns once the lab has settled:
//
//   - every pod is Running with its addresses (status.podIPs set); pods that
//     completed (Succeeded/Failed) are done, pods being deleted are pending;
//   - every node's agent has applied the API state as it is now: for each
//     kind (namespaces, pods, nodes, networkpolicies), the resourceVersions
//     its last applied sync recorded (GET /status on the node's
//     run/weir/agent.sock: applied.versions) are at least the resourceVersion
//     of a fresh `kubectl get <kinds> -A -o json` list.
//
// kubectl's `-o json` List has no resourceVersion of its own (it is ""), and
// the API's own list resourceVersion is the etcd revision of the whole store,
// which leases and events move every few seconds while an agent's version of
// a kind moves only with that kind's events; so the list's version of a kind
// is the newest of its items' resourceVersions. That alone would not see a
// deletion, so the objects the agent knows (GET /state) must also be exactly
// the list's, and the agent must have no sync pending: its cache's versions
// (api.versions) equal the applied ones, or differ only by a watch bookmark
// (the same pair seen for 2 s: a real change is applied within the agent's
// debounce, milliseconds), and no sync error.
//
// It shows what it waits for, and when the deadline passes exits 1 saying
// what is still pending.
import type { LabState, LabStateNode } from '../state.ts';
import { agentGet, kubectl, LabCommandError, labState, parseDuration, sleep } from './common.ts';

/** The kinds, as kubectl names them, and the agent's names for them. */
export const KINDS = [
  { api: 'namespaces', kind: 'Namespace', agent: 'namespaces' },
  { api: 'pods', kind: 'Pod', agent: 'pods' },
  { api: 'nodes', kind: 'Node', agent: 'nodes' },
  { api: 'networkpolicies', kind: 'NetworkPolicy', agent: 'policies' },
] as const;

type ApiKind = (typeof KINDS)[number]['api'];

export const DEFAULT_WAIT_TIMEOUT_MS = 120_000;
/** How long a cache/applied version difference must stay put to count as a bookmark, not a pending sync. */
const BOOKMARK_SETTLE_MS = 2000;
const POLL_MS = 250;

interface ApiObject {
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; deletionTimestamp?: string };
  status?: {
    phase?: string;
    podIPs?: { ip?: string }[];
    containerStatuses?: { name?: string; state?: { waiting?: { reason?: string } }; lastState?: { terminated?: { reason?: string; exitCode?: number } } }[];
  };
}

/** Why a container cannot run, as kubelet reports it: it crashed, or could not start at all. */
const CANNOT_RUN = new Set(['CrashLoopBackOff', 'RunContainerError', 'CreateContainerError', 'Error', 'StartError']);

/**
 * A pod whose sandbox has its addresses but some container cannot run on this
 * machine (an SCTP server: the kernel has no SCTP sockets) counts as running:
 * its network namespace takes part in policy like any other. Returns what to
 * say about it, or undefined for an ordinary pod.
 */
export function sandboxOnly(p: ApiObject): string | undefined {
  if (!(p.status?.podIPs ?? []).some((x) => x.ip)) return undefined;
  const stuck = (p.status?.containerStatuses ?? []).filter((c) => CANNOT_RUN.has(c.state?.waiting?.reason ?? ''));
  if (stuck.length === 0) return undefined;
  return `${objKey(p)}: sandbox up with its addresses; container(s) ${stuck.map((c) => `${c.name} (${c.state?.waiting?.reason})`).join(', ')} cannot run here, counted as running`;
}

export interface AgentStatus {
  node?: string;
  ready?: boolean;
  api?: { synced?: string[]; versions?: Record<string, string> };
  applied?: { generation?: number; at?: string; versions?: Record<string, string> } | null;
  errors?: { sync?: string | null };
}

interface AgentState {
  pods?: ApiObject[];
  namespaces?: ApiObject[];
  policies?: ApiObject[];
  nodes?: { name?: string }[];
}

/** Compares resourceVersions: numerically when both are decimal (etcd's), else only equality counts. */
export function rvAtLeast(have: string | undefined, want: string | undefined): boolean {
  if (!want) return true;
  if (!have) return false;
  if (/^\d+$/.test(have) && /^\d+$/.test(want)) return BigInt(have) >= BigInt(want);
  return have === want;
}

function maxRv(rvs: readonly string[]): string {
  let best = '';
  for (const rv of rvs) if (!best || (rvAtLeast(rv, best) && rv !== best)) best = rv;
  return best;
}

const objKey = (o: ApiObject): string => (o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name ?? ''}` : (o.metadata?.name ?? ''));

/** What one look at the cluster found. */
export interface WaitSnapshot {
  /** Human-readable reasons the lab is not settled; empty when it is. */
  pending: string[];
  /** The API's version of each kind (newest item), for the final line. */
  versions: Record<ApiKind, string>;
  pods: number;
  /** Pods counted as running though a container cannot run here (sandboxOnly). */
  notes?: string[];
}

/** Tracks, per node, since when the agent's (cache versions, applied generation) pair has been what it is. */
type Stability = Map<string, { sig: string; since: number }>;

function agentPending(
  node: LabStateNode,
  st: AgentStatus,
  state: AgentState,
  api: Map<ApiKind, ApiObject[]>,
  versions: Record<ApiKind, string>,
  stable: Stability,
  now: number,
): string[] {
  const out: string[] = [];
  const n = node.name;
  if (!st.ready || !st.applied) return [`${n}: agent has not applied a first full sync yet`];
  if (st.errors?.sync) out.push(`${n}: agent sync failing: ${st.errors.sync}`);
  const applied = st.applied.versions ?? {};
  for (const k of KINDS) {
    if (!rvAtLeast(applied[k.agent], versions[k.api])) out.push(`${n}: ${k.api} applied at ${applied[k.agent] || '(none)'} < API ${versions[k.api]}`);
    const want = new Set((api.get(k.api) ?? []).map(objKey));
    const have = new Set(
      ((k.agent === 'nodes' ? (state.nodes ?? []).map((x) => ({ metadata: x.name !== undefined ? { name: x.name } : {} })) : state[k.agent]) ?? []).map(objKey),
    );
    const missing = [...want].filter((x) => !have.has(x));
    const extra = [...have].filter((x) => !want.has(x));
    const list = (xs: string[]): string => `${xs.slice(0, 3).join(' ')}${xs.length > 3 ? ` (+${xs.length - 3})` : ''}`;
    if (missing.length > 0) out.push(`${n}: agent has not seen ${k.api} ${list(missing)}`);
    if (extra.length > 0) out.push(`${n}: agent still has deleted ${k.api} ${list(extra)}`);
  }
  // A sync pending: the cache moved past what was applied. A watch bookmark moves it too, without
  // anything to apply; such a difference stays put, a real one is applied within milliseconds.
  const cache = st.api?.versions ?? {};
  const differs = KINDS.some((k) => (cache[k.agent] ?? '') !== (applied[k.agent] ?? ''));
  const sig = `${JSON.stringify(cache)}|${st.applied.generation ?? ''}`;
  const prev = stable.get(n);
  if (!prev || prev.sig !== sig) stable.set(n, { sig, since: now });
  const since = stable.get(n)?.since ?? now;
  if (differs && now - since < BOOKMARK_SETTLE_MS) out.push(`${n}: agent sync pending (cache ahead of the applied state)`);
  return out;
}

/** One look: the API's pods and lists, and every node's agent. */
export async function checkOnce(state: LabState, stable: Stability = new Map()): Promise<WaitSnapshot> {
  const listP = kubectl(state, ['get', KINDS.map((k) => k.api).join(','), '-A', '-o', 'json'], { timeoutMs: 20_000 });
  const agentsP = Promise.all(
    state.nodes.map(async (node) => {
      try {
        const [st, cache] = await Promise.all([agentGet<AgentStatus>(node, '/status'), agentGet<AgentState>(node, '/state', 10_000)]);
        return { node, st, cache };
      } catch (e) {
        return { node, error: (e as Error).message };
      }
    }),
  );
  const [list, agents] = await Promise.all([listP, agentsP]);
  const now = Date.now();
  const versions = Object.fromEntries(KINDS.map((k) => [k.api, ''])) as Record<ApiKind, string>;
  if (list.code !== 0) return { pending: [`the API: kubectl get: ${list.stderr.trim() || `exit ${list.code}`}`], versions, pods: 0 };
  const items = (JSON.parse(list.stdout) as { items?: ApiObject[] }).items ?? [];
  const byKind = new Map<ApiKind, ApiObject[]>(KINDS.map((k) => [k.api, items.filter((o) => o.kind === k.kind)]));
  for (const k of KINDS) versions[k.api] = maxRv((byKind.get(k.api) ?? []).map((o) => o.metadata?.resourceVersion ?? '').filter(Boolean));
  const pending: string[] = [];
  const pods = byKind.get('pods') ?? [];
  const notRunning: string[] = [];
  const notes: string[] = [];
  for (const p of pods) {
    const phase = p.status?.phase ?? 'Pending';
    const sandbox = sandboxOnly(p);
    if (sandbox) notes.push(sandbox);
    if (p.metadata?.deletionTimestamp) notRunning.push(`${objKey(p)} (terminating)`);
    else if (phase === 'Succeeded' || phase === 'Failed') continue;
    else if (phase !== 'Running' && !sandbox) notRunning.push(`${objKey(p)} (${phase})`);
    else if (!(p.status?.podIPs ?? []).some((x) => x.ip)) notRunning.push(`${objKey(p)} (Running, no podIPs yet)`);
  }
  if (notRunning.length > 0)
    pending.push(
      `${notRunning.length} pod(s) not Running with addresses: ${notRunning.slice(0, 5).join(', ')}${notRunning.length > 5 ? `, … (+${notRunning.length - 5})` : ''}`,
    );
  for (const a of agents) {
    if ('error' in a) pending.push(`${a.node.name}: agent not answering on its socket (${a.error})`);
    else pending.push(...agentPending(a.node, a.st, a.cache, byKind, versions, stable, now));
  }
  return { pending, versions, pods: pods.length, notes };
}

export interface WaitResult {
  ok: boolean;
  ms: number;
  pending: string[];
  /** The closing line: what is settled (or what is not). */
  summary: string;
}

/**
 * Polls until the lab has settled or `timeoutMs` passed. `say` gets a line
 * saying what it waits for, a line each time what is pending changes, and the
 * closing line.
 */
export async function waitForLab(state: LabState, opts: { timeoutMs?: number; say?: (line: string) => void } = {}): Promise<WaitResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  const say = opts.say ?? (() => {});
  const t0 = Date.now();
  const deadline = t0 + timeoutMs;
  const stable: Stability = new Map();
  const nodes = state.nodes.map((n) => n.name).join(', ');
  say(
    `waiting for: every pod Running with its addresses, and the agents on ${nodes} to have applied ${KINDS.map((k) => k.api).join(', ')} as the API has them now (up to ${Math.round(timeoutMs / 1000)} s)`,
  );
  let last = '';
  let snap: WaitSnapshot = { pending: ['nothing checked yet'], versions: {} as Record<ApiKind, string>, pods: 0 };
  for (;;) {
    try {
      snap = await checkOnce(state, stable);
    } catch (e) {
      snap = { ...snap, pending: [`check failed: ${(e as Error).message}`] };
    }
    const ms = Date.now() - t0;
    if (snap.pending.length === 0) {
      const v = KINDS.map((k) => `${k.api}@${snap.versions[k.api] || '-'}`).join(' ');
      const summary = `lab settled in ${(ms / 1000).toFixed(1)} s: ${snap.pods} pod(s) Running with addresses; agents on ${nodes} applied ${v}`;
      for (const n of snap.notes ?? []) say(`  note: ${n}`);
      say(summary);
      return { ok: true, ms, pending: [], summary };
    }
    const now = snap.pending.join('\n');
    if (now !== last) {
      say(`  still waiting (${(ms / 1000).toFixed(1)} s):`);
      for (const p of snap.pending) say(`    ${p}`);
      last = now;
    }
    if (Date.now() >= deadline) {
      const summary = `not settled after ${(timeoutMs / 1000).toFixed(0)} s; still pending:\n${snap.pending.map((p) => `  ${p}`).join('\n')}`;
      return { ok: false, ms, pending: snap.pending, summary };
    }
    await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
  }
}

/** `scripts/lab wait`: 0 once settled, 1 on timeout or when the lab is not up. */
export async function waitCommand(a: { timeout?: string | number }): Promise<number> {
  const out = (l: string): void => void process.stdout.write(`${l}\n`);
  const err = (l: string): void => void process.stderr.write(`lab: wait: ${l}\n`);
  let timeoutMs: number;
  let state: LabState;
  try {
    timeoutMs = a.timeout === undefined ? DEFAULT_WAIT_TIMEOUT_MS : parseDuration(a.timeout, '--timeout');
    state = labState();
  } catch (e) {
    if (e instanceof LabCommandError) {
      err(e.message);
      return 1;
    }
    throw e;
  }
  const r = await waitForLab(state, { timeoutMs, say: out });
  if (!r.ok) {
    err(r.summary);
    return 1;
  }
  return 0;
}
