// One invocation of one plugin binary, exactly as libcni's invoke package
// makes it: the network configuration on stdin, and CNI_COMMAND,
// CNI_CONTAINERID, CNI_NETNS, CNI_ARGS, CNI_IFNAME and CNI_PATH always set
// (empty when not applicable). Returns exit status, stdout (and its JSON),
// stderr. Also the names a runtime and weir give things, and the tracking of
// the child processes the tests start, so that a test's teardown can kill
// what is still running.
//
// Network safety: the plugin always runs inside a node namespace
// (`ip netns exec <node>`), never in the root namespace.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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

// ---- child processes ----

const children = new Set<ChildProcess>();
/** Notes a child process, so that killChildren() ends it should the test not. */
export function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on('close', () => children.delete(c));
  return c;
}
/** SIGKILLs every tracked child that is still running; waits for them. */
export async function killChildren(): Promise<void> {
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
