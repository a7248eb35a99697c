// Host-firewall mode in the kernel (src/policy/host-compile.ts), then its CRD and the
// agent against a real kube-apiserver. Needs root.
//
// Part 1: the compiled table applied with LibNftables (through PolicyEngine,
// as the agent does) in a namespace acting as node n1 (10.97.0.1 on its
// uplink). Behind the uplink, a "lan" namespace plays everything off the
// node: node n2 (10.97.0.2), an outside client (10.97.0.3) and two pods of n2
// (10.244.2.5 app=client, 10.244.2.6 app=other), routed via n2. Two pod
// namespaces hang off n1 on veths named like weir's (weira…/weirb…):
// 10.244.1.5 (app=client) and 10.244.1.6 (app=other). A TCP server in n1
// listens on 8080 (the port a hostNetwork pod x/hn declares), 9999 (no pod
// declares it), and the failsafe ports 22, 6443, 10250. Nothing is configured
// in the root namespace.
//
// Part 2: the CRD (deploy/parts/05-crd-hostfirewallpolicy.yaml) on a real API
// server, which must accept valid policies and refuse invalid ones by its
// schema; and weir-agent (dist/bin) with --host-firewall: runs without the
// CRD, applies HostFirewallPolicies, reports them and the failsafes in
// /status, and removes every host chain when started without the flag.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cgroup2Root } from '../../src/agent/hostfw.ts';
import { tableDrift } from '../../src/agent/kernel-drift.ts';
import type { NflogPacket } from '../../src/netlink/nflog.ts';
import { NflogReader } from '../../src/netlink/nflog-handle.ts';
import { LibNftables } from '../../src/nft/libnftables.ts';
import { parseTableListing } from '../../src/nft/listing.ts';
import { NetlinkElementWriter } from '../../src/nft/netlink-elements.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';
import type { HostFirewallOptions } from '../../src/policy/host-compile.ts';
import type { ClusterState, HostFirewallPolicy, HostFirewallPolicySpec, NetworkPolicy, Pod } from '../../src/policy/types.ts';
import { Netns } from '../../src/sys/netns.ts';
import { agentRequest, eventually } from '../helpers/agent.ts';
import { useAgentNode } from '../helpers/agent-node.ts';
import { createNetns, sh, sweepLeakedNetns, type TestNetns } from '../helpers/netns.ts';
import { headersOf, readUntil } from '../helpers/nflog.ts';
import { waitEstablished } from '../helpers/wait.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const CRD = path.join(REPO, 'deploy/parts/05-crd-hostfirewallpolicy.yaml');
const GROUP = 77;

const NODE = '10.97.0.1';
const N2 = '10.97.0.2';
const OUTSIDE = '10.97.0.3';
const FAR_CLIENT = '10.244.2.5';
const FAR_OTHER = '10.244.2.6';
const POD_A = '10.244.1.5';
const POD_B = '10.244.1.6';

// ---- the cluster as the compiler sees it ----

const podObj = (ns: string, name: string, node: string, labels: Record<string, string>, ip: string, extra: Partial<Pod['spec']> = {}): Pod => ({
  metadata: { namespace: ns, name, uid: `uid-${name}`, labels },
  spec: { nodeName: node, containers: [{ ports: [] }], ...extra },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: node === 'n1' ? NODE : N2, hostIPs: [{ ip: node === 'n1' ? NODE : N2 }] },
});
const PODS: Pod[] = [
  podObj('x', 'hn', 'n1', { app: 'hn' }, NODE, { hostNetwork: true, containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }] }),
  podObj('x', 'client-a', 'n1', { app: 'client' }, POD_A),
  podObj('x', 'other-b', 'n1', { app: 'other' }, POD_B),
  podObj('y', 'far-client', 'n2', { app: 'client' }, FAR_CLIENT),
  podObj('y', 'far-other', 'n2', { app: 'other' }, FAR_OTHER),
];
const HN_POLICY: NetworkPolicy = {
  metadata: { namespace: 'x', name: 'hn-from-clients' },
  spec: {
    podSelector: { matchLabels: { app: 'hn' } },
    ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 'http' }] }],
  },
};
const hfp = (name: string, spec: HostFirewallPolicySpec): HostFirewallPolicy => ({ metadata: { name }, spec });
const DENY_ALL = hfp('deny-all', { nodeSelector: { matchLabels: { role: 'worker' } }, policyTypes: ['Ingress', 'Egress'] });
const state = (policies: NetworkPolicy[], hostPolicies: HostFirewallPolicy[] = []): ClusterState => ({
  namespaces: [{ metadata: { name: 'x' } }, { metadata: { name: 'y' } }],
  nodes: [
    { name: 'n1', internalIPs: [NODE], labels: { role: 'worker' } },
    { name: 'n2', internalIPs: [N2], labels: { role: 'cp' } },
  ],
  pods: PODS,
  policies,
  hostPolicies,
});

// ---- processes ----

const children: Array<ReturnType<typeof spawn>> = [];
function serve(ns: TestNetns, ports: number[], host = '0.0.0.0'): void {
  const js = `const net=require('net');for(const p of ${JSON.stringify(ports)})net.createServer(s=>{s.on('error',()=>{});s.end('hi')}).listen(p,'${host}');console.log('ready')`;
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', js], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
}

type Outcome = 'ok' | 'refused' | 'timeout';
/** One TCP connect from `ns` (optionally from `from`, in cgroup `cgroup`): what became of it. */
function tcp(ns: TestNetns, host: string, port: number, o: { from?: string; cgroup?: string; timeoutMs?: number } = {}): Outcome {
  const js =
    `const c=require('net').connect({host:'${host}',port:${port}${o.from ? `,localAddress:'${o.from}'` : ''}});` +
    `c.on('connect',()=>{console.log('ok');process.exit(0)});c.on('error',e=>{console.log(e.code==='ECONNREFUSED'?'refused':e.code);process.exit(0)});` +
    `setTimeout(()=>{console.log('timeout');process.exit(0)},${o.timeoutMs ?? 700})`;
  const argv = ['ip', 'netns', 'exec', ns.name, process.execPath, '-e', js];
  // In a cgroup: the shell moves itself there, then becomes the client.
  const r = o.cgroup
    ? spawnSync('sh', ['-c', `echo $$ > '${o.cgroup}/cgroup.procs' && exec "$@"`, 'sh', ...argv], { encoding: 'utf8', timeout: 10_000 })
    : spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  return r.stdout.trim() as Outcome;
}

const dportOf = (p: NflogPacket): number | undefined => headersOf(p)?.dport;
const srcOf = (p: NflogPacket): string | undefined => headersOf(p)?.src;

describe('host firewall in the kernel', () => {
  let node: TestNetns;
  let lan: TestNetns;
  let podA: TestNetns;
  let podB: TestNetns;
  let nodeNs: Netns;
  let nft: LibNftables;
  let engine: PolicyEngine;
  let cgroupDir: string | undefined;

  const sync = (policies: NetworkPolicy[], hostPolicies: HostFirewallPolicy[], host: HostFirewallOptions | undefined) => {
    const r = engine.sync(state(policies, hostPolicies), { options: host ? { hostFirewall: host } : {} });
    // The agent's drift check must read every host rule back as applied (nft prints some its own way).
    const applied = engine.applied;
    if (applied) expect(tableDrift(applied, parseTableListing(nft.list('inet', 'weir', { stateless: true }))).examples).toEqual([]);
    // And its cheap check counts the table's chains and sets as the kernel does (anonymous sets are not counted).
    const w = NetlinkElementWriter.open(nodeNs);
    try {
      if (applied) expect(w.tableInfo('inet', 'weir')?.use).toBe(applied.chains.size + applied.sets.size);
    } finally {
      w.close();
    }
    return r;
  };
  const table = (): string => nft.list('inet', 'weir');

  beforeAll(() => {
    sweepLeakedNetns('hostfw');
    node = createNetns('hostfw-node');
    lan = createNetns('hostfw-lan');
    podA = createNetns('hostfw-pa');
    podB = createNetns('hostfw-pb');
    for (const ns of [node, lan, podA, podB]) ns.sh(['ip', 'link', 'set', 'lo', 'up']);
    // Uplink: n1 10.97.0.1 <-> lan (n2 10.97.0.2, outside 10.97.0.3, n2's pods behind n2).
    sh('ip', ['-n', node.name, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'lan0', 'netns', lan.name]);
    node.sh(['ip', 'addr', 'add', `${NODE}/24`, 'dev', 'up0']);
    node.sh(['ip', 'link', 'set', 'up0', 'up']);
    for (const a of [`${N2}/24`, `${OUTSIDE}/24`, `${FAR_CLIENT}/32`, `${FAR_OTHER}/32`]) lan.sh(['ip', 'addr', 'add', a, 'dev', 'lan0']);
    lan.sh(['ip', 'link', 'set', 'lan0', 'up']);
    lan.sh(['ip', 'route', 'add', '10.244.1.0/24', 'via', NODE]);
    node.sh(['ip', 'route', 'add', '10.244.2.0/24', 'via', N2]);
    // Pods of n1 on weir-named veths, as the CNI plugin makes them.
    for (const [pod, ip, veth] of [
      [podA, POD_A, 'weira0'],
      [podB, POD_B, 'weirb0'],
    ] as const) {
      sh('ip', ['-n', node.name, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod.name]);
      node.sh(['ip', 'addr', 'add', '169.254.1.1/32', 'dev', veth]);
      node.sh(['ip', 'link', 'set', veth, 'up']);
      node.sh(['ip', 'route', 'add', `${ip}/32`, 'dev', veth, 'src', NODE]);
      pod.sh(['ip', 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
      pod.sh(['ip', 'link', 'set', 'eth0', 'up']);
      pod.sh(['ip', 'route', 'add', '169.254.1.1', 'dev', 'eth0']);
      pod.sh(['ip', 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'src', ip]);
    }
    node.sh(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    serve(node, [8080, 9999, 22, 6443, 10250]);
    serve(lan, [9999, 53]);
    serve(podA, [80]);
    nodeNs = Netns.open(node.path);
    nft = new LibNftables({ netns: nodeNs });
    engine = new PolicyEngine(nft, { nodeName: 'n1', nflogGroup: GROUP, logRate: '1000/second', logBurst: 1000 }, undefined, { strict: true });
  });

  afterAll(() => {
    for (const c of children) if (c.pid && c.exitCode === null) process.kill(c.pid, 'SIGKILL');
    nft?.close();
    nodeNs?.close();
    for (const ns of [podA, podB, lan, node]) ns?.destroy();
    // cgroups go with rmdir (their files cannot be deleted), once empty.
    if (cgroupDir) {
      for (const d of [path.join(cgroupDir, 'pod'), cgroupDir]) {
        try {
          fs.rmdirSync(d);
        } catch {
          // already gone
        }
      }
    }
  });

  it('the test network works before any rule', async () => {
    await eventually('the servers', () => (tcp(lan, NODE, 8080) === 'ok' && tcp(node, POD_A, 80) === 'ok' && tcp(node, N2, 9999) === 'ok' ? true : undefined));
    expect(tcp(podB, NODE, 9999)).toBe('ok');
    expect(tcp(lan, NODE, 8080, { from: FAR_OTHER })).toBe('ok');
  });

  it('a hostNetwork server protected by a NetworkPolicy: allowed and denied clients on the same node and on another; denials logged', async () => {
    const r = sync([HN_POLICY], [], {});
    expect(r.result.host?.hostNetworkPods.find((p) => p.name === 'hn')?.ingress?.policies).toEqual(['x/hn-from-clients']);
    const log = NflogReader.open(GROUP, nodeNs);
    try {
      expect(tcp(lan, NODE, 8080, { from: FAR_CLIENT })).toBe('ok');
      expect(tcp(lan, NODE, 8080, { from: FAR_OTHER })).toBe('timeout');
      expect(tcp(podA, NODE, 8080)).toBe('ok');
      expect(tcp(podB, NODE, 8080)).toBe('timeout');
      expect(tcp(lan, NODE, 8080, { from: OUTSIDE })).toBe('timeout');
      // The node itself, and ports no policy covers, stay open.
      expect(tcp(node, NODE, 8080)).toBe('ok');
      expect(tcp(lan, NODE, 9999, { from: FAR_OTHER })).toBe('ok');
      const pkts = await readUntil(log, (p) => srcOf(p) === FAR_OTHER);
      const denied = pkts.find((p) => srcOf(p) === FAR_OTHER) as NflogPacket;
      expect(denied.prefix).toMatch(/^weir deny host hprof_[0-9a-f]{12}_in: $/);
      expect(dportOf(denied)).toBe(8080);
    } finally {
      log.close();
    }
  });

  it('a HostFirewallPolicy that denies everything still leaves the failsafe ports open; node and own pods still talk', () => {
    const r = sync([HN_POLICY], [DENY_ALL], {});
    expect(r.result.host).toMatchObject({ ingress: 'enforce', egress: 'enforce', policies: [{ name: 'deny-all', mode: 'Enforce' }] });
    for (const port of [22, 6443, 10250]) expect(tcp(lan, NODE, port, { from: OUTSIDE }), `port ${port}`).toBe('ok');
    expect(tcp(lan, NODE, 9999, { from: OUTSIDE })).toBe('timeout');
    expect(tcp(lan, NODE, 9999, { from: FAR_CLIENT })).toBe('timeout');
    // The hostNetwork pod's port is its NetworkPolicy's business.
    expect(tcp(lan, NODE, 8080, { from: FAR_CLIENT })).toBe('ok');
    // The node's own pods, both ways.
    expect(tcp(podB, NODE, 9999)).toBe('ok');
    expect(tcp(node, POD_A, 80)).toBe('ok');
    // Egress: only the outbound failsafes (here DNS over TCP) leave the node.
    expect(tcp(node, N2, 9999)).toBe('timeout');
    expect(tcp(node, N2, 53)).toBe('ok');
    // Forwarded pod traffic is not host traffic.
    expect(tcp(podA, N2, 9999)).toBe('ok');
  });

  it('audit: an Audit policy, or the node-wide flag, logs what it would drop and drops nothing', async () => {
    const log = NflogReader.open(GROUP, nodeNs);
    try {
      const audit = hfp('deny-all', { ...DENY_ALL.spec, mode: 'Audit' } as HostFirewallPolicySpec);
      const r = sync([], [audit], {});
      expect(r.result.host).toMatchObject({ ingress: 'audit', egress: 'audit' });
      expect(tcp(lan, NODE, 9999, { from: OUTSIDE })).toBe('ok');
      expect(tcp(node, N2, 9999)).toBe('ok');
      const audited = (hook: string) => (p: NflogPacket) => p.prefix === `weir audit host ${hook}: ` && dportOf(p) === 9999;
      const pkts: NflogPacket[] = [];
      for (const hook of ['host_input', 'host_output']) if (!pkts.some(audited(hook))) pkts.push(...(await readUntil(log, audited(hook))));
      expect(pkts.some((p) => p.prefix.startsWith('weir deny'))).toBe(false);

      // An Enforce policy with the node in audit: the same.
      const a = sync([HN_POLICY], [DENY_ALL], { audit: true });
      expect(tcp(lan, NODE, 9999, { from: FAR_OTHER })).toBe('ok');
      expect(tcp(lan, NODE, 8080, { from: FAR_OTHER })).toBe('ok');
      await readUntil(log, (p) => /^weir audit host hprof_[0-9a-f]{12}_in: $/.test(p.prefix) && srcOf(p) === FAR_OTHER);
      const hostRules = [...a.result.ruleset.chains.values()]
        .filter((c) => /^(host_|hprof_|h[0-9a-f]{12}_)/.test(c.def.name))
        .flatMap((c) => c.rules.map((x) => x.rule));
      expect(hostRules.length).toBeGreaterThan(0);
      expect(hostRules.filter((x) => /\bdrop$/.test(x))).toEqual([]);
    } finally {
      log.close();
    }
  });

  it('egress of a hostNetwork pod, attributed by its cgroup (socket cgroupv2)', (ctx) => {
    const root = cgroup2Root('/sys/fs/cgroup');
    if (!root) {
      ctx.skip();
      return;
    }
    cgroupDir = path.join(root, `weirt-hostfw-${process.pid}`);
    fs.mkdirSync(path.join(cgroupDir, 'pod'), { recursive: true });
    const rel = path.relative('/sys/fs/cgroup', path.join(cgroupDir, 'pod'));
    const level = path.relative(root, path.join(cgroupDir, 'pod')).split('/').length;
    const egress: NetworkPolicy = {
      metadata: { namespace: 'x', name: 'hn-egress' },
      spec: { podSelector: { matchLabels: { app: 'hn' } }, policyTypes: ['Egress'], egress: [{ to: [{ ipBlock: { cidr: `${N2}/32` } }] }] },
    };
    const r = sync([egress], [], { cgroups: new Map([['x/hn', { path: rel, level }]]) });
    expect(r.result.host?.hostNetworkPods.find((p) => p.name === 'hn')?.egress).toMatchObject({ enforced: true, policies: ['x/hn-egress'] });
    expect(table()).toContain(`socket cgroupv2 level ${level} "${rel}" goto hprof_`);
    const inPod = path.join(cgroupDir, 'pod');
    expect(tcp(node, N2, 9999, { cgroup: inPod })).toBe('ok');
    expect(tcp(node, OUTSIDE, 9999, { cgroup: inPod })).toBe('timeout');
    // Failsafe ports are open to it too, and its node's own pods are judged by its policy.
    expect(tcp(node, OUTSIDE, 53, { cgroup: inPod })).toBe('ok');
    expect(tcp(node, POD_A, 80, { cgroup: inPod })).toBe('timeout');
    // Processes outside the pod's cgroup are the node, which no policy isolates here.
    expect(tcp(node, OUTSIDE, 9999)).toBe('ok');
    expect(tcp(node, POD_A, 80)).toBe('ok');
  });

  it('turning the mode off removes every host rule', () => {
    sync([HN_POLICY], [DENY_ALL], {});
    expect(table()).toContain('hook input');
    const r = sync([HN_POLICY], [DENY_ALL], undefined);
    expect(r.full).toBe(false);
    expect(r.result.host).toBeUndefined();
    const t = table();
    expect(t).not.toMatch(/hook (input|output)/);
    expect(t).not.toMatch(/chain (host_|hprof_|h[0-9a-f]{12}_)/);
    expect(t).not.toMatch(/host_failsafe|host_ports/);
    expect(tcp(lan, NODE, 9999, { from: OUTSIDE })).toBe('ok');
    expect(tcp(lan, NODE, 8080, { from: FAR_OTHER })).toBe('ok');
    expect(tcp(node, N2, 9999)).toBe('ok');
  });
});

// ---- part 2: the CRD and the agent against a real API server ----

describe('HostFirewallPolicy on a real API server, and weir-agent --host-firewall', () => {
  const n = useAgentNode('hostfw', { labels: { role: 'worker' } });
  const { fx, status, kubectl: ok } = n;

  /** kubectl that may fail: its exit code and output. */
  const kubectl = (args: string[], input?: string) => fx.cp.kubectl(args, input === undefined ? {} : { input });
  const apply = (obj: unknown) => kubectl(['apply', '-f', '-'], JSON.stringify(obj));
  const nftTable = (): string => {
    const r = fx.netns.run(['nft', 'list', 'table', 'inet', 'weir']);
    return r.code === 0 ? r.stdout : '';
  };

  it('the agent runs with --host-firewall before the CRD exists: ready, failsafes in force and listed, host policies reported unavailable', async () => {
    const agent = await n.start(['--host-firewall']);
    const s = await status();
    expect(s['config'].hostFirewall).toBe(true);
    expect(s['hostFirewall']).toMatchObject({
      enabled: true,
      audit: false,
      failsafe: {
        inbound: ['tcp:22', 'tcp:6443', 'tcp:10250', 'tcp:2379-2380', 'udp:67-68', 'udp:546-547'],
        outbound: ['tcp:53', 'udp:53', 'tcp:6443', 'tcp:2379-2380', 'udp:67-68', 'udp:546-547'],
      },
      policies: [],
      hostPolicyApi: { available: false },
      hostNetworkEgress: { enforced: false },
    });
    expect(nftTable()).toMatch(/chain host_input \{[^}]*hook input/s);
    // The agent still talks to its API server through its own host firewall.
    expect((await agentRequest(agent.socket, 'GET', '/readyz')).status).toBe(200);
    await agent.stop();
  });

  it('the CRD installs and the API server validates HostFirewallPolicies by its schema', async () => {
    ok(['apply', '--validate=strict', '-f', CRD]);
    await waitEstablished(ok, 'crd/hostfirewallpolicies.weir.dev');
    const valid = {
      apiVersion: 'weir.dev/v1alpha1',
      kind: 'HostFirewallPolicy',
      metadata: { name: 'workers' },
      spec: {
        nodeSelector: { matchLabels: { role: 'worker' } },
        ingress: [
          {
            from: [
              { nodeSelector: { matchLabels: { role: 'cp' } } },
              { podSelector: { matchLabels: { app: 'prom' } } },
              { ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } },
            ],
            ports: [{ port: 9100 }, { port: 'metrics' }, { protocol: 'UDP', port: 8000, endPort: 8100 }],
          },
        ],
      },
    };
    const r = kubectl(['apply', '--validate=strict', '-f', '-'], JSON.stringify(valid));
    expect(r.code, r.stderr).toBe(0);
    // Defaults filled in by the API server.
    const got = JSON.parse(ok(['get', 'hfp', 'workers', '-o', 'json']));
    expect(got.spec.mode).toBe('Enforce');
    expect(got.spec.ingress[0].ports[0].protocol).toBe('TCP');
    const invalid: Array<[string, unknown, RegExp]> = [
      ['no nodeSelector', {}, /nodeSelector: Required value/],
      ['bad mode', { nodeSelector: {}, mode: 'Warn' }, /mode: Unsupported value: "Warn"/],
      ['bad policyType', { nodeSelector: {}, policyTypes: ['Sideways'] }, /policyTypes\[0\]: Unsupported value/],
      [
        'two peer kinds',
        { nodeSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, nodeSelector: {} }] }] },
        /exactly one of ipBlock, nodeSelector/,
      ],
      ['empty peer', { nodeSelector: {}, ingress: [{ from: [{}] }] }, /exactly one of ipBlock, nodeSelector/],
      ['bad cidr', { nodeSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }, /cidr must be a valid CIDR/],
      [
        'except outside cidr',
        { nodeSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }] },
        /strictly inside cidr/,
      ],
      ['port 0', { nodeSelector: {}, ingress: [{ ports: [{ port: 0 }] }] }, /port/],
      ['bad port name', { nodeSelector: {}, ingress: [{ ports: [{ port: 'Not_A_Name' }] }] }, /port/],
      ['endPort with a named port', { nodeSelector: {}, egress: [{ ports: [{ port: 'http', endPort: 90 }] }] }, /endPort needs a numeric port/],
      ['endPort below port', { nodeSelector: {}, egress: [{ ports: [{ port: 90, endPort: 80 }] }] }, /endPort needs a numeric port/],
      ['bad protocol', { nodeSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }] }] }, /protocol: Unsupported value: "ICMP"/],
      ['In without values', { nodeSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }, /values must be non-empty for In/],
      ['unknown field', { nodeSelector: {}, ingres: [] }, /unknown field "spec.ingres"/],
    ];
    for (const [what, spec, msg] of invalid) {
      const res = kubectl(
        ['apply', '--validate=strict', '-f', '-'],
        JSON.stringify({ apiVersion: 'weir.dev/v1alpha1', kind: 'HostFirewallPolicy', metadata: { name: 'bad' }, spec }),
      );
      expect(res.code, `${what} was accepted`).not.toBe(0);
      expect(res.stderr, what).toMatch(msg);
    }
    kubectl(['delete', 'hfp', 'workers']);
  });

  it('the agent applies a HostFirewallPolicy selecting its node, reports it, and follows changes', async () => {
    const agent = await n.start(['--host-firewall', '--failsafe-inbound=tcp:22,tcp:6443,tcp:10250,tcp:2379-2380,udp:67-68']);
    expect((await status())['hostFirewall']!.hostPolicyApi).toEqual({ available: true });
    apply({
      apiVersion: 'weir.dev/v1alpha1',
      kind: 'HostFirewallPolicy',
      metadata: { name: 'lockdown' },
      spec: { nodeSelector: { matchLabels: { role: 'worker' } }, ingress: [{ ports: [{ port: 9100 }] }] },
    });
    apply({
      apiVersion: 'weir.dev/v1alpha1',
      kind: 'HostFirewallPolicy',
      metadata: { name: 'elsewhere' },
      spec: { nodeSelector: { matchLabels: { role: 'cp' } } },
    });
    const s = await eventually('the policy applied', async () => {
      const st = await status();
      return st['hostFirewall']!.policies.length > 0 ? st : undefined;
    });
    expect(s['hostFirewall']).toMatchObject({
      ingress: 'enforce',
      egress: 'open',
      policies: [{ name: 'lockdown', mode: 'Enforce', ingress: true, egress: false }],
    });
    expect(s['hostFirewall']!.failsafe.inbound).toEqual(['tcp:22', 'tcp:6443', 'tcp:10250', 'tcp:2379-2380', 'udp:67-68']);
    const t = nftTable();
    expect(t).toContain('comment "HostFirewallPolicy lockdown ingress[0]"');
    expect(t).toContain('log prefix "weir deny host host_input: "');
    const hp = (await agentRequest(agent.socket, 'GET', '/hostpolicies')).json as { policies: Array<{ name: string; selectsThisNode: boolean }> };
    expect(hp.policies.map((p) => [p.name, p.selectsThisNode]).sort()).toEqual([
      ['elsewhere', false],
      ['lockdown', true],
    ]);
    // Still reachable: its API server (failsafe 6443, and established replies).
    expect((await agentRequest(agent.socket, 'GET', '/readyz')).status).toBe(200);
    kubectl(['label', 'node', 'n1', 'role=cp', '--overwrite']);
    await eventually('the other policy to select n1', async () => ((await status())['hostFirewall']!.policies[0]?.name === 'elsewhere' ? true : undefined));
    expect(nftTable()).not.toContain('HostFirewallPolicy lockdown');
    kubectl(['label', 'node', 'n1', 'role=worker', '--overwrite']);
    await agent.stop();
  });

  it('started without --host-firewall, the agent removes every host chain', async () => {
    expect(nftTable()).toMatch(/hook input/);
    await n.start();
    const t = nftTable();
    expect(t).not.toMatch(/hook (input|output)/);
    expect(t).not.toMatch(/host_|hprof_|HostFirewallPolicy/);
    expect((await status())['hostFirewall']).toMatchObject({ enabled: false, policies: [] });
  });
});
