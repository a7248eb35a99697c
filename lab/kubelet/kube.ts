// The kubelet stand-in's API client: the pinned kubectl, always run inside
// the node's network namespace (`ip netns exec NODE kubectl ...`), because
// the API server is only reachable from inside the lab. The caller's own
// (root) namespace is never given an address.
//
// Besides one-shot calls, `watch()` streams a raw watch
// (`kubectl get --raw '/api/v1/pods?watch=1&...'`): kubectl copies the
// response body to stdout as it arrives, one JSON event per line.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { type RunResult, baseEnv, inNetnsArgv, runInNetns } from '../controlplane/process.ts';
import { killGroup, trackChild } from './proc.ts';

export class KubeError extends Error {
  readonly code: number;
  readonly stderr: string;
  constructor(message: string, code: number, stderr: string) {
    super(message);
    this.name = 'KubeError';
    this.code = code;
    this.stderr = stderr;
  }
  get notFound(): boolean {
    return /NotFound|not found|\(404\)/i.test(this.stderr);
  }
  get conflict(): boolean {
    return /AlreadyExists|already exists|\(409\)|Conflict/i.test(this.stderr);
  }
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: any;
}

export interface WatchHandle {
  /** Resolves when the stream ends (server timeout, broken connection, kill). */
  readonly done: Promise<RunResult>;
  kill(): void;
}

/** At most this many kubectl processes at once per node (a burst of pods would otherwise start dozens on 2 cores). */
const MAX_CONCURRENT = 6;

export class Kube {
  readonly netns: string;
  readonly #argv0: string[];
  #running = 0;
  readonly #queue: (() => void)[] = [];

  constructor(netns: string, kubectl: string, kubeconfig: string, cacheDir: string) {
    this.netns = netns;
    this.#argv0 = [kubectl, `--kubeconfig=${kubeconfig}`, `--cache-dir=${path.resolve(cacheDir)}`];
  }

  /** Runs kubectl; never throws. */
  async run(args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    // A finishing call hands its slot straight to the next waiter.
    if (this.#running >= MAX_CONCURRENT) await new Promise<void>((r) => this.#queue.push(r));
    else this.#running++;
    try {
      return await runInNetns(this.netns, [...this.#argv0, '--request-timeout=20s', ...args], { timeoutMs: 30_000, ...opts, env: baseEnv() });
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#running--;
    }
  }

  /** Runs kubectl; throws KubeError on a non-zero exit; returns stdout. */
  async ok(args: string[], input?: string): Promise<string> {
    const r = await this.run(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new KubeError(`kubectl ${args.slice(0, 4).join(' ')}: exit ${r.code}: ${r.stderr.trim().slice(0, 500)}`, r.code, r.stderr);
    return r.stdout;
  }

  async getRaw<T = any>(uri: string): Promise<T> {
    return JSON.parse(await this.ok(['get', '--raw', uri])) as T;
  }
  /** The object, or undefined on 404. */
  async getRawOpt<T = any>(uri: string): Promise<T | undefined> {
    try {
      return await this.getRaw<T>(uri);
    } catch (e) {
      if (e instanceof KubeError && e.notFound) return undefined;
      throw e;
    }
  }
  async createRaw<T = any>(uri: string, body: unknown): Promise<T> {
    return JSON.parse(await this.ok(['create', '--raw', uri, '-f', '-'], JSON.stringify(body))) as T;
  }
  async replaceRaw<T = any>(uri: string, body: unknown): Promise<T> {
    return JSON.parse(await this.ok(['replace', '--raw', uri, '-f', '-'], JSON.stringify(body))) as T;
  }
  async deleteRaw(uri: string, body?: unknown): Promise<void> {
    await this.ok(['delete', '--raw', uri, ...(body === undefined ? [] : ['-f', '-'])], body === undefined ? undefined : JSON.stringify(body));
  }
  /** `kubectl patch` (strategic merge by default) of an object or its status. */
  async patch(kind: string, name: string, patch: unknown, opts: { namespace?: string; status?: boolean; type?: 'strategic' | 'merge' } = {}): Promise<void> {
    await this.ok([
      ...(opts.namespace ? ['-n', opts.namespace] : []),
      'patch',
      kind,
      name,
      ...(opts.status ? ['--subresource=status'] : []),
      `--type=${opts.type ?? 'strategic'}`,
      '-p',
      JSON.stringify(patch),
    ]);
  }

  /**
   * A raw watch: `uri` must carry `watch=1`. Each event line goes to
   * `onEvent`; the child runs with a parent-death signal, so it dies with us.
   */
  watch(uri: string, onEvent: (ev: WatchEvent) => void): WatchHandle {
    const child: ChildProcess = spawn('ip', inNetnsArgv(this.netns, ['setpriv', '--pdeathsig', 'KILL', '--', ...this.#argv0, 'get', '--raw', uri]), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: baseEnv(),
      detached: true,
    });
    trackChild(child);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 8192) stderr += d;
    });
    const rl = readline.createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      if (!line.trim()) return;
      let ev: WatchEvent;
      try {
        ev = JSON.parse(line) as WatchEvent;
      } catch {
        return;
      }
      onEvent(ev);
    });
    const done = new Promise<RunResult>((resolve) => {
      child.once('error', (e) => resolve({ stdout: '', stderr: `${stderr}${e.message}`, code: -1 }));
      child.once('close', (code, signal) => resolve({ stdout: '', stderr: signal ? `${stderr}killed by ${signal}` : stderr, code: code ?? -1 }));
    });
    return { done, kill: () => killGroup(child, 'SIGKILL') };
  }
}

/** metav1.Time: RFC 3339, whole seconds. */
export const apiTime = (d: Date = new Date()): string => d.toISOString().replace(/\.\d+Z$/, 'Z');
/** metav1.MicroTime: RFC 3339 with microseconds. */
export const apiMicroTime = (d: Date = new Date()): string => d.toISOString().replace(/\.(\d+)Z$/, (_m, ms: string) => `.${ms.padEnd(6, '0').slice(0, 6)}Z`);
