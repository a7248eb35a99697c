// The agent under test as bench-agent runs it: started in the run's namespace
// (the built executable, or agent/main.ts from source under V8's profilers),
// waited on until ready, stopped; its log's tail for errors; and what it is
// read for: /proc's CPU and memory, its /metrics and /status.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentRequest } from '../../../test/helpers/agent.ts';
import { unlabelledSamples } from '../lib/exposition.ts';
import { IP } from '../lib/host.ts';
import { BENCH_NODE } from '../policy/cluster.ts';

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

const TICK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

export interface Agent {
  child: ChildProcess;
  pid: number;
  socket: string;
  logFile: string;
  profDir: string;
  /** performance.now() and wall time at spawn. */
  t0: number;
  wall0: number;
  /** The monotonic clock at spawn, in µs (as V8's profiler timestamps). */
  hr0: number;
  exited: Promise<Exit>;
  exit?: Exit;
  /** Set when this script stops it; an exit without it is a crash. */
  stopping?: boolean;
}

/** How bench-agent runs the agent. */
export interface Launch {
  /** The run's temp dir: each agent gets agent-LABEL in it. */
  tmp: string;
  /** argv that runs cmd in the run's namespace. */
  inNs: (cmd: string[]) => string[];
  env: NodeJS.ProcessEnv;
  /** The executable measured, or (with a profiler) node and agent/main.ts. */
  agentBin: string;
  node: string;
  agentMain: string;
  cpuProfile: boolean;
  heapProfile: boolean;
  debounceMs: number | undefined;
  /** Tracks the process (stopped on the way out) and resolves on its exit. */
  track: (child: ChildProcess) => Promise<Exit>;
}

export function startAgent(o: Launch, label: string, kubeconfig: string): Agent {
  const dir = path.join(o.tmp, `agent-${label}`);
  for (const d of ['net.d', 'run', 'data', 'prof']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  const logFile = path.join(dir, 'agent.log');
  const fd = fs.openSync(logFile, 'a');
  const prof = path.join(dir, 'prof');
  const profFlags = [
    ...(o.cpuProfile ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []),
    ...(o.heapProfile ? ['--heap-prof', `--heap-prof-dir=${prof}`, '--heap-prof-interval=65536'] : []),
  ];
  const cmd = o.cpuProfile || o.heapProfile ? [o.node, ...profFlags, o.agentMain] : [o.agentBin];
  const args = [
    `--node-name=${BENCH_NODE}`,
    `--kubeconfig=${kubeconfig}`,
    `--cni-conf-dir=${path.join(dir, 'net.d')}`,
    `--run-dir=${path.join(dir, 'run')}`,
    `--data-dir=${path.join(dir, 'data')}`,
    '--health-address=127.0.0.1:0',
    ...(o.debounceMs === undefined ? [] : [`--debounce-ms=${o.debounceMs}`]),
  ];
  const wall0 = Date.now();
  const t0 = performance.now();
  const child = spawn(IP, o.inNs([...cmd, ...args]), { env: o.env, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const a: Agent = {
    child,
    pid: child.pid as number,
    socket: path.join(dir, 'run/agent.sock'),
    logFile,
    profDir: path.join(dir, 'prof'),
    t0,
    wall0,
    hr0: Number(process.hrtime.bigint() / 1000n),
    exited: o.track(child),
  };
  void a.exited.then((e) => (a.exit = e));
  return a;
}
export const logTail = (a: Agent, n = 15): string => fs.readFileSync(a.logFile, 'utf8').trimEnd().split('\n').slice(-n).join('\n');

/** Polls /readyz until 200; throws when the agent exits, Ctrl-C came (`aborted`), or `timeoutMs` passed. */
export async function waitReady(a: Agent, aborted: () => string | undefined, timeoutMs = 300_000): Promise<{ socketMs: number; readyMs: number }> {
  let socketMs: number | undefined;
  for (;;) {
    if (a.exit) throw new Error(`the agent exited (${a.exit.code ?? a.exit.signal}) before ready:\n${logTail(a)}`);
    if (aborted()) throw new Error(`interrupted (${aborted()})`);
    if (performance.now() - a.t0 > timeoutMs) throw new Error(`the agent was not ready after ${timeoutMs / 1000} s:\n${logTail(a)}`);
    try {
      const r = await agentRequest(a.socket, 'GET', '/readyz', undefined, 5000);
      socketMs ??= performance.now() - a.t0;
      if (r.status === 200) return { socketMs, readyMs: performance.now() - a.t0 };
    } catch {
      // no socket yet
    }
    await sleep(10);
  }
}

export async function stopAgent(a: Agent): Promise<Exit> {
  a.stopping = true;
  if (!a.exit) a.child.kill('SIGTERM');
  const killer = setTimeout(() => a.child.kill('SIGKILL'), 15_000);
  const e = await a.exited;
  clearTimeout(killer);
  return e;
}

/** CPU seconds (user + system) and memory of a process, from /proc. */
export function proc(pid: number): { cpuS: number; rssB: number; hwmB: number; anonB: number; fileB: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { cpuS: (Number(f[11]) + Number(f[12])) / TICK, rssB: kb('VmRSS'), hwmB: kb('VmHWM'), anonB: kb('RssAnon'), fileB: kb('RssFile') + kb('RssShmem') };
}

export const agentMetrics = async (a: Agent): Promise<Record<string, number>> => unlabelledSamples((await agentRequest(a.socket, 'GET', '/metrics')).body);
// biome-ignore lint/suspicious/noExplicitAny: JSON of the agent, the API and the inspector, read field by field for the report.
export const agentStatus = async (a: Agent): Promise<any> => (await agentRequest(a.socket, 'GET', '/status')).json;
