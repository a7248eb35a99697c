// A real Kubernetes control plane (etcd + kube-apiserver, optionally
// kube-controller-manager and kube-scheduler) inside one network namespace,
// for the agent's integration tests and the lab.
//
//   const cp = await startControlPlane({ netns, dir, advertiseAddress: '127.0.0.1' });
//   cp.kubectl(['get', 'ns']);
//   await cp.stop();
//
// Network safety: every process, kubectl included, runs through `ip netns
// exec NETNS`; the apiserver binds only `advertiseAddress` and etcd and the
// components' health ports only 127.0.0.1, all inside that namespace. One
// control plane per namespace (the ports are fixed).
//
// Startup is gated on real readiness, polled with a deadline: /readyz of the
// apiserver, the `default` and `kube-system` namespaces, /healthz of the
// controller manager and the scheduler. If a process exits or the deadline
// passes, the error carries the last lines of the process's log, and the
// processes already started are stopped.
import fs from 'node:fs';
import path from 'node:path';
import {
  APISERVER_PORT,
  apiserverCommand,
  CLUSTER_NAME,
  CONTROLLER_MANAGER_PORT,
  controllerManagerCommand,
  etcdCommand,
  etcdDataDir,
  k8sBinDir,
  type Layout,
  SCHEDULER_PORT,
  schedulerCommand,
} from './components.ts';
import { type Credentials, writeClientKubeconfig, writeCredentials } from './credentials.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { issueCert } from './pki.ts';
import { assertNetns, baseEnv, ControlPlaneError, type RunResult, runInNetns, runInNetnsSync } from './process.ts';
import { ProcessSet } from './process-set.ts';

export type { RunResult } from './process.ts';
export { ControlPlaneError } from './process.ts';

export interface ControlPlaneOptions {
  /** Name of an existing network namespace (`ip netns`) every process runs in. */
  netns: string;
  /** State directory (PKI, etcd data, logs, kubeconfigs); created if missing, reused if present. */
  dir: string;
  /** Address inside the namespace the apiserver binds and advertises (e.g. 127.0.0.1). */
  advertiseAddress: string;
  /** Default 10.96.0.0/16. */
  serviceCIDR?: string;
  /** Runs kube-controller-manager with --allocate-node-cidrs, so Nodes get spec.podCIDRs. */
  controllerManager?: { clusterCIDR: string; nodeCIDRMaskSize?: number };
  scheduler?: boolean;
  /** Extra names/addresses for the apiserver's serving certificate (e.g. a lab node-facing address). */
  apiServerSANs?: string[];
  /** Extra flags per process, appended last (so they win). */
  extraArgs?: Layout['extraArgs'];
  /** Deadline for each readiness wait; default 90 s. */
  readyTimeoutMs?: number;
  onProgress?: (msg: string) => void;
}

export interface KubectlOptions {
  input?: string;
  timeoutMs?: number;
  /** Another kubeconfig (e.g. from kubeconfigForToken) instead of the admin one. */
  kubeconfig?: string;
}

export interface ControlPlane {
  /** https://ADDR:6443 */
  readonly url: string;
  readonly netns: string;
  readonly dir: string;
  /** cluster-admin: client certificate CN=weir-admin, O=system:masters. */
  readonly adminKubeconfig: string;
  readonly caFile: string;
  /** Milliseconds from the call to ready, and per phase. */
  readonly startupMs: number;
  readonly timings: Readonly<Record<string, number>>;
  /** The pinned kubectl inside the namespace with the admin kubeconfig; never throws on a non-zero exit. */
  kubectl(args: string[], opts?: KubectlOptions): RunResult;
  /** Same, without blocking the event loop. */
  kubectlAsync(args: string[], opts?: KubectlOptions): Promise<RunResult>;
  /** A bound token for an existing ServiceAccount (`kubectl create token`); the apiserver's minimum is 600 s. */
  serviceAccountToken(namespace: string, name: string, seconds?: number): string;
  /** Writes a kubeconfig authenticating with `token`; returns `path`. */
  kubeconfigForToken(token: string, path: string): string;
  /** Writes a kubeconfig with a new client certificate for `user` in `groups` (e.g. system:node:NAME, [system:nodes]); returns `path`. */
  kubeconfigForUser(user: string, groups: string[], path: string): string;
  /** Stops kube-apiserver only (etcd and its data stay). */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again with the same flags and data; resolves when ready. */
  startApiServer(): Promise<void>;
  /** SIGTERM to every process (dependents first), SIGKILL after a grace period; waits for all to exit. Leaves `dir`. */
  stop(): Promise<void>;
  /** Pids of the processes that are running. */
  pids(): number[];
  /** Last lines of a process's log (`etcd`, `kube-apiserver`, ...). */
  logTail(name: string, lines?: number): string;
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const progress = opts.onProgress ?? (() => {});
  const mark = (phase: string): void => {
    timings[phase] = Date.now() - t0;
    progress(`${phase} (+${timings[phase]} ms)`);
  };
  assertNetns(opts.netns);
  const dir = path.resolve(opts.dir);
  const serviceCIDR = opts.serviceCIDR ?? '10.96.0.0/16';
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  for (const d of [dir, path.join(dir, 'logs'), path.join(dir, 'kubeconfig')]) fs.mkdirSync(d, { recursive: true });
  fs.mkdirSync(etcdDataDir(dir), { recursive: true, mode: 0o700 });

  const binDir = await k8sBinDir(progress);
  mark('binaries');

  const url = `https://${opts.advertiseAddress.includes(':') ? `[${opts.advertiseAddress}]` : opts.advertiseAddress}:${APISERVER_PORT}`;
  const { layout, adminKubeconfig, pki } = writeCredentials(opts, dir, binDir, serviceCIDR, url);
  mark('pki');

  const procs = new ProcessSet(opts.netns, dir, readyTimeoutMs, progress);
  const kc = kubectlIn(opts.netns, binDir, dir, adminKubeconfig);
  try {
    await bringUp(layout, procs, kc, mark);
  } catch (e) {
    await procs.stopAll().catch(() => {});
    throw e;
  }
  const startupMs = Date.now() - t0;
  progress(`control plane ready at ${url} in ${startupMs} ms`);
  return controlPlaneHandle({ url, netns: opts.netns, dir, adminKubeconfig, caFile: pki.ca.cert, startupMs, timings }, { layout, pki, procs, kc });
}

type Kubectl = Pick<ControlPlane, 'kubectl' | 'kubectlAsync'>;

/** The pinned kubectl inside `netns`, with the admin kubeconfig unless told another. */
function kubectlIn(netns: string, binDir: string, dir: string, adminKubeconfig: string): Kubectl {
  const kubectlEnv = baseEnv();
  const kubectlArgv = (args: string[], kubeconfig = adminKubeconfig): string[] => [
    path.join(binDir, 'kubectl'),
    `--kubeconfig=${kubeconfig}`,
    `--cache-dir=${path.join(dir, 'kubectl-cache')}`,
    ...args,
  ];
  return {
    kubectlAsync: (args, o = {}) => runInNetns(netns, kubectlArgv(args, o.kubeconfig), { ...o, env: kubectlEnv }),
    kubectl: (args, o = {}) => runInNetnsSync(netns, kubectlArgv(args, o.kubeconfig), { ...o, env: kubectlEnv }),
  };
}

/** Whether `GET urlPath` (of the apiserver, or of `server`) answers `ok`. */
async function rawOk(kc: Kubectl, urlPath: string, server?: string): Promise<boolean> {
  const r = await kc.kubectlAsync([...(server ? [`--server=${server}`] : []), '--request-timeout=5s', 'get', `--raw=${urlPath}`], { timeoutMs: 10_000 });
  return r.code === 0 && r.stdout.trim() === 'ok';
}

async function apiserverUp(layout: Layout, procs: ProcessSet, kc: Kubectl): Promise<void> {
  await procs.launch('kube-apiserver', apiserverCommand(layout));
  await procs.waitFor('kube-apiserver /readyz', ['etcd', 'kube-apiserver'], () => rawOk(kc, '/readyz'));
}

/** Starts every process in dependency order, each gated on its readiness. */
async function bringUp(layout: Layout, procs: ProcessSet, kc: Kubectl, mark: (phase: string) => void): Promise<void> {
  await procs.launch('etcd', etcdCommand(layout));
  await apiserverUp(layout, procs, kc);
  mark('kube-apiserver ready');
  await procs.waitFor(
    'namespaces default and kube-system',
    ['etcd', 'kube-apiserver'],
    async () => (await kc.kubectlAsync(['get', 'namespace', 'default', 'kube-system', '-o', 'name'])).code === 0,
  );
  mark('system namespaces');
  const health: Promise<void>[] = [];
  if (layout.controllerManager) {
    await procs.launch('kube-controller-manager', controllerManagerCommand(layout));
    health.push(
      procs.waitFor('kube-controller-manager /healthz', ['kube-controller-manager'], () =>
        rawOk(kc, '/healthz', `https://127.0.0.1:${CONTROLLER_MANAGER_PORT}`),
      ),
    );
  }
  if (layout.scheduler) {
    await procs.launch('kube-scheduler', schedulerCommand(layout));
    health.push(procs.waitFor('kube-scheduler /healthz', ['kube-scheduler'], () => rawOk(kc, '/healthz', `https://127.0.0.1:${SCHEDULER_PORT}`)));
  }
  await Promise.all(health);
  if (health.length > 0) mark('components healthy');
}

type ControlPlaneFacts = Pick<ControlPlane, 'url' | 'netns' | 'dir' | 'adminKubeconfig' | 'caFile' | 'startupMs' | 'timings'>;

/** The running control plane as its callers see it. */
function controlPlaneHandle(
  facts: ControlPlaneFacts,
  { layout, pki, procs, kc }: { layout: Layout; pki: Credentials['pki']; procs: ProcessSet; kc: Kubectl },
): ControlPlane {
  const { url } = facts;
  return {
    ...facts,
    ...kc,
    serviceAccountToken(namespace, name, seconds = 3600) {
      const r = kc.kubectl(['create', 'token', name, '-n', namespace, `--duration=${seconds}s`]);
      if (r.code !== 0) throw new ControlPlaneError(`kubectl create token ${namespace}/${name}: exit ${r.code}: ${r.stderr.trim()}`);
      return r.stdout.trim();
    },
    kubeconfigForToken(token, file) {
      return writeKubeconfig(file, { server: url, caFile: pki.ca.cert, user: 'token-user', credentials: { token }, clusterName: CLUSTER_NAME });
    },
    kubeconfigForUser(user, groups, file) {
      const base = `user-${user.toLowerCase().replace(/[^a-z0-9.-]+/g, '-')}`;
      const pair = issueCert(pki, base, { cn: user, orgs: groups, usage: 'client' }, pki.fresh);
      return writeClientKubeconfig(file, url, pki, user, pair);
    },
    async stopApiServer() {
      await procs.stopOne('kube-apiserver');
    },
    async startApiServer() {
      if (procs.isRunning('kube-apiserver')) return;
      if (!procs.isRunning('etcd')) throw new ControlPlaneError('startApiServer: etcd is not running (stopped?)');
      await apiserverUp(layout, procs, kc);
    },
    stop: () => procs.stopAll(),
    pids: () => procs.pids(),
    logTail: (name, lines) => procs.logTail(name, lines),
  };
}
