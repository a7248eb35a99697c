// A throw-away podman (4.x, CNI backend) installation for runtime tests.
//
// podman runs every CNI plugin in the ROOT network namespace of the machine,
// so unlike the kernel tests these tests cannot hide in a netns. What this
// helper does to the machine, and how each change is undone:
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
// Everything else podman keeps (storage, state database, locks, events, exit
// files, the network config dir, the plugin dir, the weir dataDir, the rootfs)
// lives in one private temp dir: podman is pointed at a test-private
// containers.conf through CONTAINERS_CONF and at private storage through the
// global flags --root/--runroot/--storage-driver, and never reads or writes
// /etc/containers, /var/lib/containers, /run/containers or /run/libpod.
//
// The recorded "before" state is kept in a lock file (/run/weirt-podman.lock)
// for the whole run: it keeps two runs from using the same CIDR and host port
// at once, and if a run dies without its teardown, the next run finds the
// lock of a dead pid and undoes that run's changes from the recorded state.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
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

/** Applets linked into the rootfs (all one busybox-static binary). */
const APPLETS = ['sh', 'nc', 'httpd', 'wget', 'ping', 'ip', 'sleep', 'timeout', 'cat', 'hostname'];

/**
 * podman's `run` flags that work on this machine: crun fails on the hybrid
 * cgroup layout, and raising rlimits fails (no CAP_SYS_RESOURCE).
 */
export const RUN_FLAGS = ['--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

export interface PodmanSandboxOptions {
  /** The CNI network (conflist) name; also the weir IPAM subdirectory. */
  network: string;
  /** The pod range, e.g. 10.254.250.0/24; gets the unreachable guard route. */
  podCIDR: string;
  /** The weir executable (a Node SEA; koffi.node must sit beside its real path). */
  weirBin: string;
  /** Chain portmap after weir (default true). */
  portmap?: boolean;
}

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

export class PodmanSandbox {
  readonly dir: string;
  readonly dataDir: string;
  readonly rootfs: string;
  readonly pluginDir: string;
  readonly netConfDir: string;
  readonly containersConf: string;
  readonly network: string;
  readonly podCIDR: string;
  /** podman's global flags: private storage. */
  readonly globalArgs: string[];
  readonly env: NodeJS.ProcessEnv;
  #state: GuardState;
  #tornDown = false;

  constructor(state: GuardState & { dir: string }) {
    this.#state = state;
    this.dir = state.dir;
    this.network = state.network;
    this.podCIDR = state.podCIDR;
    this.dataDir = path.join(this.dir, 'weir-data');
    this.rootfs = path.join(this.dir, 'rootfs');
    this.pluginDir = path.join(this.dir, 'cni-bin');
    this.netConfDir = path.join(this.dir, 'net.d');
    this.containersConf = path.join(this.dir, 'containers.conf');
    this.globalArgs = sandboxGlobalArgs(this.dir);
    this.env = sandboxEnv(this.containersConf);
  }

  /** Runs podman with the sandbox's config and storage; never throws on a non-zero exit. */
  podman(args: readonly string[], timeoutMs = 30_000): RunResult {
    const r = spawnSync('podman', [...this.globalArgs, ...args], { encoding: 'utf8', env: this.env, timeout: timeoutMs });
    if (r.error) throw new Error(`podman ${args.join(' ')}: ${r.error.message}`);
    return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 };
  }

  /** Like podman(), but throws with stderr on failure and returns stdout. */
  podmanOk(args: readonly string[], timeoutMs?: number): string {
    const r = this.podman(args, timeoutMs);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** `podman run -d` on the sandbox network and rootfs; returns the full container ID. */
  runDetached(name: string, cmd: readonly string[], extra: readonly string[] = []): string {
    const out = this.podmanOk(['run', '-d', '--name', name, ...RUN_FLAGS, '--network', this.network, ...extra, '--rootfs', this.rootfs, ...cmd]);
    return out.trim().split('\n').pop()!.trim();
  }

  /** `podman run --rm` in the foreground; returns its result. */
  runOnce(name: string, cmd: readonly string[], extra: readonly string[] = [], timeoutMs?: number): RunResult {
    return this.podman(['run', '--rm', '--name', name, ...RUN_FLAGS, '--network', this.network, ...extra, '--rootfs', this.rootfs, ...cmd], timeoutMs);
  }

  exec(name: string, cmd: readonly string[], timeoutMs?: number): RunResult {
    return this.podman(['exec', name, ...cmd], timeoutMs);
  }

  inspect(name: string): ContainerInfo {
    const [c] = JSON.parse(this.podmanOk(['inspect', '--type', 'container', name])) as RawInspect[];
    if (!c) throw new Error(`podman inspect ${name}: no such container`);
    const net = c.NetworkSettings?.Networks?.[this.network];
    return {
      id: c.Id,
      name: c.Name,
      running: c.State?.Running === true,
      ip: net?.IPAddress ?? '',
      prefixLen: net?.IPPrefixLen ?? 0,
      gateway: net?.Gateway ?? '',
      mac: net?.MacAddress ?? '',
      sandboxKey: c.NetworkSettings?.SandboxKey ?? '',
    };
  }

  /** IDs of every container in the sandbox's storage. */
  containerIds(): string[] {
    return this.podmanOk(['ps', '-a', '-q', '--no-trunc'])
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean);
  }

  /** Writes a file into the shared rootfs (e.g. a page for httpd). */
  writeRootfsFile(rel: string, text: string): void {
    const p = path.join(this.rootfs, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, text);
  }

  /** Address files (one per allocated IP) in weir's IPAM directory of this network. */
  ipamAddressFiles(): string[] {
    const d = path.join(this.dataDir, this.network);
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      return [];
    }
    return names.filter((n) => /^[0-9.]+$|:/.test(n)).sort();
  }

  readIpamRecord(ip: string): Record<string, unknown> {
    return JSON.parse(fs.readFileSync(path.join(this.dataDir, this.network, ip), 'utf8')) as Record<string, unknown>;
  }

  /** Undoes everything; returns the problems found (leftovers are removed but reported). */
  teardown(): string[] {
    if (this.#tornDown) return [];
    this.#tornDown = true;
    return teardownState(this.#state);
  }
}

export interface ContainerInfo {
  id: string;
  name: string;
  running: boolean;
  ip: string;
  prefixLen: number;
  gateway: string;
  mac: string;
  sandboxKey: string;
}

interface RawInspect {
  Id: string;
  Name: string;
  State?: { Running?: boolean };
  NetworkSettings?: {
    SandboxKey?: string;
    Networks?: Record<string, { IPAddress?: string; IPPrefixLen?: number; Gateway?: string; MacAddress?: string }>;
  };
}

const sandboxGlobalArgs = (dir: string): string[] => ['--root', path.join(dir, 'storage'), '--runroot', path.join(dir, 'run'), '--storage-driver', 'vfs'];

function sandboxEnv(containersConf: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: containersConf };
  // Nothing from the caller's environment may redirect podman elsewhere.
  for (const k of ['CONTAINERS_STORAGE_CONF', 'CONTAINERS_REGISTRIES_CONF', 'CONTAINER_HOST', 'CONTAINER_CONNECTION', 'CONTAINERS_CONF_OVERRIDE'])
    delete env[k];
  return env;
}

// ---------------------------------------------------------------- preflight

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/**
 * Everything the runtime test needs, checked before the machine is touched.
 * Throws one error listing every missing piece: the test fails, it never skips.
 */
export function preflight(weirBin: string): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('must run as root (podman creates veths and routes in the root namespace)');
  if (!which('podman')) {
    missing.push('podman is not installed (the machine setup installs podman 4.3 with the CNI backend: apt-get install podman)');
  } else {
    const v = shTry('podman', ['--version']);
    if (v.code !== 0 || !/podman version 4\./.test(v.stdout)) missing.push(`podman 4.x is required (CNI backend), got: ${(v.stdout + v.stderr).trim()}`);
  }
  if (!which('runc')) missing.push('runc is not installed (crun does not work here)');
  if (!which('conmon') && !fs.existsSync('/usr/bin/conmon')) missing.push('conmon is not installed');
  if (!fs.existsSync('/bin/busybox')) missing.push('/bin/busybox is missing (apt-get install busybox-static)');
  if (!fs.existsSync('/usr/lib/cni/portmap')) missing.push('/usr/lib/cni/portmap is missing (apt-get install containernetworking-plugins)');
  if (!which('iptables')) missing.push('iptables is missing (portmap needs it)');
  if (!which('nft')) missing.push('nft is missing');
  if (!fs.existsSync(weirBin)) missing.push(`${weirBin} is missing: build it with \`node_modules/.bin/node scripts/build.mjs\``);
  else if (!fs.existsSync(path.join(path.dirname(fs.realpathSync(weirBin)), 'koffi.node')))
    missing.push(`koffi.node is missing beside ${fs.realpathSync(weirBin)}: rebuild`);
  if (missing.length > 0) throw new Error(`podman runtime test prerequisites missing:\n  - ${missing.join('\n  - ')}`);
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

function writeState(state: GuardState, exclusive: boolean): void {
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

function routesWithin(cidr: string): string[] {
  return shTry('ip', ['-4', 'route', 'show', 'table', 'all', 'root', cidr])
    .stdout.split('\n')
    .map((s) => s.trim())
    .filter(Boolean);
}

// ---------------------------------------------------------------- setup / teardown

/**
 * Guards the root namespace and builds the private podman installation. On any
 * failure part-way, what was done is undone before the error propagates.
 */
export function createPodmanSandbox(opts: PodmanSandboxOptions): { sandbox: PodmanSandbox; notes: string[] } {
  preflight(opts.weirBin);
  const cniCacheExisted = exists(CNI_CACHE);
  const state: GuardState = {
    pid: process.pid,
    network: opts.network,
    podCIDR: opts.podCIDR,
    ipForward: readIpForward(),
    natTables: natTablesNow(),
    cniCacheExisted,
    cniResultsExisted: exists(CNI_RESULTS),
    libpodCgroups: cgroupHierarchies().filter((h) => exists(path.join(CGROUP_ROOT, h, LIBPOD_CGROUP))),
    routeAdded: false,
  };
  const notes = acquireLock(state);
  // A sweep may have changed the machine: take the "before" picture again.
  if (notes.length > 0) {
    Object.assign(state, {
      ipForward: readIpForward(),
      natTables: natTablesNow(),
      cniCacheExisted: exists(CNI_CACHE),
      cniResultsExisted: exists(CNI_RESULTS),
      libpodCgroups: cgroupHierarchies().filter((h) => exists(path.join(CGROUP_ROOT, h, LIBPOD_CGROUP))),
    });
    writeState(state, false);
  }
  try {
    // The guard route first, before podman or the plugin can run at all.
    const taken = routesWithin(opts.podCIDR);
    if (taken.length > 0) throw new Error(`${opts.podCIDR} is already routed in the root namespace, refusing to use it:\n${taken.join('\n')}`);
    sh('ip', ['route', 'add', 'unreachable', opts.podCIDR]);
    state.routeAdded = true;
    writeState(state, false);

    state.dir = fs.mkdtempSync(path.join(os.tmpdir(), `weirt-podman-${process.pid}-`));
    writeState(state, false);
    const sandbox = new PodmanSandbox(state as GuardState & { dir: string });
    writeFiles(sandbox, opts);
    // Last resort if the caller's teardown never runs (the worker exits early).
    process.once('exit', () => sandbox.teardown());
    return { sandbox, notes };
  } catch (e) {
    const problems = teardownState(state);
    if (problems.length > 0) (e as Error).message += `\n(cleanup after the failed setup: ${problems.join('; ')})`;
    throw e;
  }
}

function writeFiles(sb: PodmanSandbox, opts: PodmanSandboxOptions): void {
  // The plugin dir: symlinks are enough. A SEA finds koffi.node beside
  // process.execPath, which the kernel resolves to the real file.
  fs.mkdirSync(sb.pluginDir);
  fs.symlinkSync(path.resolve(opts.weirBin), path.join(sb.pluginDir, 'weir'));
  for (const p of ['portmap', 'loopback']) fs.symlinkSync(`/usr/lib/cni/${p}`, path.join(sb.pluginDir, p));

  fs.mkdirSync(sb.netConfDir);
  const plugins: unknown[] = [{ type: 'weir', podCIDRs: [opts.podCIDR], dataDir: sb.dataDir }];
  if (opts.portmap !== false) plugins.push({ type: 'portmap', capabilities: { portMappings: true }, snat: true });
  fs.writeFileSync(
    path.join(sb.netConfDir, `50-${opts.network}.conflist`),
    `${JSON.stringify({ cniVersion: '1.0.0', name: opts.network, plugins }, null, 2)}\n`,
  );

  // Only this file is read (CONTAINERS_CONF replaces the system files).
  const q = (s: string): string => JSON.stringify(s);
  fs.writeFileSync(
    sb.containersConf,
    [
      '[containers]',
      '',
      '[engine]',
      'runtime = "runc"',
      // No systemd on this machine.
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      // File locks live in tmp_dir; the default shm locks would be /dev/shm/libpod_lock, shared with the machine's podman.
      'lock_type = "file"',
      `tmp_dir = ${q(path.join(sb.dir, 'tmp'))}`,
      `volume_path = ${q(path.join(sb.dir, 'volumes'))}`,
      '',
      '[network]',
      'network_backend = "cni"',
      `cni_plugin_dirs = [${q(sb.pluginDir)}]`,
      `network_config_dir = ${q(sb.netConfDir)}`,
      `default_network = ${q(opts.network)}`,
      '',
    ].join('\n'),
  );

  // A busybox-static rootfs, shared by all containers.
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'www']) fs.mkdirSync(path.join(sb.rootfs, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(sb.rootfs, 'bin/busybox'));
  fs.chmodSync(path.join(sb.rootfs, 'bin/busybox'), 0o755);
  for (const a of APPLETS) fs.symlinkSync('busybox', path.join(sb.rootfs, 'bin', a));
}

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

/**
 * Undoes one run from its recorded state; each step runs even when an earlier
 * one failed. Returns the problems found: leftovers that had to be removed
 * here, or changes that could not be undone.
 */
export function teardownState(state: GuardState): string[] {
  const problems: string[] = [];
  const step = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (e) {
      problems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  const dir = state.dir;
  if (dir && exists(dir)) {
    const conf = path.join(dir, 'containers.conf');
    const podman = (args: string[]): RunResult => {
      const r = spawnSync('podman', [...sandboxGlobalArgs(dir), ...args], { encoding: 'utf8', env: sandboxEnv(conf), timeout: 60_000 });
      return { stdout: r.stdout ?? '', stderr: r.stderr ?? r.error?.message ?? '', code: r.status ?? -1 };
    };
    if (exists(conf)) {
      step('podman rm', () => {
        const r = podman(['rm', '--all', '--force', '--time', '0']);
        if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr.trim()}`);
        const left = podman(['ps', '--all', '--quiet']);
        if (left.stdout.trim() !== '') throw new Error(`containers left after rm --all --force: ${left.stdout.trim().replace(/\n/g, ' ')}`);
      });
    }
  }

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

  // portmap's tables: gone again if they were not there before, unless some
  // per-container chain is still in them (then it is a leak, and reported).
  step('nat tables', () => {
    for (const [family, name] of NAT_TABLES) {
      const t = `${family} ${name}`;
      if (state.natTables.includes(t) || !natTablesNow().includes(t)) continue;
      const doc = JSON.parse(sh('nft', ['-j', 'list', 'table', family, name])) as { nftables: Array<{ rule?: { chain: string }; chain?: { name: string } }> };
      const ours = doc.nftables.filter((e) => e.chain?.name.startsWith('CNI-DN-') || e.rule?.chain === 'CNI-HOSTPORT-DNAT');
      if (ours.length > 0) {
        // Only this run used portmap on a table that did not exist before: its DNATs are leaks.
        sh('nft', ['delete', 'table', family, name]);
        throw new Error(`portmap left ${ours.length} DNAT chain(s)/rule(s) in ${t}; table deleted`);
      }
      sh('nft', ['delete', 'table', family, name]);
    }
  });

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
  step('cgroups', () => {
    for (const h of cgroupHierarchies()) {
      if (state.libpodCgroups.includes(h)) continue;
      const top = path.join(CGROUP_ROOT, h, LIBPOD_CGROUP);
      if (!exists(top)) continue;
      // Depth first; rmdir of a cgroup fails (EBUSY) while it has processes.
      const rmTree = (d: string): void => {
        for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) rmTree(path.join(d, e.name));
        fs.rmdirSync(d);
      };
      rmTree(top);
    }
  });

  if (dir && exists(dir)) {
    step('temp dir', () => {
      // Never recurse into something mounted: it could be a host directory.
      const mounts = mountsUnder(dir);
      for (const m of [...mounts].sort().reverse()) shTry('umount', ['-l', m]);
      if (mounts.length > 0) {
        const still = mountsUnder(dir);
        if (still.length > 0) throw new Error(`still mounted, ${dir} NOT removed: ${still.join(', ')}`);
        problems.push(`temp dir: unmounted leftover mounts ${mounts.join(', ')}`);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    });
  }
  step('lock', () => {
    const held = readLock();
    if (held === undefined || held.pid === state.pid) fs.rmSync(LOCK_PATH, { force: true });
  });
  return problems;
}

const v4num = (ip: string): number => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);

/** Whether an IPv4 address lies in an IPv4 CIDR. */
export function inCidr4(ip: string, cidr: string): boolean {
  const [net = '', len = '32'] = cidr.split('/');
  const bits = Number(len);
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip)) return false;
  const size = 2 ** (32 - bits);
  return Math.floor(v4num(ip) / size) === Math.floor(v4num(net) / size);
}

/** A global IPv4 address of the root namespace (not on a weir veth, not in `podCIDR`), for hostPort tests. */
export function hostAddress(podCIDR: string): string {
  interface IpAddr {
    ifname: string;
    addr_info: { family: string; local: string }[];
  }
  const addrs = JSON.parse(sh('ip', ['-j', '-4', 'addr', 'show', 'scope', 'global']) || '[]') as IpAddr[];
  for (const a of addrs) {
    if (a.ifname.startsWith('weir')) continue;
    for (const i of a.addr_info) if (i.family === 'inet' && !inCidr4(i.local, podCIDR)) return i.local;
  }
  throw new Error('the root namespace has no global IPv4 address to test the host port mapping on');
}
