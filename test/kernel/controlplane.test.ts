// lab/controlplane against the real binaries: etcd (Debian etcd-server), the
// pinned kube-apiserver, kube-controller-manager and kube-scheduler
// (scripts/k8s/build), kubectl. One control plane for the file, on 127.0.0.1
// inside a throw-away namespace (test/helpers/controlplane.ts); the last test
// stops it and deletes the namespace.
//
// Needs root, iproute2, util-linux (setpriv), openssl, etcd-server, kubectl,
// and the binaries of scripts/k8s/build (built on first use, ~8 min).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ControlPlaneError, startControlPlane } from '../../lab/controlplane/index.ts';
import { describeCert } from '../../lab/controlplane/pki.ts';
import { useControlPlane } from '../helpers/controlplane.ts';
import { createNetns, listNetns } from '../helpers/netns.ts';
import { eventually as poll } from '../helpers/wait.ts';

const CLUSTER_CIDR = '10.244.0.0/16';

const pidAlive = (pid: number): boolean => fs.existsSync(`/proc/${pid}`);
const netnsOf = (pid: number | 'self'): string => fs.readlinkSync(`/proc/${pid}/ns/net`);

/** Polls `fn` every 250 ms until it returns a value, for at most `ms`. */
const eventually = <T>(what: string, ms: number, fn: () => T | undefined): Promise<T> => poll(what, fn, ms, 250);

describe('control plane in a network namespace', () => {
  const fx = useControlPlane('cp', { controllerManager: { clusterCIDR: CLUSTER_CIDR, nodeCIDRMaskSize: 24 }, scheduler: true });
  const kubectlOk = (args: string[], input?: string): string => {
    const r = fx.cp.kubectl(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    return r.stdout;
  };

  it('starts quickly, and every process runs inside the namespace', () => {
    const { cp } = fx;
    console.log(
      `startup: ${cp.startupMs} ms (${Object.entries(cp.timings)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')})`,
    );
    expect(cp.url).toBe('https://127.0.0.1:6443');
    expect(cp.pids()).toHaveLength(4);
    const theirs = `net:[${fs.statSync(fx.netns.path).ino}]`;
    expect(theirs).not.toBe(netnsOf('self'));
    for (const pid of cp.pids()) expect(netnsOf(pid), `pid ${pid}`).toBe(theirs);
    // The apiserver listens on 127.0.0.1:6443 of the namespace, nowhere else.
    const listeners = fx.netns.sh(['ss', '-Hltn']);
    expect(listeners).toMatch(/127\.0\.0\.1:6443\b/);
    expect(listeners).not.toMatch(/(\*|0\.0\.0\.0|\[::\]):(6443|2379|10257|10259)\b/);
  });

  it('serving certificate names every address clients use', () => {
    const text = describeCert(path.join(fx.dir, 'pki/apiserver.crt'));
    for (const san of ['IP Address:127.0.0.1', 'IP Address:10.96.0.1', 'DNS:kubernetes', 'DNS:kubernetes.default.svc.cluster.local'])
      expect(text).toContain(san);
    expect(describeCert(path.join(fx.dir, 'pki/admin.crt'))).toMatch(/O\s*=\s*system:masters/);
  });

  it('answers kubectl get ns', () => {
    const names = kubectlOk(['get', 'ns', '-o', 'name']).trim().split('\n');
    expect(names).toEqual(expect.arrayContaining(['namespace/default', 'namespace/kube-system', 'namespace/kube-public']));
    expect(kubectlOk(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.groups}'])).toContain('system:masters');
  });

  it('assigns spec.podCIDRs to new Nodes (controller manager, --allocate-node-cidrs)', async () => {
    const node = (name: string): string => JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'weir.test/lab': 'true' } } });
    kubectlOk(['create', '-f', '-'], node('node-a'));
    kubectlOk(['create', '-f', '-'], node('node-b'));
    const t0 = Date.now();
    const cidrs = await eventually('podCIDRs of node-a and node-b', 30_000, () => {
      const out = fx.cp.kubectl([
        'get',
        'nodes',
        '-l',
        'weir.test/lab=true',
        '-o',
        'jsonpath={range .items[*]}{.metadata.name}={.spec.podCIDRs[*]}{"\\n"}{end}',
      ]);
      const m = new Map(
        out.stdout
          .trim()
          .split('\n')
          .map((l) => l.split('=') as [string, string]),
      );
      return m.get('node-a') && m.get('node-b') ? m : undefined;
    });
    console.log(`podCIDRs assigned in ${Date.now() - t0} ms: ${[...cidrs].map(([n, c]) => `${n} ${c}`).join(', ')}`);
    const a = cidrs.get('node-a') ?? '';
    const b = cidrs.get('node-b') ?? '';
    for (const c of [a, b]) expect(c).toMatch(/^10\.244\.\d{1,3}\.0\/24$/);
    expect(a).not.toBe(b);
  });

  it('enforces RBAC for a ServiceAccount token: list pods yes, list secrets no', () => {
    const { cp } = fx;
    kubectlOk(['create', 'namespace', 'rbac-test']);
    kubectlOk(['create', 'serviceaccount', 'reader', '-n', 'rbac-test']);
    kubectlOk(['create', 'clusterrole', 'weir-pod-reader', '--verb=get,list,watch', '--resource=pods']);
    kubectlOk(['create', 'clusterrolebinding', 'weir-pod-reader', '--clusterrole=weir-pod-reader', '--serviceaccount=rbac-test:reader']);
    const token = cp.serviceAccountToken('rbac-test', 'reader', 600);
    expect(token.split('.')).toHaveLength(3);
    const kubeconfig = cp.kubeconfigForToken(token, path.join(fx.dir, 'reader.kubeconfig'));
    const asReader = (args: string[]) => cp.kubectl(args, { kubeconfig });
    expect(asReader(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']).stdout).toBe('system:serviceaccount:rbac-test:reader');
    const pods = asReader(['get', 'pods', '-A']);
    expect(pods.stderr).not.toMatch(/forbidden/i);
    expect(pods.code).toBe(0);
    const secrets = asReader(['get', 'secrets', '-A']);
    expect(secrets.code).not.toBe(0);
    expect(secrets.stderr).toMatch(/forbidden.*cannot list resource "secrets"/i);

    // A client certificate identity from kubeconfigForUser, in no group with rights.
    const alice = cp.kubeconfigForUser('alice', ['weir:testers'], path.join(fx.dir, 'alice.kubeconfig'));
    expect(cp.kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], { kubeconfig: alice }).stdout).toBe('alice');
    expect(cp.kubectl(['get', 'pods', '-A'], { kubeconfig: alice }).stderr).toMatch(/forbidden/i);
  });

  it('stopApiServer makes the API unreachable; startApiServer brings it back with the data', async () => {
    const { cp } = fx;
    kubectlOk(['create', 'configmap', 'survivor', '-n', 'rbac-test', '--from-literal=k=v']);
    const before = cp.pids();
    await cp.stopApiServer();
    expect(cp.pids()).toHaveLength(before.length - 1);
    const down = cp.kubectl(['--request-timeout=5s', 'get', 'ns']);
    expect(down.code).not.toBe(0);
    expect(down.stderr).toMatch(/refused|unable to connect/i);

    const t0 = Date.now();
    await cp.startApiServer();
    console.log(`kube-apiserver restarted in ${Date.now() - t0} ms`);
    expect(cp.pids()).toHaveLength(before.length);
    expect(kubectlOk(['get', 'configmap', 'survivor', '-n', 'rbac-test', '-o', 'jsonpath={.data.k}'])).toBe('v');
    expect(kubectlOk(['get', 'node', 'node-a', '-o', 'jsonpath={.spec.podCIDR}'])).toMatch(/^10\.244\./);
    // Tokens stay valid: same signing key.
    expect(kubectlOk(['get', 'ns', 'default', '-o', 'name']).trim()).toBe('namespace/default');
  });

  it('stop leaves no process, and the namespace can be deleted', async () => {
    const { cp } = fx;
    const pids = cp.pids();
    expect(pids.length).toBeGreaterThanOrEqual(4);
    const t0 = Date.now();
    await cp.stop();
    console.log(`stopped in ${Date.now() - t0} ms`);
    expect(cp.pids()).toEqual([]);
    for (const pid of pids) expect(pidAlive(pid), `pid ${pid}`).toBe(false);
    expect(fs.readdirSync(path.join(fx.dir, 'logs')).sort()).toEqual(['etcd.log', 'kube-apiserver.log', 'kube-controller-manager.log', 'kube-scheduler.log']);
    const name = fx.netns.name;
    fx.netns.destroy();
    expect(listNetns()).not.toContain(name);
  });
});

describe('control plane advertising a non-loopback address', () => {
  // A loopback advertise address cannot go into the `kubernetes` Endpoints
  // (the apiserver logs "may not be in the loopback range" and publishes none);
  // the lab advertises a real address, as here (on lo of the test netns).
  const fx = useControlPlane('cp-addr', { advertiseAddress: '10.99.0.1', serviceCIDR: '10.97.0.0/16' });

  it('publishes the kubernetes Service at the advertised address', async () => {
    const { cp } = fx;
    expect(cp.url).toBe('https://10.99.0.1:6443');
    expect(cp.kubectl(['get', 'service', 'kubernetes', '-o', 'jsonpath={.spec.clusterIP}']).stdout).toBe('10.97.0.1');
    const addrs = await eventually('EndpointSlice of the kubernetes Service', 20_000, () => {
      const r = cp.kubectl([
        'get',
        'endpointslices',
        '-n',
        'default',
        '-l',
        'kubernetes.io/service-name=kubernetes',
        '-o',
        'jsonpath={.items[*].endpoints[*].addresses[*]}',
      ]);
      return r.code === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
    });
    expect(addrs).toBe('10.99.0.1');
    expect(fx.netns.sh(['ss', '-Hltn'])).toMatch(/10\.99\.0\.1:6443\b/);
  });
});

describe('control plane start failure', () => {
  it('reports the process log and leaves nothing running', async () => {
    const ns = createNetns('cp-fail');
    const dir = fs.mkdtempSync('/tmp/weir-cp-fail-');
    try {
      ns.sh(['ip', 'link', 'set', 'lo', 'up']);
      const progress: string[] = [];
      // 10.99.0.1 is on no interface of the namespace: the apiserver cannot bind.
      const err = await startControlPlane({ netns: ns.name, dir, advertiseAddress: '10.99.0.1', onProgress: (m) => progress.push(m) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ControlPlaneError);
      expect((err as Error).message).toMatch(/kube-apiserver.*exited with code 1/);
      expect((err as Error).message).toMatch(/cannot assign requested address/);
      const pids = progress
        .map((m) => /\(pid (\d+)/.exec(m)?.[1])
        .filter((p): p is string => !!p)
        .map(Number);
      expect(pids.length).toBeGreaterThanOrEqual(2);
      for (const pid of pids) expect(pidAlive(pid), `pid ${pid}`).toBe(false);
    } finally {
      ns.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a namespace that does not exist', async () => {
    await expect(startControlPlane({ netns: 'weirt-cp-missing-0', dir: '/tmp/weir-cp-never', advertiseAddress: '127.0.0.1' })).rejects.toThrow(
      /does not exist/,
    );
    expect(fs.existsSync('/tmp/weir-cp-never')).toBe(false);
  });
});
