// The lab's state directory and state file, shared by the daemon (writer) and
// the CLI (reader):
//
//   ${WEIR_LAB_DIR:-/run/weir-lab}/
//     state.json     {pid, nodes, kubeconfig, kubectl, k8sBinDir, phase, error?, …}
//     lab.sock       the daemon's control socket (HTTP: GET /state, GET /pods)
//     daemon.log     the daemon's progress lines (its stdout and stderr)
//     controlplane/  PKI, etcd data, kubeconfigs, component logs
//     nodes/<node>/  root/ (the node's host paths), kube-proxy/, kubelet.log, kubeconfigs
//
// state.json is replaced atomically (write + rename), so a reader never sees
// half a file.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

export type LabPhase = 'starting' | 'ready' | 'failed';

export interface LabStateNode {
  name: string;
  /** `ip netns` name of the node's namespace. */
  netns: string;
  ip: string;
  /** The node's host paths live under here (etc/cni/net.d, opt/cni/bin, var/lib/cni, run/weir). */
  root: string;
}

export interface LabState {
  pid: number;
  nodes: LabStateNode[];
  /** Cluster-admin kubeconfig; server https://172.18.0.2:6443 (reachable from weirlab-net and every node). */
  kubeconfig: string;
  /** The pinned kubectl. */
  kubectl: string;
  k8sBinDir: string;
  phase: LabPhase;
  error?: string;
  /** Namespace users' kubectl runs in. */
  hostNetns: string;
  hostFirewall: boolean;
  startedAt: string;
  readyAt?: string;
  /** Milliseconds from the daemon's start to ready. */
  upMs?: number;
}

export interface LabPod {
  namespace: string;
  name: string;
  node: string;
  netnsPath?: string;
  ips: string[];
  hostNetwork: boolean;
  phase: string;
}

export const DEFAULT_LAB_DIR = '/run/weir-lab';

/** The lab's directory: $WEIR_LAB_DIR (made absolute) or /run/weir-lab. */
export function labDir(env: NodeJS.ProcessEnv = process.env): string {
  const d = env['WEIR_LAB_DIR'];
  return path.resolve(d && d.trim() !== '' ? d : DEFAULT_LAB_DIR);
}

export const statePath = (dir = labDir()): string => path.join(dir, 'state.json');
export const socketPath = (dir = labDir()): string => path.join(dir, 'lab.sock');
export const daemonLogPath = (dir = labDir()): string => path.join(dir, 'daemon.log');
export const nodeDir = (dir: string, node: string): string => path.join(dir, 'nodes', node);
export const nodeRoot = (dir: string, node: string): string => path.join(nodeDir(dir, node), 'root');
export const controlPlaneDir = (dir: string): string => path.join(dir, 'controlplane');

/** The node's host paths, relative to its root; the stand-in bind-mounts them over the real ones. */
export const NODE_HOST_PATHS = ['etc/cni/net.d', 'opt/cni/bin', 'var/lib/cni', 'run/weir'] as const;

/** The state file, or undefined when there is none (or it is unreadable). */
export function readState(dir = labDir()): LabState | undefined {
  try {
    return JSON.parse(fs.readFileSync(statePath(dir), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

export function writeState(state: LabState, dir = labDir()): void {
  fs.mkdirSync(dir, { recursive: true });
  const file = statePath(dir);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

export function pidAlive(pid: number | undefined): boolean {
  if (!pid || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A zombie (exited, not yet reaped) counts as gone.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export interface SocketReply {
  status: number;
  body: string;
}

/** One GET on the daemon's control socket; rejects when nobody answers. */
export function labRequest(urlPath: string, dir = labDir(), timeoutMs = 10_000): Promise<SocketReply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socketPath(dir), path: urlPath, method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer on ${socketPath(dir)} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** GET /pods from the daemon. */
export async function labPods(dir = labDir()): Promise<LabPod[]> {
  const r = await labRequest('/pods', dir);
  if (r.status !== 200) throw new Error(`GET /pods on ${socketPath(dir)}: HTTP ${r.status}: ${r.body.trim()}`);
  return JSON.parse(r.body) as LabPod[];
}

/**
 * The pod namespaces the lab's stand-ins recorded (root/pods/<ns>_<name>/
 * sandbox-<uid>.json, field netnsName): what a crashed lab may have left.
 */
export function recordedPodNetns(dir = labDir()): string[] {
  const out = new Set<string>();
  const ls = (d: string): string[] => {
    try {
      return fs.readdirSync(d);
    } catch {
      return [];
    }
  };
  for (const node of ls(path.join(dir, 'nodes'))) {
    const pods = path.join(nodeRoot(dir, node), 'pods');
    for (const pod of ls(pods)) {
      for (const f of ls(path.join(pods, pod))) {
        if (!/^sandbox-.*\.json$/.test(f)) continue;
        try {
          const r = JSON.parse(fs.readFileSync(path.join(pods, pod, f), 'utf8')) as { netnsName?: unknown };
          if (typeof r.netnsName === 'string') out.add(r.netnsName);
        } catch {
          // half-written or foreign: skip
        }
      }
    }
  }
  return [...out];
}
