// Where the binaries come from, and the command lines of etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler. Pure functions of a Layout, so
// they can be read (and tested) without starting anything.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeyPair, Pki } from './pki.ts';
import { ControlPlaneError } from './process.ts';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const K8S_BUILD_SCRIPT = path.join(REPO_ROOT, 'scripts/k8s/build');
export const ETCD_BIN = '/usr/bin/etcd';
// kubectl comes from the same pin: the machine's may be too far from 1.35 for kubectl's version skew policy.
export const K8S_BINARIES = ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'] as const;

export const APISERVER_PORT = 6443;
export const CONTROLLER_MANAGER_PORT = 10257;
export const SCHEDULER_PORT = 10259;
export const ETCD_CLIENT_URL = 'http://127.0.0.1:2379';
const ETCD_PEER_URL = 'http://127.0.0.1:2380';
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const CLUSTER_NAME = 'weir-lab';

/**
 * The directory holding the pinned kube-* binaries: $WEIR_K8S_BIN_DIR if set,
 * else whatever scripts/k8s/build prints (it builds them on first use, which
 * takes minutes; its progress goes to `onProgress`).
 */
export async function k8sBinDir(onProgress: (msg: string) => void = () => {}): Promise<string> {
  const fromEnv = process.env.WEIR_K8S_BIN_DIR;
  const dir =
    fromEnv ??
    (await new Promise<string>((resolve, reject) => {
      const child = spawn(K8S_BUILD_SCRIPT, [], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        err += d;
        for (const line of d.split('\n')) if (line.trim()) onProgress(line.trim());
      });
      child.once('error', (e) => reject(new ControlPlaneError(`${K8S_BUILD_SCRIPT}: ${e.message}`)));
      child.once('close', (code) => {
        if (code === 0) resolve(out.trim().split('\n').pop() ?? '');
        else reject(new ControlPlaneError(`${K8S_BUILD_SCRIPT} failed (exit ${code}): ${err.trim().split('\n').slice(-10).join('\n')}`));
      });
    }));
  for (const b of K8S_BINARIES) {
    if (!fs.existsSync(path.join(dir, b)))
      throw new ControlPlaneError(`${b} not found in ${dir}${fromEnv ? ' ($WEIR_K8S_BIN_DIR)' : ''}; run scripts/k8s/build`);
  }
  if (!fs.existsSync(ETCD_BIN)) throw new ControlPlaneError(`${ETCD_BIN} not found (scripts/setup installs etcd-server)`);
  return dir;
}

let etcdNoFsync: boolean | undefined;
/** Whether this etcd has --unsafe-no-fsync (added in etcd 3.5; Debian 12 ships 3.4). */
export function etcdSupportsNoFsync(): boolean {
  if (etcdNoFsync === undefined) {
    const r = spawnSync(ETCD_BIN, ['--help'], { encoding: 'utf8', timeout: 10_000 });
    etcdNoFsync = `${r.stdout}${r.stderr}`.includes('--unsafe-no-fsync');
  }
  return etcdNoFsync;
}

/** Every path and setting the command lines are made of. */
export interface Layout {
  dir: string;
  binDir: string;
  advertiseAddress: string;
  serviceCIDR: string;
  pki: Pki;
  apiserver: KeyPair;
  controllerManager?: { clusterCIDR: string; nodeCIDRMaskSize?: number; kubeconfig: string; serving: KeyPair };
  scheduler?: { kubeconfig: string; serving: KeyPair };
  extraArgs: { apiserver?: string[]; controllerManager?: string[]; scheduler?: string[]; etcd?: string[] };
}

export const etcdDataDir = (dir: string): string => path.join(dir, 'etcd');
export const logFile = (dir: string, name: string): string => path.join(dir, 'logs', `${name}.log`);

export function etcdCommand(l: Layout): string[] {
  return [
    ETCD_BIN,
    '--name=weir',
    `--data-dir=${etcdDataDir(l.dir)}`,
    `--listen-client-urls=${ETCD_CLIENT_URL}`,
    `--advertise-client-urls=${ETCD_CLIENT_URL}`,
    `--listen-peer-urls=${ETCD_PEER_URL}`,
    `--initial-advertise-peer-urls=${ETCD_PEER_URL}`,
    `--initial-cluster=weir=${ETCD_PEER_URL}`,
    '--initial-cluster-state=new',
    '--logger=zap',
    '--log-outputs=stderr',
    // The apiserver compacts on its own; a test cluster's history stays small.
    '--snapshot-count=10000',
    ...(etcdSupportsNoFsync() ? ['--unsafe-no-fsync'] : []),
    ...(l.extraArgs.etcd ?? []),
  ];
}

export function apiserverCommand(l: Layout): string[] {
  return [
    path.join(l.binDir, 'kube-apiserver'),
    `--etcd-servers=${ETCD_CLIENT_URL}`,
    `--secure-port=${APISERVER_PORT}`,
    `--bind-address=${l.advertiseAddress}`,
    `--advertise-address=${l.advertiseAddress}`,
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    '--allow-privileged=true',
    `--client-ca-file=${l.pki.ca.cert}`,
    `--tls-cert-file=${l.apiserver.cert}`,
    `--tls-private-key-file=${l.apiserver.key}`,
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--service-account-key-file=${l.pki.saPub}`,
    `--service-account-signing-key-file=${l.pki.saKey}`,
    `--service-cluster-ip-range=${l.serviceCIDR}`,
    // Never used (the serving certificate is given) but keeps the apiserver
    // from ever writing to its default, /var/run/kubernetes.
    `--cert-dir=${l.pki.dir}`,
    '--profiling=false',
    // On SIGTERM, drain ordinary requests, then give the HTTP server 2 s to
    // close. Without it, open watches (controller manager, scheduler, agents)
    // hold the shutdown for --request-timeout (60 s).
    '--shutdown-send-retry-after=true',
    ...(l.extraArgs.apiserver ?? []),
  ];
}

/** Controllers that need a cloud provider; off (they are also inert without one). */
const CLOUD_CONTROLLERS = ['cloud-node-lifecycle-controller', 'service-lb-controller', 'node-route-controller'];

export function controllerManagerCommand(l: Layout): string[] {
  const cm = l.controllerManager;
  if (!cm) throw new ControlPlaneError('controller manager not configured');
  const dual = cm.clusterCIDR.includes(',');
  const mask = cm.nodeCIDRMaskSize === undefined ? [] : [`--node-cidr-mask-size${dual ? '-ipv4' : ''}=${cm.nodeCIDRMaskSize}`];
  return [
    path.join(l.binDir, 'kube-controller-manager'),
    `--kubeconfig=${cm.kubeconfig}`,
    `--authentication-kubeconfig=${cm.kubeconfig}`,
    `--authorization-kubeconfig=${cm.kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${CONTROLLER_MANAGER_PORT}`,
    `--tls-cert-file=${cm.serving.cert}`,
    `--tls-private-key-file=${cm.serving.key}`,
    '--leader-elect=false',
    '--allocate-node-cidrs=true',
    `--cluster-cidr=${cm.clusterCIDR}`,
    ...mask,
    `--service-cluster-ip-range=${l.serviceCIDR}`,
    `--service-account-private-key-file=${l.pki.saKey}`,
    `--root-ca-file=${l.pki.ca.cert}`,
    '--use-service-account-credentials=true',
    `--controllers=*,${CLOUD_CONTROLLERS.map((c) => `-${c}`).join(',')}`,
    // So that kubelet-style CSRs made in the lab get signed by the cluster CA.
    `--cluster-signing-cert-file=${l.pki.ca.cert}`,
    `--cluster-signing-key-file=${l.pki.ca.key}`,
    `--cluster-name=${CLUSTER_NAME}`,
    '--profiling=false',
    ...(l.extraArgs.controllerManager ?? []),
  ];
}

export function schedulerCommand(l: Layout): string[] {
  const s = l.scheduler;
  if (!s) throw new ControlPlaneError('scheduler not configured');
  return [
    path.join(l.binDir, 'kube-scheduler'),
    `--kubeconfig=${s.kubeconfig}`,
    `--authentication-kubeconfig=${s.kubeconfig}`,
    `--authorization-kubeconfig=${s.kubeconfig}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${SCHEDULER_PORT}`,
    `--tls-cert-file=${s.serving.cert}`,
    `--tls-private-key-file=${s.serving.key}`,
    '--leader-elect=false',
    '--profiling=false',
    ...(l.extraArgs.scheduler ?? []),
  ];
}
