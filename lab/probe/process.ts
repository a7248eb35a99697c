// Running the probe entry points inside a pod's netns as child processes:
// `nsenter --net=PATH -- node serve-main.ts ...` and `... probe-main.ts --stdin`.
// nsenter (without --fork) execs the command, so the child pid is node's own
// and signals reach it directly. Works with any netns file: a bind mount under
// /var/run/netns or /proc/PID/ns/net.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { InternalError } from '../../src/errors.ts';
import type { ProbeResult, ProbeTarget } from './client.ts';
import type { ReadyEvent, SctpInitEvent } from './server.ts';

/** Where the entry points live (next to this file when running from source). */
export const SERVE_MAIN = fileURLToPath(new URL('./serve-main.ts', import.meta.url));
export const PROBE_MAIN = fileURLToPath(new URL('./probe-main.ts', import.meta.url));

/**
 * The node that runs the .ts entry points: this one when it strips types by
 * itself (Node >= 24, as package.json pins), else the repo's pinned
 * node_modules/.bin/node (e.g. when vitest was started by an older system node).
 */
export function defaultNode(): string {
  if (Number(process.versions.node.split('.')[0]) >= 24) return process.execPath;
  const pinned = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));
  return fs.existsSync(pinned) ? pinned : process.execPath;
}

export interface SpawnOptions {
  /** argv that starts the entry point, before its flags; default `[defaultNode(), <entry>.ts]`. */
  command?: readonly string[];
  /** The nsenter binary; default `nsenter`. */
  nsenter?: string;
  /**
   * NODE_COMPILE_CACHE for the children, so each does not strip the types of
   * every module again (halves a prober's start-up); false to leave it unset.
   * Default: $NODE_COMPILE_CACHE, else <tmpdir>/weir-probe-compile-cache.
   */
  compileCache?: string | false;
}

function childEnv(o: SpawnOptions): NodeJS.ProcessEnv {
  if (o.compileCache === false) return process.env;
  const dir = o.compileCache ?? process.env.NODE_COMPILE_CACHE ?? path.join(os.tmpdir(), 'weir-probe-compile-cache');
  return { ...process.env, NODE_COMPILE_CACHE: dir };
}

/** [cmd, args] running `argv` in the netns at `netnsPath`. */
export function inNetnsArgv(netnsPath: string, argv: readonly string[], o: SpawnOptions = {}): [string, string[]] {
  return [o.nsenter ?? 'nsenter', [`--net=${netnsPath}`, '--', ...argv]];
}

/** Something that reports SCTP INITs seen by a pod (a ServerProcess, or the lab's own). */
export interface SctpEventSource {
  /** Calls `fn` for each INIT from now on; returns an unsubscribe function. */
  onSctpInit(fn: (ev: SctpInitEvent) => void): () => void;
}

export interface ServerProcess extends SctpEventSource {
  readonly pid: number;
  readonly ready: ReadyEvent;
  /** SIGTERM, then SIGKILL after `graceMs` (default 2000); resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL now, synchronously; for cleanup paths. Idempotent. */
  kill(): void;
}

export interface ServerSpawnOptions extends SpawnOptions {
  netnsPath: string;
  name: string;
  tcp?: readonly number[];
  udp?: readonly number[];
  sctp?: readonly number[];
  /** Give up waiting for `ready` after this long; default 15000 ms. */
  readyTimeoutMs?: number;
}

const exited = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

function waitExit(c: ChildProcess): Promise<void> {
  return exited(c) ? Promise.resolve() : new Promise((res) => c.once('exit', () => res()));
}

/**
 * Starts serve-main.ts in a netns and resolves once it printed `ready`, so
 * every listener is bound. The child also exits if this process dies (its
 * stdin is a pipe from us and it runs with --exit-on-stdin-eof).
 */
export function spawnServer(o: ServerSpawnOptions): Promise<ServerProcess> {
  const list = (flag: string, ports?: readonly number[]): string[] => (ports?.length ? [flag, ports.join(',')] : []);
  const argv = [
    ...(o.command ?? [defaultNode(), SERVE_MAIN]),
    '--name',
    o.name,
    '--exit-on-stdin-eof',
    ...list('--tcp', o.tcp),
    ...list('--udp', o.udp),
    ...list('--sctp', o.sctp),
  ];
  const [cmd, args] = inNetnsArgv(o.netnsPath, argv, o);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv(o) });
  const listeners = new Set<(ev: SctpInitEvent) => void>();
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 8192) stderr += d;
  });
  child.stdin?.on('error', () => {}); // EPIPE once it exited
  const kill = (): void => {
    if (!exited(child)) child.kill('SIGKILL');
  };
  return new Promise((resolve, reject) => {
    let ready: ReadyEvent | undefined;
    const fail = (why: string): void => {
      clearTimeout(timer);
      kill();
      reject(new InternalError(`probe server ${o.name} in ${o.netnsPath}: ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
    };
    const timer = setTimeout(() => fail('no ready event in time'), o.readyTimeoutMs ?? 15_000);
    child.once('error', (e) => fail(e.message));
    child.once('exit', (code, sig) => {
      if (!ready) fail(`exited (${sig ?? code}) before ready`);
    });
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      let ev: { event?: string; message?: string };
      try {
        ev = JSON.parse(line) as typeof ev;
      } catch {
        return;
      }
      if (ev.event === 'sctp-init') for (const fn of listeners) fn(ev as SctpInitEvent);
      else if (ev.event === 'error' && !ready) fail(ev.message ?? 'error');
      else if (ev.event === 'ready' && !ready) {
        ready = ev as ReadyEvent;
        clearTimeout(timer);
        resolve({
          pid: child.pid!,
          ready,
          onSctpInit: (fn) => {
            listeners.add(fn);
            return () => void listeners.delete(fn);
          },
          kill,
          stop: async (graceMs = 2000) => {
            if (exited(child)) return;
            child.kill('SIGTERM');
            const t = setTimeout(kill, graceMs);
            await waitExit(child);
            clearTimeout(t);
          },
        });
      }
    });
  });
}

/**
 * Runs probe-main.ts in `netnsPath` over `targets` (sent as JSON on stdin);
 * `onResult` sees each result line as it arrives. Resolves with the results
 * in target order; rejects if the prober fails or leaves a target out.
 */
export function runProberProcess(
  netnsPath: string,
  targets: readonly ProbeTarget[],
  timeoutMs: number,
  onResult?: (r: ProbeResult, index: number) => void,
  o: SpawnOptions = {},
): Promise<ProbeResult[]> {
  if (targets.length === 0) return Promise.resolve([]);
  const argv = [...(o.command ?? [defaultNode(), PROBE_MAIN]), '--stdin', '--timeout', String(timeoutMs)];
  const [cmd, args] = inNetnsArgv(netnsPath, argv, o);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv(o) });
  const results: (ProbeResult | undefined)[] = new Array<ProbeResult | undefined>(targets.length);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 8192) stderr += d;
  });
  child.stdin?.on('error', () => {});
  child.stdin?.end(JSON.stringify(targets));
  // The prober bounds itself by the timeout; this only catches a wedged one.
  const guard = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 15_000);
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    let r: ProbeResult & { index?: number };
    try {
      r = JSON.parse(line) as typeof r;
    } catch {
      return;
    }
    const i = r.index;
    if (typeof i !== 'number' || i < 0 || i >= targets.length || results[i]) return;
    delete r.index;
    results[i] = r;
    onResult?.(r, i);
  });
  return new Promise((resolve, reject) => {
    child.once('error', (e) => {
      clearTimeout(guard);
      reject(new InternalError(`prober in ${netnsPath}: ${e.message}`));
    });
    child.once('close', (code, sig) => {
      clearTimeout(guard);
      const missing = results.indexOf(undefined);
      if (code !== 0 || missing >= 0 || results.length !== targets.length) {
        const why = code !== 0 ? `exited (${sig ?? code})` : `no result for target ${missing}`;
        reject(new InternalError(`prober in ${netnsPath}: ${why}${stderr ? `: ${stderr.trim()}` : ''}`));
        return;
      }
      resolve(results as ProbeResult[]);
    });
  });
}
