// ClusterNetworkPolicy domainNames on the lab's kind cluster, through the
// cluster's own CoreDNS: the names a pod may reach are resolved by the
// kube-dns Service the kubelet wrote into every pod's resolv.conf, answered
// by CoreDNS pods that may run on another node, and the answer is held on the
// client's node until its addresses are in the kernel.
//
//   - CoreDNS gets a server block for `weir.test` (template answers, TTL 5 s):
//     `n<a>-<b>.allowed.weir.test` -> 10.77.<a>.<b>, `exact.weir.test` ->
//     10.78.0.1, `denied.weir.test` -> 10.77.15.250. Those addresses are a
//     `local` route in the cluster's own network namespace (the nodes' gateway,
//     nothing beyond it), where one TCP server answers on all of them.
//   - Two Admin policies select the client: Accept DNS to the kube-dns pods and
//     domainNames `*.allowed.weir.test`, `exact.weir.test`; then Deny the rest.
//     A second pod, `other`, is selected by nothing.
//   - 1,000 fresh lookups of distinct names, each followed at once by one
//     connection whose timeout is shorter than the SYN's first retransmission:
//     none may be refused.
//   - An unlisted name resolves, and its address stays denied; weirctl trace
//     agrees with the kernel on both.
// CoreDNS's configuration, the routes and the server are restored or removed
// at the end, even when a test failed.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inNetns, kubectl, labState, podNetnsPath, run } from '../../lab/commands/common.ts';
import { AGNHOST_IMAGE, kindPaths } from '../../lab/kind.ts';
import { type LabPod, type LabState, labPods } from '../../lab/state.ts';
import { connectOnceScript, dnsClientScript, type Lookup, parseLookups, quantile } from '../helpers/dns-client.ts';
import { itKeepsInvariants, lab, REPO, UP_TIMEOUT_MS } from '../helpers/lab.ts';
import { eventually, waitEstablished } from '../helpers/wait.ts';

const NODE = path.join(REPO, 'node_modules/.bin/node');
const CRD = path.join(REPO, 'deploy/crds/clusternetworkpolicies.experimental.yaml');
const CRD_NAME = 'crd/clusternetworkpolicies.policy.networking.k8s.io';
const KIND_NETNS = kindPaths().netns;
const NS = 'e2e-cnp-dns';
const PORT = 8080;
const DENIED_IP = '10.77.15.250';
const EXACT_IP = '10.78.0.1';
const ROUTES = ['10.77.0.0/20', `${EXACT_IP}/32`];
const LOOKUPS = 1000;
const POLICY_NAMES = ['e2e-dns-client-names', 'e2e-dns-client-deny-rest'];

// The server block this test adds to CoreDNS's Corefile (and removes again).
const ZONE_START = 'weir.test:53 {';
const ZONE = `${ZONE_START}
    errors
    template IN A weir.test {
        match "^n(?P<a>[0-9]+)-(?P<b>[0-9]+)[.]allowed[.]weir[.]test[.]$"
        answer "{{ .Name }} 5 IN A 10.77.{{ .Group.a }}.{{ .Group.b }}"
        fallthrough
    }
    template IN A weir.test {
        match "^exact[.]weir[.]test[.]$"
        answer "{{ .Name }} 5 IN A ${EXACT_IP}"
        fallthrough
    }
    template IN A weir.test {
        match "^denied[.]weir[.]test[.]$"
        answer "{{ .Name }} 5 IN A ${DENIED_IP}"
        fallthrough
    }
    template ANY ANY weir.test {
        rcode NXDOMAIN
    }
}
`;

/** The Corefile without this test's block (a block left by an interrupted run included). */
function withoutZone(corefile: string): string {
  const start = corefile.indexOf(ZONE_START);
  if (start < 0) return corefile;
  const end = corefile.indexOf('\n}\n', start);
  return corefile.slice(0, start) + corefile.slice(end < 0 ? corefile.length : end + 3);
}

const SERVER = `require('net').createServer((c) => { c.on('error', () => {}); c.end('hi\\n'); }).listen(${PORT}, '0.0.0.0', () => console.log('tcp ready'));`;

let state: LabState;
let server: ChildProcess | undefined;
let crdInstalled = false;
let corefile: string | undefined;
let resolver = '';
const pods: Partial<Record<'client' | 'other', LabPod>> = {};

async function k(args: string[], input?: string, timeoutMs = 120_000): Promise<string> {
  const r = await kubectl(state, args, { timeoutMs, ...(input === undefined ? {} : { input }) });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}
const apply = (obj: unknown): Promise<string> => k(['apply', '-f', '-'], JSON.stringify(obj));

function kindNetns(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(['ip', 'netns', 'exec', KIND_NETNS, ...argv]);
}

/** CoreDNS with this Corefile, its pods restarted and rolled out (they read the file at start). */
async function setCorefile(text: string): Promise<void> {
  await k(['-n', 'kube-system', 'patch', 'configmap', 'coredns', '--type', 'merge', '-p', JSON.stringify({ data: { Corefile: text } })]);
  await k(['-n', 'kube-system', 'rollout', 'restart', 'deployment/coredns']);
  await k(['-n', 'kube-system', 'rollout', 'status', 'deployment/coredns', '--timeout=180s'], undefined, 200_000);
}

function netnsOf(pod: 'client' | 'other'): string {
  const p = pods[pod];
  const ns = p && podNetnsPath(state, p);
  if (!ns) throw new Error(`no network namespace for pod ${pod}`);
  return ns;
}

/** Runs the client in a pod over these names: one result per name. */
async function lookups(pod: 'client' | 'other', names: string[], connect = true): Promise<Lookup[]> {
  const env = ['env', ...(connect ? [] : ['NO_CONNECT=1'])];
  const r = await run(inNetns(netnsOf(pod), [...env, NODE, '-e', dnsClientScript(resolver, PORT), ...names]), { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`client failed (exit ${r.code}): ${r.stderr}`);
  return parseLookups(r.stdout);
}

async function connects(pod: 'client' | 'other', ip: string): Promise<boolean> {
  return (await run(inNetns(netnsOf(pod), [NODE, '-e', connectOnceScript(ip, PORT)]))).code === 0;
}

/** `weirctl trace -o json` from the client, on the client's node. */
async function trace(to: string): Promise<{ verdict?: string; agree?: boolean | null; kernel?: { verdict?: string } }> {
  const node = pods.client?.node ?? '';
  const r = await lab(['node', node, '--', 'weirctl', 'trace', '--from', `${NS}/client`, '--to', to, '--port', String(PORT), '-o', 'json']);
  if (r.code !== 0) throw new Error(`weirctl trace on ${node}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const podYaml = (name: string, app: string): unknown => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: NS, labels: { app } },
  spec: { containers: [{ name: 'main', image: AGNHOST_IMAGE, args: ['pause'] }] },
});

const subject = { pods: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } }, podSelector: { matchLabels: { app: 'dns-client' } } } };
const policies = [
  {
    apiVersion: 'policy.networking.k8s.io/v1beta1',
    kind: 'ClusterNetworkPolicy',
    metadata: { name: POLICY_NAMES[0] },
    spec: {
      tier: 'Admin',
      priority: 900,
      subject,
      egress: [
        {
          name: 'cluster-dns',
          action: 'Accept',
          to: [
            {
              pods: {
                namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
                podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
              },
            },
          ],
          protocols: [{ udp: { destinationPort: { number: 53 } } }, { tcp: { destinationPort: { number: 53 } } }],
        },
        { name: 'names', action: 'Accept', to: [{ domainNames: ['*.allowed.weir.test', 'exact.weir.test'] }] },
      ],
    },
  },
  {
    apiVersion: 'policy.networking.k8s.io/v1beta1',
    kind: 'ClusterNetworkPolicy',
    metadata: { name: POLICY_NAMES[1] },
    spec: { tier: 'Admin', priority: 901, subject, egress: [{ name: 'rest', action: 'Deny', to: [{ networks: ['0.0.0.0/0'] }] }] },
  },
];

async function cleanup(): Promise<void> {
  const steps: [string, () => Promise<unknown>][] = [
    ['policies', () => k(['delete', 'clusternetworkpolicies', ...POLICY_NAMES, '--ignore-not-found'])],
    ['namespace', () => k(['delete', 'namespace', NS, '--ignore-not-found', '--wait=true', '--timeout=180s'], undefined, 200_000)],
    ['CoreDNS', async () => corefile !== undefined && (await setCorefile(corefile))],
    ['CRD', async () => crdInstalled && (await k(['delete', CRD_NAME, '--ignore-not-found']))],
  ];
  const failed: string[] = [];
  server?.kill('SIGKILL');
  for (const r of ROUTES) await kindNetns(['ip', 'route', 'del', 'local', r, 'dev', 'lo']);
  for (const [what, step] of steps) await step().catch((e: Error) => failed.push(`${what}: ${e.message}`));
  if (failed.length) throw new Error(`cleanup failed: ${failed.join('; ')}`);
}

describe('ClusterNetworkPolicy domainNames on kind, through the cluster`s CoreDNS', () => {
  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces)');
    const up = await lab(['up'], { timeoutMs: UP_TIMEOUT_MS });
    if (up.code !== 0) throw new Error(`scripts/lab up failed (exit ${up.code})\n${up.stdout}\n${up.stderr}`);
    state = labState();
    // The API: the experimental channel's CRD, installed by this test only when missing.
    crdInstalled = (await kubectl(state, ['get', CRD_NAME])).code !== 0;
    if (crdInstalled) await k(['apply', '--server-side', '-f', CRD]);
    await waitEstablished(k, CRD_NAME);
    // An agent that found no CRD retries its list on a back-off (up to 30 s,
    // docs/cnp.md): the policies are in force on a node only once its agent
    // reads the kind, so wait for every agent to say so.
    for (const node of state.nodes.map((n) => n.name))
      await eventually(
        `weir-agent on ${node} reading ClusterNetworkPolicies`,
        async () => {
          const r = await lab(['node', node, '--', 'weirctl', 'status', '-o', 'json']);
          return (JSON.parse(r.stdout) as { clusterPolicyApi?: { available: boolean | null } }).clusterPolicyApi?.available === true;
        },
        90_000,
        1000,
      );
    // The servers the test names resolve to, in the cluster's own namespace.
    for (const r of ROUTES) await kindNetns(['ip', 'route', 'replace', 'local', r, 'dev', 'lo']);
    server = spawn('ip', ['netns', 'exec', KIND_NETNS, NODE, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: string[] = [];
    server.stdout?.setEncoding('utf8').on('data', (d: string) => out.push(d));
    await eventually('the test server', () => out.join('').includes('tcp ready'), 15_000);
    // CoreDNS answers the test names.
    const cm = JSON.parse(await k(['-n', 'kube-system', 'get', 'configmap', 'coredns', '-o', 'json'])) as { data: { Corefile: string } };
    corefile = withoutZone(cm.data.Corefile);
    await setCorefile(ZONE + corefile);
    resolver = (await k(['-n', 'kube-system', 'get', 'service', 'kube-dns', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    // The pods.
    await k(['delete', 'namespace', NS, '--ignore-not-found', '--wait=true', '--timeout=180s'], undefined, 200_000);
    await k(['create', 'namespace', NS]);
    await apply(podYaml('client', 'dns-client'));
    await apply(podYaml('other', 'dns-other'));
    await k(['-n', NS, 'wait', '--for=condition=Ready', 'pod/client', 'pod/other', '--timeout=180s'], undefined, 200_000);
    const all = await labPods();
    for (const name of ['client', 'other'] as const) {
      const p = all.find((x) => x.namespace === NS && x.name === name);
      if (!p) throw new Error(`pod ${NS}/${name} is not among the lab's running pods`);
      pods[name] = p;
    }
  }, UP_TIMEOUT_MS + 600_000);

  afterAll(cleanup, 600_000);

  it('before any policy, both pods resolve the test names through the kube-dns Service and reach their addresses', async () => {
    // CoreDNS's new pods may still be joining the Service's endpoints.
    await eventually('CoreDNS answering n0-1.allowed.weir.test', async () => (await lookups('other', ['n0-1.allowed.weir.test']))[0]?.ok === true, 60_000, 500);
    expect(await lookups('client', ['n0-2.allowed.weir.test', 'exact.weir.test', 'denied.weir.test'])).toMatchObject([
      { ip: '10.77.0.2', ok: true },
      { ip: EXACT_IP, ok: true },
      { ip: DENIED_IP, ok: true },
    ]);
  }, 120_000);

  it(`with the policies in force, ${LOOKUPS} fresh lookups through CoreDNS: every first connection succeeds`, async () => {
    for (const p of policies) await apply(p);
    // In force: the Deny refuses what no lookup allowed, and the client's node queues its DNS answers.
    await eventually('the Deny in force', async () => !(await connects('client', DENIED_IP)), 30_000, 250);
    const node = state.nodes.find((n) => n.name === pods.client?.node);
    if (!node) throw new Error('the client`s node is not in the lab state');
    await eventually(
      'the client`s DNS answers queued on its node',
      async () => (await run(inNetns(node.netns, ['nft', 'list', 'table', 'ip', 'weir_dns']))).stdout.includes(pods.client?.ips[0] ?? '-'),
      30_000,
      250,
    );
    const names = Array.from({ length: LOOKUPS }, (_, i) => `n${(i + 3) >> 8}-${(i + 3) & 255}.allowed.weir.test`);
    const t0 = Date.now();
    const res = await lookups('client', names);
    const refused = res.filter((r) => r.ok !== true);
    console.log(`${res.length} lookups through CoreDNS in ${Date.now() - t0} ms; refused first connections: ${refused.length}`);
    expect(res).toHaveLength(LOOKUPS);
    expect(new Set(res.map((r) => r.ip)).size).toBe(LOOKUPS);
    expect(refused).toEqual([]);
    const held = res.map((r) => r.dnsMs);
    const base = (await lookups('other', names, false)).map((r) => r.dnsMs);
    const f = (x: number): string => `${x.toFixed(2)} ms`;
    console.log(
      `DNS round trip through CoreDNS, held (client): p50 ${f(quantile(held, 0.5))} p99 ${f(quantile(held, 0.99))}; not held (other): p50 ${f(quantile(base, 0.5))} p99 ${f(quantile(base, 0.99))}`,
    );
  }, 900_000);

  it('an exact name is allowed; an unlisted name resolves but its address stays denied, for the client only; weirctl trace agrees with the kernel', async () => {
    expect(await lookups('client', ['exact.weir.test', 'denied.weir.test'])).toMatchObject([
      { ip: EXACT_IP, ok: true },
      { ip: DENIED_IP, ok: false },
    ]);
    expect(await connects('other', DENIED_IP)).toBe(true);
    const allowed = await trace(EXACT_IP);
    expect(allowed, JSON.stringify(allowed)).toMatchObject({ verdict: 'allow', kernel: { verdict: 'allow' }, agree: true });
    expect(JSON.stringify(allowed)).toContain(POLICY_NAMES[0]);
    const denied = await trace(DENIED_IP);
    expect(denied, JSON.stringify(denied)).toMatchObject({ verdict: 'deny', kernel: { verdict: 'deny' }, agree: true });
  }, 120_000);

  itKeepsInvariants();
});
