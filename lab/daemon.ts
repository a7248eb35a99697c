// The lab's supervisor: ONE long-running process that owns the whole lab.
//
//   node lab/daemon.ts --dir /run/weir-lab --nodes 3
//
// (`scripts/lab up` starts it detached, in its own session, with stdout and
// stderr appended to DIR/daemon.log; it is not meant to be run by hand.)
//
// Start, in order, each step gated on real readiness with a deadline:
//   1. what is missing is built: the pinned Kubernetes binaries
//      (scripts/k8s/build) and weir's executables (scripts/build.mjs);
//   2. the topology (lab/topology.ts);
//   3. the control plane in the control-plane node's namespace, advertised on
//      its eth0 (172.18.0.2), with node CIDR allocation and the scheduler;
//   4. weir's manifests (deploy/weir.yaml, or deploy/parts/*.yaml), applied
//      with the pinned kubectl from weirlab-net as a kind user would;
//   5. a kubelet stand-in per node (lab/kubelet), which registers the Node
//      and runs the pods scheduled to it, weir's DaemonSet pod included;
//   6. kube-proxy (nftables mode) per node, until /healthz answers 200;
//   7. every Node Ready with a pod CIDR, and the weir DaemonSet ready on all.
// Then phase 'ready' in DIR/state.json, and it serves DIR/lab.sock (HTTP:
// GET /state, GET /pods) until SIGTERM.
//
// On SIGTERM (also in the middle of starting): the stand-ins stop (their pods
// torn down through CNI DEL), then kube-proxies, the control plane, the
// topology; the directory's contents are removed; exit 0. If a step fails:
// phase 'failed' with the error, the same teardown but the directory's logs
// and state file stay for a post-mortem, exit 1.
//
// Network safety: nothing runs in, or configures, the machine's root network
// namespace (see lab/topology.ts); every process is started through
// `ip netns exec` with a parent-death signal (lab/controlplane/process.ts).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { type ControlPlane, startControlPlane } from './controlplane/index.ts';
import { k8sBinDir as resolveK8sBinDir } from './controlplane/components.ts';
import { baseEnv, tailFile } from './controlplane/process.ts';
import { type KubeProxy, startKubeProxy } from './kube-proxy.ts';
import type { KubeletOptions, KubeletStandIn } from './kubelet/index.ts';
import { appliedObjects, weirManifests } from './manifests.ts';
import { type LabPod, type LabState, NODE_HOST_PATHS, controlPlaneDir, nodeDir, nodeRoot, recordedPodNetns, socketPath, writeState } from './state.ts';
import { BRIDGE_NETNS, type LabNode, type NetnsRun, createTopology, destroyTopology, labNodes, runInLabNetns, sweepLabNetns } from './topology.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const SERVICE_CIDR = '10.96.0.0/16';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const NODE_CIDR_MASK = 24;
export const APISERVER_PORT = 6443;

const num = (env: string, dflt: number): number => {
  const v = Number(process.env[env]);
  return Number.isFinite(v) && v > 0 ? v : dflt;
};
/** Deadline for every Node Ready and the DaemonSet ready, after the components are up. */
const READY_TIMEOUT_MS = num('WEIR_LAB_READY_TIMEOUT_MS', 5 * 60_000);
/** Deadline for each component's own readiness (control plane, kube-proxy, a stand-in's start). */
const COMPONENT_TIMEOUT_MS = num('WEIR_LAB_COMPONENT_TIMEOUT_MS', 3 * 60_000);
const STOP_TIMEOUT_MS = 90_000;

// ---- the kubelet stand-in (lab/kubelet, written separately) ----
// Loaded at run time, so that everything before it (build, topology, control
// plane, manifests) runs, and fails clearly, even while the module is absent
// or broken; the types are checked at build time.
type KubeletCtor = typeof KubeletStandIn;
type KubeletStandInLike = Pick<KubeletStandIn, 'start' | 'stop' | 'pods' | 'podNetns'>;

export const KUBELET_MODULE = path.join(REPO, 'lab/kubelet/index.ts');

async function loadKubelet(): Promise<KubeletCtor> {
  if (!fs.existsSync(KUBELET_MODULE)) throw new Error(`the kubelet stand-in is missing: ${path.relative(REPO, KUBELET_MODULE)} does not exist (yet)`);
  // A computed specifier: the lab typechecks and runs its other parts without the module.
  const spec: string = KUBELET_MODULE;
  const mod = (await import(spec)) as { KubeletStandIn?: KubeletCtor };
  if (typeof mod.KubeletStandIn !== 'function') throw new Error(`${path.relative(REPO, KUBELET_MODULE)} does not export class KubeletStandIn`);
  return mod.KubeletStandIn;
}

// ---- helpers ----
class StopRequested extends Error {
  constructor() {
    super('stop requested');
    this.name = 'StopRequested';
  }
}

function withDeadline<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion, its output appended to `say` line by line. */
function runLogged(cmd: string, args: string[], cwd: string, say: (m: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const onData = (d: string): void => {
      tail = `${tail}${d}`.slice(-4000);
      for (const line of d.split('\n')) if (line.trim()) say(`  ${line.trim()}`);
    };
    child.stdout.setEncoding('utf8').on('data', onData);
    child.stderr.setEncoding('utf8').on('data', onData);
    child.once('error', (e) => reject(new Error(`${cmd}: ${e.message}`)));
    child.once('close', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${tail.trim()}`))));
  });
}

function newestMtime(dir: string): number {
  let newest = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
  }
  return newest;
}

export const WEIR_BINARIES = ['weir', 'weir-agent', 'koffi.node'];

// ---- the daemon ----
interface Args {
  dir: string;
  nodes: number;
}

class Daemon {
  readonly dir: string;
  readonly nodes: LabNode[];
  readonly t0 = Date.now();
  readonly state: LabState;
  stopRequested = false;
  #wake: () => void = () => {};
  readonly stopped = new Promise<void>((r) => (this.#wake = r));
  cp: ControlPlane | undefined;
  kubeProxies: KubeProxy[] = [];
  standIns = new Map<string, KubeletStandInLike>();
  server: http.Server | undefined;
  binDir = '';
  adminKubeconfig: string;
  daemonSet: { namespace: string; name: string } | undefined;

  constructor(a: Args) {
    this.dir = a.dir;
    this.nodes = labNodes(a.nodes);
    this.adminKubeconfig = path.join(controlPlaneDir(this.dir), 'kubeconfig', 'admin.kubeconfig');
    this.state = {
      pid: process.pid,
      nodes: this.nodes.map((n) => ({ name: n.name, netns: n.netns, ip: n.ip, root: nodeRoot(this.dir, n.name) })),
      kubeconfig: this.adminKubeconfig,
      kubectl: '',
      k8sBinDir: '',
      phase: 'starting',
      hostNetns: BRIDGE_NETNS,
      hostFirewall: process.env['WEIR_LAB_HOST_FIREWALL'] === '1' || process.env['WEIR_LAB_HOST_FIREWALL'] === 'true',
      startedAt: new Date(this.t0).toISOString(),
    };
  }

  say(msg: string): void {
    const s = ((Date.now() - this.t0) / 1000).toFixed(1);
    process.stdout.write(`[+${s.padStart(5)}s] ${msg}\n`);
  }

  save(patch: Partial<LabState> = {}): void {
    Object.assign(this.state, patch);
    writeState(this.state, this.dir);
  }

  requestStop(signal: string): void {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.say(`${signal}: stopping the lab`);
    this.#wake();
  }

  check(): void {
    if (this.stopRequested) throw new StopRequested();
  }

  /** Polls `probe` every `intervalMs` until it returns a value; throws `onTimeout()` at the deadline, StopRequested on SIGTERM. */
  async poll<T>(probe: () => Promise<T | undefined>, timeoutMs: number, onTimeout: () => Promise<Error> | Error, intervalMs = 1000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.check();
      const v = await probe();
      if (v !== undefined) return v;
      if (Date.now() >= deadline) throw await onTimeout();
      await Promise.race([sleep(intervalMs), this.stopped]);
    }
  }

  kubectl(args: string[], input?: string, timeoutMs = 60_000): Promise<NetnsRun> {
    const argv = [path.join(this.binDir, 'kubectl'), `--kubeconfig=${this.adminKubeconfig}`, `--cache-dir=${path.join(this.dir, 'kubectl-cache')}`, '--request-timeout=20s', ...args];
    return runInLabNetns(BRIDGE_NETNS, argv, { ...(input === undefined ? {} : { input }), timeoutMs, env: baseEnv() });
  }

  // ---- control socket ----
  async serve(): Promise<void> {
    const sock = socketPath(this.dir);
    fs.rmSync(sock, { force: true });
    const server = http.createServer((req, res) => {
      const reply = (status: number, body: unknown): void => {
        const text = `${JSON.stringify(body)}\n`;
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
      };
      try {
        const url = new URL(req.url ?? '/', 'http://lab');
        if (req.method !== 'GET') return reply(405, { error: 'only GET' });
        if (url.pathname === '/state') return reply(200, this.state);
        if (url.pathname === '/pods') return reply(200, this.pods());
        return reply(404, { error: `no ${url.pathname}; try /state or /pods` });
      } catch (e) {
        return reply(500, { error: (e as Error).message });
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(sock, () => resolve());
    });
    fs.chmodSync(sock, 0o600);
    this.server = server;
  }

  pods(): LabPod[] {
    const out: LabPod[] = [];
    for (const [node, s] of this.standIns) {
      for (const p of s.pods()) out.push({ namespace: p.namespace, name: p.name, node, ...(p.netnsPath ? { netnsPath: p.netnsPath } : {}), ips: p.ips, hostNetwork: p.hostNetwork, phase: p.phase });
    }
    return out;
  }

  // ---- start ----
  async build(): Promise<void> {
    const t = Date.now();
    this.binDir = await resolveK8sBinDir((m) => this.say(`k8s: ${m}`));
    if (!fs.existsSync(path.join(this.binDir, 'kube-proxy'))) throw new Error(`kube-proxy not found in ${this.binDir}; run scripts/k8s/build`);
    this.save({ k8sBinDir: this.binDir, kubectl: path.join(this.binDir, 'kubectl') });
    this.check();
    const bin = path.join(REPO, 'dist/bin');
    const missing = WEIR_BINARIES.filter((b) => !fs.existsSync(path.join(bin, b)));
    if (missing.length > 0) {
      this.say(`building weir (dist/bin/${missing.join(', dist/bin/')} missing)`);
      await runLogged(process.execPath, [path.join(REPO, 'scripts/build.mjs')], REPO, (m) => this.say(m));
      const still = WEIR_BINARIES.filter((b) => !fs.existsSync(path.join(bin, b)));
      if (still.length > 0) throw new Error(`the build did not produce dist/bin/${still.join(', dist/bin/')}`);
    } else {
      const built = Math.min(...WEIR_BINARIES.map((b) => fs.statSync(path.join(bin, b)).mtimeMs));
      const src = Math.max(...['src', 'cni', 'agent'].map((d) => newestMtime(path.join(REPO, d))));
      if (src > built) this.say('note: dist/bin is older than the sources; run `npm run build` and `scripts/lab down && scripts/lab up` to use your changes');
    }
    this.say(`binaries ready (${this.binDir}, dist/bin) in ${Date.now() - t} ms`);
  }

  topology(): void {
    createTopology(this.nodes.length, (m) => this.say(m));
    for (const n of this.nodes) for (const p of NODE_HOST_PATHS) fs.mkdirSync(path.join(nodeRoot(this.dir, n.name), p), { recursive: true });
  }

  async controlPlane(): Promise<void> {
    const cpNode = this.nodes[0];
    if (!cpNode) throw new Error('no control-plane node');
    this.cp = await startControlPlane({
      netns: cpNode.netns,
      dir: controlPlaneDir(this.dir),
      advertiseAddress: cpNode.ip,
      serviceCIDR: SERVICE_CIDR,
      controllerManager: { clusterCIDR: CLUSTER_CIDR, nodeCIDRMaskSize: NODE_CIDR_MASK },
      scheduler: true,
      apiServerSANs: [cpNode.name],
      readyTimeoutMs: COMPONENT_TIMEOUT_MS,
      onProgress: (m) => this.say(`control plane: ${m}`),
    });
    this.adminKubeconfig = this.cp.adminKubeconfig;
    this.save({ kubeconfig: this.cp.adminKubeconfig });
    // The admin kubeconfig must work from weirlab-net, where users' kubectl runs.
    await this.poll(
      async () => ((await this.kubectl(['get', '--raw=/readyz'], undefined, 15_000)).code === 0 ? true : undefined),
      30_000,
      async () => new Error(`the apiserver at ${this.cp?.url} is not reachable from ${BRIDGE_NETNS}: ${(await this.kubectl(['get', '--raw=/readyz'])).stderr.trim()}`),
      500,
    );
  }

  async applyManifests(): Promise<void> {
    const m = weirManifests(REPO);
    this.say(`applying weir's manifests: ${m.files.map((f) => path.relative(REPO, f)).join(' ')}`);
    // `up --host-firewall` flips the manifest's own switch, as a user would
    // edit the value before applying it.
    const toggle = /(- name: WEIR_HOST_FIREWALL\n\s+value: )"false"/;
    if (this.state.hostFirewall && !toggle.test(m.yaml)) throw new Error('the DaemonSet has no WEIR_HOST_FIREWALL value to turn on');
    const yaml = this.state.hostFirewall ? m.yaml.replace(toggle, '$1"true"') : m.yaml;
    if (this.state.hostFirewall) this.say('  host-firewall mode: WEIR_HOST_FIREWALL="true"');
    const r = await this.kubectl(['apply', '-f', '-', '-o', 'json'], yaml);
    if (r.code !== 0) throw new Error(`kubectl apply of weir's manifests failed (exit ${r.code}): ${r.stderr.trim()}`);
    const objs = appliedObjects(r.stdout);
    for (const o of objs) this.say(`  ${o.kind.toLowerCase()}/${o.name}${o.namespace ? ` -n ${o.namespace}` : ''} applied`);
    const ds = objs.filter((o) => o.kind === 'DaemonSet');
    if (ds.length !== 1) throw new Error(`weir's manifests hold ${ds.length} DaemonSets; expected exactly one`);
    const [d] = ds;
    if (d) this.daemonSet = { namespace: d.namespace ?? 'default', name: d.name };
  }

  async kubelets(): Promise<void> {
    const StandIn = await loadKubelet();
    const cp = this.cp;
    const cpNode = this.nodes[0];
    if (!cp || !cpNode) throw new Error('control plane not started');
    for (const n of this.nodes) {
      const ndir = nodeDir(this.dir, n.name);
      fs.mkdirSync(ndir, { recursive: true });
      const logFile = path.join(ndir, 'kubelet.log');
      const log = (msg: string, fields?: object): void => {
        fs.appendFileSync(logFile, `${new Date().toISOString()} ${msg}${fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : ''}\n`);
      };
      // The stand-in's contract asks for an admin kubeconfig (it creates service-account
      // tokens and events for its pods, which a node identity under NodeRestriction may not).
      const o: KubeletOptions = {
        nodeName: n.name,
        netns: n.netns,
        nodeIP: n.ip,
        controlPlane: n.controlPlane,
        kubeconfig: cp.adminKubeconfig,
        kubectl: path.join(this.binDir, 'kubectl'),
        apiServer: { host: cpNode.ip, port: APISERVER_PORT, caFile: cp.caFile },
        dirs: { root: nodeRoot(this.dir, n.name) },
        repo: REPO,
        k8sBinDir: this.binDir,
        log,
      };
      this.standIns.set(n.name, new StandIn(o));
    }
    await Promise.all(
      [...this.standIns].map(async ([name, s]) => {
        await withDeadline(`kubelet stand-in on ${name}: start()`, s.start(), COMPONENT_TIMEOUT_MS).catch((e: unknown) => {
          throw new Error(`${(e as Error).message}\nlast lines of ${path.join(nodeDir(this.dir, name), 'kubelet.log')}:\n${tailFile(path.join(nodeDir(this.dir, name), 'kubelet.log'), 20)}`);
        });
        this.say(`kubelet stand-in on ${name} started`);
      }),
    );
  }

  async kubeProxy(): Promise<void> {
    const cp = this.cp;
    if (!cp) throw new Error('control plane not started');
    const kubeconfig = cp.kubeconfigForUser('system:kube-proxy', [], path.join(this.dir, 'kube-proxy.kubeconfig'));
    for (const n of this.nodes) {
      const kp = await startKubeProxy({ nodeName: n.name, netns: n.netns, nodeIP: n.ip, kubeconfig, clusterCIDR: CLUSTER_CIDR, k8sBinDir: this.binDir, dir: path.join(nodeDir(this.dir, n.name), 'kube-proxy') });
      this.kubeProxies.push(kp);
      this.say(`kube-proxy on ${n.name} started (pid ${kp.pid}, log ${kp.logFile})`);
    }
    await Promise.all(
      this.kubeProxies.map(async (kp) => {
        await kp.waitHealthy(COMPONENT_TIMEOUT_MS);
        this.say(`kube-proxy on ${kp.nodeName} healthy`);
      }),
    );
  }

  /** Why the lab is not ready yet, or undefined when it is. */
  async notReady(): Promise<string | undefined> {
    const dead = this.deadComponents();
    if (dead.length > 0) throw new Error(`component exited while waiting for the cluster: ${dead.join('; ')}`);
    const nodesR = await this.kubectl(['get', 'nodes', '-o', 'json']);
    if (nodesR.code !== 0) return `kubectl get nodes: ${nodesR.stderr.trim()}`;
    type NodeJson = { metadata: { name: string }; spec?: { podCIDR?: string }; status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } };
    const items = (JSON.parse(nodesR.stdout) as { items: NodeJson[] }).items;
    const unregistered: string[] = [];
    const noCidr: string[] = [];
    const notReady: string[] = [];
    let why = '';
    for (const n of this.nodes) {
      const o = items.find((i) => i.metadata.name === n.name);
      if (!o) {
        unregistered.push(n.name);
        continue;
      }
      if (!o.spec?.podCIDR) noCidr.push(n.name);
      const ready = o.status?.conditions?.find((c) => c.type === 'Ready');
      if (ready?.status !== 'True') {
        notReady.push(n.name);
        why = ready?.message ?? ready?.reason ?? '';
      }
    }
    const problems: string[] = [];
    if (unregistered.length > 0) problems.push(`not registered: ${unregistered.join(' ')}`);
    if (noCidr.length > 0) problems.push(`no podCIDR: ${noCidr.join(' ')}`);
    if (notReady.length > 0) problems.push(`not Ready: ${notReady.join(' ')}${why ? ` (${why.length > 80 ? `${why.slice(0, 77)}...` : why})` : ''}`);
    const ds = this.daemonSet;
    if (ds) {
      const r = await this.kubectl(['-n', ds.namespace, 'get', 'daemonset', ds.name, '-o', 'json']);
      if (r.code !== 0) return `kubectl get daemonset ${ds.name}: ${r.stderr.trim()}`;
      const st = (JSON.parse(r.stdout) as { status?: { desiredNumberScheduled?: number; numberReady?: number; updatedNumberScheduled?: number; numberAvailable?: number } }).status ?? {};
      const n = this.nodes.length;
      if (st.desiredNumberScheduled !== n || st.numberReady !== n || st.updatedNumberScheduled !== n) {
        problems.push(`daemonset ${ds.name}: ${st.numberReady ?? 0}/${n} ready (desired ${st.desiredNumberScheduled ?? 0}, updated ${st.updatedNumberScheduled ?? 0})`);
      }
    }
    return problems.length > 0 ? problems.join('; ') : undefined;
  }

  async waitReady(): Promise<void> {
    let last = '';
    await this.poll(
      async () => {
        const why = await this.notReady();
        if (why === undefined) return true;
        if (why !== last) this.say(`waiting: ${why}`);
        last = why;
        return undefined;
      },
      READY_TIMEOUT_MS,
      () => {
        const tails = this.nodes.map((n) => `--- ${n.name} kubelet stand-in (${path.join(nodeDir(this.dir, n.name), 'kubelet.log')}):\n${tailFile(path.join(nodeDir(this.dir, n.name), 'kubelet.log'), 10)}`);
        return new Error(`cluster not ready after ${READY_TIMEOUT_MS} ms: ${last}\n${tails.join('\n')}`);
      },
      1000,
    );
  }

  deadComponents(): string[] {
    const dead: string[] = [];
    for (const kp of this.kubeProxies) if (!kp.running) dead.push(`kube-proxy on ${kp.nodeName} exited; last lines of ${kp.logFile}:\n${kp.logTail(10)}`);
    if (this.cp && this.cp.pids().length < 4) dead.push(`control plane: only ${this.cp.pids().length} of 4 processes running (logs in ${path.join(controlPlaneDir(this.dir), 'logs')})`);
    return dead;
  }

  async start(): Promise<void> {
    const step = async (name: string, fn: () => Promise<void> | void): Promise<void> => {
      this.check();
      const t = Date.now();
      this.say(`${name}…`);
      await fn();
      this.say(`${name}: done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    };
    await step('build', () => this.build());
    await step('topology', () => this.topology());
    await step('control plane', () => this.controlPlane());
    await step('weir manifests', () => this.applyManifests());
    await step('kubelet stand-ins', () => this.kubelets());
    await step('kube-proxy', () => this.kubeProxy());
    await step('cluster ready (nodes Ready, weir DaemonSet ready)', () => this.waitReady());
  }

  /** Watches the components after ready; a dead one is recorded in the state file (the lab then counts as unhealthy). */
  async watch(): Promise<void> {
    while (!this.stopRequested) {
      await Promise.race([sleep(5000), this.stopped]);
      if (this.stopRequested) return;
      const dead = this.deadComponents();
      const error = dead.length > 0 ? dead.join('\n') : undefined;
      if (error !== this.state.error) {
        if (error) this.say(`DEGRADED: ${error}`);
        this.save(error ? { error } : { error: undefined });
      }
    }
  }

  // ---- stop ----
  async teardown(): Promise<void> {
    const attempt = async (what: string, fn: () => Promise<void> | void, ms = STOP_TIMEOUT_MS): Promise<void> => {
      const t = Date.now();
      try {
        await withDeadline(what, Promise.resolve().then(fn), ms);
        this.say(`${what}: done in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      } catch (e) {
        this.say(`${what}: ${(e as Error).message}`);
      }
    };
    if (this.standIns.size > 0) {
      await attempt('stopping kubelet stand-ins (pods deleted through CNI DEL)', () =>
        Promise.all([...this.standIns].map(([name, s]) => s.stop({ deletePods: true }).catch((e: unknown) => this.say(`kubelet stand-in on ${name}: stop: ${(e as Error).message}`)))).then(() => undefined),
      );
    }
    if (this.kubeProxies.length > 0) await attempt('stopping kube-proxy', () => Promise.all(this.kubeProxies.map((k) => k.stop())).then(() => undefined));
    if (this.cp) await attempt('stopping the control plane', () => this.cp?.stop());
    await attempt('closing the control socket', () => new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r())), 5000);
    fs.rmSync(socketPath(this.dir), { force: true });
    await attempt('removing the topology', () => {
      const pods = recordedPodNetns(this.dir);
      try {
        destroyTopology(this.nodes);
      } finally {
        const swept = sweepLabNetns(pods);
        if (swept.length > 0) this.say(`swept leftover namespaces: ${swept.join(' ')}`);
      }
    });
  }
}

/** Removes everything in `dir` but the names in `keep`. */
function clearDir(dir: string, keep: string[] = []): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (!keep.includes(n)) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('lab/daemon.ts')
    .usage('$0 --dir DIR --nodes N\n\nThe weir lab supervisor; started by `scripts/lab up`.')
    .option('dir', { type: 'string', demandOption: true, describe: 'The lab directory (state, socket, logs, node roots)' })
    .option('nodes', { type: 'number', default: 3, describe: 'Number of nodes (the first is the control plane)' })
    .strict()
    .parseAsync();
  const dir = path.resolve(argv.dir);
  fs.mkdirSync(dir, { recursive: true });
  const d = new Daemon({ dir, nodes: argv.nodes });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => d.requestStop(sig));
  process.on('unhandledRejection', (e) => d.say(`unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`));
  // An exception nobody caught must not kill the daemon on the spot (that would leave the lab
  // running unsupervised): it fails the lab, with the usual teardown. EPIPE on a child's stdin
  // (a child that exited without reading it) is harmless: the child's exit status tells.
  let crash: (e: unknown) => void = () => {};
  const crashed = new Promise<never>((_, reject) => (crash = reject));
  crashed.catch(() => {});
  process.on('uncaughtException', (e) => {
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') {
      d.say(`ignored: ${e.message}`);
      return;
    }
    d.say(`uncaught exception: ${e.stack ?? e.message}`);
    crash(e);
  });

  d.save();
  d.say(`weir lab daemon (pid ${process.pid}): ${d.nodes.length} nodes (${d.nodes.map((n) => `${n.name} ${n.ip}`).join(', ')}), dir ${dir}${d.state.hostFirewall ? ', host firewall on' : ''}`);
  let code = 0;
  try {
    await d.serve();
    await Promise.race([d.start(), crashed]);
    const upMs = Date.now() - d.t0;
    d.save({ phase: 'ready', readyAt: new Date().toISOString(), upMs });
    d.say(`lab ready in ${(upMs / 1000).toFixed(1)} s: try \`scripts/lab kubectl get nodes -o wide\``);
    await Promise.race([d.watch(), crashed]);
  } catch (e) {
    if (e instanceof StopRequested || d.stopRequested) {
      d.say('start interrupted by a stop request');
    } else {
      code = 1;
      const error = e instanceof Error ? e.message : String(e);
      d.say(`FAILED: ${error}`);
      if (process.env['WEIR_LAB_DEBUG'] && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
      // Record the failure before the teardown, so `scripts/lab up` can report it while it runs.
      try {
        d.save({ phase: 'failed', error });
      } catch {
        // the directory may be gone
      }
    }
  }
  await d.teardown();
  if (code === 0) {
    clearDir(dir);
  } else {
    // Keep state.json, daemon.log and the components' logs for a post-mortem; the rest (etcd data, PKI) goes.
    clearDir(dir, ['state.json', 'daemon.log', 'nodes', 'controlplane']);
    try {
      fs.rmSync(path.join(controlPlaneDir(dir), 'etcd'), { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  d.say(`daemon exiting (${code})`);
  process.exit(code);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`lab daemon: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
