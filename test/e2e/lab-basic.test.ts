// The lab end to end, through its command line only (scripts/lab), as a user
// runs it: up → a 3-node kind cluster with weir installed from deploy/, pods
// on two nodes talking, a Service through kube-proxy → down leaves nothing.
//
// It uses the lab that is up when it is the default one (3 nodes, host
// firewall off), as `up` itself does, and creates it otherwise; the lab is
// down at the end, even when a test failed.
//
// Needs root. The first run on a machine builds kind, the node image and the
// pinned Kubernetes binaries (scripts/kind-up.sh); after that `up` takes
// about two minutes.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGNHOST_IMAGE, kindPaths } from '../../lab/kind.ts';
import { type LabState, labDir, labPods, readState } from '../../lab/state.ts';
import { DOWN_TIMEOUT_MS, itKeepsInvariants, lab, labOk, UP_TIMEOUT_MS, upDefaultLab } from '../helpers/lab.ts';
import { eventually as poll } from '../helpers/wait.ts';

const DIR = labDir();
const KIND = kindPaths();
const kubectlJson = async <T>(args: string[]): Promise<T> => JSON.parse(await labOk(['kubectl', ...args, '-o', 'json'])) as T;

/** The lab is slower than a kernel test: a minute, looking every half second. */
const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => poll(what, fn, timeoutMs, 500);

/** Processes whose command line names the lab's directory, or that run in a cgroup of a kind node (libpod). */
function labProcesses(): string[] {
  const found: string[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const args = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      const cg = fs.readFileSync(`/proc/${e}/cgroup`, 'utf8');
      if (args.some((a) => a === DIR || a.includes(`${DIR}/`)) || /libpod/.test(cg)) found.push(`${e}: ${args.join(' ').slice(0, 200)}`);
    } catch {
      // gone
    }
  }
  return found;
}

/** Mounts under the lab's directory or podman's store for kind (container root file systems, volumes). */
const labMounts = (): string[] =>
  fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(`${DIR}/`) || m === DIR || m.startsWith(`${KIND.cache}/podman/`));

type NodeJson = {
  metadata: { name: string };
  spec: { podCIDR?: string };
  status: { conditions: { type: string; status: string }[]; addresses: { type: string; address: string }[] };
};

const pod = (name: string, node: string): string => `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: default, labels: {app: ${name}}}
spec:
  nodeName: ${node}
  containers:
    - name: c
      image: ${AGNHOST_IMAGE}
      args: [netexec, --http-port=8080]
      ports: [{containerPort: 8080}]
      readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
`;

describe('scripts/lab (3 nodes)', { timeout: 180_000 }, () => {
  let state: LabState;
  let upMs = 0;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces)');
    // The default lab: one left up by a user (scripts/demo) is taken as it is, another is replaced.
    const r = await upDefaultLab(DIR);
    upMs = r.ms;
    console.log(`scripts/lab up: exit ${r.code} in ${(upMs / 1000).toFixed(1)} s`);
    const s = readState(DIR);
    if (!s) throw new Error(`no lab recorded in ${DIR} after up`);
    state = s;
  }, UP_TIMEOUT_MS + DOWN_TIMEOUT_MS);

  afterAll(async () => {
    // Even when something above failed: the machine is left as it was found.
    const r = await lab(['down'], { timeoutMs: DOWN_TIMEOUT_MS });
    if (r.code !== 0) console.error(`scripts/lab down (afterAll): exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  }, DOWN_TIMEOUT_MS + 10_000);

  it('up is idempotent: a second up finds the lab healthy', async () => {
    expect(state.readyAt).toBeTruthy();
    const out = await labOk(['up']);
    expect(out).toMatch(/already up/);
    expect(readState(DIR)?.readyAt).toBe(state.readyAt);
    expect(readState(DIR)?.nodes.map((n) => n.pid)).toEqual(state.nodes.map((n) => n.pid));
  });

  it('has 3 nodes, all Ready with a pod CIDR from 10.244.0.0/16', async () => {
    const nodes = (await kubectlJson<{ items: NodeJson[] }>(['get', 'nodes'])).items;
    expect(nodes.map((n) => n.metadata.name).sort()).toEqual(['weir-control-plane', 'weir-worker', 'weir-worker2']);
    for (const n of nodes) {
      expect(n.status.conditions.find((c) => c.type === 'Ready')?.status, n.metadata.name).toBe('True');
      expect(n.spec.podCIDR, n.metadata.name).toMatch(/^10\.244\.\d+\.0\/24$/);
    }
    expect(new Set(nodes.map((n) => n.spec.podCIDR)).size).toBe(3);
  });

  it('runs the weir DaemonSet, installed from deploy/, ready on every node', async () => {
    const ds = await kubectlJson<{ status: { desiredNumberScheduled: number; numberReady: number } }>(['-n', 'kube-system', 'get', 'daemonset', 'weir']);
    expect(ds.status.desiredNumberScheduled).toBe(3);
    expect(ds.status.numberReady).toBe(3);
  });

  it("has weir's conflist in every node's root", () => {
    expect(state.nodes).toHaveLength(3);
    for (const n of state.nodes) {
      const dir = path.join(n.root, 'etc/cni/net.d');
      const files = fs.readdirSync(dir).filter((f) => f.endsWith('.conflist'));
      expect(files, `${n.name}: ${dir}`).toContain('10-weir.conflist');
      const conf = JSON.parse(fs.readFileSync(path.join(dir, '10-weir.conflist'), 'utf8')) as { plugins: { type: string }[] };
      expect(conf.plugins.map((p) => p.type)).toContain('weir');
    }
  });

  it("scripts/lab kubectl get nodes works (in the cluster's namespace), with kubectl's exit code", async () => {
    const out = await labOk(['kubectl', 'get', 'nodes', '-o', 'wide']);
    for (const n of ['weir-control-plane', 'weir-worker', 'weir-worker2']) expect(out).toContain(n);
    const missing = await lab(['kubectl', 'get', 'namespace', 'does-not-exist']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not found/);
  });

  it("scripts/lab node shows weir's proto-88 routes to the other nodes' pod CIDRs", async () => {
    const nodes = (await kubectlJson<{ items: NodeJson[] }>(['get', 'nodes'])).items;
    const others = nodes.filter((n) => n.metadata.name !== 'weir-worker');
    const routes = await eventually(
      'routes to both other nodes',
      async () => {
        const out = await labOk(['node', 'weir-worker', '--', 'ip', 'route']);
        return others.every((n) => out.includes(`${n.spec.podCIDR} via ${n.status.addresses.find((a) => a.type === 'InternalIP')?.address} dev eth0 proto 88`))
          ? out
          : undefined;
      },
      30_000,
    );
    expect(routes).toMatch(/proto 88/);
    // The node's view of weir's paths: its own conflist at the real path, and its agent's socket.
    const ls = await labOk(['node', 'weir-worker', '--', 'sh', '-c', 'ls /etc/cni/net.d /run/weir']);
    expect(ls).toContain('10-weir.conflist');
    expect(ls).toContain('agent.sock');
    const code = await lab(['node', 'weir-worker', '--', 'sh', '-c', 'exit 3']);
    expect(code.code).toBe(3);
  });

  describe('pods', () => {
    let ipB = '';

    beforeAll(async () => {
      await labOk(['kubectl', 'apply', '-f', '-'], { input: `${pod('a', 'weir-worker')}---\n${pod('b', 'weir-worker2')}` });
      await labOk(['kubectl', 'wait', '--for=condition=Ready', 'pod/a', 'pod/b', '--timeout=120s'], { timeoutMs: 150_000 });
      const b = await kubectlJson<{ status: { podIP: string } }>(['get', 'pod', 'b']);
      ipB = b.status.podIP;
    }, 180_000);

    it("gives them addresses from their nodes' pod CIDRs", async () => {
      const nodes = (await kubectlJson<{ items: NodeJson[] }>(['get', 'nodes'])).items;
      const cidr = nodes.find((n) => n.metadata.name === 'weir-worker2')?.spec.podCIDR ?? '';
      expect(ipB.split('.').slice(0, 3).join('.')).toBe(cidr.split('.').slice(0, 3).join('.'));
    });

    it('a (weir-worker) reaches b (weir-worker2) by pod IP through scripts/lab exec', async () => {
      const out = await eventually('curl a → b', async () => {
        const r = await lab(['exec', 'default/a', '--', 'curl', '-s', '--max-time', '3', `http://${ipB}:8080/hostname`]);
        return r.code === 0 ? r.stdout : undefined;
      });
      expect(out.trim()).toBe('b');
      // b sees a's own pod address (no masquerade between pods).
      const a = await kubectlJson<{ status: { podIP: string } }>(['get', 'pod', 'a']);
      const client = await labOk(['exec', 'default/a', '--', 'curl', '-s', '--max-time', '3', `http://${ipB}:8080/clientip`]);
      expect(client.split(':')[0]).toBe(a.status.podIP);
      // exec's exit code is the command's.
      expect((await lab(['exec', 'default/a', '--', 'sh', '-c', 'exit 5'])).code).toBe(5);
      expect((await lab(['exec', 'default/nope', '--', 'true'])).code).not.toBe(0);
    });

    it('a reaches b through a ClusterIP Service (kube-proxy, nftables)', async () => {
      await labOk(['kubectl', 'apply', '-f', '-'], {
        input: 'apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: default}\nspec:\n  selector: {app: b}\n  ports: [{port: 80, targetPort: 8080}]\n',
      });
      const svc = await kubectlJson<{ spec: { clusterIP: string } }>(['get', 'service', 'b']);
      const ip = svc.spec.clusterIP;
      expect(ip).toMatch(/^10\.96\./);
      // kube-proxy programmed it on weir-worker, in its nftables table.
      await eventually("the ClusterIP in kube-proxy's nftables table on weir-worker", async () => {
        const out = await labOk(['node', 'weir-worker', '--', 'nft', 'list', 'table', 'ip', 'kube-proxy']);
        return out.includes(ip) ? true : undefined;
      });
      const out = await eventually('curl a → service b', async () => {
        const r = await lab(['exec', 'default/a', '--', 'curl', '-s', '--max-time', '3', `http://${ip}/hostname`]);
        return r.code === 0 && r.stdout.trim() === 'b' ? r.stdout : undefined;
      });
      expect(out.trim()).toBe('b');
    });
  });

  itKeepsInvariants();

  it(
    'down leaves no namespace, no node or pod process, no mount and no state directory (twice)',
    async () => {
      const podNetns = (await labPods(DIR)).filter((p) => !p.hostNetwork && p.netnsPath).map((p) => p.netnsPath as string);
      expect(podNetns.length).toBeGreaterThan(0);
      const r = await lab(['down'], { timeoutMs: DOWN_TIMEOUT_MS });
      expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
      expect(fs.existsSync(`/run/netns/${KIND.netns}`)).toBe(false);
      expect(podNetns.filter((p) => fs.existsSync(p))).toEqual([]);
      expect(labProcesses()).toEqual([]);
      expect(labMounts()).toEqual([]);
      expect(fs.existsSync(DIR)).toBe(false);
      const again = await lab(['down'], { timeoutMs: DOWN_TIMEOUT_MS });
      expect(again.code).toBe(0);
      console.log(`scripts/lab up took ${(upMs / 1000).toFixed(1)} s, down ${(r.ms / 1000).toFixed(1)} s`);
    },
    DOWN_TIMEOUT_MS * 2,
  );
});
