// What `scripts/lab wait | matrix | demo` share: the lab's state, kubectl
// (the pinned one, as cluster admin, run in the kind cluster's namespace like
// `scripts/lab kubectl`), the agents' status sockets, and commands run in a
// pod's netns.
//
// Nothing here runs in, or configures, the machine's root network namespace:
// kubectl runs in the cluster's namespace, probes in pod namespaces; the
// agents' unix sockets are files under each node's shared root.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { CniCode, WeirError } from '../../src/errors.ts';
import { kindEnv, kindPaths } from '../kind.ts';
import { type LabPod, type LabState, type LabStateNode, labDir, labPods, readState, recordPath } from '../state.ts';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Why a lab command cannot go on: the message is the user's, printed as it is. */
export class LabCommandError extends WeirError {
  readonly code = 'WEIR_LAB_COMMAND';
  // The lab's errors never reach a container runtime; the hierarchy asks for a code all the same.
  readonly cniCode = CniCode.Internal;
}

/** The caller's environment, with podman's and kubectl's pointed at the lab's cluster. */
export function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...kindEnv(kindPaths()), ...extra };
}

/** The state of a lab that is up (recorded by `up`, every node running), or a LabCommandError saying why not. */
export function labState(dir = labDir()): LabState {
  if (process.getuid?.() !== 0) throw new LabCommandError('the lab needs root (network namespaces); try sudo');
  const state = readState(dir);
  if (!state) throw new LabCommandError(`the lab is not up (no ${recordPath(dir)}, or its namespace is gone); run \`scripts/lab up\``);
  if (state.nodes.length === 0 || !fs.existsSync(state.kubeconfig))
    throw new LabCommandError("the lab's kind cluster has no running node; run `scripts/lab down && scripts/lab up`");
  return state;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Milliseconds from spawn to exit. */
  ms: number;
  timedOut: boolean;
}

/** Runs argv to completion (killed after `timeoutMs`); never rejects. */
export function run(argv: readonly string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const [cmd, ...args] = argv as [string, ...string[]];
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? userEnv() });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 64 * 1024) stderr += d;
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${stderr}${e.message}`, ms: Date.now() - t0, timedOut });
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128 + (sig === 'SIGKILL' ? 9 : 15), stdout, stderr, ms: Date.now() - t0, timedOut });
    });
  });
}

/** `kubectl ARGS` run as cluster admin in the cluster's namespace (where its API server listens). */
export const kubectlArgv = (state: LabState, args: readonly string[]): string[] => [
  'nsenter',
  `--net=/run/netns/${state.hostNetns}`,
  '--',
  state.kubectl,
  `--kubeconfig=${state.kubeconfig}`,
  `--cache-dir=${path.join(labDir(), 'kubectl-cache')}`,
  ...args,
];

/** The pinned kubectl as cluster admin, in the cluster's namespace (where `scripts/lab kubectl` runs it). */
export function kubectl(state: LabState, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const argv = kubectlArgv(state, ['--request-timeout=15s', ...args]);
  return run(argv, { ...opts, timeoutMs: opts.timeoutMs ?? 30_000 });
}

/** kubectl that must succeed; its stdout. */
export async function kubectlOk(state: LabState, args: readonly string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await kubectl(state, args, opts);
  if (r.code !== 0) throw new LabCommandError(`kubectl ${args.join(' ')}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.trim()}`);
  return r.stdout;
}

export async function kubectlJson<T>(state: LabState, args: readonly string[]): Promise<T> {
  return JSON.parse(await kubectlOk(state, [...args, '-o', 'json'])) as T;
}

/** The agent's status socket of a node, seen from the machine (a file under the node's shared root). */
export const agentSocket = (node: LabStateNode): string => path.join(node.root, 'run/weir/agent.sock');

/** One GET on a node agent's unix socket; rejects when nobody answers or on a non-200. */
export function agentGet<T>(node: LabStateNode, urlPath: string, timeoutMs = 3000): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: agentSocket(node), path: urlPath, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${body.trim().slice(0, 200)}`));
        try {
          resolve(JSON.parse(body) as T);
        } catch (e) {
          reject(new Error(`bad JSON from ${urlPath}: ${(e as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === 'ENOENT' ? 'no agent socket' : e.code === 'ECONNREFUSED' ? 'agent not listening' : e.message)),
    );
    req.end();
  });
}

/** The lab's pods with their network namespaces. */
export async function runningPods(): Promise<LabPod[]> {
  return labPods();
}

/** The netns file a pod's processes run in (its node's for hostNetwork pods). */
export function podNetnsPath(state: LabState, pod: LabPod): string | undefined {
  if (pod.netnsPath) return pod.netnsPath;
  if (pod.hostNetwork) return state.nodes.find((x) => x.name === pod.node)?.netns;
  return undefined;
}

/** argv running `argv` in the netns at `netnsPath` (nsenter execs it: signals reach it directly). */
export const inNetns = (netnsPath: string, argv: readonly string[]): string[] => ['nsenter', `--net=${netnsPath}`, '--', ...argv];

/** The pinned agnhost (next to the pinned kubectl). */
export const agnhostPath = (state: LabState): string => path.join(state.k8sBinDir || path.dirname(state.kubectl), 'agnhost');

/** Parses a duration: `120`, `120s`, `2m`, `500ms` → milliseconds. */
export function parseDuration(v: string | number, what: string): number {
  if (typeof v === 'number') {
    if (!(v > 0)) throw new LabCommandError(`${what} must be positive`);
    return v * 1000;
  }
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw new LabCommandError(`bad ${what} ${JSON.stringify(v)}: want seconds, or a number with ms, s or m`);
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  if (!(ms > 0)) throw new LabCommandError(`${what} must be positive`);
  return ms;
}

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return out;
}
