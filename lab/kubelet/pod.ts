// One pod on the node: its sandbox (network namespace + CNI attachment),
// its containers (host processes), its status in the API, its teardown.
//
// The flow is kubelet's pod worker, simplified:
//   network ready? (a CNI config exists) → sandbox (netns, CNI ADD, then
//   CHECK once; a failed ADD is torn down — DEL, netns removed — and retried
//   with backoff, the error going to an Event and the pod's conditions) →
//   init containers in order, each to exit 0 (sidecars — init containers
//   with restartPolicy Always — are started and left running) → containers,
//   restarted per restartPolicy with backoff → readiness.
// Teardown (deletionTimestamp, force deletion, stop()): SIGTERM every
// container's process group, SIGKILL after the grace period (capped at 5 s),
// CNI DEL with the cached ADD result, netns deleted, then the pod object is
// deleted with grace period 0 (preconditioned on its UID).
//
// Every sandbox is recorded in root/pods/<ns>_<name>/sandbox-<uid>.json
// before its netns exists, so a stand-in that died can tear down what it
// left (KubeletStandIn.start()).
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type CniRunner, type ConfList, type RuntimeConf, containerdArgs, resultIPs } from './cni.ts';
import { planContainer } from './images.ts';
import { type Kube, KubeError, apiTime } from './kube.ts';
import { type BindMount, ConfigError, type PreparedVolume, containerEnv, containerMounts, prepareVolumes } from './podspec.ts';
import { runProbe } from './probes.ts';
import { DEFAULT_PATH, exited, runCommand, shq, sleep, stopChild, tool, trackChild, trackNetns, untrackNetns, waitExit } from './proc.ts';

/** What a pod worker needs from its node. */
export interface PodHost {
  nodeName: string;
  nodeIP: string;
  /** `ip netns` name of the node. */
  nodeNetns: string;
  root: string;
  podsDir: string;
  repo: string;
  k8sBinDir: string;
  caFile: string;
  /** KUBERNETES_SERVICE_HOST and friends. */
  serviceEnv: Record<string, string>;
  kube: Kube;
  cni: CniRunner;
  networkConfig(): { file: string; list: ConfList } | undefined;
  log(msg: string, fields?: object): void;
  event(pod: any, type: 'Normal' | 'Warning', reason: string, message: string): void;
  /** The worker finished its teardown. */
  gone(worker: PodWorker): void;
}

export const BACKOFF_START_MS = 1000;
export const BACKOFF_CAP_MS = 10_000;
export const GRACE_CAP_MS = 5000;
export const NETNS_DIR = '/var/run/netns';

export const podDirName = (namespace: string, name: string): string => `${namespace}_${name}`;
export const podNetnsName = (uid: string): string => `weirlab-pod-${uid.replace(/-/g, '').slice(0, 8)}`;

export interface SandboxRecord {
  uid: string;
  namespace: string;
  name: string;
  containerId: string;
  netnsName: string;
  netnsPath: string;
  ifname: string;
  args: string;
  capabilityArgs: Record<string, unknown>;
  /** The list the ADD ran with (DEL falls back to it when the conf dir is empty). */
  list: ConfList;
  result?: unknown;
}

export const sandboxRecordPath = (podsDir: string, r: { namespace: string; name: string; uid: string }): string =>
  path.join(podsDir, podDirName(r.namespace, r.name), `sandbox-${r.uid}.json`);

export function readSandboxRecords(podsDir: string): { file: string; record: SandboxRecord }[] {
  const out: { file: string; record: SandboxRecord }[] = [];
  let dirs: string[] = [];
  try {
    dirs = fs.readdirSync(podsDir);
  } catch {
    return out;
  }
  for (const d of dirs) {
    let files: string[] = [];
    try {
      files = fs.readdirSync(path.join(podsDir, d)).filter((f) => /^sandbox-.*\.json$/.test(f));
    } catch {
      continue;
    }
    for (const f of files) {
      const file = path.join(podsDir, d, f);
      try {
        out.push({ file, record: JSON.parse(fs.readFileSync(file, 'utf8')) as SandboxRecord });
      } catch {
        fs.rmSync(file, { force: true });
      }
    }
  }
  return out;
}

export async function netnsAdd(name: string): Promise<void> {
  if (fs.existsSync(path.join(NETNS_DIR, name))) await netnsDel(name);
  trackNetns(name);
  const r = await runCommand([tool('ip'), 'netns', 'add', name]);
  if (r.code !== 0) throw new Error(`ip netns add ${name}: ${r.stderr.trim()}`);
  const lo = await runCommand([tool('ip'), '-n', name, 'link', 'set', 'lo', 'up']);
  if (lo.code !== 0) throw new Error(`ip -n ${name} link set lo up: ${lo.stderr.trim()}`);
}

export async function netnsDel(name: string): Promise<void> {
  if (fs.existsSync(path.join(NETNS_DIR, name))) {
    const r = await runCommand([tool('ip'), 'netns', 'del', name]);
    if (r.code !== 0 && fs.existsSync(path.join(NETNS_DIR, name))) throw new Error(`ip netns del ${name}: ${r.stderr.trim()}`);
  }
  untrackNetns(name);
}

const rtOf = (r: SandboxRecord): RuntimeConf => ({ containerId: r.containerId, netnsPath: r.netnsPath, ifname: r.ifname, args: r.args, capabilityArgs: r.capabilityArgs });

/**
 * CNI DEL (with the current config, else the one of the ADD) and the netns
 * removed. Retries DEL a few times; the netns goes in any case. Returns the
 * DEL error, if it kept failing.
 */
export async function teardownSandbox(host: Pick<PodHost, 'cni' | 'networkConfig' | 'log'>, r: SandboxRecord, attempts = 3): Promise<string | undefined> {
  const list = host.networkConfig()?.list ?? r.list;
  let error: string | undefined;
  for (let i = 0; i < attempts; i++) {
    const out = await host.cni.del(list, rtOf(r), r.result);
    if (out.ok) {
      error = undefined;
      break;
    }
    error = out.error;
    host.log('CNI DEL failed', { pod: `${r.namespace}/${r.name}`, containerId: r.containerId.slice(0, 12), attempt: i + 1, error });
    if (i + 1 < attempts) await sleep(500 * (i + 1));
  }
  await netnsDel(r.netnsName);
  return error;
}

type Mode = 'init' | 'sidecar' | 'regular';

const signalNumber = (s: NodeJS.Signals | null): number => (s ? (os.constants.signals[s] ?? 0) : 0);

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const onAbort = (): void => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      () => resolve(undefined),
    );
  });
}

/** Polls `file` from byte `from` for `text`, until it appears, the child exits, or `timeoutMs`. */
async function waitForLogText(file: string, from: number, text: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end && !exited(child)) {
    try {
      const fd = fs.openSync(file, 'r');
      try {
        const size = fs.fstatSync(fd).size;
        const len = Math.min(size - from, 1 << 20);
        if (len > 0) {
          const buf = Buffer.alloc(len);
          fs.readSync(fd, buf, 0, len, from);
          if (buf.toString('utf8').includes(text)) return;
        }
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      // not there yet
    }
    await sleep(50);
  }
}

interface Spawned {
  child: ChildProcess;
  logFile: string;
  logOffset: number;
  readyText?: string;
}

export class ContainerRunner {
  readonly name: string;
  readonly spec: any;
  readonly mode: Mode;
  readonly #pod: PodWorker;
  restartCount = 0;
  state: Record<string, unknown>;
  lastState: Record<string, unknown> = {};
  ready = false;
  started = false;
  everStarted = false;
  containerID: string | undefined;
  child: ChildProcess | undefined;
  /** Exit code once it terminated for good (no restart coming). */
  finalExit: number | undefined;
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #resolveFinished!: (code: number) => void;
  readonly finished: Promise<number>;
  #resolveStarted!: () => void;
  readonly startedOnce: Promise<void>;

  constructor(pod: PodWorker, spec: any, mode: Mode) {
    this.#pod = pod;
    this.spec = spec;
    this.name = String(spec.name);
    this.mode = mode;
    this.state = { waiting: { reason: mode === 'regular' ? 'ContainerCreating' : 'PodInitializing' } };
    this.finished = new Promise((r) => (this.#resolveFinished = r));
    this.startedOnce = new Promise((r) => (this.#resolveStarted = r));
  }

  start(): void {
    this.#loop ??= this.#run().catch((e: unknown) => this.#pod.host.log('container loop failed', { pod: this.#pod.key, container: this.name, error: String(e) }));
  }

  /** Stops the process (SIGTERM, SIGKILL after graceMs) and the restart loop. */
  async stop(graceMs: number): Promise<void> {
    this.#stop.abort();
    if (this.child) await stopChild(this.child, graceMs);
    await this.#loop;
  }

  get stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  #shouldRestart(code: number): boolean {
    if (this.mode === 'sidecar') return true;
    const policy = String(this.#pod.pod?.spec?.restartPolicy ?? 'Always');
    if (this.mode === 'init') return policy !== 'Never' && code !== 0;
    if (policy === 'Always') return true;
    if (policy === 'OnFailure') return code !== 0;
    return false;
  }

  async #run(): Promise<void> {
    const pod = this.#pod;
    let backoff = BACKOFF_START_MS;
    while (!this.stopping) {
      let sp: Spawned;
      const t0 = Date.now();
      try {
        sp = await pod.spawnContainer(this);
      } catch (e) {
        const msg = (e as Error).message ?? String(e);
        this.state = { waiting: { reason: e instanceof ConfigError ? 'CreateContainerConfigError' : 'CreateContainerError', message: msg } };
        pod.host.log('container create failed', { pod: pod.key, container: this.name, error: msg });
        pod.host.event(pod.pod, 'Warning', 'Failed', `Error: ${msg}`);
        pod.dirty();
        await sleep(backoff, this.#stop.signal);
        backoff = Math.min(backoff * 2, BACKOFF_CAP_MS);
        continue;
      }
      const child = sp.child;
      if (this.stopping) {
        await stopChild(child, 0);
        return;
      }
      this.child = child;
      this.containerID = `weirlab://${randomBytes(32).toString('hex')}`;
      const startedAt = apiTime();
      this.state = { running: { startedAt } };
      pod.host.log('container started', { pod: pod.key, container: this.name, pid: child.pid, restartCount: this.restartCount });
      pod.dirty();
      if (sp.readyText) await waitForLogText(sp.logFile, sp.logOffset, sp.readyText, child, 30_000);
      if (!exited(child)) {
        this.started = true;
        this.everStarted = true;
        this.#resolveStarted();
        if (this.spec.readinessProbe && this.mode !== 'init') void this.#probeLoop(child, this.spec.readinessProbe);
        else this.ready = true;
        pod.dirty();
      }
      const st = await waitExit(child);
      this.child = undefined;
      this.ready = false;
      this.started = false;
      const exitCode = st.code ?? 128 + signalNumber(st.signal);
      const terminated: Record<string, unknown> = {
        exitCode,
        reason: exitCode === 0 ? 'Completed' : 'Error',
        startedAt,
        finishedAt: apiTime(),
        containerID: this.containerID,
        ...(st.signal ? { signal: signalNumber(st.signal) } : {}),
      };
      if (this.stopping) {
        this.state = { terminated };
        return;
      }
      pod.host.log('container exited', { pod: pod.key, container: this.name, exitCode });
      if (!this.#shouldRestart(exitCode)) {
        this.state = { terminated };
        this.finalExit = exitCode;
        this.#resolveFinished(exitCode);
        pod.containerFinished(this);
        pod.dirty();
        return;
      }
      this.lastState = { terminated };
      this.restartCount++;
      if (Date.now() - t0 > 60_000) backoff = BACKOFF_START_MS;
      this.state = { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(backoff / 1000)}s restarting failed container=${this.name} pod=${pod.pod?.metadata?.name}_${pod.pod?.metadata?.namespace}(${pod.uid})` } };
      pod.dirty();
      await sleep(backoff, this.#stop.signal);
      backoff = Math.min(backoff * 2, BACKOFF_CAP_MS);
    }
  }

  async #probeLoop(child: ChildProcess, probe: any): Promise<void> {
    const pod = this.#pod;
    await sleep(Math.min(Number(probe.initialDelaySeconds ?? 0), 10) * 1000, this.#stop.signal);
    let successes = 0;
    let failures = 0;
    const successThreshold = Math.max(1, Number(probe.successThreshold ?? 1));
    const failureThreshold = Math.max(1, Number(probe.failureThreshold ?? 3));
    const periodS = Math.max(1, Number(probe.periodSeconds ?? 10));
    while (!exited(child) && !this.stopping) {
      const ok = await runProbe(probe, { nodeNetns: pod.host.nodeNetns, podIP: pod.podIPs[0] ?? pod.host.nodeIP, ports: this.spec.ports ?? [] }).catch(() => false);
      if (exited(child) || this.stopping) break;
      if (ok) {
        failures = 0;
        successes++;
        if (!this.ready && successes >= successThreshold) {
          this.ready = true;
          pod.host.log('container ready', { pod: pod.key, container: this.name });
          pod.dirty();
        }
      } else {
        successes = 0;
        failures++;
        if (this.ready && failures >= failureThreshold) {
          this.ready = false;
          pod.host.log('readiness probe failed', { pod: pod.key, container: this.name });
          pod.dirty();
        }
      }
      // Until ready, probe every second (a lab wants it soon); then at the spec's period, capped at 10 s.
      await sleep((this.ready ? Math.min(periodS, 10) : 1) * 1000, this.#stop.signal);
    }
  }

  status(): Record<string, unknown> {
    return {
      name: this.name,
      image: String(this.spec.image ?? ''),
      imageID: String(this.spec.image ?? ''),
      ...(this.containerID ? { containerID: this.containerID } : {}),
      ready: this.ready,
      started: this.started,
      restartCount: this.restartCount,
      state: this.state,
      lastState: this.lastState,
    };
  }
}

interface Cond {
  status: 'True' | 'False';
  lastTransitionTime: string;
  reason?: string;
  message?: string;
}

export class PodWorker {
  readonly host: PodHost;
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly hostNetwork: boolean;
  pod: any;
  podIPs: string[] = [];
  sandbox: SandboxRecord | undefined;
  initRunners: ContainerRunner[] = [];
  runners: ContainerRunner[] = [];
  initialized = false;
  terminalPhase: 'Succeeded' | 'Failed' | undefined;
  sandboxError: string | undefined;
  networkNotReady = false;
  readonly startTime: string;
  readonly #abort = new AbortController();
  #main: Promise<void> = Promise.resolve();
  #terminating: Promise<void> | undefined;
  #finishing: Promise<void> | undefined;
  #apiGone = false;
  #deleteFromApi = false;
  #check: Promise<unknown> = Promise.resolve();
  #volumes: Promise<Map<string, PreparedVolume>> | undefined;
  readonly #conds = new Map<string, Cond>();
  // status sync
  #lastPosted = '';
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #again = false;
  #noMorePatches = false;

  constructor(host: PodHost, pod: any) {
    this.host = host;
    this.pod = pod;
    this.uid = String(pod.metadata.uid);
    this.namespace = String(pod.metadata.namespace);
    this.name = String(pod.metadata.name);
    this.hostNetwork = !!pod.spec?.hostNetwork;
    this.startTime = pod.status?.startTime ?? apiTime();
    const scheduled = ((pod.status?.conditions ?? []) as any[]).find((c) => c.type === 'PodScheduled');
    this.#conds.set('PodScheduled', { status: 'True', lastTransitionTime: scheduled?.lastTransitionTime ?? apiTime() });
    if (this.hostNetwork) this.podIPs = [host.nodeIP];
  }

  get key(): string {
    return `${this.namespace}/${this.name}`;
  }
  get dir(): string {
    return path.join(this.host.podsDir, podDirName(this.namespace, this.name));
  }
  get volumesDir(): string {
    return path.join(this.dir, `volumes-${this.uid}`);
  }
  get netnsName(): string | undefined {
    return this.hostNetwork ? this.host.nodeNetns : this.sandbox?.netnsName;
  }
  get netnsPath(): string | undefined {
    const n = this.netnsName;
    return n ? path.join(NETNS_DIR, n) : undefined;
  }
  get terminating(): boolean {
    return this.#terminating !== undefined;
  }

  start(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    this.#main = this.#run().catch((e: unknown) => this.host.log('pod worker failed', { pod: this.key, error: String((e as Error)?.stack ?? e) }));
  }

  /** A newer version of the pod from the API. */
  update(pod: any): void {
    if (pod.metadata?.uid !== this.uid) return;
    this.pod = pod;
    if (pod.metadata?.deletionTimestamp) {
      const grace = Number(pod.metadata.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30);
      void this.terminate({ graceMs: Math.min(grace * 1000, GRACE_CAP_MS), deleteFromApi: true });
    }
  }

  /** Stops everything of the pod; idempotent (a later call can only add `apiGone`/`deleteFromApi`). */
  terminate(o: { graceMs?: number; apiGone?: boolean; deleteFromApi?: boolean }): Promise<void> {
    if (o.apiGone) this.#apiGone = true;
    if (o.deleteFromApi) this.#deleteFromApi = true;
    this.#terminating ??= this.#doTerminate(o.graceMs ?? GRACE_CAP_MS);
    return this.#terminating;
  }

  async #doTerminate(graceMs: number): Promise<void> {
    this.host.log('pod terminating', { pod: this.key, graceMs, apiGone: this.#apiGone });
    this.#abort.abort();
    await this.#main;
    await Promise.all(this.runners.map((r) => r.stop(graceMs)));
    await Promise.all(this.initRunners.map((r) => r.stop(graceMs)));
    await this.#finishing;
    this.#noMorePatches = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#flushing;
    await this.#teardownSandbox();
    fs.rmSync(this.volumesDir, { recursive: true, force: true });
    if (!this.#apiGone && this.#deleteFromApi) await this.#deleteFromApiServer();
    this.host.log('pod gone', { pod: this.key });
    this.host.gone(this);
  }

  async #deleteFromApiServer(): Promise<void> {
    const body = { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: this.uid } };
    for (let i = 0; i < 5 && !this.#apiGone; i++) {
      try {
        await this.host.kube.deleteRaw(`/api/v1/namespaces/${this.namespace}/pods/${this.name}`, body);
        return;
      } catch (e) {
        if (e instanceof KubeError && (e.notFound || e.conflict)) return;
        this.host.log('pod delete failed; retrying', { pod: this.key, error: (e as Error).message });
        await sleep(1000 * (i + 1));
      }
    }
  }

  // ---- main flow ----

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    this.dirty();
    if (!this.hostNetwork) {
      let warned = false;
      while (!signal.aborted && !this.host.networkConfig()) {
        this.networkNotReady = true;
        if (!warned) {
          warned = true;
          this.host.log('waiting for the network plugin (no CNI config)', { pod: this.key });
          this.host.event(this.pod, 'Warning', 'NetworkNotReady', 'network is not ready: container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized');
          this.dirty();
        }
        await sleep(1000, signal);
      }
      this.networkNotReady = false;
      let backoff = BACKOFF_START_MS;
      while (!signal.aborted) {
        try {
          await this.#setupSandbox();
          this.sandboxError = undefined;
          break;
        } catch (e) {
          this.sandboxError = (e as Error).message ?? String(e);
          this.host.log('sandbox setup failed; retrying', { pod: this.key, backoffMs: backoff, error: this.sandboxError });
          this.host.event(this.pod, 'Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${this.sandboxError}`);
          this.dirty();
          await sleep(backoff, signal);
          backoff = Math.min(backoff * 2, BACKOFF_CAP_MS);
        }
      }
    }
    if (signal.aborted) return;
    this.dirty();
    for (const spec of (this.pod.spec?.initContainers ?? []) as any[]) {
      if (signal.aborted) return;
      const sidecar = spec.restartPolicy === 'Always';
      const r = new ContainerRunner(this, spec, sidecar ? 'sidecar' : 'init');
      this.initRunners.push(r);
      r.start();
      if (sidecar) {
        await abortable(r.startedOnce, signal);
        continue;
      }
      const code = await abortable(r.finished, signal);
      if (signal.aborted || code === undefined) return;
      if (code !== 0) {
        this.terminalPhase = 'Failed';
        this.#finishing ??= this.#finish();
        return;
      }
      this.dirty();
    }
    if (signal.aborted) return;
    this.initialized = true;
    for (const spec of (this.pod.spec?.containers ?? []) as any[]) {
      const r = new ContainerRunner(this, spec, 'regular');
      this.runners.push(r);
      r.start();
    }
    this.dirty();
  }

  /** A regular container terminated for good: the pod may be done (restartPolicy Never/OnFailure). */
  containerFinished(_r: ContainerRunner): void {
    if (this.terminalPhase || this.terminating) return;
    if (this.runners.length === 0 || !this.runners.every((r) => r.finalExit !== undefined)) return;
    this.terminalPhase = this.runners.every((r) => r.finalExit === 0) ? 'Succeeded' : 'Failed';
    this.host.log('pod completed', { pod: this.key, phase: this.terminalPhase });
    this.#finishing ??= this.#finish();
  }

  /** A terminal pod: sidecars stopped, sandbox released (kubelet kills a finished pod's sandbox), final status. */
  async #finish(): Promise<void> {
    await Promise.all(this.initRunners.map((r) => r.stop(GRACE_CAP_MS)));
    await this.#teardownSandbox();
    this.dirty();
  }

  async #setupSandbox(): Promise<void> {
    const cfg = this.host.networkConfig();
    if (!cfg) throw new Error('network is not ready: no CNI configuration');
    const containerId = randomBytes(32).toString('hex');
    const netnsName = podNetnsName(this.uid);
    const capabilityArgs: Record<string, unknown> = {};
    const portMappings = ((this.pod.spec?.containers ?? []) as any[]).flatMap((c) =>
      ((c.ports ?? []) as any[])
        .filter((p) => Number(p.hostPort) > 0)
        .map((p) => ({ hostPort: Number(p.hostPort), containerPort: Number(p.containerPort), protocol: String(p.protocol ?? 'TCP').toLowerCase(), hostIP: String(p.hostIP ?? '') })),
    );
    if (portMappings.length > 0) capabilityArgs['portMappings'] = portMappings;
    capabilityArgs['io.kubernetes.cri.pod-annotations'] = this.pod.metadata?.annotations ?? {};
    const record: SandboxRecord = {
      uid: this.uid,
      namespace: this.namespace,
      name: this.name,
      containerId,
      netnsName,
      netnsPath: path.join(NETNS_DIR, netnsName),
      ifname: 'eth0',
      args: containerdArgs(containerId, { namespace: this.namespace, name: this.name, uid: this.uid }),
      capabilityArgs,
      list: cfg.list,
    };
    const recFile = sandboxRecordPath(this.host.podsDir, record);
    fs.mkdirSync(path.dirname(recFile), { recursive: true });
    fs.writeFileSync(recFile, JSON.stringify(record));
    try {
      await netnsAdd(netnsName);
    } catch (e) {
      await netnsDel(netnsName).catch(() => {});
      fs.rmSync(recFile, { force: true });
      throw e;
    }
    const t0 = Date.now();
    const out = await this.host.cni.add(cfg.list, rtOf(record));
    if (!out.ok) {
      // containerd tears a sandbox whose network setup failed down: DEL, then the netns.
      const delErr = await teardownSandbox(this.host, record, 1);
      // The record stays (for the next start's cleanup) only if a plugin had done something that DEL could not undo.
      if (!delErr || !out.steps.some((st) => st.code === 0)) fs.rmSync(recFile, { force: true });
      throw new Error(out.error ?? 'CNI ADD failed');
    }
    record.result = out.result;
    fs.writeFileSync(recFile, JSON.stringify(record));
    this.sandbox = record;
    this.podIPs = resultIPs(out.result);
    this.host.log('sandbox ready', { pod: this.key, netns: netnsName, ips: this.podIPs, addMs: Date.now() - t0, containerId: containerId.slice(0, 12) });
    // kubelet re-checks the network periodically; once is enough here.
    this.#check = this.host.cni.check(cfg.list, rtOf(record), out.result).then((c) => {
      if (!c.ok) this.host.log('CNI CHECK failed', { pod: this.key, error: c.error });
    });
  }

  async #teardownSandbox(): Promise<void> {
    const sb = this.sandbox;
    if (!sb) return;
    await this.#check;
    const err = await teardownSandbox(this.host, sb);
    this.sandbox = undefined;
    if (err) this.host.log('sandbox torn down with a failed CNI DEL (record kept for the next start)', { pod: this.key, error: err });
    else fs.rmSync(sandboxRecordPath(this.host.podsDir, sb), { force: true });
    this.host.log('sandbox removed', { pod: this.key, netns: sb.netnsName });
  }

  // ---- containers ----

  #prepareVolumes(): Promise<Map<string, PreparedVolume>> {
    this.#volumes ??= prepareVolumes(this.pod, {
      nodeName: this.host.nodeName,
      hostIP: this.host.nodeIP,
      podIPs: this.podIPs,
      root: this.host.root,
      podVolumesDir: this.volumesDir,
      caFile: this.host.caFile,
      fetch: (kind, ns, name) => this.host.kube.getRawOpt(`/api/v1/namespaces/${ns}/${kind}/${name}`),
      token: async (sa, audience, seconds) =>
        (
          await this.host.kube.ok([
            'create',
            'token',
            sa,
            '-n',
            this.namespace,
            '--bound-object-kind=Pod',
            `--bound-object-name=${this.name}`,
            `--bound-object-uid=${this.uid}`,
            `--duration=${seconds}s`,
            ...(audience ? [`--audience=${audience}`] : []),
          ])
        ).trim(),
    });
    this.#volumes.catch(() => (this.#volumes = undefined));
    return this.#volumes;
  }

  /** Starts one process of `r` in the pod's (or node's) netns; resolves once spawned. */
  async spawnContainer(r: ContainerRunner): Promise<Spawned> {
    const netns = this.netnsName;
    if (!netns) throw new Error('no sandbox');
    const env = await containerEnv(
      this.pod,
      r.spec,
      { nodeName: this.host.nodeName, hostIP: this.host.nodeIP, podIPs: this.podIPs },
      this.host.serviceEnv,
      (kind, ns, name) => this.host.kube.getRawOpt(`/api/v1/namespaces/${ns}/${kind}/${name}`),
    );
    const plan = planContainer(this.pod, r.spec, env, { repo: this.host.repo, k8sBinDir: this.host.k8sBinDir }, r.mode === 'init');
    const mounts: BindMount[] = plan.imageMounts.map((m) => ({ src: m.src, dst: m.dst, readOnly: true, file: false }));
    if (plan.mountsVolumes) mounts.push(...containerMounts(r.spec, await this.#prepareVolumes()));
    const hostname = this.hostNetwork ? this.host.nodeName : String(this.pod.spec?.hostname ?? this.name).slice(0, 63);
    const script: string[] = [`${tool('hostname')} ${shq(hostname)}`];
    for (const m of mounts) {
      // Mount points are created where they are missing (as runc does), then bound.
      if (m.file) script.push(`{ [ -e ${shq(m.dst)} ] || { ${tool('mkdir')} -p ${shq(path.posix.dirname(m.dst))} && : > ${shq(m.dst)}; }; }`);
      else script.push(`${tool('mkdir')} -p ${shq(m.dst)}`);
      script.push(`${tool('mount')} --bind ${shq(m.src)} ${shq(m.dst)}`);
      if (m.readOnly) script.push(`${tool('mount')} -o remount,bind,ro ${shq(m.dst)}`);
    }
    const wd = r.spec.workingDir ? `cd ${shq(String(r.spec.workingDir))} 2>/dev/null || cd /` : 'cd /';
    const fullScript = `${script.join(' && ')} && ${wd} && exec "$0" "$@"`;
    const argv = [
      tool('ip'), 'netns', 'exec', netns,
      tool('setpriv'), '--pdeathsig', 'KILL', '--',
      tool('unshare'), '--uts', '--mount', '--propagation', 'private', '--',
      tool('sh'), '-c', fullScript, ...plan.argv,
    ];
    const procEnv: Record<string, string> = { PATH: DEFAULT_PATH, HOSTNAME: hostname, HOME: '/root', ...Object.fromEntries(env), ...plan.extraEnv };
    fs.mkdirSync(this.dir, { recursive: true });
    const logFile = path.join(this.dir, `${r.name}.log`);
    const fd = fs.openSync(logFile, 'a');
    let child: ChildProcess;
    let logOffset: number;
    try {
      fs.writeSync(fd, `#### weirlab ${new Date().toISOString()} start (${plan.kind}, restart ${r.restartCount}): ${plan.argv.join(' ')}\n`);
      logOffset = fs.fstatSync(fd).size;
      child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', fd, fd], env: procEnv, detached: true, cwd: '/' });
    } finally {
      fs.closeSync(fd);
    }
    trackChild(child);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (e) => reject(e));
    });
    return { child, logFile, logOffset, ...(plan.readyText ? { readyText: plan.readyText } : {}) };
  }

  // ---- status ----

  #cond(type: string, status: boolean, reason?: string, message?: string): void {
    const s = status ? 'True' : 'False';
    const prev = this.#conds.get(type);
    const c: Cond = { status: s, lastTransitionTime: prev && prev.status === s ? prev.lastTransitionTime : apiTime() };
    if (!status && reason) c.reason = reason;
    if (!status && message) c.message = message;
    this.#conds.set(type, c);
  }

  phase(): string {
    if (this.terminalPhase) return this.terminalPhase;
    if (!this.initialized) return 'Pending';
    if (this.runners.some((r) => r.everStarted || r.restartCount > 0)) return 'Running';
    return 'Pending';
  }

  buildStatus(): Record<string, unknown> {
    const sandboxReady = this.hostNetwork || !!this.sandbox;
    const phase = this.phase();
    const sidecars = this.initRunners.filter((r) => r.mode === 'sidecar');
    const specInit = (this.pod.spec?.initContainers ?? []) as any[];
    const pendingInit = specInit.filter((c) => {
      const r = this.initRunners.find((x) => x.name === c.name);
      return !r || (r.mode === 'init' ? r.finalExit !== 0 : !r.started);
    });
    const specContainers = (this.pod.spec?.containers ?? []) as any[];
    const runnerOf = (name: string): ContainerRunner | undefined => this.runners.find((r) => r.name === name);
    const unready = [...specContainers.filter((c) => !runnerOf(c.name)?.ready).map((c) => c.name as string), ...sidecars.filter((r) => !r.ready).map((r) => r.name)];
    let sandboxMessage: string | undefined;
    if (this.networkNotReady) sandboxMessage = 'container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized';
    else if (this.sandboxError) sandboxMessage = `Failed to create pod sandbox: ${this.sandboxError}`;
    this.#cond('PodReadyToStartContainers', sandboxReady, sandboxMessage ? 'SandboxNotReady' : undefined, sandboxMessage);
    this.#cond('Initialized', pendingInit.length === 0, 'ContainersNotInitialized', `containers with incomplete status: [${pendingInit.map((c) => c.name).join(' ')}]`);
    const terminal = phase === 'Succeeded' || phase === 'Failed';
    const ready = !terminal && this.initialized && unready.length === 0;
    const notReadyReason = terminal ? 'PodCompleted' : 'ContainersNotReady';
    const notReadyMsg = terminal ? undefined : `containers with unready status: [${unready.join(' ')}]`;
    this.#cond('ContainersReady', ready, notReadyReason, notReadyMsg);
    this.#cond('Ready', ready, notReadyReason, notReadyMsg);
    const ours = ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'];
    // Conditions others own (readiness gates, DisruptionTarget) stay as the API has them: the patch replaces the list.
    const foreign = ((this.pod.status?.conditions ?? []) as { type: string }[]).filter((c) => !ours.includes(c.type));
    const conditions = [...ours.map((type) => ({ type, ...this.#conds.get(type) })), ...foreign];

    const waiting = (reason: string) => ({ waiting: { reason } });
    const containerStatuses = specContainers.map((c) => {
      const r = runnerOf(c.name);
      if (r) return r.status();
      return { name: c.name, image: c.image, imageID: '', ready: false, started: false, restartCount: 0, state: waiting(this.initialized || specInit.length === 0 ? 'ContainerCreating' : 'PodInitializing'), lastState: {} };
    });
    const initContainerStatuses = specInit.map((c) => {
      const r = this.initRunners.find((x) => x.name === c.name);
      if (r) return r.status();
      return { name: c.name, image: c.image, imageID: '', ready: false, started: false, restartCount: 0, state: waiting('PodInitializing'), lastState: {} };
    });
    const status: Record<string, unknown> = {
      phase,
      conditions,
      hostIP: this.host.nodeIP,
      hostIPs: [{ ip: this.host.nodeIP }],
      startTime: this.startTime,
      containerStatuses,
      ...(initContainerStatuses.length > 0 ? { initContainerStatuses } : {}),
    };
    // null clears the addresses of an earlier sandbox (JSON merge patch) until the new one has its own.
    status['podIP'] = this.podIPs[0] ?? null;
    status['podIPs'] = this.podIPs.length > 0 ? this.podIPs.map((ip) => ({ ip })) : null;
    return status;
  }

  /** Schedules a status patch (coalesced; at most one in flight). */
  dirty(): void {
    if (this.#noMorePatches || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#flush();
    }, 50);
  }

  async #flush(): Promise<void> {
    if (this.#flushing) {
      this.#again = true;
      return;
    }
    this.#flushing = (async () => {
      do {
        this.#again = false;
        if (this.#noMorePatches || this.#apiGone) return;
        const status = this.buildStatus();
        const text = JSON.stringify(status);
        if (text === this.#lastPosted) continue;
        try {
          // A JSON merge patch: lists (podIPs, conditions, container statuses) are replaced, not merged.
          // metadata.uid makes it a precondition (as kubelet's status manager does): a pod re-created
          // under the same name is refused ("field is immutable"), never overwritten.
          await this.host.kube.patch('pod', this.name, { metadata: { uid: this.uid }, status }, { namespace: this.namespace, status: true, type: 'merge' });
          this.#lastPosted = text;
        } catch (e) {
          if (e instanceof KubeError && (e.notFound || /uid.*(immutable|precondition)/i.test(e.stderr))) return;
          this.host.log('pod status patch failed; retrying', { pod: this.key, error: (e as Error).message });
          await sleep(2000);
          this.#again = true;
        }
      } while (this.#again);
    })();
    try {
      await this.#flushing;
    } finally {
      this.#flushing = undefined;
    }
  }

  /** Resolves once the current status is in the API (for tests). */
  async synced(): Promise<void> {
    while (this.#timer || this.#flushing) {
      await this.#flushing;
      await sleep(60);
    }
  }

  /** Pids of the container processes running now. */
  pids(): number[] {
    return [...this.initRunners, ...this.runners].map((r) => r.child?.pid).filter((p): p is number => p !== undefined);
  }

  summary(): { namespace: string; name: string; uid: string; netnsPath?: string; ips: string[]; hostNetwork: boolean; phase: string; logDir: string; pids: number[] } {
    const netnsPath = this.netnsPath;
    return {
      namespace: this.namespace,
      name: this.name,
      uid: this.uid,
      ...(netnsPath ? { netnsPath } : {}),
      ips: [...this.podIPs],
      hostNetwork: this.hostNetwork,
      phase: this.terminating ? 'Terminating' : this.phase(),
      logDir: this.dir,
      pids: this.pids(),
    };
  }
}
