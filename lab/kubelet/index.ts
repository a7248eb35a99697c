// The lab's kubelet stand-in: the one component of the lab that is not the
// real thing. It does what kubelet and containerd do where it matters to a
// CNI plugin and a network-policy agent, with host processes instead of
// containers:
//
//   const k = new KubeletStandIn({ nodeName, netns, nodeIP, controlPlane, kubeconfig, kubectl, apiServer, dirs, repo, k8sBinDir, log });
//   await k.start();   // Node registered, lease heartbeat and pod watch running
//   k.pods(); k.podNetns('default', 'web-0');
//   await k.stop();    // every pod torn down (CNI DEL, processes, netns)
//
// API access: this process runs in the root network namespace, the API
// server only inside the lab, so every call is the pinned kubectl run inside
// the node's namespace (`ip netns exec NODE kubectl ...`; see kube.ts). The
// root namespace gets no address.
//
// Node: registered with kubernetes.io/{hostname,os,arch} labels (and the
// control-plane role label when asked; no taint), the not-ready taint the
// node lifecycle controller lifts, status every 5 s when it changes (Ready
// only once root/etc/cni/net.d holds a CNI config — kubelet's NetworkReady
// gate — else at least every minute), Lease kube-node-lease/NAME every 10 s.
//
// Pods: one list + raw watch of pods with spec.nodeName=NODE (kubectl get
// --raw, newline-delimited events), restarted with backoff when it dies,
// relisting on 410 Gone; a relist tears down local pods the API no longer
// has. Each pod is a PodWorker (pod.ts): sandbox via CNI exactly as
// containerd calls it (cni.ts), containers per image (images.ts), status
// patches, teardown and deletion with grace period 0.
//
// Containers reach the API server at opts.apiServer (KUBERNETES_SERVICE_HOST
// /PORT are the real address, not the `kubernetes` Service ClusterIP): the
// weir agent must reach the API before any Service translation exists on the
// node (kube-proxy may itself be a pod of this stand-in), which is the same
// boot order problem kubeadm solves the same way for kube-proxy.
//
// Host side effects outside opts.dirs.root: empty mount-point directories
// created in the root filesystem where missing (/var/lib/cni, /run/weir, and
// the mountPaths of weir/kube-proxy image containers such as /host/etc/cni/
// net.d, /usr/local/lib/weir, /var/run/secrets/kubernetes.io/serviceaccount);
// the bind mounts themselves live only in per-process mount namespaces.
import fs from 'node:fs';
import path from 'node:path';
import { CniRunner, type ConfList, loadNetworkConfig } from './cni.ts';
import { Kube, KubeError, type WatchEvent, apiTime } from './kube.ts';
import { NodeAgent } from './node.ts';
import { GRACE_CAP_MS, type PodHost, PodWorker, readSandboxRecords, teardownSandbox } from './pod.ts';
import { sleep } from './proc.ts';

export { imageKind, planContainer } from './images.ts';
export { loadNetworkConfig } from './cni.ts';

export interface KubeletOptions {
  /** e.g. "weir-worker". */
  nodeName: string;
  /** The node's network namespace name (exists; eth0 with nodeIP configured; lo up). */
  netns: string;
  /** InternalIP, e.g. 172.18.0.3. */
  nodeIP: string;
  /** Label node-role.kubernetes.io/control-plane="" (no taint: it schedules pods too). */
  controlPlane: boolean;
  /** Admin kubeconfig whose server address is reachable from inside the node's netns. */
  kubeconfig: string;
  /** Path of the pinned kubectl. */
  kubectl: string;
  /** The API server's real address, for the in-cluster environment of pods, and the CA for their service-account files. */
  apiServer: { host: string; port: number; caFile: string };
  /** Per-node state root: root/etc/cni/net.d, root/opt/cni/bin, root/var/lib/cni, root/run/weir, root/pods/<ns>_<name>/... */
  dirs: { root: string };
  /** Repository root (dist/bin, node_modules/.bin/node, src/probe). */
  repo: string;
  /** Pinned binaries (agnhost, kube-proxy). */
  k8sBinDir: string;
  log: (msg: string, fields?: object) => void;
  /** How often the network-readiness gate is re-checked; default 5000 ms. */
  statusIntervalMs?: number;
  /** Lease renewal period; default 10000 ms. */
  leaseIntervalMs?: number;
}

export interface PodSummary {
  namespace: string;
  name: string;
  uid: string;
  netnsPath?: string;
  ips: string[];
  hostNetwork: boolean;
  phase: string;
  /** root/pods/<ns>_<name>: <container>.log files. */
  logDir: string;
  /** Pids of the container processes running now (each leads its own process group). */
  pids: number[];
}

const WATCH_TIMEOUT_S = 300;

export class KubeletStandIn {
  readonly opts: KubeletOptions;
  readonly root: string;
  readonly confDir: string;
  readonly binDir: string;
  readonly podsDir: string;
  readonly kube: Kube;
  readonly #cni: CniRunner;
  readonly #node: NodeAgent;
  readonly #host: PodHost;
  readonly #workers = new Map<string, PodWorker>();
  readonly #orphans = new Set<string>();
  readonly #stop = new AbortController();
  #loops: Promise<void>[] = [];
  #watch: { kill(): void } | undefined;
  #started = false;
  #stopped: Promise<void> | undefined;
  #listedOnce!: () => void;
  readonly #listed = new Promise<void>((r) => (this.#listedOnce = r));

  constructor(opts: KubeletOptions) {
    this.opts = opts;
    this.root = path.resolve(opts.dirs.root);
    this.confDir = path.join(this.root, 'etc/cni/net.d');
    this.binDir = path.join(this.root, 'opt/cni/bin');
    this.podsDir = path.join(this.root, 'pods');
    this.kube = new Kube(opts.netns, opts.kubectl, opts.kubeconfig, path.join(this.root, 'kubectl-cache'));
    this.#cni = new CniRunner({ nodeNetns: opts.netns, root: this.root, cniPath: [this.binDir, '/usr/lib/cni'] });
    this.#node = new NodeAgent(this.kube, { nodeName: opts.nodeName, nodeIP: opts.nodeIP, controlPlane: opts.controlPlane });
    const log = (msg: string, fields?: object): void => opts.log(msg, { node: opts.nodeName, ...fields });
    const { host, port } = opts.apiServer;
    this.#host = {
      nodeName: opts.nodeName,
      nodeIP: opts.nodeIP,
      nodeNetns: opts.netns,
      root: this.root,
      podsDir: this.podsDir,
      repo: path.resolve(opts.repo),
      k8sBinDir: opts.k8sBinDir,
      caFile: opts.apiServer.caFile,
      serviceEnv: {
        KUBERNETES_SERVICE_HOST: host,
        KUBERNETES_SERVICE_PORT: String(port),
        KUBERNETES_SERVICE_PORT_HTTPS: String(port),
        KUBERNETES_PORT: `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`,
      },
      kube: this.kube,
      cni: this.#cni,
      networkConfig: () => this.networkConfig(),
      log,
      event: (pod, type, reason, message) => void this.#event(pod, type, reason, message),
      gone: (w) => {
        if (this.#workers.get(w.uid) === w) this.#workers.delete(w.uid);
      },
    };
  }

  /** The CNI configuration the runtime would use now (undefined: network not ready). */
  networkConfig(): { file: string; list: ConfList } | undefined {
    return loadNetworkConfig(this.confDir);
  }

  /** Registers the Node, starts the status/lease heartbeats and the pod watch; resolves after the first pod list (or 30 s). */
  async start(): Promise<void> {
    if (this.#started) throw new Error('KubeletStandIn: already started');
    this.#started = true;
    const log = this.#host.log;
    for (const d of ['etc/cni/net.d', 'opt/cni/bin', 'var/lib/cni', 'run/weir', 'pods', 'kubectl-cache']) fs.mkdirSync(path.join(this.root, d), { recursive: true });
    // Mount points for the plugin's view of the node (plain, empty directories).
    for (const d of ['/var/lib/cni', '/run/weir']) fs.mkdirSync(d, { recursive: true });

    await this.#cleanStaleSandboxes();

    // Registration: the API may still be coming up; retry for up to a minute.
    const deadline = Date.now() + 60_000;
    for (let backoff = 250; ; backoff = Math.min(backoff * 2, 5000)) {
      try {
        await this.#node.register();
        break;
      } catch (e) {
        if (Date.now() > deadline || this.#stop.signal.aborted) throw new Error(`KubeletStandIn ${this.opts.nodeName}: cannot register the Node: ${(e as Error).message}`);
        await sleep(backoff, this.#stop.signal);
      }
    }
    const ready = !!this.networkConfig();
    await this.#node.postStatus(ready, true).catch((e: unknown) => log('node status failed', { error: (e as Error).message }));
    await this.#node.renewLease().catch((e: unknown) => log('lease renewal failed', { error: (e as Error).message }));
    log('node registered', { uid: this.#node.uid, ready });

    this.#loops = [this.#statusLoop(), this.#leaseLoop(), this.#watchLoop()];
    await Promise.race([this.#listed, sleep(30_000, this.#stop.signal)]);
  }

  /** Stops every pod (CNI DEL, processes killed, pod netns deleted) and the heartbeats; `deletePods` also deletes the pod objects. */
  stop(opts: { deletePods?: boolean } = {}): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stop.abort();
      this.#watch?.kill();
      // A kubectl call in flight (API down: up to its 20 s request timeout) is not worth waiting for.
      await Promise.race([Promise.all(this.#loops), sleep(3000)]);
      await Promise.all([...this.#workers.values()].map((w) => w.terminate({ graceMs: GRACE_CAP_MS, deleteFromApi: !!opts.deletePods })));
      this.#host.log('stopped');
    })();
    return this.#stopped;
  }

  /** Path of a running pod's netns (the node's for hostNetwork pods). */
  podNetns(namespace: string, name: string): string | undefined {
    const w = this.#find(namespace, name);
    return w?.netnsPath;
  }

  pods(): PodSummary[] {
    return [...this.#workers.values()].map((w) => w.summary());
  }

  /** Resolves once the status of the pod is posted (tests). */
  async podSynced(namespace: string, name: string): Promise<void> {
    await this.#find(namespace, name)?.synced();
  }

  #find(namespace: string, name: string): PodWorker | undefined {
    let found: PodWorker | undefined;
    for (const w of this.#workers.values()) {
      if (w.namespace !== namespace || w.name !== name) continue;
      if (!found || (found.terminating && !w.terminating)) found = w;
    }
    return found;
  }

  // ---- node heartbeats ----

  async #statusLoop(): Promise<void> {
    const every = this.opts.statusIntervalMs ?? 5000;
    let failing = false;
    while (!this.#stop.signal.aborted) {
      await sleep(every, this.#stop.signal);
      if (this.#stop.signal.aborted) break;
      const ready = !!this.networkConfig();
      try {
        if (await this.#node.postStatus(ready)) this.#host.log('node status posted', { ready });
        if (failing) this.#host.log('node status: API reachable again');
        failing = false;
      } catch (e) {
        if (e instanceof KubeError && e.notFound) {
          // The Node was deleted: register again (kubelet would need a restart; the lab wants it back).
          await this.#node.register().then(() => this.#node.postStatus(ready, true)).catch(() => {});
        }
        if (!failing) this.#host.log('node status failed', { error: (e as Error).message });
        failing = true;
      }
    }
  }

  async #leaseLoop(): Promise<void> {
    const every = this.opts.leaseIntervalMs ?? 10_000;
    // As kubelet's lease controller: a failed renewal is retried with backoff from 200 ms up to 7 s.
    let wait = every;
    let backoff = 200;
    let failing = false;
    while (!this.#stop.signal.aborted) {
      await sleep(wait, this.#stop.signal);
      if (this.#stop.signal.aborted) break;
      try {
        await this.#node.renewLease();
        if (failing) this.#host.log('lease renewed again');
        failing = false;
        wait = every;
        backoff = 200;
      } catch (e) {
        if (!failing) this.#host.log('lease renewal failed', { error: (e as Error).message });
        failing = true;
        wait = Math.min(backoff, every);
        backoff = Math.min(backoff * 2, 7000);
      }
    }
  }

  // ---- pods ----

  async #watchLoop(): Promise<void> {
    const selector = encodeURIComponent(`spec.nodeName=${this.opts.nodeName}`);
    let rv: string | undefined;
    let backoff = 250;
    let failures = 0;
    while (!this.#stop.signal.aborted) {
      let healthy = false;
      try {
        if (!rv) {
          const list = await this.kube.getRaw(`/api/v1/pods?fieldSelector=${selector}`);
          if (this.#stop.signal.aborted) break;
          rv = String(list.metadata?.resourceVersion ?? '');
          const uids = new Set<string>();
          for (const item of (list.items ?? []) as any[]) {
            uids.add(item.metadata?.uid);
            this.#onPod('ADDED', item);
          }
          for (const w of this.#workers.values()) {
            if (!uids.has(w.uid)) {
              this.#host.log('pod gone from the API while unwatched: tearing down', { pod: w.key });
              void w.terminate({ apiGone: true });
            }
          }
          this.#listedOnce();
          healthy = true;
        }
        const t0 = Date.now();
        let events = 0;
        const handle = this.kube.watch(`/api/v1/pods?watch=1&allowWatchBookmarks=true&timeoutSeconds=${WATCH_TIMEOUT_S}&fieldSelector=${selector}&resourceVersion=${rv}`, (ev: WatchEvent) => {
          if (ev.type === 'ERROR') {
            const code = Number(ev.object?.code);
            this.#host.log('pod watch error event', { code, message: ev.object?.message });
            if (code === 410) rv = undefined;
            handle.kill();
            return;
          }
          const newRv = ev.object?.metadata?.resourceVersion;
          if (newRv) rv = String(newRv);
          if (ev.type === 'BOOKMARK') return;
          events++;
          this.#onPod(ev.type, ev.object);
        });
        this.#watch = handle;
        if (this.#stop.signal.aborted) handle.kill();
        const end = await handle.done;
        this.#watch = undefined;
        if (this.#stop.signal.aborted) break;
        if (end.code === 0 || events > 0 || Date.now() - t0 > 10_000) healthy = true;
        if (end.code !== 0 && failures === 0) this.#host.log('pod watch ended; restarting', { code: end.code, stderr: end.stderr.trim().slice(-300) });
        if (end.code !== 0) failures++;
      } catch (e) {
        if (failures === 0) this.#host.log('pod list failed; retrying', { error: (e as Error).message });
        failures++;
      }
      if (healthy) {
        if (failures > 1) this.#host.log('pod watch recovered', { failures });
        backoff = 250;
        failures = 0;
        continue;
      }
      await sleep(backoff, this.#stop.signal);
      backoff = Math.min(backoff * 2, 5000);
    }
  }

  #onPod(type: WatchEvent['type'], pod: any): void {
    if (this.#stop.signal.aborted) return;
    const uid = pod?.metadata?.uid as string | undefined;
    if (!uid) return;
    const w = this.#workers.get(uid);
    if (type === 'DELETED') {
      if (w) {
        this.#host.log('pod deleted from the API: tearing down', { pod: w.key });
        void w.terminate({ apiGone: true });
      }
      return;
    }
    if (pod.spec?.nodeName !== this.opts.nodeName) return;
    if (w) {
      w.update(pod);
      return;
    }
    if (pod.metadata?.deletionTimestamp) {
      void this.#deleteOrphan(pod);
      return;
    }
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    const worker = new PodWorker(this.#host, pod);
    this.#workers.set(uid, worker);
    this.#host.log('pod added', { pod: worker.key, uid, hostNetwork: worker.hostNetwork });
    worker.start();
  }

  /** A pod being deleted that runs nothing here: tear down a sandbox left by an earlier life, then delete it. */
  async #deleteOrphan(pod: any): Promise<void> {
    const uid = String(pod.metadata.uid);
    if (this.#orphans.has(uid)) return;
    this.#orphans.add(uid);
    try {
      for (const { file, record } of readSandboxRecords(this.podsDir)) {
        if (record.uid !== uid) continue;
        await teardownSandbox(this.#host, record);
        fs.rmSync(file, { force: true });
      }
      const body = { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid } };
      await this.kube.deleteRaw(`/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, body).catch((e: unknown) => {
        if (!(e instanceof KubeError && (e.notFound || e.conflict))) this.#host.log('pod delete failed', { pod: `${pod.metadata.namespace}/${pod.metadata.name}`, error: (e as Error).message });
      });
    } finally {
      this.#orphans.delete(uid);
    }
  }

  /** Sandboxes recorded by an earlier life of this node's stand-in (its processes died with it): DEL and netns removed. */
  async #cleanStaleSandboxes(): Promise<void> {
    for (const { file, record } of readSandboxRecords(this.podsDir)) {
      this.#host.log('tearing down a sandbox left by an earlier run', { pod: `${record.namespace}/${record.name}`, netns: record.netnsName });
      const err = await teardownSandbox(this.#host, record, 2);
      if (err) this.#host.log('stale sandbox: CNI DEL failed; record dropped', { error: err });
      fs.rmSync(file, { force: true });
    }
  }

  async #event(pod: any, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const md = pod?.metadata ?? {};
    const now = apiTime();
    const ev = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${md.name}.`, namespace: md.namespace },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: md.namespace, name: md.name, uid: md.uid },
      reason,
      message: message.slice(0, 1024),
      type,
      source: { component: 'kubelet', host: this.opts.nodeName },
      reportingComponent: 'kubelet',
      reportingInstance: this.opts.nodeName,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    await this.kube.createRaw(`/api/v1/namespaces/${md.namespace}/events`, ev).catch(() => {});
  }
}
