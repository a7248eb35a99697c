// The container runtime's CNI half, as containerd (go-cni + libcni) does it:
//
// - the network configuration is the lexically first *.conf / *.conflist /
//   *.json file of the node's conf dir (root/etc/cni/net.d), a .conf being
//   turned into a one-plugin list;
// - ADD runs the list's plugins in order, DEL in reverse, CHECK in order,
//   each with libcni's injection rules (buildOneConfig/injectRuntimeConfig):
//   the list's `name` and `cniVersion`, `prevResult` (the previous plugin's
//   result on ADD, the cached final ADD result on CHECK and DEL from 0.4.0
//   on) and a `runtimeConfig` holding the capability arguments each plugin
//   declares in `capabilities` (portMappings from hostPort);
// - the environment is the six CNI_* variables plus PATH, nothing else.
//
// The plugin runs in the node's network namespace with the node's view of
// the host paths the conflist names: in a private mount namespace where
// root/var/lib/cni is bind-mounted at /var/lib/cni and root/run/weir at
// /run/weir (a kind node sees its own /var/lib/cni and /run the same way).
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_PATH, runCommand, shq, tool } from './proc.ts';

export type PluginConf = Record<string, unknown> & { type: string };
export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
  disableCheck?: boolean;
}

export interface RuntimeConf {
  containerId: string;
  netnsPath: string;
  ifname: string;
  /** CNI_ARGS, containerd's form. */
  args: string;
  capabilityArgs: Record<string, unknown>;
}

export interface StepOutcome {
  type: string;
  code: number | null;
  stdout: string;
  stderr: string;
  json: any;
}

export interface ListOutcome {
  ok: boolean;
  result?: any;
  error?: string;
  steps: StepOutcome[];
}

const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'];

/** The network configuration list the runtime would load from `confDir`, or undefined (network not ready). */
export function loadNetworkConfig(confDir: string): { file: string; list: ConfList } | undefined {
  let names: string[];
  try {
    names = fs.readdirSync(confDir).filter((n) => CONF_EXTENSIONS.includes(path.extname(n))).sort();
  } catch {
    return undefined;
  }
  for (const n of names) {
    const file = path.join(confDir, n);
    let doc: any;
    try {
      if (!fs.statSync(file).isFile()) continue;
      doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      continue; // libcni skips files it cannot parse
    }
    if (!doc || typeof doc !== 'object') continue;
    if (path.extname(n) === '.conflist' || Array.isArray(doc.plugins)) {
      if (typeof doc.name !== 'string' || !Array.isArray(doc.plugins) || doc.plugins.length === 0) continue;
      if (!doc.plugins.every((p: any) => p && typeof p.type === 'string')) continue;
      return { file, list: { cniVersion: String(doc.cniVersion ?? '0.1.0'), name: doc.name, plugins: doc.plugins, ...(doc.disableCheck ? { disableCheck: true } : {}) } };
    }
    if (typeof doc.type !== 'string' || typeof doc.name !== 'string') continue;
    const { cniVersion, name, ...plugin } = doc;
    return { file, list: { cniVersion: String(cniVersion ?? '0.1.0'), name, plugins: [plugin as PluginConf] } };
  }
  return undefined;
}

export function versionAtLeast(v: string, min: string): boolean {
  const p = (s: string) => s.split('.').map(Number);
  const [a, b] = [p(v), p(min)];
  for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

/** libcni buildOneConfig + injectRuntimeConfig. */
export function buildOneConfig(list: ConfList, plugin: PluginConf, prevResult: unknown, rt: RuntimeConf): Record<string, unknown> {
  const conf: Record<string, unknown> = { ...structuredClone(plugin), name: list.name, cniVersion: list.cniVersion };
  if (prevResult !== undefined && prevResult !== null) conf['prevResult'] = structuredClone(prevResult);
  const rc: Record<string, unknown> = {};
  const caps = (plugin['capabilities'] ?? {}) as Record<string, boolean>;
  for (const [cap, supported] of Object.entries(caps)) {
    if (supported && cap in rt.capabilityArgs) rc[cap] = rt.capabilityArgs[cap];
  }
  if (Object.keys(rc).length > 0) conf['runtimeConfig'] = rc;
  return conf;
}

/** CNI_ARGS exactly as containerd's CRI plugin builds it. */
export const containerdArgs = (containerId: string, pod: { namespace: string; name: string; uid: string }): string =>
  `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name};K8S_POD_INFRA_CONTAINER_ID=${containerId};K8S_POD_UID=${pod.uid}`;

export interface CniRunnerOptions {
  /** `ip netns` name of the node. */
  nodeNetns: string;
  /** The node's state root: root/opt/cni/bin, root/var/lib/cni, root/run/weir. */
  root: string;
  /** Directories searched for plugins (CNI_PATH). */
  cniPath: string[];
  timeoutMs?: number;
}

export class CniRunner {
  readonly #o: CniRunnerOptions;
  constructor(o: CniRunnerOptions) {
    this.#o = o;
  }

  get cniPath(): string {
    return this.#o.cniPath.join(':');
  }

  /** libcni FindInPath. */
  findPlugin(type: string): string | undefined {
    if (type.includes('/')) return undefined;
    for (const dir of this.#o.cniPath) {
      const p = path.join(dir, type);
      if (fs.existsSync(p)) return p;
    }
    return undefined;
  }

  /** One plugin invocation, the way libcni's invoke package makes it, with the node's view of host paths. */
  async invoke(command: 'ADD' | 'DEL' | 'CHECK', type: string, stdin: unknown, rt: RuntimeConf): Promise<StepOutcome> {
    const bin = this.findPlugin(type);
    if (!bin) return { type, code: -1, stdout: '', stderr: `failed to find plugin "${type}" in path [${this.cniPath}]`, json: undefined };
    const root = this.#o.root;
    const script = [
      `${tool('mount')} --bind ${shq(path.join(root, 'var/lib/cni'))} /var/lib/cni`,
      `${tool('mount')} --bind ${shq(path.join(root, 'run/weir'))} /run/weir`,
      'exec "$0" "$@"',
    ].join(' && ');
    const argv = [tool('ip'), 'netns', 'exec', this.#o.nodeNetns, tool('unshare'), '-m', '--propagation', 'private', tool('sh'), '-c', script, bin];
    const env = {
      PATH: DEFAULT_PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt.containerId,
      CNI_NETNS: rt.netnsPath,
      CNI_ARGS: rt.args,
      CNI_IFNAME: rt.ifname,
      CNI_PATH: this.cniPath,
    };
    const r = await runCommand(argv, { input: JSON.stringify(stdin), env, timeoutMs: this.#o.timeoutMs ?? 60_000 });
    let json: unknown;
    try {
      json = r.stdout.trim() === '' ? undefined : JSON.parse(r.stdout);
    } catch {
      json = undefined;
    }
    return { type, code: r.signal ? -1 : r.code, stdout: r.stdout, stderr: r.signal ? `${r.stderr}killed by ${r.signal}` : r.stderr, json };
  }

  async add(list: ConfList, rt: RuntimeConf): Promise<ListOutcome> {
    let result: unknown;
    const steps: StepOutcome[] = [];
    for (const plugin of list.plugins) {
      const s = await this.invoke('ADD', plugin.type, buildOneConfig(list, plugin, result, rt), rt);
      steps.push(s);
      if (s.code !== 0) return { ok: false, steps, error: describeFailure(s, 'add') };
      result = s.json;
    }
    return { ok: true, result, steps };
  }

  async check(list: ConfList, rt: RuntimeConf, cached: unknown): Promise<ListOutcome> {
    if (!versionAtLeast(list.cniVersion, '0.4.0')) return { ok: false, steps: [], error: `configuration version "${list.cniVersion}" does not support the CHECK command` };
    const steps: StepOutcome[] = [];
    if (list.disableCheck) return { ok: true, steps };
    for (const plugin of list.plugins) {
      const s = await this.invoke('CHECK', plugin.type, buildOneConfig(list, plugin, cached, rt), rt);
      steps.push(s);
      if (s.code !== 0) return { ok: false, steps, error: describeFailure(s, 'check') };
    }
    return { ok: true, steps };
  }

  async del(list: ConfList, rt: RuntimeConf, cached: unknown): Promise<ListOutcome> {
    const prev = versionAtLeast(list.cniVersion, '0.4.0') ? cached : undefined;
    const steps: StepOutcome[] = [];
    for (const plugin of [...list.plugins].reverse()) {
      const s = await this.invoke('DEL', plugin.type, buildOneConfig(list, plugin, prev, rt), rt);
      steps.push(s);
      if (s.code !== 0) return { ok: false, steps, error: describeFailure(s, 'delete') };
    }
    return { ok: true, steps };
  }
}

function describeFailure(s: StepOutcome, verb: string): string {
  const msg = s.json && typeof s.json === 'object' && 'msg' in s.json ? `${s.json.msg}${s.json.details ? `: ${s.json.details}` : ''}` : (s.stdout.trim() || s.stderr.trim() || `exit ${s.code}`);
  const stderr = s.stderr.trim() ? ` (stderr: ${s.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 400)})` : '';
  return `plugin type="${s.type}" failed (${verb}): ${msg}${stderr}`;
}

/** The pod's addresses from a CNI result: those on sandbox interfaces, one per family, in result order. */
export function resultIPs(result: any): string[] {
  const ifaces = Array.isArray(result?.interfaces) ? (result.interfaces as { sandbox?: string }[]) : [];
  const ips = Array.isArray(result?.ips) ? (result.ips as { address?: string; interface?: number }[]) : [];
  const inSandbox = ips.filter((ip) => ip.interface === undefined || ifaces[ip.interface]?.sandbox);
  const out: string[] = [];
  let v4 = false;
  let v6 = false;
  for (const ip of inSandbox.length > 0 ? inSandbox : ips) {
    const a = String(ip.address ?? '').split('/')[0] ?? '';
    if (!a) continue;
    const six = a.includes(':');
    if (six ? v6 : v4) continue;
    if (six) v6 = true;
    else v4 = true;
    out.push(a);
  }
  return out;
}
