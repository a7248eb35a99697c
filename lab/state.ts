// The lab's state: what `scripts/lab up` recorded (lab.json under the kind
// cluster's run directory: how it was brought up) joined with what is true
// now (the node containers, read from podman; the pods, from the API and
// /proc). Nothing is cached between commands: a node container restarted by
// hand shows with its new pid.
//
//   ${KIND_RUN:-/run/weir-kind}/
//     lab.json       {cluster, hostFirewall, nodes, startedAt, readyAt, upMs}
//     kubeconfig     the cluster's kubeconfig (scripts/kind-up.sh writes it)
//     nodes/<node>/root/{etc/cni/net.d,var/lib/cni,run/weir}   the node's weir paths (kind extraMounts)
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type KindPaths, kindEnv, kindNodes, kindPaths, kubeconfigPath, nodeRootDir, podPids, REPO } from './kind.ts';

export interface LabStateNode {
  name: string;
  /** The node's network namespace file (/proc/PID/ns/net of the node container). */
  netns: string;
  ip: string;
  /** The node's weir paths live under here (etc/cni/net.d, var/lib/cni, run/weir). */
  root: string;
  /** The node container's init process. */
  pid: number;
  /** The node container's root file system as the machine sees it. */
  rootfs: string;
}

/** What `up` records. */
export interface LabRecord {
  cluster: string;
  hostFirewall: boolean;
  nodes: string[];
  startedAt: string;
  readyAt?: string;
  upMs?: number;
}

export interface LabState extends Omit<LabRecord, 'nodes'> {
  nodes: LabStateNode[];
  kubeconfig: string;
  /** The pinned kubectl (scripts/k8s/build). */
  kubectl: string;
  k8sBinDir: string;
  /** The network namespace (ip netns name) the cluster and kubectl live in. */
  hostNetns: string;
}

export interface LabPod {
  namespace: string;
  name: string;
  uid: string;
  node: string;
  netnsPath?: string;
  ips: string[];
  hostNetwork: boolean;
  phase: string;
}

/** The lab's run directory (the kind cluster's: $KIND_RUN or /run/weir-kind). */
export const labDir = (env: NodeJS.ProcessEnv = process.env): string => kindPaths(env).run;
export const recordPath = (dir = labDir()): string => path.join(dir, 'lab.json');

export function readRecord(dir = labDir()): LabRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordPath(dir), 'utf8')) as LabRecord;
  } catch {
    return undefined;
  }
}

/** Replaced atomically (write + rename): a reader never sees half a file. */
export function writeRecord(r: LabRecord, dir = labDir()): void {
  fs.mkdirSync(dir, { recursive: true });
  const file = recordPath(dir);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(r, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

/** The pinned Kubernetes binaries' folder (scripts/k8s/build prints it; nothing is built by asking). */
export function k8sBinDir(): string {
  const r = spawnSync(path.join(REPO, 'scripts/k8s/build'), ['--print-dir'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`scripts/k8s/build --print-dir: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/**
 * The lab as it is now: undefined when `up` recorded nothing or the cluster's
 * namespace is gone; nodes are those of the record that run.
 */
export function readState(dir = labDir(), p: KindPaths = { ...kindPaths(), run: dir }): LabState | undefined {
  const rec = readRecord(dir);
  if (!rec || !fs.existsSync(`/run/netns/${p.netns}`)) return undefined;
  const running = new Map(kindNodes({ ...p, cluster: rec.cluster }).map((n) => [n.name, n]));
  const nodes = rec.nodes.flatMap((name) => {
    const n = running.get(name);
    return n ? [{ name, netns: `/proc/${n.pid}/ns/net`, ip: n.ip, root: nodeRootDir(p, name), pid: n.pid, rootfs: n.rootfs }] : [];
  });
  const bin = k8sBinDir();
  return { ...rec, nodes, kubeconfig: kubeconfigPath(p), kubectl: path.join(bin, 'kubectl'), k8sBinDir: bin, hostNetns: p.netns };
}

interface ApiPod {
  metadata: { namespace: string; name: string; uid: string };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status?: { phase?: string; podIPs?: { ip: string }[] };
}

/** The cluster's pods that have a node, each with the network namespace its processes run in (when they run). */
export async function labPods(dir = labDir()): Promise<LabPod[]> {
  const state = readState(dir);
  if (!state) throw new Error(`the lab is not up (no ${recordPath(dir)} or no cluster namespace); run \`scripts/lab up\``);
  const p = { ...kindPaths(), run: dir };
  const json = await new Promise<string>((resolve, reject) =>
    execFile(
      'nsenter',
      [`--net=/run/netns/${p.netns}`, '--', state.kubectl, 'get', 'pods', '-A', '-o', 'json', '--request-timeout=15s'],
      { env: kindEnv(p), maxBuffer: 256 * 1024 * 1024, timeout: 30_000 },
      (e, out, err) => (e ? reject(new Error(`kubectl get pods: ${err.trim() || e.message}`)) : resolve(out)),
    ),
  );
  const pids = podPids();
  const nodeNetns = new Map(state.nodes.map((n) => [n.name, n.netns]));
  return ((JSON.parse(json) as { items: ApiPod[] }).items ?? [])
    .filter((o) => o.spec.nodeName)
    .map((o) => {
      const node = o.spec.nodeName as string;
      const hostNetwork = o.spec.hostNetwork === true;
      const pid = pids.get(o.metadata.uid);
      const netnsPath = hostNetwork ? nodeNetns.get(node) : pid !== undefined ? `/proc/${pid}/ns/net` : undefined;
      return {
        namespace: o.metadata.namespace,
        name: o.metadata.name,
        uid: o.metadata.uid,
        node,
        ...(netnsPath ? { netnsPath } : {}),
        ips: (o.status?.podIPs ?? []).map((x) => x.ip),
        hostNetwork,
        phase: o.status?.phase ?? 'Pending',
      };
    });
}
