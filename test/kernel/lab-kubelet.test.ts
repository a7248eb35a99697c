// lab/kubelet: the lab's kubelet stand-in against a real control plane
// (apiserver, controller manager, scheduler) and the real weir plugin.
//
// Topology, all in test namespaces: the control plane's namespace has the
// apiserver on 172.18.0.2 (lo); one node namespace is joined to it by a veth
// (cp0 172.18.250.1/30 ↔ eth0 172.18.250.2/30 + node IP 172.18.0.3/32, with
// /32 routes each way). The stand-in runs in this process (the root
// namespace) and reaches the API only through kubectl inside the node's
// namespace.
//
// Needs root, the pinned Kubernetes binaries (scripts/k8s/build) and
// `npm run build` (dist/bin/weir).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { k8sBinDir } from '../../lab/controlplane/components.ts';
import { expandVars, planContainer } from '../../lab/kubelet/images.ts';
import { KubeletStandIn, loadNetworkConfig } from '../../lab/kubelet/index.ts';
import { podNetnsName } from '../../lab/kubelet/pod.ts';
import { eventually } from '../helpers/agent.ts';
import { hostVethName, weirBinary } from '../helpers/cni.ts';
import { useControlPlane } from '../helpers/controlplane.ts';
import { type TestNetns, createNetns, listNetns, sh } from '../helpers/netns.ts';

const isRoot = process.getuid?.() === 0;
const REPO = path.resolve(import.meta.dirname, '../..');
const NODE = 'weir-worker';
const NODE_IP = '172.18.0.3';
const API_IP = '172.18.0.2';

describe('image → command mapping', () => {
  const ctx = { repo: '/repo', k8sBinDir: '/k8s' };
  const pod = { metadata: { namespace: 'x', name: 'a' } };
  it('agnhost runs the pinned binary with the args', () => {
    const p = planContainer(pod, { image: 'registry.k8s.io/e2e-test-images/agnhost:2.53', args: ['netexec', '--http-port=8080'] }, new Map(), ctx);
    expect(p.argv).toEqual(['/k8s/agnhost', 'netexec', '--http-port=8080']);
    const c = planContainer(pod, { image: 'agnhost', command: ['/agnhost', 'serve-hostname'], args: ['--port=$(PORT)'] }, new Map([['PORT', '9376']]), ctx);
    expect(c.argv).toEqual(['/k8s/agnhost', 'serve-hostname', '--port=9376']);
  });
  it('weir maps /usr/local/bin to dist/bin and mounts the image layout', () => {
    const p = planContainer(pod, { image: 'weir:0.1.0', command: ['/usr/local/bin/weir-agent', 'install-cni', '--node-name=$(NODE_NAME)'] }, new Map([['NODE_NAME', 'n1']]), ctx);
    expect(p.argv).toEqual(['/repo/dist/bin/weir-agent', 'install-cni', '--node-name=n1']);
    expect(p.imageMounts).toEqual([{ src: '/repo/dist/bin', dst: '/usr/local/lib/weir' }]);
    expect(p.mountsVolumes).toBe(true);
  });
  it('other images serve their declared ports with netprobe, or sleep', () => {
    const p = planContainer(pod, { image: 'nginx:1.27', ports: [{ containerPort: 80 }, { containerPort: 53, protocol: 'UDP' }, { containerPort: 81, protocol: 'SCTP' }] }, new Map(), ctx);
    expect(p.kind).toBe('netprobe');
    expect(p.argv.slice(1)).toEqual(['/repo/src/probe/serve-main.ts', '--name', 'x/a', '--tcp', '80', '--udp', '53', '--sctp', '81']);
    expect(planContainer(pod, { image: 'busybox' }, new Map(), ctx).argv).toEqual(['/usr/bin/sleep', 'infinity']);
    expect(planContainer(pod, { image: 'busybox', command: ['sh', '-c', 'sleep 5'] }, new Map(), ctx, true).kind).toBe('noop');
  });
  it('expands $(VAR) as kubelet does', () => {
    const vars = new Map([['A', '1']]);
    expect(expandVars('$(A)-$(B)-$$(A)-$x-$', vars)).toBe('1-$(B)-$(A)-$x-$');
  });
});

describe.skipIf(!isRoot)('kubelet stand-in against a real control plane', () => {
  const fx = useControlPlane('labkubelet', {
    advertiseAddress: API_IP,
    controllerManager: { clusterCIDR: '10.244.0.0/16', nodeCIDRMaskSize: 24 },
    scheduler: true,
  });
  let node: TestNetns;
  let root: string;
  let kubelet: KubeletStandIn | undefined;
  let second: KubeletStandIn | undefined;
  const logs: string[] = [];
  let podCIDR = '';

  const kubectl = (args: string[], input?: string): string => {
    const r = fx.cp.kubectl(args, input === undefined ? {} : { input });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  // Anything that waits must not block this process: the stand-in runs in it.
  const kubectlAsync = async (args: string[]): Promise<string> => {
    const r = await fx.cp.kubectlAsync(args, { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}\n${dumpLogs()}`);
    return r.stdout;
  };
  const getJson = (args: string[]): any => JSON.parse(kubectl([...args, '-o', 'json']));
  const apply = (obj: unknown): string => kubectl(['apply', '-f', '-'], JSON.stringify(obj));
  const readyCondition = (): string | undefined => (getJson(['get', 'node', NODE]).status?.conditions ?? []).find((c: any) => c.type === 'Ready')?.status;
  const ipamDir = (): string => path.join(root, 'var/lib/cni/weir/weir');
  const ipamFiles = (): string[] => (fs.existsSync(ipamDir()) ? fs.readdirSync(ipamDir()).filter((f) => /^[0-9a-f.:]+$/.test(f) && f.includes('.')) : []);
  const inPodCidr = (ip: string): boolean => ip.startsWith(podCIDR.split('.').slice(0, 3).join('.') + '.');
  const curl = (netnsPath: string, url: string): { code: number; out: string } => {
    const r = spawnSync('nsenter', [`--net=${netnsPath}`, '--', 'curl', '-s', '--http0.9', '--max-time', '2', url], { encoding: 'utf8', timeout: 10_000 });
    return { code: r.status ?? -1, out: r.stdout ?? '' };
  };
  const pidAlive = (pid: number): boolean => fs.existsSync(`/proc/${pid}`);
  const dumpLogs = (): string => logs.slice(-60).join('\n');

  beforeAll(() => {
    weirBinary();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-lab-kubelet-'));
    node = createNetns('labknode');
    sh('ip', ['link', 'add', 'eth0', 'netns', node.name, 'type', 'veth', 'peer', 'name', 'cp0', 'netns', fx.netns.name]);
    fx.netns.sh(['ip', 'addr', 'add', '172.18.250.1/30', 'dev', 'cp0']);
    fx.netns.sh(['ip', 'link', 'set', 'cp0', 'up']);
    fx.netns.sh(['ip', 'route', 'add', `${NODE_IP}/32`, 'via', '172.18.250.2']);
    node.sh(['ip', 'link', 'set', 'lo', 'up']);
    node.sh(['ip', 'addr', 'add', '172.18.250.2/30', 'dev', 'eth0']);
    node.sh(['ip', 'addr', 'add', `${NODE_IP}/32`, 'dev', 'eth0']);
    node.sh(['ip', 'link', 'set', 'eth0', 'up']);
    node.sh(['ip', 'route', 'add', `${API_IP}/32`, 'via', '172.18.250.1', 'src', NODE_IP]);
  });

  afterAll(async () => {
    await kubelet?.stop();
    await second?.stop();
    node?.destroy();
    if (root) fs.rmSync(root, { recursive: true, force: true });
  }, 60_000);

  const newKubelet = async (): Promise<KubeletStandIn> => {
    const binDir = await k8sBinDir();
    return new KubeletStandIn({
      nodeName: NODE,
      netns: node.name,
      nodeIP: NODE_IP,
      controlPlane: true,
      kubeconfig: fx.cp.adminKubeconfig,
      kubectl: path.join(binDir, 'kubectl'),
      apiServer: { host: API_IP, port: 6443, caFile: fx.cp.caFile },
      dirs: { root },
      repo: REPO,
      k8sBinDir: binDir,
      log: (msg, fields) => logs.push(`${new Date().toISOString().slice(11, 23)} ${msg} ${JSON.stringify(fields ?? {})}`),
      statusIntervalMs: 1000,
    });
  };

  it('registers the Node, which gets podCIDRs and stays NotReady without a CNI config', async () => {
    kubelet = await newKubelet();
    await kubelet.start();
    const n = getJson(['get', 'node', NODE]);
    expect(n.metadata.labels).toMatchObject({ 'kubernetes.io/hostname': NODE, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'node-role.kubernetes.io/control-plane': '' });
    expect(n.status.addresses).toEqual(expect.arrayContaining([{ type: 'InternalIP', address: NODE_IP }]));
    expect(n.status.nodeInfo).toMatchObject({ kubeletVersion: 'v1.35.4', containerRuntimeVersion: 'weir-lab://0.1' });
    expect(n.status.allocatable).toMatchObject({ cpu: '2', memory: '8Gi', pods: '110' });
    podCIDR = await eventually('spec.podCIDRs', () => getJson(['get', 'node', NODE]).spec?.podCIDRs?.[0] as string | undefined);
    expect(podCIDR).toMatch(/^10\.244\.\d+\.0\/24$/);
    const lease = getJson(['get', 'lease', '-n', 'kube-node-lease', NODE]);
    expect(lease.spec.holderIdentity).toBe(NODE);
    expect(readyCondition()).toBe('False');
    expect(loadNetworkConfig(path.join(root, 'etc/cni/net.d'))).toBeUndefined();
  });

  it('turns Ready once a conflist appears in its CNI conf dir', async () => {
    const bin = path.join(root, 'opt/cni/bin');
    for (const f of ['weir', 'koffi.node']) fs.copyFileSync(path.join(REPO, 'dist/bin', f), path.join(bin, f));
    fs.chmodSync(path.join(bin, 'weir'), 0o755);
    const conflist = { cniVersion: '1.0.0', name: 'weir', plugins: [{ type: 'weir', podCIDRs: [podCIDR] }] };
    fs.writeFileSync(path.join(root, 'etc/cni/net.d/10-weir.conflist'), JSON.stringify(conflist));
    await eventually('Ready=True', () => (readyCondition() === 'True' ? true : undefined), 15_000, 250);
    // The node lifecycle controller lifts the not-ready taint once Ready.
    await eventually('no not-ready taint', () => ((getJson(['get', 'node', NODE]).spec?.taints ?? []).length === 0 ? true : undefined), 20_000, 250);
  });

  it('runs pods: CNI ADD with IPs from the podCIDR, status Running/Ready, containers answering in their netns', async () => {
    apply({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'default' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { terminationGracePeriodSeconds: 2, containers: [{ name: 'nginx', image: 'nginx:1.27', ports: [{ containerPort: 80 }] }] } },
      },
    });
    apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'agn', namespace: 'default', labels: { app: 'agn' } },
      spec: { containers: [{ name: 'agnhost', image: 'registry.k8s.io/e2e-test-images/agnhost:2.53', args: ['netexec', '--http-port=8080'], ports: [{ containerPort: 8080 }] }] },
    });
    apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'hostnet', namespace: 'default' },
      spec: { hostNetwork: true, containers: [{ name: 'c', image: 'busybox' }] },
    });
    let pods: any[] = [];
    try {
      pods = await eventually(
        '4 pods Running and Ready',
        () => {
          const items = getJson(['get', 'pods', '-n', 'default']).items as any[];
          const ok = items.filter((p) => p.status?.phase === 'Running' && (p.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True'));
          return ok.length === 4 && items.length === 4 ? items : undefined;
        },
        45_000,
        250,
      );
    } catch (e) {
      throw new Error(`${String(e)}\n${kubectl(['get', 'pods', '-A', '-o', 'wide'])}\n${dumpLogs()}`);
    }
    const web = pods.filter((p) => p.metadata.labels?.app === 'web');
    const agn = pods.find((p) => p.metadata.name === 'agn');
    const hostnet = pods.find((p) => p.metadata.name === 'hostnet');
    expect(web).toHaveLength(2);
    for (const p of [...web, agn]) {
      expect(inPodCidr(p.status.podIP), `${p.metadata.name} ${p.status.podIP} in ${podCIDR}`).toBe(true);
      expect(p.status.podIPs).toEqual([{ ip: p.status.podIP }]);
      expect(p.status.hostIP).toBe(NODE_IP);
      expect(p.status.containerStatuses[0]).toMatchObject({ ready: true, started: true, restartCount: 0, state: { running: {} } });
    }
    expect(hostnet.status.podIP).toBe(NODE_IP);
    expect(kubelet!.podNetns('default', 'hostnet')).toBe(`/var/run/netns/${node.name}`);
    expect(getJson(['get', 'deployment', 'web']).status.availableReplicas).toBe(2);

    // IPAM records in the node's own /var/lib/cni (the bind mount worked).
    expect(ipamFiles().sort()).toEqual([...web, agn].map((p) => p.status.podIP).sort());

    // One pod to the other, and agnhost's /hostname.
    const [a, b] = web as [any, any];
    const aNetns = kubelet!.podNetns('default', a.metadata.name);
    expect(aNetns).toBe(`/var/run/netns/${podNetnsName(a.metadata.uid)}`);
    const got = await eventually('web b answers web a', () => {
      const r = curl(aNetns!, `http://${b.status.podIP}:80/`);
      return r.code === 0 && r.out.trim() ? r.out.trim() : undefined;
    });
    expect(got).toBe(`default/${b.metadata.name}`);
    const hostname = await eventually('agnhost /hostname', () => {
      const r = curl(aNetns!, `http://${agn.status.podIP}:8080/hostname`);
      return r.code === 0 && r.out ? r.out.trim() : undefined;
    });
    expect(hostname).toBe('agn');
    // The stand-in's status patches carry metadata.uid: the API refuses one for another pod of the same name.
    expect(fx.cp.kubectl(['patch', 'pod', 'agn', '--subresource=status', '--type=merge', '-p', JSON.stringify({ metadata: { uid: '00000000-0000-0000-0000-000000000000' }, status: {} })]).code).not.toBe(0);
  });

  it('reports a failing CNI ADD in the pod status and retries until it works', async () => {
    const broken = path.join(root, 'etc/cni/net.d/00-broken.conflist');
    fs.writeFileSync(broken, JSON.stringify({ cniVersion: '1.0.0', name: 'broken', plugins: [{ type: 'no-such-plugin' }] }));
    try {
      apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'late', namespace: 'default' }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: 'curl' }] } });
      const msg = await eventually(
        'the ADD error in the pod conditions',
        () => {
          const c = (getJson(['get', 'pod', 'late']).status?.conditions ?? []).find((x: any) => x.type === 'PodReadyToStartContainers');
          return c?.status === 'False' && c.message ? (c.message as string) : undefined;
        },
        20_000,
        250,
      );
      expect(msg).toContain('failed to find plugin "no-such-plugin"');
      const events = kubectl(['get', 'events', '--field-selector', 'involvedObject.name=late', '-o', 'jsonpath={.items[*].reason}']);
      expect(events).toContain('FailedCreatePodSandBox');
    } finally {
      fs.rmSync(broken, { force: true });
    }
    await eventually('late Running after the config is fixed', () => (getJson(['get', 'pod', 'late']).status?.phase === 'Running' ? true : undefined), 20_000, 250);
    await kubectlAsync(['delete', 'pod', 'late', '--wait=true', '--timeout=30s']);
  });

  it('runs init containers, then finishes a restartPolicy=Never pod and releases its sandbox', async () => {
    apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'once', namespace: 'default' },
      spec: {
        restartPolicy: 'Never',
        initContainers: [{ name: 'init', image: 'busybox', command: ['sh', '-c', 'exit 0'] }],
        containers: [{ name: 'main', image: 'agnhost', command: ['/bin/sh', '-c', 'echo "$MY_NAME on $NODE"'], env: [{ name: 'MY_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }, { name: 'NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }] }],
      },
    });
    const p = await eventually('once Succeeded', () => {
      const x = getJson(['get', 'pod', 'once']);
      return x.status?.phase === 'Succeeded' ? x : undefined;
    }, 30_000, 250);
    expect(p.status.initContainerStatuses[0].state.terminated.exitCode).toBe(0);
    expect(p.status.containerStatuses[0].state.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(fs.readFileSync(path.join(root, 'pods/default_once/main.log'), 'utf8')).toContain(`once on ${NODE}`);
    await eventually('its sandbox gone', () => (kubelet!.podNetns('default', 'once') === undefined && !listNetns().includes(podNetnsName(p.metadata.uid)) ? true : undefined));
    expect(ipamFiles()).not.toContain(p.status.podIP);
    await kubectlAsync(['delete', 'pod', 'once', '--wait=true', '--timeout=30s']);
  });

  it('restarts a failing container with backoff and counts the restarts', async () => {
    apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'crash', namespace: 'default' },
      spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: 'agnhost', command: ['/bin/sh', '-c', 'echo started; exit 3'] }] },
    });
    const cs = await eventually('restartCount >= 2', () => {
      const c = getJson(['get', 'pod', 'crash']).status?.containerStatuses?.[0];
      return c?.restartCount >= 2 ? c : undefined;
    }, 20_000, 250);
    expect(cs.lastState.terminated).toMatchObject({ exitCode: 3, reason: 'Error' });
    expect(fs.readFileSync(path.join(root, 'pods/default_crash/c.log'), 'utf8').match(/^started$/gm)?.length).toBeGreaterThanOrEqual(2);
    await kubectlAsync(['delete', 'pod', 'crash', '--wait=true', '--timeout=30s']);
  });

  it('deletes a pod: SIGTERM, CNI DEL (IPAM record and veth gone), netns gone, pod object gone', async () => {
    const web = (getJson(['get', 'pods', '-l', 'app=web']).items as any[])[0];
    const name = web.metadata.name as string;
    const rec = JSON.parse(fs.readFileSync(path.join(root, `pods/default_${name}/sandbox-${web.metadata.uid}.json`), 'utf8'));
    const veth = hostVethName(rec.containerId, 'eth0');
    expect(node.run(['ip', 'link', 'show', 'dev', veth]).code).toBe(0);
    const pids = kubelet!.pods().find((p) => p.name === name)!.pids;
    expect(pids.length).toBe(1);
    await kubectlAsync(['delete', 'pod', name, '--wait=true', '--timeout=30s']);
    expect(fx.cp.kubectl(['get', 'pod', name]).code).not.toBe(0);
    expect(ipamFiles()).not.toContain(web.status.podIP);
    expect(node.run(['ip', 'link', 'show', 'dev', veth]).code).not.toBe(0);
    expect(listNetns()).not.toContain(podNetnsName(web.metadata.uid));
    expect(pids.filter(pidAlive)).toEqual([]);

    // Force deletion (the object is gone at once): torn down all the same.
    const agn = getJson(['get', 'pod', 'agn']);
    const agnPids = kubelet!.pods().find((p) => p.name === 'agn')!.pids;
    kubectl(['delete', 'pod', 'agn', '--grace-period=0', '--force']);
    await eventually('agn torn down', () => (kubelet!.podNetns('default', 'agn') === undefined && !listNetns().includes(podNetnsName(agn.metadata.uid)) ? true : undefined));
    expect(ipamFiles()).not.toContain(agn.status.podIP);
    expect(agnPids.filter(pidAlive)).toEqual([]);
  });

  it('survives an API server restart: the watch resumes, heartbeats go on, a new pod runs', async () => {
    await fx.cp.stopApiServer();
    await new Promise((r) => setTimeout(r, 2000));
    await fx.cp.startApiServer();
    apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'after', namespace: 'default' }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: 'postgres', ports: [{ containerPort: 5432 }] }] } });
    try {
      const p = await eventually('after Running', () => {
        const x = getJson(['get', 'pod', 'after']);
        return x.status?.phase === 'Running' ? x : undefined;
      }, 30_000, 250).catch((e: unknown) => {
        throw new Error(`${String(e)}\n${dumpLogs()}`);
      });
      expect(inPodCidr(p.status.podIP)).toBe(true);
      await eventually('the lease renewed after the outage', () => {
        const lease = getJson(['get', 'lease', '-n', 'kube-node-lease', NODE]);
        return Date.now() - Date.parse(lease.spec.renewTime) < 12_000 ? true : undefined;
      });
    } finally {
      await kubectlAsync(['delete', 'pod', 'after', '--wait=true', '--timeout=30s']);
    }
  });

  it('stop() tears down every pod and leaves no netns, process or IPAM record', async () => {
    // The Deployment's replacement comes up first.
    await eventually('2 web pods running', () => (kubelet!.pods().filter((p) => p.name.startsWith('web-') && p.phase === 'Running').length === 2 ? true : undefined), 30_000, 250);
    const before = kubelet!.pods();
    const pids = before.flatMap((p) => p.pids);
    const netns = before.filter((p) => !p.hostNetwork).map((p) => path.basename(p.netnsPath ?? ''));
    expect(pids.length, `${JSON.stringify(before)}\n${dumpLogs()}`).toBeGreaterThanOrEqual(3);
    await kubelet!.stop();
    expect(kubelet!.pods()).toEqual([]);
    expect(pids.filter(pidAlive)).toEqual([]);
    expect(listNetns().filter((n) => netns.includes(n))).toEqual([]);
    expect(ipamFiles()).toEqual([]);
    expect(node.ipJson<{ ifname: string }[]>(['link', 'show']).map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);
  });

  it('a new life runs the weir DaemonSet: install-cni, agent Ready via /readyz, its conflist; pods attach again, hostPort via portmap', async () => {
    for (const f of ['etc/cni/net.d/10-weir.conflist', 'opt/cni/bin/weir', 'opt/cni/bin/koffi.node']) fs.rmSync(path.join(root, f));
    second = await newKubelet();
    await second.start();
    await eventually('NotReady without a CNI config', () => (readyCondition() === 'False' ? true : undefined), 10_000, 250);
    for (const f of ['10-serviceaccount.yaml', '20-clusterrole.yaml', '30-clusterrolebinding.yaml', '40-daemonset.yaml']) kubectl(['apply', '-f', path.join(REPO, 'deploy/parts', f)]);
    try {
      await eventually('DaemonSet weir ready on the node', () => (getJson(['get', 'ds', 'weir', '-n', 'kube-system']).status?.numberReady === 1 ? true : undefined), 45_000, 500);
    } catch (e) {
      const agentLog = path.join(root, 'pods');
      const logsText = fs.readdirSync(agentLog).filter((d) => d.startsWith('kube-system_weir-')).flatMap((d) => fs.readdirSync(path.join(agentLog, d)).filter((f) => f.endsWith('.log')).map((f) => `--- ${d}/${f}\n${fs.readFileSync(path.join(agentLog, d, f), 'utf8').slice(-3000)}`));
      throw new Error(`${String(e)}\n${kubectl(['get', 'pods', '-A', '-o', 'wide'])}\n${logsText.join('\n')}\n${dumpLogs()}`);
    }
    // The init container installed the plugin into the node's /opt/cni/bin.
    expect(fs.statSync(path.join(root, 'opt/cni/bin/weir')).size).toBe(fs.statSync(path.join(REPO, 'dist/bin/weir')).size);
    const conf = loadNetworkConfig(path.join(root, 'etc/cni/net.d'));
    expect(conf?.list.plugins.map((p) => p.type)).toEqual(['weir', 'portmap']);
    expect(conf?.list.plugins[0]).toMatchObject({ podCIDRs: [podCIDR], agentSocket: '/run/weir/agent.sock', dataDir: '/var/lib/cni/weir' });
    expect(fs.existsSync(path.join(root, 'run/weir/agent.sock'))).toBe(true);
    await eventually('Ready=True', () => (readyCondition() === 'True' ? true : undefined), 15_000, 250);

    apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'hp', namespace: 'default' },
      spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'c', image: 'nginx', ports: [{ containerPort: 80, hostPort: 30080 }] }] },
    });
    const running = await eventually('web pods and hp Running again', () => {
      const items = (getJson(['get', 'pods', '-n', 'default']).items as any[]).filter((p) => p.metadata.name.startsWith('web-') || p.metadata.name === 'hp');
      return items.length === 3 && items.every((p) => p.status?.phase === 'Running' && p.status.podIP && inPodCidr(p.status.podIP)) ? items : undefined;
    }, 30_000, 250).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${kubectl(['get', 'pods', '-A', '-o', 'wide'])}\n${dumpLogs()}`);
    });
    expect(ipamFiles().sort()).toEqual(running.map((p) => p.status.podIP).sort());
    const hp = running.find((p) => p.metadata.name === 'hp');
    const viaHostPort = await eventually('hostPort 30080 on the node IP', () => {
      const r = curl(`/var/run/netns/${node.name}`, `http://${NODE_IP}:30080/`);
      return r.code === 0 && r.out.trim() ? r.out.trim() : undefined;
    });
    expect(viaHostPort).toBe('default/hp');
    expect(hp.status.podIP).toBeTruthy();

    const pids = second.pods().flatMap((p) => p.pids);
    await second.stop({ deletePods: true });
    expect(pids.filter(pidAlive)).toEqual([]);
    expect(ipamFiles()).toEqual([]);
    expect(node.ipJson<{ ifname: string }[]>(['link', 'show']).map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);
    await eventually('hp deleted from the API', () => (fx.cp.kubectl(['get', 'pod', 'hp']).code !== 0 ? true : undefined));
  });
});
