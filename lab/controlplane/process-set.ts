// The control plane's processes by name: each started inside the namespace
// with its log file, awaited on a readiness probe with a deadline, and stopped
// dependents first.
import { logFile } from './components.ts';
import { ControlPlaneError, NetnsProcess, pollUntil } from './process.ts';

const STOP_GRACE_MS = 10_000;

export class ProcessSet {
  readonly #procs = new Map<string, NetnsProcess>();
  readonly #netns: string;
  readonly #dir: string;
  readonly #readyTimeoutMs: number;
  readonly #progress: (msg: string) => void;

  constructor(netns: string, dir: string, readyTimeoutMs: number, progress: (msg: string) => void) {
    this.#netns = netns;
    this.#dir = dir;
    this.#readyTimeoutMs = readyTimeoutMs;
    this.#progress = progress;
  }

  async launch(name: string, cmd: string[]): Promise<NetnsProcess> {
    const p = await NetnsProcess.start({ name, netns: this.#netns, cmd, logFile: logFile(this.#dir, name) });
    this.#procs.set(name, p);
    this.#progress(`${name} started (pid ${p.pid}, log ${p.logFile})`);
    return p;
  }

  /** Polls `probe` until it succeeds; fails early, with logs, if one of `watch` exits. */
  waitFor(what: string, watch: string[], probe: () => Promise<boolean>): Promise<void> {
    const readyTimeoutMs = this.#readyTimeoutMs;
    return pollUntil(
      async () => {
        if (await probe()) return true;
        for (const name of watch) {
          const p = this.#procs.get(name);
          if (p && !p.running) throw new ControlPlaneError(`${what}: ${p.describeExit()}; last lines of ${p.logFile}:\n${p.logTail()}`);
        }
        return undefined;
      },
      {
        timeoutMs: readyTimeoutMs,
        intervalMs: 250,
        onTimeout: () => {
          const logs = watch.map((n) => this.#procs.get(n)).filter((p): p is NetnsProcess => !!p);
          return new ControlPlaneError(
            `${what}: not ready after ${readyTimeoutMs} ms\n${logs.map((p) => `--- ${p.describeExit()}; last lines of ${p.logFile}:\n${p.logTail()}`).join('\n')}`,
          );
        },
      },
    ).then(() => undefined);
  }

  isRunning(name: string): boolean {
    return this.#procs.get(name)?.running === true;
  }

  async stopOne(name: string): Promise<void> {
    const p = this.#procs.get(name);
    if (!p) return;
    await p.stop(STOP_GRACE_MS);
    this.#progress(`${p.describeExit()}`);
  }

  async stopAll(): Promise<void> {
    await Promise.all([this.stopOne('kube-scheduler'), this.stopOne('kube-controller-manager')]);
    await this.stopOne('kube-apiserver');
    await this.stopOne('etcd');
  }

  /** Pids of the processes that are running. */
  pids(): number[] {
    return [...this.#procs.values()].filter((p) => p.running).map((p) => p.pid);
  }

  logTail(name: string, lines?: number): string {
    return this.#procs.get(name)?.logTail(lines) ?? `(no process ${name})`;
  }
}
