// Runs CNI plugins against the real kernel the way a container runtime does.
//
// - runCni()/startCni() (cni-invoke.ts): one invocation of one plugin binary,
//   exactly as libcni's invoke package makes it.
// - addNetworkList()/checkNetworkList()/delNetworkList()/gcNetworkList()/
//   statusNetworkList() (cni-conflist.ts): a conflist run plugin by plugin
//   with libcni's injection rules.
// - useCniNodes(): a per-test "node" network namespace the plugin runs in,
//   pod namespaces, a temp dataDir, and an afterEach that destroys all of it
//   even when the test failed, then asserts nothing was left behind.
//
// The tests import all three from here.
//
// Network safety: the plugin always runs inside a node namespace
// (`ip netns exec <node>`), never in the root namespace, and nothing here
// configures an address or route outside the test's namespaces.
//
// The plugin under test is the built executable dist/bin/weir: run
// `npm run build` before the kernel tests.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import { type ConfList, type PluginConf, type RuntimeConf, versionAtLeast } from './cni-conflist.ts';
import {
  type CniCommand,
  type CniOutcome,
  containerdArgs,
  expectSuccess,
  hostVethName,
  type Invocation,
  killChildren,
  newContainerId,
  type PluginJson,
  type PodMeta,
  type RunningCni,
  runCni,
  startCni,
  track,
  weirBinary,
} from './cni-invoke.ts';
import { listNetns, type TestNetns, withNetnsCleanup } from './netns.ts';
import { sleep, waitFor } from './wait.ts';

export {
  addNetworkList,
  buildOneConfig,
  type ChainOutcome,
  type ChainStep,
  type ConfList,
  checkNetworkList,
  delNetworkList,
  gcNetworkList,
  type PluginConf,
  type RuntimeConf,
  statusNetworkList,
} from './cni-conflist.ts';
export {
  CNI_PATH,
  CNI_VARS,
  type CniCommand,
  type CniOutcome,
  containerdArgs,
  describeOutcome,
  expectCniError,
  expectSuccess,
  findPlugin,
  hostVethName,
  type Invocation,
  newContainerId,
  type PluginJson,
  type PodMeta,
  REFERENCE_PLUGIN_DIR,
  type RunningCni,
  runCni,
  startCni,
  WEIR_BIN,
  weirBinary,
} from './cni-invoke.ts';
export { sleep, waitFor };

// ---- connectivity ----

/** One ICMP echo from `from` to `address`. */
export const ping = (from: TestNetns, address: string): boolean => from.run(['busybox', 'ping', '-c', '1', '-W', '2', address]).code === 0;

/**
 * A TCP exchange: `busybox nc -l` listens on `port` in `server`, `busybox nc`
 * connects from `client` to `address`:`connectPort` (default `port`; another
 * port when a DNAT is in the way) and sends `payload`. Returns what the
 * listener received ('' when nothing arrived).
 */
export async function tcpExchange(server: TestNetns, client: TestNetns, address: string, port: number, payload: string, connectPort = port): Promise<string> {
  const listener = track(spawn('ip', ['netns', 'exec', server.name, 'busybox', 'nc', '-l', '-p', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let received = '';
  listener.stdout?.setEncoding('utf8').on('data', (d: string) => (received += d));
  const exited = new Promise<void>((r) => listener.on('close', () => r()));
  try {
    await waitFor(`a listener on port ${port} in ${server.name}`, () => server.run(['ss', '-Hltn', `sport = :${port}`]).stdout.includes(`:${port}`));
    spawnSync('ip', ['netns', 'exec', client.name, 'busybox', 'nc', '-w', '10', address, String(connectPort)], {
      input: payload,
      encoding: 'utf8',
      timeout: 20_000,
    });
    await Promise.race([exited, sleep(12_000)]);
    return received;
  } finally {
    if (listener.exitCode === null && listener.signalCode === null) listener.kill('SIGKILL');
  }
}

// ---- node fixture ----

export const POD_CIDRS = ['10.244.1.0/24', 'fd00:10:244:1::/64'];
export const NODE_IPV4 = '192.0.2.1';
export const NODE_IPV6 = '2001:db8::1';

export interface Pod {
  ns: TestNetns;
  containerId: string;
  ifname: string;
  meta: PodMeta;
  /** CNI_ARGS for this pod, containerd's form. */
  args: string;
  /** The pod's runtime view, for the conflist runner. */
  rt: RuntimeConf;
}

export interface AttachedPod extends Pod {
  result: PluginJson;
  ipv4?: string;
  ipv6?: string;
  hostVeth: string;
}

interface IpLinkJson {
  ifname: string;
  ifalias?: string;
  address?: string;
  linkinfo?: { info_kind?: string };
}

export class CniNode {
  readonly ns: TestNetns;
  /** The test's temp directory; the plugin's dataDir is inside it. */
  readonly tmp: string;
  readonly dataDir: string;
  readonly network = 'weirnet';
  readonly #pod: (tag: string) => TestNetns;
  readonly #seen: (containerId: string, ifname: string) => void;
  #count = 0;

  constructor(ns: TestNetns, tmp: string, pod: (tag: string) => TestNetns, seen: (containerId: string, ifname: string) => void) {
    this.ns = ns;
    this.tmp = tmp;
    this.dataDir = path.join(tmp, 'data');
    this.#pod = pod;
    this.#seen = seen;
  }

  get name(): string {
    return this.ns.name;
  }

  /** weir's network configuration (dual-stack by default); `extra` overrides or adds keys. */
  config(extra: Record<string, unknown> = {}, cniVersion = '1.1.0'): Record<string, unknown> {
    return { cniVersion, name: this.network, type: 'weir', podCIDRs: POD_CIDRS, mtu: 1500, dataDir: this.dataDir, ...extra };
  }

  /** A one-plugin conflist of weir, for the libcni runner. */
  list(extra: Record<string, unknown> = {}, cniVersion = '1.1.0'): ConfList {
    const { cniVersion: _v, name: _n, ...plugin } = this.config(extra, cniVersion);
    return { cniVersion, name: this.network, plugins: [plugin as PluginConf] };
  }

  /** A fresh pod namespace with a containerd-style container ID and CNI_ARGS. */
  newPod(opts: { containerId?: string; ifname?: string; tag?: string } = {}): Pod {
    const ns = this.#pod(opts.tag ?? 'pod');
    const containerId = opts.containerId ?? newContainerId();
    const ifname = opts.ifname ?? 'eth0';
    const meta = { namespace: 'default', name: `pod-${++this.#count}`, uid: randomUUID() };
    const args = containerdArgs(containerId, meta);
    this.#seen(containerId, ifname);
    return { ns, containerId, ifname, meta, args, rt: { containerId, netns: ns.path, ifname, args } };
  }

  /** The invocation of weir for `pod` in this node (its attachment noted for cleanup); `over` replaces any env field. */
  #invocation(command: CniCommand, config: unknown, pod: Pod | undefined, over: Partial<Invocation>): Invocation {
    const inv: Invocation = {
      node: this.name,
      command,
      config,
      ...(pod ? { containerId: pod.containerId, netns: pod.ns.path, ifname: pod.ifname, args: pod.args } : {}),
      ...over,
    };
    if (inv.containerId && inv.ifname) this.#seen(inv.containerId, inv.ifname);
    return inv;
  }

  /** One weir invocation for `pod` in this node; `over` replaces any env field. */
  invoke(command: CniCommand, config: unknown, pod?: Pod, over: Partial<Invocation> = {}): CniOutcome {
    return runCni(this.#invocation(command, config, pod, over));
  }

  /** The same, started: the caller waits for it. */
  invokeAsync(command: CniCommand, config: unknown, pod?: Pod, over: Partial<Invocation> = {}): RunningCni {
    return startCni(this.#invocation(command, config, pod, over));
  }

  /** ADD that must succeed; returns the pod with its result and addresses. */
  add(pod: Pod, config: Record<string, unknown> = this.config()): AttachedPod {
    return this.attached(pod, expectSuccess(this.invoke('ADD', config, pod), `ADD ${pod.containerId}`));
  }

  attached(pod: Pod, result: PluginJson): AttachedPod {
    const ips = ((result?.ips ?? []) as { address: string }[]).map((i) => i.address.split('/')[0] ?? '');
    const ipv4 = ips.find((a) => net.isIPv4(a));
    const ipv6 = ips.find((a) => net.isIPv6(a));
    return { ...pod, result, hostVeth: hostVethName(pod.containerId, pod.ifname), ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) };
  }

  /** DEL that must succeed, with prevResult as libcni passes it (0.4.0 and later). */
  del(pod: AttachedPod | Pod, config: Record<string, unknown> = this.config()): void {
    const prev = 'result' in pod && versionAtLeast(String(config['cniVersion']), '0.4.0') ? { prevResult: pod.result } : {};
    expectSuccess(this.invoke('DEL', { ...config, ...prev }, pod), `DEL ${pod.containerId}`);
  }

  /** CHECK with the ADD result as prevResult. */
  check(pod: AttachedPod, config: Record<string, unknown> = this.config()): CniOutcome {
    return this.invoke('CHECK', { ...config, prevResult: pod.result }, pod);
  }

  // -- what a user inspects on the node --

  links(): IpLinkJson[] {
    return this.ns.ipJson<IpLinkJson[]>(['-d', 'link', 'show']);
  }
  linkNames(): string[] {
    return this.links().map((l) => l.ifname);
  }
  /** `ip route show proto 87`, both families, one line per route. */
  weirRoutes(): string[] {
    const lines = (fam: string) =>
      this.ns
        .sh(['ip', fam, 'route', 'show', 'proto', '87'])
        .split('\n')
        .filter((l) => l.trim() !== '');
    return [...lines('-4'), ...lines('-6')];
  }
  /** Address files in the network's IPAM directory (one per allocated address). */
  addressFiles(network = this.network): string[] {
    return readdir(path.join(this.dataDir, network)).filter((n) => net.isIP(n) !== 0);
  }
  /** Temp files (`.tmp-*`) anywhere under dataDir. */
  tempFiles(): string[] {
    return walk(this.dataDir).filter((f) => path.basename(f).startsWith('.tmp-'));
  }
  /** The node as before any pod: only lo, no weir route, no address or temp file. */
  leftovers(network = this.network): { links: string[]; routes: string[]; addressFiles: string[]; tempFiles: string[] } {
    return {
      links: this.linkNames().filter((n) => n !== 'lo'),
      routes: this.weirRoutes(),
      addressFiles: this.addressFiles(network),
      tempFiles: this.tempFiles(),
    };
  }
}

export const NOTHING_LEFT = { links: [], routes: [], addressFiles: [], tempFiles: [] };

export function readdir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}
/** Every path under `dir` (files and directories), relative to it. */
export function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const d of (() => {
    try {
      return fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  })()) {
    const r = path.join(rel, d.name);
    out.push(r);
    if (d.isDirectory()) out.push(...walk(dir, r));
  }
  return out;
}

/** Pod-side view: the addresses on `ifname` in `ns`, as `addr/prefix`. */
export function podAddresses(ns: TestNetns, ifname = 'eth0'): string[] {
  const r = ns.run(['ip', '-j', 'addr', 'show', 'dev', ifname]);
  if (r.code !== 0) return [];
  const links = JSON.parse(r.stdout || '[]') as { addr_info: { local?: string; prefixlen: number; scope: string }[] }[];
  return links.flatMap((l) => l.addr_info.filter((a) => a.local !== undefined && a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`));
}
export const hasLink = (ns: TestNetns, name: string): boolean => ns.run(['ip', 'link', 'show', 'dev', name]).code === 0;

export interface CniNodes {
  /** A fresh node namespace (lo up with 192.0.2.1/32 and 2001:db8::1/128) and temp dataDir, destroyed after the test. */
  node(): CniNode;
}

/**
 * Call once at the top of a test file. Registers an afterEach that SIGKILLs
 * stray children, destroys every namespace and temp directory of the test
 * (also when it failed), and then fails the test if any namespace or file
 * survived, or if a host veth of the test's pods appeared in the root
 * namespace (which would mean the plugin ran in the wrong namespace).
 */
export function useCniNodes(prefix: string): CniNodes {
  const scope = withNetnsCleanup(prefix);
  let namespaces: TestNetns[] = [];
  let tmpDirs: string[] = [];
  let vethNames = new Set<string>();
  const create = (tag: string): TestNetns => {
    const ns = scope.create(tag);
    namespaces.push(ns);
    return ns;
  };

  afterEach(async () => {
    await killChildren();
    const errors: string[] = [];
    for (const ns of namespaces.reverse()) {
      try {
        ns.destroy();
      } catch (e) {
        errors.push(String(e));
      }
    }
    for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
    const names = new Set(namespaces.map((n) => n.name));
    const leftNs = listNetns().filter((n) => names.has(n));
    const leftDirs = tmpDirs.filter((d) => fs.existsSync(d));
    const rootVeths = readdir('/sys/class/net').filter((n) => vethNames.has(n));
    namespaces = [];
    tmpDirs = [];
    vethNames = new Set();
    if (leftNs.length > 0) errors.push(`namespaces left behind: ${leftNs.join(', ')}`);
    if (leftDirs.length > 0) errors.push(`temp directories left behind: ${leftDirs.join(', ')}`);
    if (rootVeths.length > 0) {
      // Never configure the root namespace, not even to clean up: report loudly.
      errors.push(`host veths of test pods appeared in the ROOT network namespace: ${rootVeths.join(', ')}`);
    }
    if (errors.length > 0) throw new Error(`teardown: ${errors.join('; ')}`);
  });

  return {
    node: () => {
      weirBinary(); // fail with the build hint before creating anything
      const ns = create('node');
      ns.sh(['ip', 'link', 'set', 'lo', 'up']);
      ns.sh(['ip', 'addr', 'add', `${NODE_IPV4}/32`, 'dev', 'lo']);
      ns.sh(['ip', '-6', 'addr', 'add', `${NODE_IPV6}/128`, 'dev', 'lo', 'nodad']);
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `weir-${prefix}-`));
      tmpDirs.push(tmp);
      return new CniNode(ns, tmp, create, (id, ifname) => vethNames.add(hostVethName(id, ifname)));
    },
  };
}
