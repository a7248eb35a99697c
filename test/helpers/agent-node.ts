// A node for weir-agent kernel tests: a real control plane (useControlPlane)
// whose network namespace plays node n1, and the real dist/bin/weir-agent
// running in it with the project's own RBAC.
//
//   const n = useAgentNode('cnpagent');
//   beforeAll(async () => {
//     n.namespace('shop');                          // what the agent should find at start
//     n.pod('shop', 'web', { app: 'web' });
//     await n.start();                              // until /readyz answers 200 and the conflist is written
//     const web = n.attachPod('shop', 'web');       // CNI ADD by the real plugin, its address in the pod's status
//   }, 120_000);
//   it('...', async () => expect((await n.status())['ready']).toBe(true));
//
// Sets up (beforeAll, after the control plane's): a temp dir holding the
// agent's directories, the ServiceAccount, ClusterRole and binding of
// deploy/parts, a kubeconfig with that ServiceAccount's token, and Node n1.
// The agent runs once the file calls start(), which waits for readiness
// (never for a span of time) and, after the agent was stopped, restarts it on
// the same directories.
//
// Tears down (afterAll, even when a test or the set-up failed; before the
// control plane's own): every pod attachPod() wired is DELeted and its
// namespace deleted, every agent start() ran is SIGKILLed, the temp dir is
// removed. Every step is tried; the first error is thrown.
//
// Network safety: the plugin, the agent and weirctl run inside the control
// plane's namespace, pods in namespaces of their own.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import type { ContainerPort } from '../../src/policy/types.ts';
import type { AgentStatus } from '../../src/weirctl/context.ts';
import { type AgentDirs, type AgentProcess, agentDirs, agentRequest, startAgent, WEIRCTL_BIN } from './agent.ts';
import { expectSuccess, type PluginJson, runCni } from './cni.ts';
import { type ControlPlaneFixture, type FixtureOptions, kubectlOf, useControlPlane } from './controlplane.ts';
import { createNetns, type TestNetns } from './netns.ts';
import { tryEach } from './teardown.ts';
import { eventually } from './wait.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const RBAC = ['10-serviceaccount.yaml', '20-clusterrole.yaml', '30-clusterrolebinding.yaml'].map((f) => path.join(REPO, 'deploy/parts', f));
/** The node the agent runs as. */
const AGENT_NODE = 'n1';

export interface AgentNodeOptions {
  /** Node n1's spec.podCIDRs; default 10.244.1.0/24. */
  podCIDRs?: string[];
  /** Node n1's InternalIP (in its status); default none. */
  internalIP?: string;
  /** Node n1's labels; default none. */
  labels?: Record<string, string>;
  /** For the control plane. */
  controlPlane?: FixtureOptions;
}

/** The agent's kinds, as /status names them in applied.versions. */
export type AgentKind = 'pods' | 'namespaces' | 'policies' | 'nodes' | 'clusterpolicies';
const RESOURCE: Record<AgentKind, string> = {
  pods: 'pods',
  namespaces: 'namespaces',
  policies: 'networkpolicies',
  nodes: 'nodes',
  clusterpolicies: 'clusternetworkpolicies',
};

/** The NetworkPolicy shop/web-from-client: pods app=web admit pods app=client of their namespace on `port`. */
export function webFromClient(port: number | string): object {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: 'shop', name: 'web-from-client' },
    spec: {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port }] }],
    },
  };
}

/** A pod wired by the plugin into a namespace of its own. */
export interface AttachedPod {
  readonly namespace: string;
  readonly name: string;
  readonly containerId: string;
  readonly netns: TestNetns;
  /** Its IPv4 address, from the ADD result. */
  readonly ip: string;
}

export interface RunOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface AgentNode {
  readonly fx: ControlPlaneFixture;
  /** kubectl (admin) against the control plane, which must succeed: its stdout. */
  kubectl(args: string[], input?: string): string;
  /** `kubectl apply` of one object. */
  apply(obj: unknown): string;
  readonly dirs: AgentDirs;
  /** The agent start() ran last (it may have been stopped since). */
  readonly agent: AgentProcess;
  /** Starts weir-agent as node n1 (with `extra` flags) and waits until it is ready and its conflist is written; the error carries its log. */
  start(extra?: string[]): Promise<AgentProcess>;
  // biome-ignore lint/suspicious/noExplicitAny: replies of several agent endpoints, read field by field by the assertions.
  get(p: string): Promise<any>;
  status(): Promise<AgentStatus>;
  /** GET /metrics: the exposition text. */
  metrics(): Promise<string>;
  /** Until the agent has applied a state at least as new as the API's current list of `kind`. */
  applied(kind: AgentKind, what: string, timeoutMs?: number): Promise<void>;
  /** `kubectl patch --subresource=status` with a merge patch of `status`. */
  patchStatus(kind: string, name: string, status: unknown, namespace?: string): string;
  /** A Node with these pod CIDRs, and its InternalIP when given. */
  node(name: string, podCIDRs: string[], o?: { internalIP?: string; labels?: Record<string, string> }): void;
  /** A Namespace and its `default` ServiceAccount (no controller manager here makes it; pod admission needs it). */
  namespace(name: string, labels?: Record<string, string>): void;
  /** A Pod on n1, Running with `ip` when given. */
  pod(namespace: string, name: string, labels: Record<string, string>, o?: { ip?: string; ports?: ContainerPort[] }): void;
  /** The conflist the agent wrote. */
  // biome-ignore lint/suspicious/noExplicitAny: the agent's JSON file, read field by field by the assertions.
  conflist(): any;
  /** One plugin call in the node's namespace with the first plugin of the agent's conflist (CNI_ARGS naming `pod` when given). */
  cni(command: 'ADD' | 'DEL', containerId: string, netns: TestNetns, pod?: { namespace: string; name: string }): PluginJson;
  /** A new namespace wired by ADD as pod `namespace/name`, its address patched into the pod's status; DELeted in afterAll. */
  attachPod(namespace: string, name: string, containerId?: string): AttachedPod;
  /** dist/bin/weirctl in the node's namespace, pointed at the agent's socket and directories. */
  weirctl(args: string[]): RunOutput;
}

/** What beforeAll, start() and attachPod() make and afterAll undoes. */
interface NodeState {
  tmp: string | undefined;
  dirs: AgentDirs | undefined;
  kubeconfig: string | undefined;
  readonly agents: AgentProcess[];
  readonly pods: AttachedPod[];
  /** Every pod namespace made, so that one whose ADD failed goes too. */
  readonly podNetns: TestNetns[];
}

const need = <T>(v: T | undefined, what: string): T => {
  if (v === undefined) throw new Error(`agent node fixture: ${what} is not available (beforeAll has not run or failed, or nothing started it)`);
  return v;
};
const agentNow = (st: NodeState): AgentProcess => need(st.agents.at(-1), 'the agent');
const conflistPath = (st: NodeState): string => path.join(need(st.dirs, 'dirs').cniConfDir, '10-weir.conflist');

/** The API objects a test writes: nodes, namespaces, pods and their status. */
function apiObjects(kubectl: AgentNode['kubectl'], apply: AgentNode['apply']) {
  const patchStatus = (kind: string, name: string, status: unknown, namespace?: string): string =>
    kubectl([...(namespace ? ['-n', namespace] : []), 'patch', kind, name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
  const podRunning = (namespace: string, name: string, ip: string): void => {
    patchStatus('pod', name, { phase: 'Running', podIP: ip, podIPs: [{ ip }] }, namespace);
  };
  const node = (name: string, podCIDRs: string[], o: { internalIP?: string; labels?: Record<string, string> } = {}): void => {
    apply({ apiVersion: 'v1', kind: 'Node', metadata: { name, ...(o.labels ? { labels: o.labels } : {}) }, spec: { podCIDR: podCIDRs[0], podCIDRs } });
    if (o.internalIP) patchStatus('node', name, { addresses: [{ type: 'InternalIP', address: o.internalIP }] });
  };
  const namespace = (name: string, labels?: Record<string, string>): void => {
    apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}) } });
    apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { namespace: name, name: 'default' } });
  };
  const pod = (namespace: string, name: string, labels: Record<string, string>, o: { ip?: string; ports?: ContainerPort[] } = {}): void => {
    apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace, name, labels },
      spec: { nodeName: AGENT_NODE, containers: [{ name: 'c', image: 'agnhost', ...(o.ports ? { ports: o.ports } : {}) }] },
    });
    if (o.ip) podRunning(namespace, name, o.ip);
  };
  return { patchStatus, podRunning, node, namespace, pod };
}

/** The plugin, run as the runtime would in the node's namespace with the agent's conflist. */
function pluginCalls(fx: ControlPlaneFixture, prefix: string, st: NodeState, podRunning: (namespace: string, name: string, ip: string) => void) {
  const conflist = () => JSON.parse(fs.readFileSync(conflistPath(st), 'utf8'));
  const cni = (command: 'ADD' | 'DEL', containerId: string, netns: TestNetns, pod?: { namespace: string; name: string }): PluginJson => {
    const list = conflist();
    const out = runCni({
      node: fx.netns.name,
      command,
      containerId,
      netns: netns.path,
      ifname: 'eth0',
      ...(pod ? { args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}` } : {}),
      config: { ...list.plugins[0], name: list.name, cniVersion: list.cniVersion },
    });
    return expectSuccess(out, `${command} ${pod ? `${pod.namespace}/${pod.name}` : containerId}`);
  };
  const attachPod = (namespace: string, name: string, containerId = `ctr-${name}`): AttachedPod => {
    const netns = createNetns(`${prefix}-pod`);
    st.podNetns.push(netns);
    const pod = { namespace, name };
    const result = cni('ADD', containerId, netns, pod);
    const ip = result.ips?.map((i) => i.address.split('/')[0] ?? '').find((a) => a.includes('.'));
    // Registered before anything else can fail, so that afterAll DELs it.
    const attached: AttachedPod = { ...pod, containerId, netns, ip: ip ?? '' };
    st.pods.push(attached);
    if (!ip) throw new Error(`ADD ${namespace}/${name}: no IPv4 address in ${JSON.stringify(result)}`);
    podRunning(namespace, name, ip);
    return attached;
  };
  return { conflist, cni, attachPod };
}

/** The agent process: starting it, its endpoints, and weirctl pointed at it. */
function agentCalls(fx: ControlPlaneFixture, kubectl: AgentNode['kubectl'], st: NodeState) {
  const get = async (p: string) => (await agentRequest(agentNow(st).socket, 'GET', p, undefined, 30_000)).json;
  const start = async (extra: string[] = []): Promise<AgentProcess> => {
    const a = startAgent(fx.netns.name, AGENT_NODE, need(st.kubeconfig, 'kubeconfig'), need(st.dirs, 'dirs'), extra);
    st.agents.push(a);
    try {
      await eventually('/readyz', async () => ((await agentRequest(a.socket, 'GET', '/readyz')).status === 200 ? true : undefined), 30_000);
      await eventually('the conflist', () => fs.existsSync(conflistPath(st)));
    } catch (e) {
      throw new Error(`${String(e)}\nagent exit: ${a.child.exitCode ?? a.child.signalCode ?? 'running'}\nagent log:\n${a.log().slice(-3000)}`);
    }
    return a;
  };
  const applied = async (kind: AgentKind, what: string, timeoutMs = 15_000): Promise<void> => {
    const rv = Number(JSON.parse(kubectl(['get', RESOURCE[kind], '-A', '-o', 'json'])).metadata.resourceVersion);
    await eventually(
      `the agent to apply ${what} (${kind} rv ${rv})`,
      async () => Number(((await get('/status')) as AgentStatus)['applied']?.versions?.[kind] ?? 0) >= rv,
      timeoutMs,
    );
  };
  const weirctl = (args: string[]): RunOutput => {
    const d = need(st.dirs, 'dirs');
    const r = spawnSync(
      'ip',
      ['netns', 'exec', fx.netns.name, WEIRCTL_BIN, `--socket=${agentNow(st).socket}`, `--data-dir=${d.dataDir}`, `--cni-conf-dir=${d.cniConfDir}`, ...args],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } },
    );
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  return {
    start,
    get,
    status: async () => (await get('/status')) as AgentStatus,
    metrics: async () => (await agentRequest(agentNow(st).socket, 'GET', '/metrics')).body,
    applied,
    weirctl,
  };
}

export function useAgentNode(prefix: string, options: AgentNodeOptions = {}): AgentNode {
  const fx = useControlPlane(prefix, options.controlPlane ?? {});
  const { kubectl, apply } = kubectlOf(fx);
  const st: NodeState = { tmp: undefined, dirs: undefined, kubeconfig: undefined, agents: [], pods: [], podNetns: [] };
  const { podRunning, ...objects } = apiObjects(kubectl, apply);
  const plugin = pluginCalls(fx, prefix, st, podRunning);

  beforeAll(() => {
    st.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `weir-${prefix}-`));
    st.dirs = agentDirs(st.tmp);
    for (const f of RBAC) kubectl(['apply', '-f', f]);
    st.kubeconfig = fx.cp.kubeconfigForToken(fx.cp.serviceAccountToken('kube-system', 'weir-agent', 3600), path.join(st.tmp, 'agent.kubeconfig'));
    objects.node(AGENT_NODE, options.podCIDRs ?? ['10.244.1.0/24'], {
      ...(options.internalIP ? { internalIP: options.internalIP } : {}),
      ...(options.labels ? { labels: options.labels } : {}),
    });
  });

  afterAll(() =>
    tryEach([
      ...st.pods
        .splice(0)
        .reverse()
        .map((p) => () => plugin.cni('DEL', p.containerId, p.netns, p)),
      ...st.podNetns
        .splice(0)
        .reverse()
        .map((ns) => () => ns.destroy()),
      ...st.agents.map((a) => () => a.stop('SIGKILL')),
      () => st.tmp && fs.rmSync(st.tmp, { recursive: true, force: true }),
    ]),
  );

  return {
    fx,
    kubectl,
    apply,
    get dirs() {
      return need(st.dirs, 'dirs');
    },
    get agent() {
      return agentNow(st);
    },
    ...agentCalls(fx, kubectl, st),
    ...objects,
    ...plugin,
  };
}
