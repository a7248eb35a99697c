// The faults, each a function of the lab and a planned fault (schedule.ts),
// each waiting after the fault for the real signal that the system is back
// (a new agent's first sync, the API's /readyz), never a fixed sleep. The
// only fixed waits are the faults' own durations (how long a process stays
// stopped).
//
//   agent-kill      SIGKILL the node's weir-agent; its kubelet restarts it
//   agent-starve    the node's weir-agent stopped but for 50 ms a second (SIGSTOP/SIGCONT), for 8-20 s
//   apiserver-stop  SIGSTOP kube-apiserver for some seconds, then restart it
//                   (its container removed; kubelet starts the static pod's again)
//   etcd-compact    compact etcd at its current revision, then restart
//                   kube-apiserver the same way,
//                   so every watch resumes from a compacted version: 410
//   cni-kill-add    SIGKILL the weir plugin mid-ADD (fault-cni.ts)
//   cni-kill-del    SIGKILL the weir plugin mid-DEL (fault-cni.ts)
//
// Why etcd-compact restarts the API server: kube-apiserver serves watches
// from its watch cache, which keeps following etcd through a compaction;
// watchers only get 410 when they resume from a version older than what the
// server holds, which a restarted server (its cache rebuilt from a
// compacted etcd) guarantees.
import path from 'node:path';
import { agentGet, kubectl, run, sleep } from '../commands/common.ts';
import type { AgentStatus } from '../commands/wait.ts';
import type { LabState } from '../state.ts';
import type { Churn } from './churn.ts';
import { cniKill } from './fault-cni.ts';
import { agentPid, apiserverPid } from './procs.ts';
import type { Recorder } from './recorder.ts';
import type { Scenario } from './scenario.ts';
import type { PlannedFault } from './schedule.ts';
import { until } from './until.ts';

export interface FaultContext {
  state: LabState;
  churn: Churn;
  scenario: Scenario;
  recorder: Recorder;
  log: (line: string) => void;
  /** Processes stopped by a fault: continued on the way out, whatever happens. */
  stopped: Set<number>;
}

export interface FaultRecord {
  kind: PlannedFault['kind'];
  node: string;
  start: number;
  end: number;
  ok: boolean;
  detail: string;
}

const node = (ctx: FaultContext, name: string) => {
  const n = ctx.state.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no node ${name}`);
  return n;
};

async function apiReady(ctx: FaultContext): Promise<boolean> {
  return (await kubectl(ctx.state, ['get', '--raw=/readyz', '--request-timeout=2s'], { timeoutMs: 5000 })).code === 0;
}

/** The agent on a node answers /status, ready, with a sync applied after `since`. */
async function agentSyncedSince(ctx: FaultContext, name: string, since: number): Promise<boolean> {
  const st = await agentGet<AgentStatus>(node(ctx, name), '/status', 1000).catch(() => undefined);
  return Boolean(st?.ready && st.applied?.at && Date.parse(st.applied.at) >= since);
}

async function agentKill(ctx: FaultContext, f: PlannedFault): Promise<[boolean, string]> {
  const old = agentPid(ctx.state, f.node);
  if (!old) return [false, 'no weir-agent process found'];
  const killedAt = Date.now();
  process.kill(old, 'SIGKILL');
  const back = await until(async () => {
    const now = agentPid(ctx.state, f.node);
    return now && now !== old && (await agentSyncedSince(ctx, f.node, killedAt)) ? now : undefined;
  }, 180_000);
  return back
    ? [true, `pid ${old} killed; pid ${back} applied its first sync ${Date.now() - killedAt} ms later`]
    : [true, `pid ${old} killed; NOT back with a sync within 180 s`];
}

/** A starved agent runs this long in each period: about 5% of one CPU. */
const STARVE_RUN_MS = 50;
const STARVE_PERIOD_MS = 1000;

async function agentStarve(ctx: FaultContext, f: PlannedFault): Promise<[boolean, string]> {
  const pid = agentPid(ctx.state, f.node);
  if (!pid) return [false, 'no weir-agent process found'];
  const t0 = Date.now();
  // Stopped, and let run for a moment each period, like a CPU quota it has used up: it makes slow progress, not none.
  ctx.stopped.add(pid);
  try {
    while (Date.now() - t0 < f.durationMs) {
      process.kill(pid, 'SIGSTOP');
      await sleep(STARVE_PERIOD_MS - STARVE_RUN_MS);
      process.kill(pid, 'SIGCONT');
      await sleep(STARVE_RUN_MS);
    }
  } finally {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // gone (its liveness probe may have had it restarted)
    }
    ctx.stopped.delete(pid);
  }
  const resumed = Date.now();
  const ok = await until(() => agentSyncedSince(ctx, f.node, t0 - 3_600_000), 60_000);
  return [
    true,
    `pid ${pid} given ${STARVE_RUN_MS} ms of every ${STARVE_PERIOD_MS} ms for ${resumed - t0} ms; answering again ${ok ? `${Date.now() - resumed} ms after` : 'NOT within 60 s'}`,
  ];
}

/** A command in the control-plane node container's own namespaces (its crictl talks to its containerd). */
async function inControlPlane(ctx: FaultContext, argv: string[]): Promise<string> {
  const cp = node(ctx, ctx.state.nodes[0]?.name ?? '');
  const r = await run(['nsenter', '-t', String(cp.pid), '-m', '-u', '-i', '-n', '-p', '--', ...argv], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} on ${cp.name}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}

/**
 * Restarts kube-apiserver: its container removed (stopped at once), so that
 * kubelet starts a new one. Why removed and not just killed: kubelet delays
 * the restart of an exited container by a back-off that doubles with each
 * restart (to minutes), while a container that is gone is started again
 * straight away; a long soak restarts the API server many times.
 * Resolves when a new process answers /readyz; the ms it took.
 */
async function restartApiserver(ctx: FaultContext, old: number): Promise<{ pid: number; ms: number } | undefined> {
  const t0 = Date.now();
  const ids = (await inControlPlane(ctx, ['crictl', 'ps', '--name', '^kube-apiserver$', '--state', 'running', '-q'])).split('\n').filter(Boolean);
  if (ids.length !== 1) throw new Error(`expected one running kube-apiserver container, found ${ids.length}`);
  await inControlPlane(ctx, ['crictl', 'rm', '--force', ids[0] as string]);
  const pid = await until(
    async () => {
      let now: number | undefined;
      try {
        now = apiserverPid(ctx.state);
      } catch {
        return undefined;
      }
      return now !== old && (await apiReady(ctx)) ? now : undefined;
    },
    240_000,
    500,
  );
  return pid ? { pid, ms: Date.now() - t0 } : undefined;
}

/** Stopped (SIGSTOP: its clients see a server that hangs, not one that closes), then restarted. */
async function apiserverStop(ctx: FaultContext, f: PlannedFault): Promise<[boolean, string]> {
  const pid = apiserverPid(ctx.state);
  const t0 = Date.now();
  process.kill(pid, 'SIGSTOP');
  ctx.stopped.add(pid);
  try {
    await sleep(f.durationMs);
  } finally {
    // Let it run again before the runtime stops it: a stopped process ignores the runtime's SIGTERM until continued.
    process.kill(pid, 'SIGCONT');
    ctx.stopped.delete(pid);
  }
  const stoppedMs = Date.now() - t0;
  const back = await restartApiserver(ctx, pid);
  return [true, `pid ${pid} stopped ${stoppedMs} ms, then restarted: ${back ? `pid ${back.pid} ready ${back.ms} ms later` : 'NOT ready within 240 s'}`];
}

/** etcd's JSON gateway (etcd serves gRPC-gateway JSON on its client port), from the control-plane node's namespace, with the API server's client certificate. */
async function etcdCall(ctx: FaultContext, api: string, body: object): Promise<Record<string, unknown>> {
  const cp = node(ctx, ctx.state.nodes[0]?.name ?? '');
  const pki = path.join(cp.rootfs, 'etc/kubernetes/pki');
  const argv = [
    'nsenter',
    `--net=${cp.netns}`,
    '--',
    'curl',
    '--silent',
    '--show-error',
    '--fail',
    '--max-time',
    '10',
    '--cacert',
    path.join(pki, 'etcd/ca.crt'),
    '--cert',
    path.join(pki, 'apiserver-etcd-client.crt'),
    '--key',
    path.join(pki, 'apiserver-etcd-client.key'),
    '-X',
    'POST',
    `https://127.0.0.1:2379${api}`,
    '-d',
    JSON.stringify(body),
  ];
  const r = await run(argv, { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`etcd ${api}: ${r.stderr.trim() || r.stdout.trim()}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

async function etcdCompact(ctx: FaultContext): Promise<[boolean, string]> {
  const status = await etcdCall(ctx, '/v3/maintenance/status', {});
  const rev = (status['header'] as { revision?: string } | undefined)?.revision;
  if (!rev) return [false, `no revision in etcd's status: ${JSON.stringify(status).slice(0, 200)}`];
  await etcdCall(ctx, '/v3/kv/compaction', { revision: rev, physical: true });
  const expiredBefore = Object.values(ctx.recorder.expired).reduce((a, b) => a + b, 0);
  const old = apiserverPid(ctx.state);
  const back = await restartApiserver(ctx, old);
  if (!back) return [true, `compacted at revision ${rev}; API server restarted, NOT ready within 240 s`];
  // The soak's own watches resume after the API is back: their 410 is the evidence the compaction reached a watcher.
  const seen = await until(() => (Object.values(ctx.recorder.expired).reduce((a, b) => a + b, 0) > expiredBefore ? true : undefined), 30_000);
  const got = Object.values(ctx.recorder.expired).reduce((a, b) => a + b, 0) - expiredBefore;
  return [
    true,
    `compacted at revision ${rev}; API server restarted (pid ${old} → ${back.pid}), ready in ${back.ms} ms; the soak's watches got ${got} × 410${seen ? '' : ' (none within 30 s)'}`,
  ];
}

export async function injectFault(ctx: FaultContext, f: PlannedFault): Promise<FaultRecord> {
  const start = Date.now();
  let res: [boolean, string];
  try {
    switch (f.kind) {
      case 'agent-kill':
        res = await agentKill(ctx, f);
        break;
      case 'agent-starve':
        res = await agentStarve(ctx, f);
        break;
      case 'apiserver-stop':
        res = await apiserverStop(ctx, f);
        break;
      case 'etcd-compact':
        res = await etcdCompact(ctx);
        break;
      case 'cni-kill-add':
      case 'cni-kill-del':
        res = await cniKill(ctx, f);
        break;
    }
  } catch (e) {
    res = [false, (e as Error).message];
  }
  return { kind: f.kind, node: f.node, start, end: Date.now(), ok: res[0], detail: res[1] };
}

/**
 * Runs the plan in order, each fault not before its time and after the
 * previous one ended (the churn goes on until the last one is over); each
 * record is in `records` from its start.
 */
export async function runFaults(ctx: FaultContext, plan: readonly PlannedFault[], t0: number, records: FaultRecord[]): Promise<void> {
  for (const f of plan) {
    const wait = t0 + f.at - Date.now();
    if (wait > 0) await sleep(wait);
    ctx.log(`fault: ${f.kind} on ${f.node}${f.durationMs ? ` for ${f.durationMs} ms` : ''} (+${Math.round((Date.now() - t0) / 1000)} s)`);
    const rec: FaultRecord = { kind: f.kind, node: f.node, start: Date.now(), end: Number.POSITIVE_INFINITY, ok: false, detail: 'in progress' };
    records.push(rec);
    Object.assign(rec, await injectFault(ctx, f));
    ctx.log(`fault: ${f.kind} on ${f.node}: ${rec.ok ? 'done' : 'NOT injected'} in ${((rec.end - rec.start) / 1000).toFixed(1)} s: ${rec.detail}`);
  }
}
