// The lab's cluster is a real kind cluster (scripts/kind-up.sh, podman
// provider on a machine without Docker): real kubelets and containerd in node
// containers, inside the network namespace scripts/kind/lib.sh makes. This
// module is what the lab's commands need to know of it:
//
//   - the environment podman, kind and kubectl run with (the same files
//     scripts/kind/lib.sh writes: podman's own configuration, the cluster's
//     kubeconfig);
//   - the nodes: each node container's pid gives its network namespace
//     (/proc/PID/ns/net), and each node's weir paths (/etc/cni/net.d,
//     /var/lib/cni, /run/weir) are kind extraMounts of folders under
//     $KIND_RUN/nodes/NODE/root, so the machine sees them as the node does;
//   - the pods: a pod's network namespace is that of any process in the pod's
//     cgroup (kubelet names the cgroup after the pod's UID), found in /proc.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** What scripts/kind/lib.sh calls them; the same environment variables override both. */
export interface KindPaths {
  cluster: string;
  /** The network namespace the cluster lives in (ip netns name). */
  netns: string;
  /** Run state of the cluster: podman's run root, CNI configs, kubeconfig, node folders. */
  run: string;
  cache: string;
}

export function kindPaths(env: NodeJS.ProcessEnv = process.env): KindPaths {
  const home = env['HOME'] || '/root';
  return {
    cluster: env['KIND_CLUSTER'] || 'weir',
    netns: env['KIND_NETNS'] || 'weir-kind',
    run: path.resolve(env['KIND_RUN'] || '/run/weir-kind'),
    cache: path.resolve(env['WEIR_CACHE'] || path.join(home, '.cache/weir')),
  };
}

export const kubeconfigPath = (p: KindPaths): string => path.join(p.run, 'kubeconfig');
/** Where a node's weir paths live on the machine (the node mounts them: nodeExtraMounts). */
export const nodeRootDir = (p: KindPaths, node: string): string => path.join(p.run, 'nodes', node, 'root');

/** The node paths the lab shares with the machine (kind extraMounts). */
export const SHARED_NODE_PATHS = ['etc/cni/net.d', 'var/lib/cni', 'run/weir'] as const;
/**
 * Node paths seen through the node container's root file system instead:
 * /opt/cni/bin is the image's (loopback, portmap), where weir's init step
 * installs the plugin, so it cannot be an empty folder of the machine's.
 */
export const ROOTFS_NODE_PATHS = ['opt/cni/bin'] as const;

/** podman and kubectl as scripts/kind/lib.sh sets them up (it writes the files these point at). */
export function kindEnv(p: KindPaths, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    CONTAINERS_CONF: path.join(p.run, 'containers/containers.conf'),
    CONTAINERS_STORAGE_CONF: path.join(p.run, 'containers/storage.conf'),
    KUBECONFIG: kubeconfigPath(p),
    WEIR_KIND_EMPTY_MODULES: path.join(p.run, 'empty-modules'),
    PATH: `${path.join(REPO, 'scripts/kind/bin')}:${base['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
  };
}

export interface KindNode {
  name: string;
  /** The node container's init, as the machine sees it. */
  pid: number;
  /** Its address on kind's network. */
  ip: string;
  role: 'control-plane' | 'worker';
  /** The node container's root file system as mounted on the machine (podman's overlay). */
  rootfs: string;
}

/** The running nodes of the cluster, by name; [] when there is no such cluster. */
export function kindNodes(p: KindPaths): KindNode[] {
  if (!fs.existsSync(path.join(p.run, 'containers/containers.conf'))) return [];
  const env = kindEnv(p);
  const ps = spawnSync('podman', ['ps', '--filter', `label=io.x-k8s.kind.cluster=${p.cluster}`, '--format', '{{.Names}}'], {
    encoding: 'utf8',
    env,
    timeout: 30_000,
  });
  if (ps.status !== 0) return [];
  const names = ps.stdout.split('\n').filter(Boolean);
  if (names.length === 0) return [];
  const fmt =
    '{{.Name}}\t{{.State.Pid}}\t{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}\t{{index .Config.Labels "io.x-k8s.kind.role"}}\t{{.GraphDriver.Data.MergedDir}}';
  const ins = spawnSync('podman', ['inspect', '--format', fmt, ...names], { encoding: 'utf8', env, timeout: 30_000 });
  if (ins.status !== 0) return [];
  return ins.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'))
    .map(([name, pid, ip, role, rootfs]) => ({
      name: name as string,
      pid: Number(pid),
      ip: ip ?? '',
      role: role === 'control-plane' ? ('control-plane' as const) : ('worker' as const),
      rootfs: rootfs ?? '',
    }))
    .filter((n) => n.pid > 0)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Pod UID → pid of one process in that pod's cgroup, from one pass over
 * /proc. kubelet puts every container of a pod, and its sandbox, under a
 * cgroup named after the pod's UID (`pod<uid>` with cgroupfs, `…pod<uid with
 * _ for ->.slice` with systemd), whichever cgroup driver the node uses.
 */
export function podPids(): Map<string, number> {
  const out = new Map<string, number>();
  const re = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/;
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let cg: string;
    try {
      cg = fs.readFileSync(`/proc/${e}/cgroup`, 'utf8');
    } catch {
      continue;
    }
    const m = re.exec(cg);
    if (!m) continue;
    const uid = (m[1] as string).replace(/_/g, '-');
    if (!out.has(uid)) out.set(uid, Number(e));
  }
  return out;
}

/** The node config kind gets: the lab's node count, each node mounting its shared weir paths. */
export function labKindConfig(base: string, p: KindPaths, nodes: number): { yaml: string; names: string[] } {
  const header = base.replace(/\nnodes:\n[\s\S]*$/, '\n');
  if (header === base) throw new Error('the kind config has no nodes: list at its end');
  // kind names the nodes <cluster>-control-plane, <cluster>-worker, <cluster>-worker2, ...
  const names = [`${p.cluster}-control-plane`, ...Array.from({ length: nodes - 1 }, (_, i) => `${p.cluster}-worker${i === 0 ? '' : i + 1}`)];
  const node = (name: string, role: string): string => {
    const mounts = SHARED_NODE_PATHS.map((rel) => `      - hostPath: ${path.join(nodeRootDir(p, name), rel)}\n        containerPath: /${rel}\n`).join('');
    return `  - role: ${role}\n    extraMounts:\n${mounts}`;
  };
  const yaml = `${header}nodes:\n${names.map((n, i) => node(n, i === 0 ? 'control-plane' : 'worker')).join('')}`;
  return { yaml, names };
}

/**
 * The agnhost image the lab's workloads run: a tag the pinned release's e2e
 * uses, built and preloaded on every node by scripts/kind/images.
 */
export const AGNHOST_IMAGE = 'registry.k8s.io/e2e-test-images/agnhost:2.59';
