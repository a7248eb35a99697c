// What the podman runtime tests change outside their private temp dir, and
// how each change is undone. podman runs every CNI plugin in the ROOT network
// namespace of the machine, so unlike the kernel tests these tests cannot
// hide in a netns:
//
//  - an `unreachable` route for the whole test pod CIDR goes into the root
//    namespace before anything else, so a packet to a pod that does not exist
//    (or no longer exists) is dropped instead of leaving by the default route;
//    it is removed in teardown;
//  - net.ipv4.ip_forward (the plugin turns it on) is recorded and restored;
//  - portmap (iptables-nft) creates `ip nat` / `ip6 nat` tables with its
//    CNI-HOSTPORT-* chains; tables that did not exist before are deleted, once
//    no per-container DNAT chain is left in them;
//  - libcni caches results in /var/lib/cni/results; the directories are
//    removed if the test created them (and they are empty);
//  - the cgroupfs manager creates `libpod_parent` cgroups; removed if the test
//    created them.
//
// The recorded "before" state is kept in a lock file (/run/weirt-podman.lock)
// for the whole run: it keeps two runs from using the same CIDR and host port
// at once, and if a run dies without its teardown, the next run finds the
// lock of a dead pid and undoes that run's changes from the recorded state.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pidAlive, type RunResult, sh, shTry } from './netns.ts';

export const LOCK_PATH = '/run/weirt-podman.lock';
const CNI_CACHE = '/var/lib/cni';
const CNI_RESULTS = `${CNI_CACHE}/results`;
const CGROUP_ROOT = '/sys/fs/cgroup';
const LIBPOD_CGROUP = 'libpod_parent';
const NAT_TABLES = [
  ['ip', 'nat'],
  ['ip6', 'nat'],
] as const;

/** What teardown needs to undo one run: written to the lock file before each change. */
export interface GuardState {
  pid: number;
  network: string;
  podCIDR: string;
  /** /proc/sys/net/ipv4/ip_forward before the run. */
  ipForward: string;
  /** `family name` of each nat table that existed before the run. */
  natTables: string[];
  cniCacheExisted: boolean;
  cniResultsExisted: boolean;
  /** cgroup hierarchies (dirs under /sys/fs/cgroup) that had libpod_parent before. */
  libpodCgroups: string[];
  routeAdded: boolean;
  dir?: string;
}

/** podman's global flags for a sandbox in `dir`: private storage. */
export const sandboxGlobalArgs = (dir: string): string[] => [
  '--root',
  path.join(dir, 'storage'),
  '--runroot',
  path.join(dir, 'run'),
  '--storage-driver',
  'vfs',
];

/** podman's environment: only the sandbox's containers.conf is read. */
export function sandboxEnv(containersConf: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: containersConf };
  // Nothing from the caller's environment may redirect podman elsewhere.
  for (const k of ['CONTAINERS_STORAGE_CONF', 'CONTAINERS_REGISTRIES_CONF', 'CONTAINER_HOST', 'CONTAINER_CONNECTION', 'CONTAINERS_CONF_OVERRIDE'])
    delete env[k];
  return env;
}

// ---------------------------------------------------------------- machine state

const readIpForward = (): string => fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();

function natTablesNow(): string[] {
  const out = sh('nft', ['-j', 'list', 'tables']);
  const doc = JSON.parse(out) as { nftables: Array<{ table?: { family: string; name: string } }> };
  return doc.nftables.flatMap((e) => (e.table ? [`${e.table.family} ${e.table.name}`] : [])).filter((t) => NAT_TABLES.some(([f, n]) => t === `${f} ${n}`));
}

function cgroupHierarchies(): string[] {
  try {
    return fs
      .readdirSync(CGROUP_ROOT, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

const exists = (p: string): boolean => fs.existsSync(p);

export function writeState(state: GuardState, exclusive: boolean): void {
  fs.writeFileSync(LOCK_PATH, `${JSON.stringify(state)}\n`, { flag: exclusive ? 'wx' : 'w', mode: 0o600 });
}

function readLock(): GuardState | undefined {
  try {
    const text = fs.readFileSync(LOCK_PATH, 'utf8');
    return text.trim() === '' ? undefined : (JSON.parse(text) as GuardState);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Takes the run lock. A lock of a live process fails the test (two runs would
 * share the CIDR and the host port); a lock of a dead one is a crashed run,
 * whose changes are undone first. Returns what the sweep found, if anything.
 */
function acquireLock(initial: GuardState): string[] {
  const swept: string[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeState(initial, true);
      return swept;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const old = readLock();
    if (old === undefined) {
      // Created a moment ago and not written yet, or truncated by a crash.
      const age = Date.now() - fs.statSync(LOCK_PATH).mtimeMs;
      if (age < 5_000) throw new Error(`${LOCK_PATH} is being created by another run; try again`);
      fs.rmSync(LOCK_PATH, { force: true });
      continue;
    }
    if (old.pid !== process.pid && pidAlive(old.pid)) {
      throw new Error(`another podman runtime test (pid ${old.pid}, ${old.podCIDR}) is running; ${LOCK_PATH} is its lock`);
    }
    swept.push(...teardownState(old).map((p) => `stale run of pid ${old.pid}: ${p}`));
    swept.push(`swept a stale run of pid ${old.pid}`);
  }
  throw new Error(`cannot take ${LOCK_PATH}`);
}

export function routesWithin(cidr: string): string[] {
  return shTry('ip', ['-4', 'route', 'show', 'table', 'all', 'root', cidr])
    .stdout.split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The parts of the machine teardown puts back, as they are now. */
function machineNow(): Pick<GuardState, 'ipForward' | 'natTables' | 'cniCacheExisted' | 'cniResultsExisted' | 'libpodCgroups'> {
  return {
    ipForward: readIpForward(),
    natTables: natTablesNow(),
    cniCacheExisted: exists(CNI_CACHE),
    cniResultsExisted: exists(CNI_RESULTS),
    libpodCgroups: cgroupHierarchies().filter((h) => exists(path.join(CGROUP_ROOT, h, LIBPOD_CGROUP))),
  };
}

/**
 * Records the machine's "before" state and takes the run lock with it.
 * Returns the state (the caller records each later change in it) and what a
 * sweep of a crashed run found.
 */
export function takeGuard(network: string, podCIDR: string): { state: GuardState; notes: string[] } {
  const state: GuardState = { pid: process.pid, network, podCIDR, ...machineNow(), routeAdded: false };
  const notes = acquireLock(state);
  // A sweep may have changed the machine: take the "before" picture again.
  if (notes.length > 0) {
    Object.assign(state, machineNow());
    writeState(state, false);
  }
  return { state, notes };
}

/** The unreachable route for the pod CIDR; refuses a CIDR the root namespace already routes. */
export function addGuardRoute(state: GuardState): void {
  const taken = routesWithin(state.podCIDR);
  if (taken.length > 0) throw new Error(`${state.podCIDR} is already routed in the root namespace, refusing to use it:\n${taken.join('\n')}`);
  sh('ip', ['route', 'add', 'unreachable', state.podCIDR]);
  state.routeAdded = true;
  writeState(state, false);
}

// ---------------------------------------------------------------- teardown

/** Runs one teardown step; a failure is recorded and the next step still runs. */
type Step = (what: string, fn: () => void) => void;

interface IpLink {
  ifname: string;
  ifalias?: string;
}

function mountsUnder(dir: string): string[] {
  const prefix = `${dir}/`;
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((m) => m.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(prefix));
}

/** Every container of the sandbox in `dir`, removed by its own podman. */
function removeContainers(dir: string, step: Step): void {
  const conf = path.join(dir, 'containers.conf');
  const podman = (args: string[]): RunResult => {
    const r = spawnSync('podman', [...sandboxGlobalArgs(dir), ...args], { encoding: 'utf8', env: sandboxEnv(conf), timeout: 60_000 });
    return { stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '', code: r.status ?? -1 };
  };
  if (!exists(conf)) return;
  step('podman rm', () => {
    const r = podman(['rm', '--all', '--force', '--time', '0']);
    if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.trim()}`);
    const left = podman(['ps', '--all', '--quiet']);
    if (left.stdout.trim() !== '') throw new Error(`containers left after rm --all --force: ${left.stdout.trim().replace(/\n/g, ' ')}`);
  });
}

/** The root namespace's links, routes and ip_forward as they were. */
function restoreRootNamespace(state: GuardState, step: Step): void {
  // The plugin's leftovers, should DEL have failed: host veths of this
  // network (their alias names it) and routes inside the pod CIDR.
  step('leftover veths', () => {
    const links = JSON.parse(sh('ip', ['-j', 'link', 'show']) || '[]') as IpLink[];
    const mine = links.filter((l) => l.ifalias?.startsWith(`weir/${state.network}/`));
    for (const l of mine) shTry('ip', ['link', 'del', l.ifname]);
    if (mine.length > 0) throw new Error(`removed ${mine.map((l) => l.ifname).join(', ')}`);
  });
  step('leftover routes', () => {
    const left = routesWithin(state.podCIDR).filter((r) => !r.startsWith('unreachable '));
    for (const r of left) shTry('ip', ['route', 'del', ...r.split(/\s+/)]);
    if (left.length > 0) throw new Error(`removed: ${left.join(' | ')}`);
  });
  if (state.routeAdded) {
    step('guard route', () => {
      const r = shTry('ip', ['route', 'del', 'unreachable', state.podCIDR]);
      if (r.code !== 0 && routesWithin(state.podCIDR).some((x) => x.startsWith('unreachable '))) throw new Error(r.stderr.trim());
    });
  }
  step('ip_forward', () => {
    if (readIpForward() !== state.ipForward) fs.writeFileSync('/proc/sys/net/ipv4/ip_forward', state.ipForward);
  });
}

// portmap's tables: gone again if they were not there before, unless some
// per-container chain is still in them (then it is a leak, and reported).
function removeNatTables(before: readonly string[]): void {
  for (const [family, name] of NAT_TABLES) {
    const t = `${family} ${name}`;
    if (before.includes(t) || !natTablesNow().includes(t)) continue;
    const doc = JSON.parse(sh('nft', ['-j', 'list', 'table', family, name])) as { nftables: Array<{ rule?: { chain: string }; chain?: { name: string } }> };
    const ours = doc.nftables.filter((e) => e.chain?.name.startsWith('CNI-DN-') || e.rule?.chain === 'CNI-HOSTPORT-DNAT');
    if (ours.length > 0) {
      // Only this run used portmap on a table that did not exist before: its DNATs are leaks.
      sh('nft', ['delete', 'table', family, name]);
      throw new Error(`portmap left ${ours.length} DNAT chain(s)/rule(s) in ${t}; table deleted`);
    }
    sh('nft', ['delete', 'table', family, name]);
  }
}

/** libcni's cached results of this network, and the cache directories the run created. */
function removeCniCache(state: GuardState, step: Step): void {
  step('libcni cache', () => {
    if (exists(CNI_RESULTS)) {
      const ours = fs.readdirSync(CNI_RESULTS).filter((f) => f.startsWith(`${state.network}-`));
      for (const f of ours) fs.rmSync(path.join(CNI_RESULTS, f), { force: true });
      if (ours.length > 0) throw new Error(`removed cached results ${ours.join(', ')}`);
    }
  });
  step('libcni cache dirs', () => {
    for (const [d, existed] of [
      [CNI_RESULTS, state.cniResultsExisted],
      [CNI_CACHE, state.cniCacheExisted],
    ] as const) {
      if (existed || !exists(d)) continue;
      try {
        fs.rmdirSync(d);
      } catch (e) {
        // Someone else put files there since: theirs now.
        if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY') throw e;
      }
    }
  });
}

function removeLibpodCgroups(before: readonly string[]): void {
  for (const h of cgroupHierarchies()) {
    if (before.includes(h)) continue;
    const top = path.join(CGROUP_ROOT, h, LIBPOD_CGROUP);
    if (!exists(top)) continue;
    // Depth first; rmdir of a cgroup fails (EBUSY) while it has processes.
    const rmTree = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rmTree(path.join(d, e.name));
      fs.rmdirSync(d);
    };
    rmTree(top);
  }
}

/** The sandbox's temp dir; `note` is told of leftover mounts it had to unmount first. */
function removeTempDir(dir: string, note: (problem: string) => void): void {
  // Never recurse into something mounted: it could be a host directory.
  const mounts = mountsUnder(dir);
  for (const m of [...mounts].sort().reverse()) shTry('umount', ['-l', m]);
  if (mounts.length > 0) {
    const still = mountsUnder(dir);
    if (still.length > 0) throw new Error(`still mounted, ${dir} NOT removed: ${still.join(', ')}`);
    note(`temp dir: unmounted leftover mounts ${mounts.join(', ')}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

/**
 * Undoes one run from its recorded state; each step runs even when an earlier
 * one failed. Returns the problems found: leftovers that had to be removed
 * here, or changes that could not be undone.
 */
export function teardownState(state: GuardState): string[] {
  const problems: string[] = [];
  const step: Step = (what, fn) => {
    try {
      fn();
    } catch (e) {
      problems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const dir = state.dir;
  if (dir && exists(dir)) removeContainers(dir, step);
  restoreRootNamespace(state, step);
  step('nat tables', () => removeNatTables(state.natTables));
  removeCniCache(state, step);
  step('cgroups', () => removeLibpodCgroups(state.libpodCgroups));
  if (dir && exists(dir)) step('temp dir', () => removeTempDir(dir, (p) => problems.push(p)));
  step('lock', () => {
    const held = readLock();
    if (held === undefined || held.pid === state.pid) fs.rmSync(LOCK_PATH, { force: true });
  });
  return problems;
}
