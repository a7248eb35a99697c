// Child processes of the kubelet stand-in: containers, CNI plugins, probes.
//
// Every long-lived child is started detached (its own session, so its own
// process group: a signal to -pid reaches whatever it forked) and through
// `setpriv --pdeathsig KILL`, so the kernel kills it if this process dies
// without cleaning up. An 'exit' hook SIGKILLs the groups still alive and
// deletes the pod network namespaces still registered, synchronously, on an
// ordinary exit.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';

const live = new Set<ChildProcess>();
const liveNetns = new Set<string>();
let hookInstalled = false;

function installExitHook(): void {
  if (hookInstalled) return;
  hookInstalled = true;
  process.once('exit', () => {
    for (const c of live) killGroup(c, 'SIGKILL');
    for (const ns of liveNetns) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
  });
}

export function trackChild(c: ChildProcess): ChildProcess {
  installExitHook();
  live.add(c);
  c.once('exit', () => live.delete(c));
  c.once('error', () => live.delete(c));
  return c;
}

/** A pod netns this process owns: deleted by the exit hook if still there. */
export function trackNetns(name: string): void {
  installExitHook();
  liveNetns.add(name);
}
export function untrackNetns(name: string): void {
  liveNetns.delete(name);
}

export const exited = (c: ChildProcess): boolean => c.exitCode !== null || c.signalCode !== null;

/** Signals the child's process group (it is a session leader), falling back to the child alone. */
export function killGroup(c: ChildProcess, sig: NodeJS.Signals): void {
  if (c.pid === undefined || exited(c)) return;
  try {
    process.kill(-c.pid, sig);
  } catch {
    try {
      c.kill(sig);
    } catch {
      // gone
    }
  }
}

export function waitExit(c: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (exited(c)) return Promise.resolve({ code: c.exitCode, signal: c.signalCode as NodeJS.Signals | null });
  return new Promise((resolve) => {
    c.once('exit', (code, signal) => resolve({ code, signal }));
    c.once('error', () => resolve({ code: -1, signal: null }));
  });
}

/** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the child exited. */
export async function stopChild(c: ChildProcess, graceMs: number): Promise<void> {
  if (exited(c)) return;
  killGroup(c, 'SIGTERM');
  const t = setTimeout(() => killGroup(c, 'SIGKILL'), graceMs);
  await waitExit(c);
  clearTimeout(t);
  // Stragglers of the group (a shell's children) go too.
  killGroup(c, 'SIGKILL');
}

export interface RunOutput {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a short command to completion (async), with stdin, env and a timeout. */
export function runCommand(argv: readonly string[], opts: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<RunOutput> {
  return new Promise((resolve) => {
    const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? { PATH: DEFAULT_PATH }, detached: true });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 65536) stderr += d;
    });
    child.stdin.on('error', () => {});
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: -1, signal: null, stdout, stderr: `${stderr}${e.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Absolute path of a tool on the default PATH (so a container's own PATH cannot change which `ip` runs). */
export function tool(name: string): string {
  for (const dir of DEFAULT_PATH.split(':')) {
    const p = `${dir}/${name}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return name;
}

/** Single-quotes `s` for sh. */
export const shq = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
