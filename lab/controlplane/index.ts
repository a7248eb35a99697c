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
  logFile,
  SCHEDULER_PORT,
  schedulerCommand,
} from './components.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { ensureCa, firstAddress, issueCert } from './pki.ts';
import { assertNetns, baseEnv, ControlPlaneError, NetnsProcess, pollUntil, type RunResult, runInNetns, runInNetnsSync } from './process.ts';

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

const STOP_GRACE_MS = 10_000;

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

  // ---- PKI and kubeconfigs ----
  const pki = ensureCa(path.join(dir, 'pki'));
  const firstServiceIPs = serviceCIDR.split(',').map(firstAddress);
  const apiserver = issueCert(
    pki,
    'apiserver',
    {
      cn: 'kube-apiserver',
      usage: 'server',
      sans: [
        ...new Set([
          opts.advertiseAddress,
          '127.0.0.1',
          ...firstServiceIPs,
          'kubernetes',
          'kubernetes.default',
          'kubernetes.default.svc',
          'kubernetes.default.svc.cluster.local',
          'localhost',
          ...(opts.apiServerSANs ?? []),
        ]),
      ],
    },
    pki.fresh,
  );
  const url = `https://${opts.advertiseAddress.includes(':') ? `[${opts.advertiseAddress}]` : opts.advertiseAddress}:${APISERVER_PORT}`;
  const kubeconfigFor = (file: string, user: string, pair: { cert: string; key: string }): string =>
    writeKubeconfig(path.join(dir, 'kubeconfig', file), {
      server: url,
      caFile: pki.ca.cert,
      user,
      credentials: { clientCertificate: pair.cert, clientKey: pair.key },
      clusterName: CLUSTER_NAME,
    });
  const admin = issueCert(pki, 'admin', { cn: 'weir-admin', orgs: ['system:masters'], usage: 'client' }, pki.fresh);
  const adminKubeconfig = kubeconfigFor('admin.kubeconfig', 'weir-admin', admin);
  const componentCert = (name: string, cn: string) => issueCert(pki, name, { cn, usage: 'both', sans: ['127.0.0.1', 'localhost'] }, pki.fresh);
  const layout: Layout = { dir, binDir, advertiseAddress: opts.advertiseAddress, serviceCIDR, pki, apiserver, extraArgs: opts.extraArgs ?? {} };
  if (opts.controllerManager) {
    const serving = componentCert('controller-manager', 'system:kube-controller-manager');
    layout.controllerManager = {
      ...opts.controllerManager,
      serving,
      kubeconfig: kubeconfigFor('controller-manager.kubeconfig', 'system:kube-controller-manager', serving),
    };
  }
  if (opts.scheduler) {
    const serving = componentCert('scheduler', 'system:kube-scheduler');
    layout.scheduler = { serving, kubeconfig: kubeconfigFor('scheduler.kubeconfig', 'system:kube-scheduler', serving) };
  }
  mark('pki');

  // ---- processes ----
  const procs = new Map<string, NetnsProcess>();
  const kubectlEnv = baseEnv();
  const kubectlArgv = (args: string[], kubeconfig = adminKubeconfig): string[] => [
    path.join(binDir, 'kubectl'),
    `--kubeconfig=${kubeconfig}`,
    `--cache-dir=${path.join(dir, 'kubectl-cache')}`,
    ...args,
  ];
  const kubectlAsync = (args: string[], o: KubectlOptions = {}): Promise<RunResult> =>
    runInNetns(opts.netns, kubectlArgv(args, o.kubeconfig), { ...o, env: kubectlEnv });
  const kubectl = (args: string[], o: KubectlOptions = {}): RunResult => runInNetnsSync(opts.netns, kubectlArgv(args, o.kubeconfig), { ...o, env: kubectlEnv });

  const launch = async (name: string, cmd: string[]): Promise<NetnsProcess> => {
    const p = await NetnsProcess.start({ name, netns: opts.netns, cmd, logFile: logFile(dir, name) });
    procs.set(name, p);
    progress(`${name} started (pid ${p.pid}, log ${p.logFile})`);
    return p;
  };
  /** Polls `probe` until it succeeds; fails early, with logs, if one of `watch` exits. */
  const waitFor = (what: string, watch: string[], probe: () => Promise<boolean>): Promise<void> =>
    pollUntil(
      async () => {
        if (await probe()) return true;
        for (const name of watch) {
          const p = procs.get(name);
          if (p && !p.running) throw new ControlPlaneError(`${what}: ${p.describeExit()}; last lines of ${p.logFile}:\n${p.logTail()}`);
        }
        return undefined;
      },
      {
        timeoutMs: readyTimeoutMs,
        intervalMs: 250,
        onTimeout: () => {
          const logs = watch.map((n) => procs.get(n)).filter((p): p is NetnsProcess => !!p);
          return new ControlPlaneError(
            `${what}: not ready after ${readyTimeoutMs} ms\n${logs.map((p) => `--- ${p.describeExit()}; last lines of ${p.logFile}:\n${p.logTail()}`).join('\n')}`,
          );
        },
      },
    ).then(() => undefined);

  const rawOk = async (urlPath: string, server?: string): Promise<boolean> => {
    const r = await kubectlAsync([...(server ? [`--server=${server}`] : []), '--request-timeout=5s', 'get', `--raw=${urlPath}`], { timeoutMs: 10_000 });
    return r.code === 0 && r.stdout.trim() === 'ok';
  };
  const apiserverUp = async (): Promise<void> => {
    await launch('kube-apiserver', apiserverCommand(layout));
    await waitFor('kube-apiserver /readyz', ['etcd', 'kube-apiserver'], () => rawOk('/readyz'));
  };
  const stopOne = async (name: string): Promise<void> => {
    const p = procs.get(name);
    if (!p) return;
    await p.stop(STOP_GRACE_MS);
    progress(`${p.describeExit()}`);
  };
  const stopAll = async (): Promise<void> => {
    await Promise.all([stopOne('kube-scheduler'), stopOne('kube-controller-manager')]);
    await stopOne('kube-apiserver');
    await stopOne('etcd');
  };

  try {
    await launch('etcd', etcdCommand(layout));
    await apiserverUp();
    mark('kube-apiserver ready');
    await waitFor(
      'namespaces default and kube-system',
      ['etcd', 'kube-apiserver'],
      async () => (await kubectlAsync(['get', 'namespace', 'default', 'kube-system', '-o', 'name'])).code === 0,
    );
    mark('system namespaces');
    const health: Promise<void>[] = [];
    if (layout.controllerManager) {
      await launch('kube-controller-manager', controllerManagerCommand(layout));
      health.push(
        waitFor('kube-controller-manager /healthz', ['kube-controller-manager'], () => rawOk('/healthz', `https://127.0.0.1:${CONTROLLER_MANAGER_PORT}`)),
      );
    }
    if (layout.scheduler) {
      await launch('kube-scheduler', schedulerCommand(layout));
      health.push(waitFor('kube-scheduler /healthz', ['kube-scheduler'], () => rawOk('/healthz', `https://127.0.0.1:${SCHEDULER_PORT}`)));
    }
    await Promise.all(health);
    if (health.length > 0) mark('components healthy');
  } catch (e) {
    await stopAll().catch(() => {});
    throw e;
  }
  const startupMs = Date.now() - t0;
  progress(`control plane ready at ${url} in ${startupMs} ms`);

  return {
    url,
    netns: opts.netns,
    dir,
    adminKubeconfig,
    caFile: pki.ca.cert,
    startupMs,
    timings,
    kubectl,
    kubectlAsync,
    serviceAccountToken(namespace, name, seconds = 3600) {
      const r = kubectl(['create', 'token', name, '-n', namespace, `--duration=${seconds}s`]);
      if (r.code !== 0) throw new ControlPlaneError(`kubectl create token ${namespace}/${name}: exit ${r.code}: ${r.stderr.trim()}`);
      return r.stdout.trim();
    },
    kubeconfigForToken(token, file) {
      return writeKubeconfig(file, { server: url, caFile: pki.ca.cert, user: 'token-user', credentials: { token }, clusterName: CLUSTER_NAME });
    },
    kubeconfigForUser(user, groups, file) {
      const base = `user-${user.toLowerCase().replace(/[^a-z0-9.-]+/g, '-')}`;
      const pair = issueCert(pki, base, { cn: user, orgs: groups, usage: 'client' }, pki.fresh);
      return writeKubeconfig(file, {
        server: url,
        caFile: pki.ca.cert,
        user,
        credentials: { clientCertificate: pair.cert, clientKey: pair.key },
        clusterName: CLUSTER_NAME,
      });
    },
    async stopApiServer() {
      await stopOne('kube-apiserver');
    },
    async startApiServer() {
      if (procs.get('kube-apiserver')?.running) return;
      if (!procs.get('etcd')?.running) throw new ControlPlaneError('startApiServer: etcd is not running (stopped?)');
      await apiserverUp();
    },
    stop: stopAll,
    pids: () => [...procs.values()].filter((p) => p.running).map((p) => p.pid),
    logTail: (name, lines) => procs.get(name)?.logTail(lines) ?? `(no process ${name})`,
  };
}
