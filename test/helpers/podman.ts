// A throw-away podman (4.x, CNI backend) installation for runtime tests.
//
// podman runs every CNI plugin in the ROOT network namespace of the machine:
// what that changes there, and how each change is undone even after a
// crashed run, is podman-guard.ts. Everything else podman keeps (storage,
// state database, locks, events, exit files, the network config dir, the
// plugin dir, the weir dataDir, the rootfs) lives in one private temp dir:
// podman is pointed at a test-private containers.conf through CONTAINERS_CONF
// and at private storage through the global flags --root/--runroot/
// --storage-driver, and never reads or writes /etc/containers,
// /var/lib/containers, /run/containers or /run/libpod.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type RunResult, sh, shTry } from './netns.ts';
import { addGuardRoute, type GuardState, sandboxEnv, sandboxGlobalArgs, takeGuard, teardownState, writeState } from './podman-guard.ts';

export { type GuardState, LOCK_PATH, teardownState } from './podman-guard.ts';

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

// ---------------------------------------------------------------- setup

/**
 * Guards the root namespace and builds the private podman installation. On any
 * failure part-way, what was done is undone before the error propagates.
 */
export function createPodmanSandbox(opts: PodmanSandboxOptions): { sandbox: PodmanSandbox; notes: string[] } {
  preflight(opts.weirBin);
  const { state, notes } = takeGuard(opts.network, opts.podCIDR);
  try {
    // The guard route first, before podman or the plugin can run at all.
    addGuardRoute(state);
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
