// The certificates and kubeconfigs a control plane runs with: the CA, the
// apiserver's serving certificate, the cluster-admin kubeconfig, and a serving
// certificate and kubeconfig for each optional component. Together with the
// paths and settings they make the Layout the command lines are built from.
import path from 'node:path';
import { CLUSTER_NAME, type Layout } from './components.ts';
import type { ControlPlaneOptions } from './index.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { ensureCa, firstAddress, issueCert, type KeyPair, type Pki } from './pki.ts';

export interface Credentials {
  layout: Layout;
  adminKubeconfig: string;
  /** The CA; `fresh` when this start created it, so every certificate is issued anew. */
  pki: Pki & { fresh: boolean };
}

/** Issues (or reuses, while the CA in `dir` is not new) every certificate, and writes the kubeconfigs under `dir`/kubeconfig. */
export function writeCredentials(opts: ControlPlaneOptions, dir: string, binDir: string, serviceCIDR: string, url: string): Credentials {
  const pki = ensureCa(path.join(dir, 'pki'));
  const apiserver = issueCert(pki, 'apiserver', { cn: 'kube-apiserver', usage: 'server', sans: apiserverSans(opts, serviceCIDR) }, pki.fresh);
  const kubeconfigFor = (file: string, user: string, pair: KeyPair): string => writeClientKubeconfig(path.join(dir, 'kubeconfig', file), url, pki, user, pair);
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
  return { layout, adminKubeconfig, pki };
}

/** Every name and address the apiserver is reached by: its own, the first service IP of each family, the in-cluster names. */
function apiserverSans(opts: ControlPlaneOptions, serviceCIDR: string): string[] {
  const firstServiceIPs = serviceCIDR.split(',').map(firstAddress);
  return [
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
  ];
}

/** A kubeconfig at `file` authenticating `user` with the client certificate `pair`; returns `file`. */
export function writeClientKubeconfig(file: string, url: string, pki: Pki, user: string, pair: KeyPair): string {
  return writeKubeconfig(file, {
    server: url,
    caFile: pki.ca.cert,
    user,
    credentials: { clientCertificate: pair.cert, clientKey: pair.key },
    clusterName: CLUSTER_NAME,
  });
}
