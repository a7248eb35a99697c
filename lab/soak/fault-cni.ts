// The CNI plugin killed mid-ADD or mid-DEL. containerd runs the plugin
// (/opt/cni/bin/weir) as a child process in the node container, so the
// process is visible in this machine's /proc: a watcher polls /proc for a
// new `weir` process in that node's pid namespace whose CNI_COMMAND is the
// verb, and SIGKILLs it `killDelayMs` after it appeared (a spread of delays
// lands the kill in different stages: start-up, IPAM, links, the wait for
// the agent). The soak then makes the verb happen on that node: a pod
// created there (ADD) or a running pod there deleted (DEL). kubelet retries
// both; the fault is done when the pod runs (ADD) or is gone (DEL).
//
// Why the pid namespace and not the network namespace: the plugin enters
// the pod's network namespace while it works, and containerd's children
// share the node container's pid namespace.
import path from 'node:path';
import { sleep } from '../commands/common.ts';
import type { FaultContext } from './faults.ts';
import { cmdline, nodePidNs, pidNs, pids, processEnv } from './procs.ts';
import { SOAK_LABEL } from './scenario.ts';
import type { PlannedFault } from './schedule.ts';
import type { KObject } from './timeline.ts';
import { until } from './until.ts';

const POLL_MS = 2;
/** A pid is looked at again for this long: between fork and exec it still shows its parent's command line. */
const EXEC_GRACE_MS = 200;

interface Kill {
  pid: number;
  /** How long the process had lived (since the watcher saw it) when it was killed. */
  atMs: number;
  containerId: string;
}

/** What one watch saw: the plugin killed, the plugin done before its kill, or no plugin run at all. */
export type WatchResult = { killed: Kill } | { finishedFirst: string } | undefined;

/**
 * Watches for the next run of the plugin for `verb` in this pid namespace
 * and kills it `delayMs` after it appeared; resolves with the first such
 * run, killed or not, or undefined when none starts within `timeoutMs`.
 */
export function watchPlugin(pidNamespace: string, verb: 'ADD' | 'DEL', delayMs: number, timeoutMs: number): { result: Promise<WatchResult>; cancel(): void } {
  let cancelled = false;
  const known = new Set(pids());
  const young = new Map<number, number>();
  const result = (async (): Promise<WatchResult> => {
    const deadline = Date.now() + timeoutMs;
    while (!cancelled && Date.now() < deadline) {
      const now = Date.now();
      for (const pid of pids()) {
        if (!known.has(pid)) {
          known.add(pid);
          young.set(pid, now);
        }
      }
      for (const [pid, seen] of young) {
        if (now - seen > EXEC_GRACE_MS) {
          young.delete(pid);
          continue;
        }
        if (path.basename(cmdline(pid)[0] ?? '') !== 'weir' || pidNs(pid, 'pid') !== pidNamespace) continue;
        young.delete(pid);
        if (processEnv(pid, 'CNI_COMMAND') !== verb) continue;
        const containerId = processEnv(pid, 'CNI_CONTAINERID') ?? '?';
        await sleep(delayMs);
        // Still the plugin (a pid is not reused within milliseconds, but check): kill it mid-verb.
        if (path.basename(cmdline(pid)[0] ?? '') === 'weir') {
          try {
            process.kill(pid, 'SIGKILL');
            return { killed: { pid, atMs: Date.now() - seen, containerId } };
          } catch {
            // exited meanwhile
          }
        }
        return { finishedFirst: containerId };
      }
      await sleep(POLL_MS);
    }
    return undefined;
  })();
  return {
    result,
    cancel: () => {
      cancelled = true;
    },
  };
}

type PodObj = KObject & { spec?: { nodeName?: string }; status?: { podIPs?: { ip: string }[] } };

/** Soak pods on this node that run with addresses and are not being deleted, per the soak's watch. */
function runningOn(ctx: FaultContext, node: string): string[] {
  const latest = ctx.recorder.timelines.pods.latest;
  return [...(latest?.objects.values() ?? [])]
    .map((o) => o as PodObj)
    .filter(
      (p) => p.metadata?.labels?.[SOAK_LABEL] === '1' && p.spec?.nodeName === node && !p.metadata?.deletionTimestamp && (p.status?.podIPs ?? []).length > 0,
    )
    .map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`)
    .filter((k) => ctx.scenario.pods.get(k)?.prober === false);
}

const podRunning = (ctx: FaultContext, key: string): boolean => {
  const p = ctx.recorder.timelines.pods.latest?.objects.get(key) as PodObj | undefined;
  return Boolean(p && !p.metadata?.deletionTimestamp && (p.status?.podIPs ?? []).length > 0);
};
const podGone = (ctx: FaultContext, key: string): boolean => !ctx.recorder.timelines.pods.latest?.objects.has(key);

/** Makes the verb happen on the node; the pod it concerns. */
async function trigger(ctx: FaultContext, f: PlannedFault, verb: 'ADD' | 'DEL'): Promise<string | undefined> {
  if (verb === 'ADD') {
    const a = ctx.scenario.createPodOn(f.node);
    await ctx.churn.apply(a);
    return `${a.ns}/${(a as { name: string }).name}`;
  }
  const key = runningOn(ctx, f.node)[0];
  if (!key) return undefined;
  const a = ctx.scenario.deletePod(key);
  if (!a) return undefined;
  await ctx.churn.apply(a);
  return key;
}

/** A pod to delete on the node: one that runs there, or a new one once it runs. */
async function ensureRunningPod(ctx: FaultContext, node: string): Promise<boolean> {
  if (runningOn(ctx, node).length > 0) return true;
  const a = ctx.scenario.createPodOn(node);
  await ctx.churn.apply(a);
  return (await until(() => (podRunning(ctx, `${a.ns}/${(a as { name: string }).name}`) ? true : undefined), 120_000)) === true;
}

/** How many times a kill is tried (each on a new pod, each sooner) before the fault counts as missed. */
const ATTEMPTS = 5;

export async function cniKill(ctx: FaultContext, f: PlannedFault): Promise<[boolean, string]> {
  const verb = f.kind === 'cni-kill-add' ? 'ADD' : 'DEL';
  const n = ctx.state.nodes.find((x) => x.name === f.node);
  const ns = n && nodePidNs(n);
  if (!ns) return [false, `no pid namespace for node ${f.node}`];
  const notes: string[] = [];
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    if (verb === 'DEL' && !(await ensureRunningPod(ctx, f.node))) return [false, 'no pod came to run on the node to delete'];
    // Later attempts kill sooner: the earlier run finished before its kill.
    const delay = attempt === ATTEMPTS ? 0 : Math.round(f.killDelayMs / 2 ** (attempt - 1));
    const w = watchPlugin(ns, verb, delay, 60_000);
    const key = await trigger(ctx, f, verb);
    if (!key) {
      w.cancel();
      return [false, 'no pod to delete on the node'];
    }
    const seen = await w.result;
    if (!seen || 'finishedFirst' in seen) {
      notes.push(`attempt ${attempt} (${key}): ${seen ? `${verb} finished within ${delay} ms` : `no ${verb} seen`}`);
      continue;
    }
    const kill = seen.killed;
    const t0 = Date.now();
    // Recovered: kubelet's retry made the pod run (ADD) or let it go (DEL); or the churn deleted the pod meanwhile.
    const outcome = await until(() => {
      if (verb === 'ADD' ? podRunning(ctx, key) : podGone(ctx, key)) return verb === 'ADD' ? 'pod running' : 'pod gone';
      return verb === 'ADD' && !ctx.scenario.pods.has(key) ? 'pod deleted by the churn before it ran' : undefined;
    }, 180_000);
    const after = outcome ? `${outcome} ${Date.now() - t0} ms later` : `pod NOT ${verb === 'ADD' ? 'running' : 'gone'} within 180 s`;
    return [
      true,
      `${[...notes, ''].join('; ')}killed ${verb} of ${key} (pid ${kill.pid}, container ${kill.containerId.slice(0, 12)}) ${kill.atMs} ms into it; ${after}`,
    ];
  }
  return [false, notes.join('; ')];
}
