// What the root-run benchmarks share about the machine: the `ip` command and
// a clean PATH for what they start, the namespaces of one run (named after
// its tag, so that the shell wrapper's backstop finds what a killed run
// left), the root namespace's links before and after, the load average, and
// Ctrl-C between measurements.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].find((p) => fs.existsSync(p)) ?? 'ip';
/** The environment of what a benchmark starts: a fixed PATH, not the caller's. */
export const BASE_ENV: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

/** The run's tag: WEIR_BENCH_TAG from the shell wrapper (whose backstop removes `<tag>-*` namespaces), else `<fallback><pid>`. */
export function benchTag(fallback: string): string {
  const t = process.env.WEIR_BENCH_TAG ?? '';
  return /^[A-Za-z0-9]{1,20}$/.test(t) ? t : `${fallback}${process.pid}`;
}

/** A line to stderr, prefixed with the script's name. */
export const logger =
  (script: string) =>
  (s: string): void =>
    void process.stderr.write(`${script}: ${s}\n`);

/** The 1, 5 and 15 minute load averages, as /proc/loadavg gives them. */
export const loadavg = (): string => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

/** A full collection when node runs with --expose-gc; nothing otherwise. */
export const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs a command to completion and returns its stdout; throws with its output when it fails. */
export function run(cmd: string, args: readonly string[], o: RunOptions = {}): string {
  const r = spawnSync(cmd, args, { env: o.env ?? BASE_ENV, encoding: 'utf8', input: o.input, maxBuffer: 1 << 26, timeout: o.timeoutMs ?? 120_000 });
  if (r.error || r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ').slice(0, 300)}: ${r.error ?? ''}${r.signal ? ` (${r.signal})` : ''} ${r.stderr || r.stdout}`.trim());
  return r.stdout;
}

/** The network namespaces named `<tag>-…`: what this run made and has not removed. */
export const taggedNetns = (tag: string): string[] =>
  run(IP, ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`${tag}-`));

/** The pids of the processes in a named network namespace. */
export const netnsPids = (ns: string): number[] =>
  spawnSync(IP, ['netns', 'pids', ns], { env: BASE_ENV, encoding: 'utf8' }).stdout?.split('\n').filter(Boolean).map(Number) ?? [];

/** The names of the root namespace's links, sorted. */
export const rootLinks = (): string[] =>
  run(IP, ['-o', 'link', 'show'])
    .split('\n')
    .map((l) => (l.split(':')[1] ?? '').trim().split('@')[0] ?? '')
    .filter(Boolean)
    .sort();

/**
 * How the root namespace's links changed during a run. Other work on the
 * machine may add and remove links of its own; a link of the plugin's (host
 * veths are named weir…) appearing there would be the run's.
 */
export function linkChange(before: readonly string[], after: readonly string[]): { text: string; leaked: string[] } {
  const added = after.filter((l) => !before.includes(l));
  const removed = before.filter((l) => !after.includes(l));
  const leaked = added.filter((l) => l.startsWith('weir'));
  const text =
    added.length + removed.length === 0
      ? 'unchanged'
      : `${leaked.length ? `LEAKED: ${leaked.join(' ')}; ` : ''}changed meanwhile (not by links of ours): +[${added.join(' ')}] -[${removed.join(' ')}]`;
  return { text, leaked };
}

/**
 * Ctrl-C (or SIGTERM, SIGHUP) noted, to stop between measurements rather
 * than in one: a signal handler only runs when the event loop turns, so
 * checkpoint() gives it a turn (untimed) and throws once a signal came.
 */
export function interruptible(): { aborted: () => string | undefined; checkpoint: () => Promise<void> } {
  let aborted: string | undefined;
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, () => (aborted ??= s));
  return {
    aborted: () => aborted,
    checkpoint: async () => {
      await new Promise((r) => setImmediate(r));
      if (aborted) throw new Error(`interrupted (${aborted})`);
    },
  };
}
