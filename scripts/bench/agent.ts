// weir-agent at scale, against a real kube-apiserver, run through
// scripts/bench-agent:
//
//   1. a control plane (etcd + kube-apiserver, nothing else) in a network
//      namespace made here; the agent's RBAC from deploy/parts and a bound
//      token for its ServiceAccount;
//   2. the synthetic cluster of the policy benchmark (scripts/bench/policy/
//      cluster.ts): namespaces, --nodes Nodes, --policies NetworkPolicies and
//      --cluster-policies ClusterNetworkPolicies (policy/cluster-policies.ts,
//      with the CRD from deploy/crds) first; an agent started on that (no
//      pods) gives the baseline RSS; then --pods Pods (spec.nodeName set,
//      status with IPs patched in as a kubelet would), loaded by
//      scripts/bench/agent-load.ts running inside the namespace,
//      --concurrency writes in flight;
//   3. the real dist/bin/weir-agent for node-01 (pods/nodes of the pods) in
//      the same namespace: time from its start to /readyz 200 (lists, then
//      its first sync), RSS and CPU after the sync, idle CPU, the kernel
//      table's size;
//   4. --changes writes, alternating a policy (port, peer or pod selector of
//      a NetworkPolicy selecting pods on node-01, or the port of a
//      ClusterNetworkPolicy whose subject has pods there) and a Pod (relabel
//      a local pod, relabel a pod elsewhere in those namespaces, add a pod on
//      node-01), each timed from the write's response to the agent having
//      applied that resourceVersion (its /status `applied`), next to the
//      agent's own weir_event_to_applied_seconds and weir_sync_duration_seconds,
//      and what a client watching what the agent watches received meanwhile
//      (bytes and events per change: the input of the fan-out estimate in
//      docs/scale.md).
//
// The agent is started, read and stopped through agent/agent-process.ts; its
// profiles are summarised by agent/cpu-profile.ts and agent/heap-profile.ts.
// Prints a Markdown table and PASS/FAIL lines (agent/report.ts). Nothing is
// done in the root namespace (no address, link or route): its links are
// snapshotted before and compared after. Everything (agent, loader, control
// plane, namespace, temp dirs) is removed at the end, on failure and on
// Ctrl-C alike.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type ControlPlane, startControlPlane } from '../../lab/controlplane/index.ts';
import { rulesetCounts } from '../../src/agent/agent-metrics.ts';
import { compilePolicies } from '../../src/policy/compile.ts';
import { addMasquerade } from '../../src/policy/node-rules.ts';
import { type Agent, agentMetrics, agentStatus, type Exit, logTail, proc, startAgent, stopAgent, waitReady } from './agent/agent-process.ts';
import { profileSummary } from './agent/cpu-profile.ts';
import { heapSummary } from './agent/heap-profile.ts';
import { report } from './agent/report.ts';
import { secs } from './lib/format.ts';
import { benchTag, BASE_ENV as CLEAN_ENV, IP, linkChange, loadavg, logger, netnsPids, rootLinks, run as runCmd, taggedNetns } from './lib/host.ts';
import { benchOptions } from './options.ts';
import { BENCH_NODE, BENCH_NODE_INDEX, BENCH_POD_CIDR, MAX_NODES, makeCluster, NODE_COUNT, podCIDR } from './policy/cluster.ts';
import { makeClusterPolicies } from './policy/cluster-policies.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const USAGE = `usage: scripts/bench-agent [options]
  --pods N           pods in the cluster, spread evenly over the nodes (default 10000, at most 180 per node)
  --nodes N          nodes (default ${NODE_COUNT}, at most ${MAX_NODES}); the agent plays node-01
  --policies N       NetworkPolicies (default 1000)
  --cluster-policies N  ClusterNetworkPolicies (default 0; with N > 0 the CRD is installed first)
  --changes N        timed changes, alternating policy and pod (default 200)
  --concurrency N    API writes in flight while loading (default 32)
  --idle-seconds N   idle CPU window after the first sync (default 10)
  --poll-ms N        /status poll interval while waiting for a change (default 5)
  --gap-ms N         pause before each change (default 50)
  --ready-timeout-s N  how long the agent may take to be ready (default 300, 1800 past 18k pods:
                     at 150k pods on a shared 2-core machine it took 248 s and, under more load, over 300 s)
  --apply-timeout-s N  how long a change may take to be applied before it counts as not applied
                     (default 10; at most 3 such changes); the agent's socket gets as long to answer
  --debounce-ms N    pass --debounce-ms to the agent (default: the agent's own default, as deployed)
  --seed N           cluster seed (default 1)
  --profile          run the agent from source (agent/main.ts) under --cpu-prof and
                     summarise where its CPU went during the changes
  --heap-profile     run the agent from source under --heap-prof (V8's sampling heap profiler)
                     and summarise which allocation sites hold its live heap when it stops
  --agent-src DIR    the tree whose agent/main.ts the profiling modes run (default this one)
  --agent-bin PATH   the weir-agent executable to measure (default dist/bin/weir-agent; koffi.node
                     must be beside it); both are copied into the run's temp dir first, so a
                     rebuild of dist/bin during the run cannot touch the running agent
  --build            rebuild dist/bin first (otherwise only when it is missing)`;

const { opt, int } = benchOptions('bench-agent', USAGE, {
  pods: { type: 'string', default: '10000' },
  nodes: { type: 'string', default: String(NODE_COUNT) },
  'cluster-policies': { type: 'string', default: '0' },
  policies: { type: 'string', default: '1000' },
  changes: { type: 'string', default: '200' },
  concurrency: { type: 'string', default: '32' },
  'idle-seconds': { type: 'string', default: '10' },
  'poll-ms': { type: 'string', default: '5' },
  'gap-ms': { type: 'string', default: '50' },
  'apply-timeout-s': { type: 'string', default: '10' },
  'ready-timeout-s': { type: 'string' },
  'debounce-ms': { type: 'string' },
  seed: { type: 'string', default: '1' },
  profile: { type: 'boolean', default: false },
  'heap-profile': { type: 'boolean', default: false },
  'agent-src': { type: 'string' },
  'agent-bin': { type: 'string' },
  build: { type: 'boolean', default: false },
});
const NODES = int('nodes', BENCH_NODE_INDEX + 1, MAX_NODES);
const PODS = int('pods', NODES, 180 * NODES);
const POLICIES = int('policies', 1);
const CNPS = int('cluster-policies', 0, 10_000);
/** Past the old ceiling of 18k pods the scale targets apply (first sync 10 s, RSS 400 MB, p99 200 ms). */
const AT_SCALE = PODS > 18_000;
const CHANGES = int('changes', 2, 10_000);
const CONCURRENCY = int('concurrency', 1, 256);
const IDLE_S = int('idle-seconds', 1, 600);
const POLL_MS = int('poll-ms', 1, 1000);
const GAP_MS = int('gap-ms', 0, 10_000);
const APPLY_TIMEOUT_S = int('apply-timeout-s', 1, 600);
const READY_TIMEOUT_S = opt['ready-timeout-s'] === undefined ? (AT_SCALE ? 1800 : 300) : int('ready-timeout-s', 1, 7200);
const SEED = int('seed', 0);
const DEBOUNCE = opt['debounce-ms'] === undefined ? undefined : int('debounce-ms', 0, 10_000);
const CPU_PROFILE = opt.profile === true;
const HEAP_PROFILE = opt['heap-profile'] === true;
/** Either profiler: the agent runs from source. */
const PROFILE = CPU_PROFILE || HEAP_PROFILE;
const AGENT_MAIN = path.join(typeof opt['agent-src'] === 'string' ? path.resolve(opt['agent-src']) : root, 'agent/main.ts');
if (process.getuid?.() !== 0) {
  console.error('bench-agent: needs root (network namespaces)');
  process.exit(1);
}

const started = performance.now();
const loadBefore = loadavg();
const NODE = path.join(root, 'node_modules/.bin/node');
const DEFAULT_AGENT_BIN = path.join(root, 'dist/bin/weir-agent');
const AGENT_SRC = typeof opt['agent-bin'] === 'string' ? path.resolve(opt['agent-bin']) : DEFAULT_AGENT_BIN;
let AGENT_BIN = AGENT_SRC; // replaced by the copy in the temp dir
const LOADER = path.join(root, 'scripts/bench/agent-load.ts');
const BASE_ENV = { ...CLEAN_ENV, LANG: 'C.UTF-8', HOME: process.env.HOME ?? '/root' };
const TAG = benchTag('wbagent');
const NS = `${TAG}-cp`;
const log = logger('bench-agent');

if (opt.build || (AGENT_SRC === DEFAULT_AGENT_BIN && !fs.existsSync(AGENT_SRC)))
  spawnSync(NODE, [path.join(root, 'scripts/build.mjs'), 'weir-agent'], { cwd: root, stdio: ['ignore', 2, 2] });
for (const f of PROFILE ? [] : [AGENT_SRC, path.join(path.dirname(AGENT_SRC), 'koffi.node')]) {
  if (!fs.existsSync(f)) {
    console.error(`bench-agent: ${f} is missing${AGENT_SRC === DEFAULT_AGENT_BIN ? ' (and the build failed)' : ''}`);
    process.exit(1);
  }
}
/** The sources the agent is built from: agent/main.ts and what it imports, relatively, transitively. */
function agentSources(): string[] {
  const seen = new Set<string>();
  const stack = [path.join(root, 'agent/main.ts')];
  while (stack.length > 0) {
    const f = stack.pop() as string;
    if (seen.has(f) || !fs.existsSync(f)) continue;
    seen.add(f);
    for (const m of fs.readFileSync(f, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g))
      stack.push(path.resolve(path.dirname(f), m[1] as string));
  }
  return [...seen];
}
const newer =
  PROFILE || AGENT_SRC !== DEFAULT_AGENT_BIN
    ? []
    : agentSources()
        .filter((f) => fs.statSync(f).mtimeMs > fs.statSync(AGENT_SRC).mtimeMs)
        .map((f) => path.relative(root, f));
const builtAt = PROFILE ? '' : new Date(fs.statSync(AGENT_SRC).mtimeMs).toISOString().replace(/\.\d+Z$/, 'Z');

// ---- processes and the namespace ---------------------------------------------------
const ip = (...args: string[]): string => runCmd(IP, args, { env: BASE_ENV, timeoutMs: 60_000 });
/** argv that runs cmd in the namespace, SIGKILLed by the kernel if this process dies. */
const inNs = (cmd: string[]): string[] => ['netns', 'exec', NS, 'setpriv', '--pdeathsig', 'KILL', '--', ...cmd];

let aborted: string | undefined;
let abort: (e: Error) => void = () => {};
const abortion = new Promise<never>((_, reject) => (abort = reject));
abortion.catch(() => {});
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(s, () => {
    aborted ??= s;
    abort(new Error(`interrupted (${s})`));
  });
}
/** Long waits give way to Ctrl-C. */
const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, abortion]);

const children = new Set<ChildProcess>();
function track(child: ChildProcess): Promise<Exit> {
  children.add(child);
  return new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
}

/** agent-load.ts in the namespace; resolves with its JSON result line. */
// biome-ignore lint/suspicious/noExplicitAny: JSON of the agent, the API and the inspector, read field by field for the report.
async function loader(mode: string, args: string[]): Promise<any> {
  const child = spawn(
    IP,
    inNs([
      NODE,
      LOADER,
      mode,
      `--kubeconfig=${cp?.adminKubeconfig}`,
      `--pods=${PODS}`,
      `--nodes=${NODES}`,
      `--policies=${POLICIES}`,
      `--cluster-policies=${CNPS}`,
      `--seed=${SEED}`,
      ...args,
    ]),
    {
      env: BASE_ENV,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const { code, signal } = await guard(track(child));
  if (code !== 0) throw new Error(`agent-load.ts ${mode} failed (${code ?? signal})`);
  return JSON.parse(stdout.trim().split('\n').pop() ?? 'null');
}

const agents: Agent[] = [];
/** The agent for node-01 in the namespace, as this run is set to measure it (agent/agent-process.ts). */
function launchAgent(label: string, kubeconfig: string): Agent {
  const a = startAgent(
    {
      tmp: tmp as string,
      inNs,
      env: BASE_ENV,
      agentBin: AGENT_BIN,
      node: NODE,
      agentMain: AGENT_MAIN,
      cpuProfile: CPU_PROFILE,
      heapProfile: HEAP_PROFILE,
      debounceMs: DEBOUNCE,
      track,
    },
    label,
    kubeconfig,
  );
  agents.push(a);
  return a;
}

// ---- the steps of the run -------------------------------------------------------
/** The agent measured, copied into the run's temp dir: a rebuild of dist/bin during the run cannot touch the running agent. */
function copyAgent(dir: string): void {
  fs.mkdirSync(path.join(dir, 'bin'));
  for (const f of [AGENT_SRC, path.join(path.dirname(AGENT_SRC), 'koffi.node')]) fs.copyFileSync(f, path.join(dir, 'bin', path.basename(f)));
  AGENT_BIN = path.join(dir, 'bin', path.basename(AGENT_SRC));
  fs.chmodSync(AGENT_BIN, 0o755);
}

/** The run's namespace, with the node's uplink. */
function makeNamespace(): void {
  ip('netns', 'add', NS);
  nsMade = true;
  ip('-n', NS, 'link', 'set', 'lo', 'up');
  // The node's uplink, inside the namespace (a veth pair with both ends here):
  // the other nodes' InternalIPs (cluster.ts nodeIP, in 192.168.0.0/16) are
  // on-link, so the agent's routes to their pod CIDRs are programmed as on a
  // real node.
  ip('-n', NS, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink1');
  ip('-n', NS, 'addr', 'add', '192.168.0.2/16', 'dev', 'uplink0');
  ip('-n', NS, 'link', 'set', 'uplink0', 'up');
  ip('-n', NS, 'link', 'set', 'uplink1', 'up');
}

/** The control plane in the namespace, with the agent's RBAC (and the ClusterNetworkPolicy CRD with --cluster-policies); the agent's kubeconfig. */
async function controlPlane(dir: string): Promise<string> {
  log('starting the control plane (etcd + kube-apiserver)');
  const c0 = performance.now();
  // etcd's default 2 GB quota is too small for 150k pods with their history until compaction.
  const plane = await guard(
    startControlPlane({
      netns: NS,
      dir: path.join(dir, 'cp'),
      advertiseAddress: '127.0.0.1',
      extraArgs: { etcd: ['--quota-backend-bytes=8589934592'] },
      onProgress: (m) => (/ready|started/.test(m) ? log(`control plane: ${m}`) : undefined),
    }),
  );
  cp = plane;
  R.cpMs = performance.now() - c0;
  for (const f of ['10-serviceaccount.yaml', '20-clusterrole.yaml', '30-clusterrolebinding.yaml']) {
    const r = plane.kubectl(['apply', '-f', path.join(root, 'deploy/parts', f)]);
    if (r.code !== 0) throw new Error(`kubectl apply ${f}: ${r.stderr}`);
  }
  if (CNPS > 0) {
    const crd = path.join(root, 'deploy/crds/clusternetworkpolicies.standard.yaml');
    const r = plane.kubectl(['apply', '--server-side', '-f', crd]);
    if (r.code !== 0) throw new Error(`kubectl apply ${path.basename(crd)}: ${r.stderr}`);
    // Not `kubectl wait --for=condition=Established`: right after the CRD is
    // created its status.conditions can still be null, and kubectl wait then
    // fails at once instead of waiting.
    const established = ['get', '-f', crd, '-o=jsonpath={.status.conditions[?(@.type=="Established")].status}'];
    const deadline = Date.now() + 60_000;
    while (plane.kubectl(established).stdout.trim() !== 'True') {
      if (Date.now() > deadline) throw new Error(`${path.basename(crd)}: the CRD is not Established after 60 s`);
      await sleep(200);
    }
  }
  const kubeconfig = plane.kubeconfigForToken(plane.serviceAccountToken('kube-system', 'weir-agent', 3600), path.join(dir, 'agent.kubeconfig'));
  try {
    R.k8s = JSON.parse(plane.kubectl(['version', '-o', 'json']).stdout).serverVersion?.gitVersion ?? '?';
  } catch {
    R.k8s = '?';
  }
  return kubeconfig;
}

/** The same agent with everything but the pods: the baseline of memory per pod. */
async function measureBaseline(kubeconfig: string): Promise<void> {
  log('baseline agent (no pods)');
  const a = launchAgent('baseline', kubeconfig);
  await waitReady(a, () => aborted, 120_000);
  await guard(sleep(2000));
  R.baseline = proc(a.pid);
  const e = await stopAgent(a);
  if (e.code !== 0) throw new Error(`the baseline agent exited with ${e.code ?? e.signal} on SIGTERM:\n${logTail(a)}`);
}

/** The agent with the whole cluster: ready, idle, the changes, stopped; its warnings and profiles. */
async function measureAgent(kubeconfig: string): Promise<void> {
  log('starting the agent');
  const a = launchAgent('main', kubeconfig);
  const ready = await waitReady(a, () => aborted, READY_TIMEOUT_S * 1000);
  R.ready = ready;
  R.readyWindowUs = [a.hr0, Number(process.hrtime.bigint() / 1000n)];
  R.atReady = proc(a.pid);
  R.status = await agentStatus(a);
  R.metricsReady = await agentMetrics(a);
  R.firstAppliedMs = Date.parse(R.status.applied.at) - a.wall0;
  log(`ready in ${secs(ready.readyMs)}; idle for ${IDLE_S} s`);
  await guard(sleep(IDLE_S * 1000));
  R.afterIdle = proc(a.pid);
  R.kernel = kernelTable();

  R.verify = await loader('verify', [`--socket=${a.socket}`]);
  log(`${CHANGES} changes`);
  const ch0 = proc(a.pid);
  R.changes = await loader('changes', [
    `--socket=${a.socket}`,
    `--changes=${CHANGES}`,
    `--poll-ms=${POLL_MS}`,
    `--gap-ms=${GAP_MS}`,
    `--apply-timeout-s=${APPLY_TIMEOUT_S}`,
  ]);
  R.afterChanges = proc(a.pid);
  R.changesCpuS = R.afterChanges.cpuS - ch0.cpuS;
  R.metricsEnd = await agentMetrics(a);
  R.statusEnd = await agentStatus(a);
  R.memory = inspectMemory(a.pid);
  const e = await stopAgent(a);
  if (e.code !== 0) throw new Error(`the agent exited with ${e.code ?? e.signal} on SIGTERM:\n${logTail(a)}`);
  const warnings = fs
    .readFileSync(a.logFile, 'utf8')
    .split('\n')
    .filter((l) => /"level":(40|50|60)/.test(l));
  R.warnings = warnings;
  if (CPU_PROFILE)
    R.profile = [
      ...profileSummary(a.profDir, R.readyWindowUs, 'from its start to ready (lists and first sync)'),
      '',
      ...profileSummary(a.profDir, R.changes.windowUs, `over the ${CHANGES} changes`),
    ];
  if (HEAP_PROFILE) R.profile = [...(R.profile ?? []), '', ...heapSummary(a.profDir)];
}

// ---- the run -----------------------------------------------------------------------------
let tmp: string | undefined;
let cp: ControlPlane | undefined;
let nsMade = false;
let exitCode = 0;
const rootBefore = rootLinks();
// biome-ignore lint/suspicious/noExplicitAny: JSON of the agent, the API and the inspector, read field by field for the report.
const R: Record<string, any> = {};

try {
  tmp = fs.mkdtempSync(`/tmp/${TAG}.`);
  if (!PROFILE) copyAgent(tmp);
  makeNamespace();
  const kubeconfig = await controlPlane(tmp);

  log(`loading namespaces, ${NODES} nodes, ${POLICIES} policies and ${CNPS} cluster policies`);
  R.base = await loader('base', [`--concurrency=${CONCURRENCY}`]);
  await measureBaseline(kubeconfig);
  log(`loading ${PODS} pods (${CONCURRENCY} writes in flight)`);
  R.load = await loader('load', [`--concurrency=${CONCURRENCY}`]);
  await measureAgent(kubeconfig);
  // Only meaningful when the agent runs this tree's current sources.
  if ((PROFILE && AGENT_MAIN === path.join(root, 'agent/main.ts')) || (AGENT_SRC === DEFAULT_AGENT_BIN && newer.length === 0)) R.reference = referenceCounts();
  printReport();
} catch (e) {
  await new Promise((r) => setImmediate(r));
  console.error(`bench-agent: ${aborted && !(e as Error).message.startsWith('interrupted') ? `interrupted (${aborted}): ` : ''}${(e as Error).message}`);
  exitCode = aborted ? 130 : 1;
  for (const a of agents) {
    if (a.exit && !a.stopping)
      console.error(`bench-agent: the agent (pid ${a.pid}) exited by itself (${a.exit.code ?? a.exit.signal}); last lines of its log:\n${logTail(a, 40)}`);
  }
} finally {
  for (const c of children) c.kill('SIGKILL');
  for (const a of agents) if (!a.exit) a.child.kill('SIGKILL');
  await Promise.allSettled(agents.map((a) => a.exited));
  if (cp) await cp.stop().catch((e: Error) => log(`stopping the control plane: ${e.message}`));
  if (nsMade) {
    // Anything still in our namespace is ours (a control plane cut off by Ctrl-C mid-start).
    const left = netnsPids(NS);
    if (left.length) log(`killing processes left in ${NS}: ${left.join(' ')}`);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    spawnSync(IP, ['netns', 'del', NS], { env: BASE_ENV });
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  const left = taggedNetns(TAG);
  const links = linkChange(rootBefore, rootLinks());
  console.log(
    `\ncleanup: agent, loader, control plane stopped; netns ${NS} ${nsMade ? 'deleted' : 'never made'}; left over: ${left.length ? left.join(' ') : 'none'}; root netns links ${links.text}`,
  );
  if (left.length || links.leaked.length) exitCode ||= 1;
  console.log(`total time: ${secs(performance.now() - started)}`);
  process.exit(exitCode);
}

/**
 * The table the agent should have applied at its first sync: the same
 * objects (the loader's deterministic cluster) through the same compiler and
 * masquerade decoration, in this process.
 */
function referenceCounts(): ReturnType<typeof rulesetCounts> {
  const c = makeCluster({ pods: PODS, policies: POLICIES, nodes: NODES, seed: SEED });
  if (BENCH_POD_CIDR !== podCIDR(BENCH_NODE_INDEX)) throw new Error('cluster.ts changed its address plan');
  const clusterPolicies = makeClusterPolicies(CNPS, c.namespaces, SEED);
  const result = compilePolicies({ ...c.state, clusterPolicies }, { nodeName: BENCH_NODE, guardCIDRs: [BENCH_POD_CIDR] });
  addMasquerade(result.ruleset, { podCIDRs: [BENCH_POD_CIDR], nonMasqueradeCIDRs: Array.from({ length: NODES }, (_, k) => podCIDR(k)) });
  return rulesetCounts(result.ruleset);
}

/** The agent's memory by V8's account, before and after a full collection (agent/inspect-memory.ts); an error as text. */
// biome-ignore lint/suspicious/noExplicitAny: JSON of the agent, the API and the inspector, read field by field for the report.
function inspectMemory(pid: number): any {
  const r = spawnSync(IP, inNs([NODE, path.join(root, 'scripts/bench/agent/inspect-memory.ts'), String(pid)]), {
    env: BASE_ENV,
    encoding: 'utf8',
    timeout: 60_000,
  });
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
  } catch {
    return { error: `${r.stderr || r.error || 'no output'}`.trim().slice(0, 300) };
  }
}

/** The kernel's side of what the agent applied: the whole ruleset of the namespace (only the agent's tables are in it) as nft lists it, and the routes. */
function kernelTable(): { textBytes: number; lines: number; listMs: number; routes: number } {
  const t0 = performance.now();
  const r = spawnSync(IP, ['netns', 'exec', NS, 'nft', 'list', 'ruleset'], { env: BASE_ENV, encoding: 'utf8', maxBuffer: 1 << 30, timeout: 120_000 });
  const listMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`nft list ruleset: ${r.stderr || r.error}`);
  const routes = spawnSync(IP, ['-n', NS, 'route', 'show'], { env: BASE_ENV, encoding: 'utf8', maxBuffer: 1 << 28 })
    .stdout.split('\n')
    .filter(Boolean).length;
  return { textBytes: Buffer.byteLength(r.stdout), lines: r.stdout.split('\n').length, listMs, routes };
}

// ---- the report ----------------------------------------------------------------------------------
function printReport(): void {
  const cpuModel = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? '?';
  const etcdVersion = /etcd Version: (\S+)/.exec(spawnSync('etcd', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?';
  const header = [
    `### weir-agent at scale: ${PODS} pods on ${NODES} nodes, ${POLICIES} NetworkPolicies, ${CNPS} ClusterNetworkPolicies, real kube-apiserver\n`,
    `machine: nproc ${os.availableParallelism()}, kernel ${os.release()}, ${cpuModel}, ${Math.round(os.totalmem() / 2 ** 30)} GiB; node ${process.version}; kube-apiserver ${R.k8s}, etcd ${etcdVersion} (fsync on); load average ${loadBefore} before, ${loadavg()} after; ${new Date().toISOString().slice(0, 10)}`,
    `agent: ${PROFILE ? `${path.relative(root, AGENT_MAIN) || AGENT_MAIN} from source under ${[CPU_PROFILE ? '--cpu-prof' : '', HEAP_PROFILE ? '--heap-prof' : ''].filter(Boolean).join(' and ')} (timings perturbed)` : `\`${path.relative(root, AGENT_SRC).startsWith('..') ? AGENT_SRC : path.relative(root, AGENT_SRC)}\` (built ${builtAt})`} on ${BENCH_NODE} (${R.load.localPods} of the pods), --debounce-ms ${DEBOUNCE ?? 20}${DEBOUNCE === undefined ? ' (its default, as deployed)' : ''}, default log level; the agent, etcd, kube-apiserver and the loader share the machine's ${os.availableParallelism()} CPUs`,
  ];
  const warningNewer = newer.length
    ? `WARNING: dist/bin/weir-agent is older than ${newer.length} of its sources (${newer.slice(0, 4).join(', ')}${newer.length > 4 ? ', …' : ''}); rerun with --build to measure the current code`
    : undefined;
  const r = report({
    pods: PODS,
    nodes: NODES,
    policies: POLICIES,
    clusterPolicies: CNPS,
    changes: CHANGES,
    idleS: IDLE_S,
    pollMs: POLL_MS,
    gapMs: GAP_MS,
    debounceMs: DEBOUNCE,
    atScale: AT_SCALE,
    benchNode: BENCH_NODE,
    header,
    warningNewer,
    R,
  });
  if (r.failed) exitCode = 1;
  console.log(r.lines.join('\n'));
}
