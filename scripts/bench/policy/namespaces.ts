// The network namespaces and server processes of one bench-policy run, named
// after its tag (so that the shell wrapper's backstop finds what a killed run
// left): made here, tracked, and all removed at the end, on failure and on
// Ctrl-C alike.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BASE_ENV, IP, netnsPids, run } from '../lib/host.ts';

export class RunNamespaces {
  readonly tag: string;
  readonly node: string;
  readonly client: string;
  readonly server: string;
  /** Namespaces this run created and has not deleted yet. */
  readonly made: string[] = [];
  created = 0;
  readonly children: ChildProcess[] = [];
  /** The run's temporary directory (the plugin's data, the servers' logs). */
  tmp: string | undefined;
  /** Set while stopping: a server's exit is then expected, not logged. */
  stopping = false;
  readonly #log: (s: string) => void;

  constructor(tag: string, log: (s: string) => void) {
    this.tag = tag;
    this.node = `${tag}-node`;
    this.client = `${tag}-client`;
    this.server = `${tag}-server`;
    this.#log = log;
  }

  ip(...args: string[]): string {
    return run(IP, args);
  }

  exec(ns: string, cmd: string[], input?: string, timeoutMs?: number): string {
    return run(IP, ['netns', 'exec', ns, ...cmd], { ...(input === undefined ? {} : { input }), ...(timeoutMs === undefined ? {} : { timeoutMs }) });
  }

  add(name: string): void {
    this.ip('netns', 'add', name);
    this.made.push(name);
    this.created++;
    this.ip('-n', name, 'link', 'set', 'lo', 'up');
  }

  del(name: string): void {
    spawnSync(IP, ['netns', 'del', name], { env: BASE_ENV });
    const i = this.made.indexOf(name);
    if (i >= 0) this.made.splice(i, 1);
  }

  startServer(ns: string, cmd: string[]): ChildProcess {
    // Output to a file, never a pipe: the event loop is blocked in spawnSync
    // while ab runs, and a server logging every request would fill the pipe and stall.
    const logFile = `${this.tmp}/${path.basename(cmd[0] ?? 'server')}.log`;
    const fd = fs.openSync(logFile, 'a');
    const child = spawn(IP, ['netns', 'exec', ns, ...cmd], { env: BASE_ENV, stdio: ['ignore', fd, fd], detached: true });
    fs.closeSync(fd);
    child.on('exit', (code, sig) => {
      if (!this.stopping) this.#log(`${cmd[0]} in ${ns} exited (${code ?? sig}): ${fs.readFileSync(logFile, 'utf8').slice(-1000).trim()}`);
    });
    this.children.push(child);
    return child;
  }

  waitListening(ns: string, port: number): void {
    for (let i = 0; i < 100; i++) {
      if (this.exec(ns, ['ss', '-Htln', `sport = :${port}`]).trim() !== '') return;
      spawnSync('sleep', ['0.1']);
    }
    throw new Error(`nothing listens on :${port} in ${ns}`);
  }

  /** Stops the servers and anything left in the namespaces, then deletes them; the pids of servers still running. */
  async removeAll(): Promise<Array<number | undefined>> {
    this.stopping = true;
    for (const c of this.children) {
      if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) continue;
      try {
        process.kill(-c.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    for (const c of this.children) {
      if (c.exitCode === null && c.signalCode === null) await Promise.race([new Promise((r) => c.once('exit', r)), new Promise((r) => setTimeout(r, 3000))]);
    }
    const alive = this.children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => c.pid);
    // Anything else still running in our namespaces was started by this run (an ab or iperf3 cut short).
    for (const n of this.made) {
      for (const pid of netnsPids(n)) {
        this.#log(`stopping pid ${pid}, left in ${n}`);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
    for (const n of [...this.made].reverse()) this.del(n);
    return alive;
  }
}
