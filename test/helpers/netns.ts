// Throw-away network namespaces for kernel tests.
//
// Every namespace is named `weirt-<prefix>-<pid>-<random>`: unique per test and
// per process, so parallel runs never collide, and the pid lets
// sweepLeakedNetns() tell a leftover of a crashed run (pid gone) from a
// namespace another live run is still using.
//
// Network safety rule: tests only configure addresses, routes and links inside
// namespaces created here, never in the root namespace. run() always executes
// inside the namespace (`ip netns exec`), and nothing here touches the caller's
// own namespace.
import { type ChildProcess, type StdioOptions, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { afterEach } from 'vitest';

export const NETNS_DIR = '/var/run/netns';
const NAME_ROOT = 'weirt';

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** spawnSync that throws (with stderr) on a non-zero exit; returns stdout. */
export function sh(cmd: string, args: readonly string[] = [], input?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, ...(input === undefined ? {} : { input }) });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    const why = r.status === null ? `killed by ${r.signal}` : `exit ${r.status}`;
    throw new Error(`${cmd} ${args.join(' ')}: ${why}: ${r.stderr.trim()}`);
  }
  return r.stdout;
}

/** Like sh() but returns the result instead of throwing on a non-zero exit. */
export function shTry(cmd: string, args: readonly string[] = []): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 };
}

export interface TestNetns {
  /** The `ip netns` name, e.g. `weirt-netlink-1234-9f3a01bc`. */
  readonly name: string;
  /** The bind-mounted namespace file, e.g. /var/run/netns/<name>. */
  readonly path: string;
  /** Runs a command inside the namespace (`ip netns exec`); never throws on a non-zero exit. */
  run(cmd: string[]): RunResult;
  /** Like run(), but throws with stderr on failure and returns stdout. */
  sh(cmd: string[]): string;
  /** `ip -j -n <name> <args…>` parsed as JSON. */
  ipJson<T = unknown>(args: string[]): T;
  /** Deletes the namespace; idempotent. */
  destroy(): void;
}

/** Every namespace created by this process and not yet destroyed. */
const live = new Map<string, TestNetns>();

function checkPrefix(prefix: string): void {
  if (!/^[a-z0-9]+(?:-[a-z0-9]+)*$/.test(prefix)) throw new RangeError(`bad netns prefix ${JSON.stringify(prefix)}`);
}

export function createNetns(prefix: string): TestNetns {
  checkPrefix(prefix);
  const name = `${NAME_ROOT}-${prefix}-${process.pid}-${randomBytes(4).toString('hex')}`;
  sh('ip', ['netns', 'add', name]);
  let destroyed = false;
  const ns: TestNetns = {
    name,
    path: `${NETNS_DIR}/${name}`,
    run: (cmd) => {
      if (cmd.length === 0) throw new RangeError('run: empty command');
      return shTry('ip', ['netns', 'exec', name, ...cmd]);
    },
    sh: (cmd) => {
      if (cmd.length === 0) throw new RangeError('sh: empty command');
      return sh('ip', ['netns', 'exec', name, ...cmd]);
    },
    ipJson: <T>(args: string[]): T => {
      const out = sh('ip', ['-j', '-n', name, ...args]).trim();
      // `ip -j` prints nothing at all (not `[]`) for some empty listings.
      return JSON.parse(out === '' ? '[]' : out) as T;
    },
    destroy: () => {
      if (destroyed) return;
      const r = shTry('ip', ['netns', 'del', name]);
      // Already gone (e.g. swept) is fine; anything else is a real leak.
      if (r.code !== 0 && fs.existsSync(`${NETNS_DIR}/${name}`)) {
        throw new Error(`ip netns del ${name}: exit ${r.code}: ${r.stderr.trim()}`);
      }
      destroyed = true;
      live.delete(name);
    },
  };
  live.set(name, ns);
  return ns;
}

/** Names of all namespaces known to `ip netns`. */
export function listNetns(): string[] {
  try {
    return fs.readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

/** Whether a process of that pid exists (EPERM: it does, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Deletes `weirt-<prefix>-*` namespaces left behind by an earlier run that
 * crashed. Namespaces whose creating process is still alive (another test run
 * going on in parallel) are left alone. Returns the names deleted.
 */
export function sweepLeakedNetns(prefix: string): string[] {
  checkPrefix(prefix);
  // withNetnsCleanup(prefix).create(tag) names namespaces `<prefix>-<tag>`: sweep those too.
  const re = new RegExp(`^${NAME_ROOT}-${prefix}(?:-[a-z0-9-]+)?-(\\d+)-[0-9a-f]{8}$`);
  const swept: string[] = [];
  for (const name of listNetns()) {
    const m = re.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && pidAlive(pid)) continue;
    if (pid === process.pid && live.has(name)) continue;
    if (shTry('ip', ['netns', 'del', name]).code === 0) swept.push(name);
  }
  return swept;
}

/** Destroys every namespace this process still holds; returns the first error, if any. */
export function destroyAllNetns(): unknown {
  let first: unknown;
  for (const ns of [...live.values()]) {
    try {
      ns.destroy();
    } catch (e) {
      first ??= e;
    }
  }
  return first;
}

let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if afterEach never ran (e.g. the worker is torn down).
  process.once('exit', () => {
    for (const name of live.keys()) spawnSync('ip', ['netns', 'del', name]);
  });
}

export interface NetnsScope {
  /** A fresh namespace, destroyed in afterEach. */
  create(tag?: string): TestNetns;
  /** Runs `fn` in afterEach, before the namespaces are destroyed (LIFO); e.g. close fds/handles. */
  defer(fn: () => void): void;
  /**
   * A process inside `ns`, SIGKILLed (by its pid) in afterEach if it still
   * runs. `ip netns exec` execs in place: the pid is the command's.
   */
  spawn(ns: TestNetns, cmd: readonly string[], stdio?: StdioOptions): ChildProcess;
}

/**
 * Call at the top of a test file (or describe block). Sweeps leftovers of this
 * prefix from crashed runs, and registers an afterEach that runs deferred
 * cleanups and destroys every namespace created through the scope, even when
 * the test failed.
 */
export function withNetnsCleanup(prefix: string): NetnsScope {
  checkPrefix(prefix);
  sweepLeakedNetns(prefix);
  installExitHook();
  const mine: TestNetns[] = [];
  const deferred: (() => void)[] = [];
  afterEach(() => {
    let first: unknown;
    for (const fn of deferred.splice(0).reverse()) {
      try {
        fn();
      } catch (e) {
        first ??= e;
      }
    }
    for (const ns of mine.splice(0)) {
      try {
        ns.destroy();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  });
  return {
    create: (tag) => {
      const ns = createNetns(tag ? `${prefix}-${tag}` : prefix);
      mine.push(ns);
      return ns;
    },
    defer: (fn) => {
      deferred.push(fn);
    },
    spawn: (ns, cmd, stdio = 'ignore') => {
      const child = spawn('ip', ['netns', 'exec', ns.name, ...cmd], { stdio });
      child.on('error', () => {});
      deferred.push(() => {
        if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      });
      return child;
    },
  };
}

/**
 * Two namespaces of `scope` joined by a veth pair (veth0 in `a`, veth1 in
 * `b`), with the given addresses (IPv4 /24, IPv6 /64 without DAD), the links
 * and lo up.
 */
export function linkedPair(scope: NetnsScope, a: { v4: string; v6?: string }, b: { v4: string; v6?: string }): { a: TestNetns; b: TestNetns } {
  const na = scope.create('a');
  const nb = scope.create('b');
  sh('ip', ['-n', na.name, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1', 'netns', nb.name]);
  for (const [ns, dev, addr] of [
    [na, 'veth0', a],
    [nb, 'veth1', b],
  ] as const) {
    sh('ip', ['-n', ns.name, 'addr', 'add', `${addr.v4}/24`, 'dev', dev]);
    if (addr.v6) sh('ip', ['-n', ns.name, 'addr', 'add', `${addr.v6}/64`, 'dev', dev, 'nodad']);
    sh('ip', ['-n', ns.name, 'link', 'set', dev, 'up']);
    sh('ip', ['-n', ns.name, 'link', 'set', 'lo', 'up']);
  }
  return { a: na, b: nb };
}
