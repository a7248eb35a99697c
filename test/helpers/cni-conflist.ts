// A conflist run plugin by plugin with libcni's injection rules
// (libcni/api.go, buildOneConfig and injectRuntimeConfig): every plugin gets
// `name` and `cniVersion` of the list, `prevResult` (the previous plugin's
// result on ADD; the final ADD result, in order for CHECK and in reverse for
// DEL, and only from cniVersion 0.4.0), and a `runtimeConfig` holding the
// capability args it declares in `capabilities`. GC and STATUS get
// `name`/`cniVersion` (and GC `cni.dev/valid-attachments`), with
// CNI_CONTAINERID/NETNS/IFNAME empty. One difference from libcni: results
// travel as the plugin printed them, not re-marshalled through Go types.
import { type CniCommand, type CniOutcome, describeOutcome, type PluginJson, runCni } from './cni-invoke.ts';

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

export function versionAtLeast(v: string, min: string): boolean {
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
