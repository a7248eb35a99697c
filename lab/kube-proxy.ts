// The pinned kube-proxy, in nftables mode, inside a lab node's namespace.
//
// Everything is in a KubeProxyConfiguration file (kube-proxy ignores most
// flags once --config is given); the node name and kubeconfig also go on the
// command line. Inside a network namespace kube-proxy cannot write the
// machine-global conntrack settings (nf_conntrack_max, the hash size), so
// `conntrack: {maxPerCore: 0, min: 0}` tells it to leave them as they are.
// The per-namespace TCP timeouts it may set are left as they are too (0),
// so nothing it does reaches beyond the node's namespace.
//
// Health and metrics listen on 127.0.0.1 of the node's namespace only.
import fs from 'node:fs';
import path from 'node:path';
import { ControlPlaneError, NetnsProcess, pollUntil } from './controlplane/process.ts';
import { runInLabNetns } from './topology.ts';

export const KUBE_PROXY_HEALTHZ = '127.0.0.1:10256';
export const KUBE_PROXY_METRICS = '127.0.0.1:10249';

export interface KubeProxyOptions {
  nodeName: string;
  netns: string;
  /** The node's primary address (kube-proxy's idea of the node IP). */
  nodeIP: string;
  /** Client certificate CN=system:kube-proxy (bound to system:node-proxier). */
  kubeconfig: string;
  clusterCIDR: string;
  k8sBinDir: string;
  /** Config file and log go here. */
  dir: string;
  readyTimeoutMs?: number;
}

export function kubeProxyConfig(o: Pick<KubeProxyOptions, 'nodeName' | 'nodeIP' | 'kubeconfig' | 'clusterCIDR'>): string {
  const q = (s: string): string => JSON.stringify(s);
  return [
    'apiVersion: kubeproxy.config.k8s.io/v1alpha1',
    'kind: KubeProxyConfiguration',
    'clientConnection:',
    `  kubeconfig: ${q(o.kubeconfig)}`,
    `hostnameOverride: ${q(o.nodeName)}`,
    `bindAddress: ${q(o.nodeIP)}`,
    `healthzBindAddress: ${q(KUBE_PROXY_HEALTHZ)}`,
    `metricsBindAddress: ${q(KUBE_PROXY_METRICS)}`,
    'mode: nftables',
    `clusterCIDR: ${q(o.clusterCIDR)}`,
    'detectLocalMode: ClusterCIDR',
    // NodePorts on the node's primary address (eth0), as in kind.
    'nodePortAddresses: ["primary"]',
    'conntrack:',
    '  maxPerCore: 0',
    '  min: 0',
    '  tcpEstablishedTimeout: 0s',
    '  tcpCloseWaitTimeout: 0s',
    '  udpTimeout: 0s',
    '  udpStreamTimeout: 0s',
    'enableProfiling: false',
    '',
  ].join('\n');
}

export function kubeProxyCommand(o: KubeProxyOptions, configFile: string): string[] {
  return [path.join(o.k8sBinDir, 'kube-proxy'), `--config=${configFile}`, `--hostname-override=${o.nodeName}`, `--kubeconfig=${o.kubeconfig}`, '--v=1'];
}

export interface KubeProxy {
  readonly nodeName: string;
  readonly pid: number;
  readonly logFile: string;
  readonly running: boolean;
  /** 200 from /healthz (rules synced recently) inside the node's namespace. */
  healthy(): Promise<boolean>;
  /** Polls healthy() until the deadline; fails early, with the log, if kube-proxy exits. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(graceMs?: number): Promise<void>;
  logTail(lines?: number): string;
}

export async function startKubeProxy(o: KubeProxyOptions): Promise<KubeProxy> {
  const bin = path.join(o.k8sBinDir, 'kube-proxy');
  if (!fs.existsSync(bin)) throw new ControlPlaneError(`${bin} not found; run scripts/k8s/build`);
  fs.mkdirSync(o.dir, { recursive: true });
  const configFile = path.join(o.dir, 'config.yaml');
  fs.writeFileSync(configFile, kubeProxyConfig(o));
  const proc = await NetnsProcess.start({ name: `kube-proxy/${o.nodeName}`, netns: o.netns, cmd: kubeProxyCommand(o, configFile), logFile: path.join(o.dir, 'kube-proxy.log') });
  const healthy = async (): Promise<boolean> => {
    const r = await runInLabNetns(o.netns, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://${KUBE_PROXY_HEALTHZ}/healthz`], { timeoutMs: 5_000 });
    return r.stdout.trim() === '200';
  };
  return {
    nodeName: o.nodeName,
    pid: proc.pid,
    logFile: proc.logFile,
    get running() {
      return proc.running;
    },
    healthy,
    async waitHealthy(timeoutMs = o.readyTimeoutMs ?? 60_000) {
      await pollUntil(
        async () => {
          if (await healthy()) return true;
          if (!proc.running) throw new ControlPlaneError(`kube-proxy on ${o.nodeName}: ${proc.describeExit()}; last lines of ${proc.logFile}:\n${proc.logTail()}`);
          return undefined;
        },
        { timeoutMs, intervalMs: 250, onTimeout: () => new ControlPlaneError(`kube-proxy on ${o.nodeName}: /healthz not 200 after ${timeoutMs} ms; last lines of ${proc.logFile}:\n${proc.logTail()}`) },
      );
    },
    async stop(graceMs = 10_000) {
      await proc.stop(graceMs);
    },
    logTail: (lines) => proc.logTail(lines),
  };
}
