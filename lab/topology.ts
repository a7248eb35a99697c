// The lab's network: one shared L2 segment, like the bridge Docker gives kind.
//
//   weirlab-net                     bridge br0 172.18.0.1/16 (the lab's "host"
//                                   vantage point; users' kubectl runs here)
//     ├─ vn0 ── eth0 in weirlab-weir-control-plane   172.18.0.2/16
//     ├─ vn1 ── eth0 in weirlab-weir-worker          172.18.0.3/16
//     └─ vn2 ── eth0 in weirlab-weir-worker2         172.18.0.4/16
//
// Every node namespace has lo up, eth0 and a default route via 172.18.0.1.
// The bridge namespace has only the connected /16: nothing in the lab can
// reach, or be reached from, the machine's own network.
//
// Network safety: every command here names a lab namespace (`ip -n NS`,
// `ip netns exec NS`); veth pairs are created inside weirlab-net with their
// peer placed directly into the node namespace, so no link, address, route
// or nft table ever exists in the machine's root namespace, not even for a
// moment.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';

export const NETNS_DIR = '/var/run/netns';
export const NETNS_PREFIX = 'weirlab-';
export const BRIDGE_NETNS = 'weirlab-net';
export const BRIDGE = 'br0';
export const GATEWAY_IP = '172.18.0.1';
export const PREFIX_LEN = 16;
export const MAX_NODES = 50;

export interface LabNode {
  /** Kubernetes node name: weir-control-plane, weir-worker, weir-worker2, … */
  name: string;
  /** The node's network namespace (`ip netns` name). */
  netns: string;
  /** eth0's address, without prefix length. */
  ip: string;
  /** Index in the topology (0 = control plane). */
  index: number;
  controlPlane: boolean;
}

export class TopologyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TopologyError';
  }
}

/** kind's names: the first node is the control plane, then weir-worker, weir-worker2, … */
export function nodeName(index: number): string {
  if (index === 0) return 'weir-control-plane';
  return index === 1 ? 'weir-worker' : `weir-worker${index}`;
}

export function labNodes(count: number): LabNode[] {
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) throw new TopologyError(`node count must be 1..${MAX_NODES}, got ${count}`);
  return Array.from({ length: count }, (_, i) => {
    const name = nodeName(i);
    return { name, netns: `${NETNS_PREFIX}${name}`, ip: `172.18.0.${2 + i}`, index: i, controlPlane: i === 0 };
  });
}

interface Run {
  stdout: string;
  stderr: string;
  code: number;
}

function run(cmd: string, args: readonly string[]): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.error) return { stdout: '', stderr: r.error.message, code: -1 };
  return { stdout: r.stdout, stderr: r.stderr, code: r.status ?? -1 };
}

function must(cmd: string, args: readonly string[]): string {
  const r = run(cmd, args);
  if (r.code !== 0) throw new TopologyError(`${cmd} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export const netnsExists = (name: string): boolean => fs.existsSync(`${NETNS_DIR}/${name}`);

/**
 * The names the topology uses, for any node count. Other `weirlab-*` names
 * exist too and are not the topology's: the kubelet stand-in names its pods'
 * namespaces `weirlab-pod-<uid>`, and its own tests create those alongside a
 * running lab. A sweep therefore never deletes a `weirlab-*` namespace by
 * prefix alone.
 */
export const TOPOLOGY_NETNS_RE = /^weirlab-(?:net|weir-control-plane|weir-worker\d*)$/;

/** Every `weirlab-*` namespace currently known to `ip netns`. */
export function labNetnsList(): string[] {
  try {
    return fs.readdirSync(NETNS_DIR).filter((n) => n.startsWith(NETNS_PREFIX));
  } catch {
    return [];
  }
}

/** The topology's namespaces currently known to `ip netns`. */
export function topologyNetnsList(): string[] {
  return labNetnsList().filter((n) => TOPOLOGY_NETNS_RE.test(n));
}

function ensureNetns(name: string): void {
  if (!name.startsWith(NETNS_PREFIX)) throw new TopologyError(`refusing to touch non-lab namespace ${name}`);
  if (!netnsExists(name)) must('ip', ['netns', 'add', name]);
  must('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

function linkExists(netns: string, dev: string): boolean {
  return run('ip', ['-n', netns, 'link', 'show', 'dev', dev]).code === 0;
}

function hasAddr(netns: string, dev: string, cidr: string): boolean {
  const out = run('ip', ['-n', netns, '-o', '-4', 'addr', 'show', 'dev', dev]).stdout;
  return out.split(/\s+/).includes(cidr);
}

/** Writes a sysctl inside `netns` (the namespace's own copy; never the root namespace's). */
function nsSysctl(netns: string, key: string, value: string): void {
  must('ip', ['netns', 'exec', netns, 'sysctl', '-q', '-w', `${key}=${value}`]);
}

/** Creates whatever is missing of the topology for `count` nodes; safe to call again. */
export function createTopology(count: number, log: (msg: string) => void = () => {}): LabNode[] {
  const nodes = labNodes(count);
  ensureNetns(BRIDGE_NETNS);
  if (!linkExists(BRIDGE_NETNS, BRIDGE)) must('ip', ['-n', BRIDGE_NETNS, 'link', 'add', BRIDGE, 'type', 'bridge']);
  const gw = `${GATEWAY_IP}/${PREFIX_LEN}`;
  if (!hasAddr(BRIDGE_NETNS, BRIDGE, gw)) must('ip', ['-n', BRIDGE_NETNS, 'addr', 'add', gw, 'dev', BRIDGE]);
  must('ip', ['-n', BRIDGE_NETNS, 'link', 'set', BRIDGE, 'up']);
  log(`topology: ${BRIDGE_NETNS} ${BRIDGE} ${gw}`);
  for (const n of nodes) {
    ensureNetns(n.netns);
    const port = `vn${n.index}`;
    const hasEth0 = linkExists(n.netns, 'eth0');
    const hasPort = linkExists(BRIDGE_NETNS, port);
    if (hasEth0 !== hasPort) {
      // Half a pair (should not happen: a veth pair dies as a whole); start the pair over.
      if (hasPort) must('ip', ['-n', BRIDGE_NETNS, 'link', 'del', port]);
      if (hasEth0) must('ip', ['-n', n.netns, 'link', 'del', 'eth0']);
    }
    if (!hasEth0 || !hasPort) must('ip', ['-n', BRIDGE_NETNS, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns]);
    must('ip', ['-n', BRIDGE_NETNS, 'link', 'set', port, 'master', BRIDGE, 'up']);
    const cidr = `${n.ip}/${PREFIX_LEN}`;
    if (!hasAddr(n.netns, 'eth0', cidr)) must('ip', ['-n', n.netns, 'addr', 'add', cidr, 'dev', 'eth0']);
    must('ip', ['-n', n.netns, 'link', 'set', 'eth0', 'up']);
    must('ip', ['-n', n.netns, 'route', 'replace', 'default', 'via', GATEWAY_IP, 'dev', 'eth0']);
    // A node forwards for its pods, as a kind node (Docker container) does.
    nsSysctl(n.netns, 'net.ipv4.ip_forward', '1');
    log(`topology: ${n.name} ${n.netns} eth0 ${cidr}`);
  }
  return nodes;
}

/** Deletes one lab namespace; a namespace already gone is fine. */
function deleteNetns(name: string): void {
  if (!name.startsWith(NETNS_PREFIX)) throw new TopologyError(`refusing to delete non-lab namespace ${name}`);
  if (!netnsExists(name)) return;
  const r = run('ip', ['netns', 'del', name]);
  if (r.code !== 0 && netnsExists(name)) throw new TopologyError(`ip netns del ${name}: exit ${r.code}: ${r.stderr.trim()}`);
}

/** The pids of processes living in a lab namespace. */
export function netnsPids(name: string): number[] {
  if (!netnsExists(name)) return [];
  return run('ip', ['netns', 'pids', name])
    .stdout.split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 0 && p !== process.pid);
}

/** Removes the topology of `nodes` (node namespaces first, then the bridge namespace). */
export function destroyTopology(nodes: readonly Pick<LabNode, 'netns'>[]): void {
  let first: unknown;
  for (const name of [...nodes.map((n) => n.netns), BRIDGE_NETNS]) {
    try {
      deleteNetns(name);
    } catch (e) {
      first ??= e;
    }
  }
  if (first) throw first;
}

/**
 * Removes the topology's namespaces (any node count) and the `weirlab-*`
 * namespaces in `pods` (the lab's own pod namespaces, from the stand-ins'
 * sandbox records), killing what still runs in them first. Returns the names
 * deleted.
 */
export function sweepLabNetns(pods: readonly string[] = []): string[] {
  const mine = new Set(pods.filter((n) => n.startsWith(NETNS_PREFIX)));
  const names = labNetnsList().filter((n) => TOPOLOGY_NETNS_RE.test(n) || mine.has(n));
  for (const name of names) for (const pid of netnsPids(name)) signal(pid, 'SIGKILL');
  const swept: string[] = [];
  for (const name of names) {
    try {
      deleteNetns(name);
      swept.push(name);
    } catch {
      // reported by the caller's check of what is left
    }
  }
  return swept;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

export interface NetnsRun {
  stdout: string;
  stderr: string;
  code: number;
}

/**
 * Runs a short command inside a lab namespace without blocking the event loop.
 * stdin is a pipe only when there is `input` (and a child that exits without
 * reading it is not an error), so a fast-failing command never raises EPIPE.
 */
export function runInLabNetns(netns: string, cmd: readonly string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<NetnsRun> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', netns, ...cmd], { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], ...(opts.env ? { env: opts.env } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: `${stderr}${e.message}`, code: -1 });
    });
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: sig ? `${stderr}killed by ${sig}` : stderr, code: code ?? -1 });
    });
    if (child.stdin) {
      child.stdin.on('error', () => {}); // EPIPE: the child did not read it all; its exit code tells
      child.stdin.end(opts.input);
    }
  });
}
