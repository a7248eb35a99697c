// Long-running processes inside a network namespace, for the control plane.
//
// Every process is started as `ip netns exec NETNS setpriv --pdeathsig KILL
// -- BIN ARGS…` with child_process.spawn (not detached). Both `ip netns exec`
// and setpriv exec() in place, so the pid we get is the pid of BIN itself,
// and the kernel SIGKILLs it if this Node process dies without cleaning up
// (a SIGKILLed test worker). (The parent-death signal follows the *thread*
// that spawned: start control planes from a main thread, as vitest's default
// `forks` pool and a CLI do.) A process 'exit' hook SIGKILLs whatever is still
// running on an ordinary exit. stdout and stderr go (appended) to a log file.
//
// Nothing here ever runs a command in the caller's own namespace.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { CniCode, WeirError } from '../../src/errors.ts';

export const NETNS_DIR = '/var/run/netns';

/** A control plane that cannot start or be used: bad input, a missing binary, a process that exited or never became ready. */
export class ControlPlaneError extends WeirError {
  readonly code = 'WEIR_CONTROL_PLANE';
  // The lab's errors never reach a container runtime; the hierarchy asks for a code all the same.
  readonly cniCode = CniCode.Internal;
}

export function assertNetns(netns: string): void {
  if (!/^[A-Za-z0-9_.-]+$/.test(netns) || netns === '.' || netns === '..') throw new ControlPlaneError(`bad netns name ${JSON.stringify(netns)}`);
  if (!fs.existsSync(`${NETNS_DIR}/${netns}`)) throw new ControlPlaneError(`network namespace ${netns} does not exist (ip netns add ${netns})`);
}

/** The argv that runs `cmd` inside `netns`. */
export const inNetnsArgv = (netns: string, cmd: readonly string[]): string[] => ['netns', 'exec', netns, ...cmd];

/** A minimal, predictable environment: nothing inherited (no KUBECONFIG, no proxies, no in-cluster variables). */
export function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', HOME: process.env.HOME ?? '/root', ...extra };
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Every child started here and not yet reaped; SIGKILLed by the exit hook. */
const live = new Set<ChildProcess>();
let hookInstalled = false;
function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.once('exit', () => {
    for (const c of live) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

export interface ProcessSpec {
  /** Short name for messages and the log file, e.g. `kube-apiserver`. */
  name: string;
  netns: string;
  /** Executable and arguments, run inside the namespace. */
  cmd: readonly string[];
  logFile: string;
  env?: Record<string, string>;
}

export class NetnsProcess {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** Where this run's output starts in the (appended) log file. */
  readonly logOffset: number;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  #status: ExitStatus | undefined;
  readonly #child: ChildProcess;

  private constructor(spec: ProcessSpec, child: ChildProcess, pid: number, exited: Promise<ExitStatus>, logOffset: number) {
    this.name = spec.name;
    this.logFile = spec.logFile;
    this.logOffset = logOffset;
    this.#child = child;
    this.pid = pid;
    this.exited = exited.then((s) => (this.#status = s));
  }

  static async start(spec: ProcessSpec): Promise<NetnsProcess> {
    assertNetns(spec.netns);
    installExitHook();
    const log = fs.openSync(spec.logFile, 'a');
    const logOffset = fs.fstatSync(log).size;
    let child: ChildProcess;
    try {
      fs.writeSync(log, `\n=== ${new Date().toISOString()} start ${spec.cmd.join(' ')}\n`);
      child = spawn('ip', inNetnsArgv(spec.netns, ['setpriv', '--pdeathsig', 'KILL', '--', ...spec.cmd]), {
        stdio: ['ignore', log, log],
        detached: false,
        env: spec.env ?? baseEnv(),
      });
    } finally {
      fs.closeSync(log);
    }
    live.add(child);
    const exited = new Promise<ExitStatus>((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      });
    });
    // spawn reports a missing `ip` asynchronously, through 'error'.
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid ?? -1));
      child.once('error', (e) => {
        live.delete(child);
        reject(new ControlPlaneError(`${spec.name}: cannot start: ${e.message}`, { cause: e }));
      });
    });
    return new NetnsProcess(spec, child, pid, exited, logOffset);
  }

  /** The exit status, or undefined while it runs. */
  get status(): ExitStatus | undefined {
    return this.#status;
  }

  get running(): boolean {
    return this.#status === undefined;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop(graceMs = 10_000): Promise<ExitStatus> {
    if (this.#status) return this.#status;
    this.#child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        if (this.running) this.#child.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  /** The last `lines` lines this run wrote to the log file. */
  logTail(lines = 25): string {
    return tailFile(this.logFile, lines, this.logOffset);
  }

  describeExit(): string {
    const s = this.#status;
    if (!s) return `${this.name} (pid ${this.pid}) is running`;
    return `${this.name} (pid ${this.pid}) exited with ${s.signal ? `signal ${s.signal}` : `code ${s.code}`}`;
  }
}

/** The last `lines` lines of `file`, looking no further back than byte `from`. */
export function tailFile(file: string, lines: number, from = 0): string {
  let text: string;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const len = Math.max(0, Math.min(size - from, 64 * 1024));
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      text = buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (e) {
    return `(no log: ${(e as Error).message})`;
  }
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a short command inside `netns` and waits for it (async, so child 'exit' events keep flowing). */
export function runInNetns(
  netns: string,
  cmd: readonly string[],
  opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn('ip', inNetnsArgv(netns, cmd), { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? baseEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: `${stderr}${e.message}`, code: -1 });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: signal ? `${stderr}killed by ${signal}` : stderr, code: code ?? -1 });
    });
    // A child that exits before reading its input would raise EPIPE here.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Synchronous variant of runInNetns. */
export function runInNetnsSync(
  netns: string,
  cmd: readonly string[],
  opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {},
): RunResult {
  const r = spawnSync('ip', inNetnsArgv(netns, cmd), {
    encoding: 'utf8',
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 30_000,
    env: opts.env ?? baseEnv(),
  });
  if (r.error) return { stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error.message}`, code: -1 };
  return { stdout: r.stdout, stderr: r.signal ? `${r.stderr}killed by ${r.signal}` : r.stderr, code: r.status ?? -1 };
}

/** Polls `check` every `intervalMs` until it returns a value, or throws `onTimeout()` after `timeoutMs`. */
export async function pollUntil<T>(check: () => Promise<T | undefined>, opts: { timeoutMs: number; intervalMs?: number; onTimeout: () => Error }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) throw opts.onTimeout();
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
}
