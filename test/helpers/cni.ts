// Runs CNI plugins against the real kernel the way a container runtime does.
//
// - runCni()/startCni(): one invocation of one plugin binary, exactly as
//   libcni's invoke package makes it: the network configuration on stdin, and
//   CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_ARGS, CNI_IFNAME and CNI_PATH
//   always set (empty when not applicable). Returns exit status, stdout (and
//   its JSON), stderr.
// - addNetworkList()/checkNetworkList()/delNetworkList()/gcNetworkList()/
//   statusNetworkList(): a conflist run plugin by plugin with libcni's
//   injection rules (libcni/api.go, buildOneConfig and injectRuntimeConfig):
//   every plugin gets `name` and `cniVersion` of the list, `prevResult` (the
//   previous plugin's result on ADD; the final ADD result, in order for CHECK
//   and in reverse for DEL, and only from cniVersion 0.4.0), and a
//   `runtimeConfig` holding the capability args it declares in
//   `capabilities`. GC and STATUS get `name`/`cniVersion` (and GC
//   `cni.dev/valid-attachments`), with CNI_CONTAINERID/NETNS/IFNAME empty.
//   One difference from libcni: results travel as the plugin printed them,
//   not re-marshalled through Go types.
// - useCniNodes(): a per-test "node" network namespace the plugin runs in,
//   pod namespaces, a temp dataDir, and an afterEach that destroys all of it
//   even when the test failed, then asserts nothing was left behind.
//
// Network safety: the plugin always runs inside a node namespace
// (`ip netns exec <node>`), never in the root namespace, and nothing here
// configures an address or route outside the test's namespaces.
//
// The plugin under test is the built executable dist/bin/weir: run
// `npm run build` before the kernel tests.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import { listNetns, type TestNetns, withNetnsCleanup } from './netns.ts';
import { sleep, waitFor } from './wait.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const WEIR_BIN = path.join(REPO_ROOT, 'dist/bin/weir');
export const REFERENCE_PLUGIN_DIR = '/usr/lib/cni';
/** CNI_PATH as a runtime would set it: weir's directory, then the reference plugins. */
export const CNI_PATH = `${path.dirname(WEIR_BIN)}:${REFERENCE_PLUGIN_DIR}`;
/** The environment a runtime (containerd under systemd) gives plugins, before the CNI_* variables. */
const BASE_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };
export const CNI_VARS = ['CNI_COMMAND', 'CNI_CONTAINERID', 'CNI_NETNS', 'CNI_ARGS', 'CNI_IFNAME', 'CNI_PATH'] as const;

/** The built plugin, or a clear error saying to build it. */
export function weirBinary(): string {
  for (const f of [WEIR_BIN, path.join(path.dirname(WEIR_BIN), 'koffi.node')]) {
    if (!fs.existsSync(f)) throw new Error(`${path.relative(REPO_ROOT, f)} is missing: the kernel tests run the built plugin, so run \`npm run build\` first`);
  }
  return WEIR_BIN;
}

/** libcni's FindInPath: the first file named `type` in the CNI_PATH directories. */
export function findPlugin(type: string, cniPath = CNI_PATH): string {
  if (type === 'weir') weirBinary();
  for (const dir of cniPath.split(':').filter(Boolean)) {
    const p = path.join(dir, type);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`failed to find plugin "${type}" in path [${cniPath}]`);
}

// ---- one invocation ----

export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'STATUS' | 'GC' | 'VERSION';

export interface Invocation {
  /** `ip netns` name of the namespace the plugin runs in (the test's node). Required: never the root namespace. */
  node: string;
  command: CniCommand;
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS verbatim (see containerdArgs). */
  args?: string;
  cniPath?: string;
  /** Network configuration: an object is sent as JSON, a string byte for byte. */
  config: unknown;
  /** Plugin type, looked up in CNI_PATH. Default `weir`. */
  type?: string;
  /** CNI_* variables to leave out entirely (a runtime sets all six, some empty). */
  unset?: readonly string[];
  timeoutMs?: number;
}

export interface CniOutcome {
  /** Exit status; null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON; undefined when empty or not JSON. */
  json: PluginJson | undefined;
  ms: number;
}

function cniEnv(inv: Invocation): Record<string, string> {
  const vars: Record<(typeof CNI_VARS)[number], string> = {
    CNI_COMMAND: inv.command,
    CNI_CONTAINERID: inv.containerId ?? '',
    CNI_NETNS: inv.netns ?? '',
    CNI_ARGS: inv.args ?? '',
    CNI_IFNAME: inv.ifname ?? '',
    CNI_PATH: inv.cniPath ?? CNI_PATH,
  };
  const env: Record<string, string> = { ...BASE_ENV };
  for (const [k, v] of Object.entries(vars)) if (!inv.unset?.includes(k)) env[k] = v;
  return env;
}

function prepare(inv: Invocation): { argv: string[]; input: string; env: Record<string, string> } {
  if (!inv.node) throw new Error('runCni: a node namespace is required (the plugin never runs in the root namespace)');
  const bin = findPlugin(inv.type ?? 'weir', inv.cniPath);
  const input = typeof inv.config === 'string' ? inv.config : JSON.stringify(inv.config);
  return { argv: ['netns', 'exec', inv.node, bin], input, env: cniEnv(inv) };
}

function outcome(code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string, ms: number): CniOutcome {
  let json: unknown;
  try {
    json = stdout.trim() === '' ? undefined : JSON.parse(stdout);
  } catch {
    json = undefined;
  }
  return { code, signal, stdout, stderr, json: json as PluginJson | undefined, ms };
}

/** Runs one plugin invocation to completion. */
export function runCni(inv: Invocation): CniOutcome {
  const { argv, input, env } = prepare(inv);
  const t0 = performance.now();
  const r = spawnSync('ip', argv, { input, env, encoding: 'utf8', timeout: inv.timeoutMs ?? 30_000 });
  if (r.error) throw new Error(`${inv.type ?? 'weir'} ${inv.command}: ${r.error.message}`);
  return outcome(r.status, r.signal, r.stdout, r.stderr, performance.now() - t0);
}

export interface RunningCni {
  child: ChildProcess;
  done: Promise<CniOutcome>;
}

/** Starts one invocation as an async child process (for concurrency and SIGKILL tests). */
export function startCni(inv: Invocation): RunningCni {
  const { argv, input, env } = prepare(inv);
  const t0 = performance.now();
  // `ip netns exec` execs the plugin in place: the child's pid is the plugin's.
  const child = track(spawn('ip', argv, { env, stdio: ['pipe', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // A plugin killed before it read stdin makes the write fail with EPIPE.
  child.stdin?.on('error', () => {});
  child.stdin?.end(input);
  const done = new Promise<CniOutcome>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(outcome(code, signal, stdout, stderr, performance.now() - t0)));
  });
  return { child, done };
}

/**
 * A plugin's stdout as JSON, read field by field by the tests: a result
 * (ADD), a version reply (VERSION) or an error. The fields are the spec's;
 * anything else a test reads it narrows itself.
 */
export interface PluginJson {
  cniVersion?: string;
  interfaces?: { name: string; mac?: string; sandbox?: string; mtu?: number }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string; mtu?: number; advmss?: number; priority?: number; table?: number; scope?: number }[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
  code?: number;
  msg?: string;
  details?: string;
  supportedVersions?: string[];
  [field: string]: unknown;
}

/** Human-readable dump of an outcome, for assertion messages. */
export const describeOutcome = (o: CniOutcome): string =>
  `exit ${o.code ?? o.signal}; stdout: ${o.stdout.trim() || '(empty)'}; stderr: ${o.stderr.trim() || '(empty)'}`;

/** Throws unless the plugin succeeded; returns its stdout JSON. */
export function expectSuccess(o: CniOutcome, what = 'plugin'): PluginJson {
  if (o.code !== 0) throw new Error(`${what} failed: ${describeOutcome(o)}`);
  return o.json ?? {};
}

/** Throws unless the plugin failed with a well-formed CNI error of `code`; returns the error JSON. */
export function expectCniError(o: CniOutcome, code: number, what = 'plugin'): { cniVersion: string; code: number; msg: string; details?: string } {
  const e = o.json as { cniVersion?: unknown; code?: unknown; msg?: unknown } | undefined;
  if (o.code === 0 || o.code === null || !e || e.code !== code || typeof e.msg !== 'string' || typeof e.cniVersion !== 'string') {
    throw new Error(`${what}: expected a CNI error with code ${code}, got ${describeOutcome(o)}`);
  }
  return e as { cniVersion: string; code: number; msg: string; details?: string };
}

// ---- naming, as a runtime and weir do it ----

export interface PodMeta {
  namespace: string;
  name: string;
  uid: string;
}

/** CNI_ARGS exactly as containerd's CRI plugin builds it. */
export const containerdArgs = (containerId: string, pod: PodMeta): string =>
  `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${containerId};K8S_POD_UID=${pod.uid}`;

/** A container ID as containerd makes them: 64 hex digits. */
export const newContainerId = (): string => randomBytes(32).toString('hex');

/** The host veth weir names for an attachment (computed independently of src/). */
export const hostVethName = (containerId: string, ifname: string): string =>
  `weir${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 11)}`;

// ---- libcni conflist runner ----

export type PluginConf = Record<string, unknown> & { type: string };
export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
  disableCheck?: boolean;
}
export interface RuntimeConf {
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS (libcni joins RuntimeConf.Args as K=V;K=V). */
  args?: string;
  capabilityArgs?: Record<string, unknown>;
}
export interface ChainStep {
  type: string;
  stdin: Record<string, unknown>;
  outcome: CniOutcome;
}
export interface ChainOutcome {
  ok: boolean;
  /** ADD: the last plugin's result. */
  result: PluginJson | undefined;
  steps: ChainStep[];
  error?: string;
}

function versionAtLeast(v: string, min: string): boolean {
  const p = (s: string) => s.split('.').map(Number);
  const [a, b] = [p(v), p(min)];
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

/** libcni's buildOneConfig: inject name, cniVersion, prevResult and the declared capabilities' runtimeConfig. */
export function buildOneConfig(list: ConfList, plugin: PluginConf, prevResult: unknown, rt?: RuntimeConf): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...structuredClone(plugin), name: list.name, cniVersion: list.cniVersion };
  if (prevResult !== undefined && prevResult !== null) conf['prevResult'] = structuredClone(prevResult);
  const rc: Record<string, unknown> = {};
  const caps = (plugin['capabilities'] ?? {}) as Record<string, boolean>;
  for (const [cap, supported] of Object.entries(caps)) {
    if (supported && rt?.capabilityArgs && cap in rt.capabilityArgs) rc[cap] = rt.capabilityArgs[cap];
  }
  if (Object.keys(rc).length > 0) conf['runtimeConfig'] = rc;
  return conf;
}

function runStep(node: string, command: CniCommand, list: ConfList, plugin: PluginConf, prev: unknown, rt: RuntimeConf): ChainStep {
  const stdin = buildOneConfig(list, plugin, prev, rt);
  const o = runCni({ node, command, containerId: rt.containerId, netns: rt.netns, ifname: rt.ifname, args: rt.args ?? '', config: stdin, type: plugin.type });
  return { type: plugin.type, stdin, outcome: o };
}

const failure = (s: ChainStep, verb: string): string => `plugin type="${s.type}" failed (${verb}): ${describeOutcome(s.outcome)}`;

/** libcni AddNetworkList: plugins in order, each gets the previous result. */
export function addNetworkList(node: string, list: ConfList, rt: RuntimeConf): ChainOutcome {
  let result: unknown;
  const steps: ChainStep[] = [];
  for (const plugin of list.plugins) {
    const s = runStep(node, 'ADD', list, plugin, result, rt);
    steps.push(s);
    if (s.outcome.code !== 0) return { ok: false, result: undefined, steps, error: failure(s, 'add') };
    result = s.outcome.json;
  }
  return { ok: true, result: result as PluginJson | undefined, steps };
}

/** libcni CheckNetworkList: refused below 0.4.0; plugins in order with the cached (final ADD) result. */
export function checkNetworkList(node: string, list: ConfList, rt: RuntimeConf, cachedResult: unknown): ChainOutcome {
  if (!versionAtLeast(list.cniVersion, '0.4.0')) {
    return { ok: false, result: undefined, steps: [], error: `configuration version "${list.cniVersion}" does not support the CHECK command` };
  }
  const steps: ChainStep[] = [];
  if (list.disableCheck) return { ok: true, result: undefined, steps };
  for (const plugin of list.plugins) {
    const s = runStep(node, 'CHECK', list, plugin, cachedResult, rt);
    steps.push(s);
    if (s.outcome.code !== 0) return { ok: false, result: undefined, steps, error: failure(s, 'check') };
  }
  return { ok: true, result: undefined, steps };
}

/** libcni DelNetworkList: plugins in reverse, with the cached result from 0.4.0 on. */
export function delNetworkList(node: string, list: ConfList, rt: RuntimeConf, cachedResult: unknown): ChainOutcome {
  const prev = versionAtLeast(list.cniVersion, '0.4.0') ? cachedResult : undefined;
  const steps: ChainStep[] = [];
  for (const plugin of [...list.plugins].reverse()) {
    const s = runStep(node, 'DEL', list, plugin, prev, rt);
    steps.push(s);
    if (s.outcome.code !== 0) return { ok: false, result: undefined, steps, error: failure(s, 'delete') };
  }
  return { ok: true, result: undefined, steps };
}

function listWide(node: string, command: 'GC' | 'STATUS', list: ConfList, inject: Record<string, unknown>): ChainOutcome {
  const steps: ChainStep[] = [];
  if (!versionAtLeast(list.cniVersion, '1.1.0')) return { ok: true, result: undefined, steps };
  for (const plugin of list.plugins) {
    const stdin = { ...structuredClone(plugin), name: list.name, cniVersion: list.cniVersion, ...inject };
    const o = runCni({ node, command, config: stdin, type: plugin.type });
    const s = { type: plugin.type, stdin, outcome: o };
    steps.push(s);
    if (o.code !== 0) return { ok: false, result: undefined, steps, error: failure(s, command.toLowerCase()) };
  }
  return { ok: true, result: undefined, steps };
}

/** The plugin half of libcni GCNetworkList (its DELs of cached attachments are the runtime's business). */
export const gcNetworkList = (node: string, list: ConfList, valid: { containerID: string; ifname: string }[]): ChainOutcome =>
  listWide(node, 'GC', list, { 'cni.dev/valid-attachments': valid });

/** libcni GetStatusNetworkList. */
export const statusNetworkList = (node: string, list: ConfList): ChainOutcome => listWide(node, 'STATUS', list, {});

// ---- child processes and small waits ----

const children = new Set<ChildProcess>();
function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on('close', () => children.delete(c));
  return c;
}
/** SIGKILLs every child started through this module that is still running; waits for them. */
async function killChildren(): Promise<void> {
  const alive = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(
    alive.map(
      (c) =>
        new Promise<void>((resolve) => {
          c.once('close', () => resolve());
          c.kill('SIGKILL');
          setTimeout(resolve, 2000);
        }),
    ),
  );
}

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
