// ClusterNetworkPolicy end to end on one node: the real weir-agent against a
// real kube-apiserver (lab/controlplane), two pods in network namespaces of
// their own wired by the real plugin, and the kernel between them.
//   - The control plane starts without the CRD: the agent becomes ready,
//     enforces nothing more, says why in /status and logs it once.
//   - The upstream CRD (deploy/crds, generated from the Go module) is
//     installed while the agent runs: its watch of the CRD picks it up, no
//     restart.
//   - A ClusterNetworkPolicy created through the API (Admin Deny of TCP 8080
//     into `web`) closes what was open: a new connection no longer gets
//     through, and the connection established before it is ended in
//     conntrack and carries no more data; a Baseline Deny under a
//     NetworkPolicy that allows leaves the flow open (the tiers' order);
//     deleting the policies opens it again.
//   - The cache digest covers the kind: /verify/cache and cacheMatchesApi
//     with `kubectl get clusternetworkpolicies` agree.

import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheMatchesApi } from '../../src/agent/cache-digest.ts';
import { collectLines } from '../../src/weirctl/trace/kernel.ts';
import { eventually } from '../helpers/agent.ts';
import { type AttachedPod, useAgentNode, webFromClient } from '../helpers/agent-node.ts';
import { waitEstablished } from '../helpers/wait.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const NODE = path.join(REPO, 'node_modules/.bin/node');
const CRD = path.join(REPO, 'deploy/crds/clusternetworkpolicies.experimental.yaml');
const PORT = 8080;
const n = useAgentNode('cnpagent');
const { fx, kubectl, apply, get, status } = n;
const pods: Record<'web' | 'client', AttachedPod> = {} as never;
const children: ChildProcess[] = [];
let server: { lines: string[] };

const nftTable = (): string => fx.netns.run(['nft', 'list', 'table', 'inet', 'weir']).stdout;
/** Until the agent has applied a state at least as new as the API's current ClusterNetworkPolicies. */
const appliedCnps = (what: string): Promise<void> => n.applied('clusterpolicies', what, 20_000);

// A server in `web` that greets each connection and prints each line it receives with the connection's number.
const SERVER = `let n=0;require('net').createServer(s=>{const id=++n;s.write('hi\\n');s.setEncoding('utf8');s.on('data',d=>{for(const l of d.split('\\n'))if(l)console.log(id+' '+l)});s.on('error',()=>{})}).listen(${PORT},()=>console.log('listening'))`;
// One connection attempt: exit 0 once greeted, 1 on a timeout (dropped) or an error.
const PROBE = (ip: string): string =>
  `const s=require('net').connect(${PORT},'${ip}');s.setTimeout(1500,()=>process.exit(1));s.on('error',()=>process.exit(1));s.on('data',()=>process.exit(0))`;
// A long-lived connection that sends a line every 50 ms.
const STREAM = (ip: string): string =>
  `const s=require('net').connect(${PORT},'${ip}');s.on('error',()=>{});s.once('data',()=>{console.log('connected');setInterval(()=>s.write('tick\\n'),50)})`;

function spawnLines(argv: string[]): { lines: string[]; child: ChildProcess } {
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  const lines: string[] = [];
  collectLines(child, lines);
  return { lines, child };
}

const connects = (): boolean => pods.client.netns.run([NODE, '-e', PROBE(pods.web.ip)]).code === 0;
const trackedTo8080 = (): string[] =>
  fx.netns
    .run(['conntrack', '-L', '-p', 'tcp', '--dport', String(PORT)])
    .stdout.split('\n')
    .filter((l) => l.includes('ESTABLISHED'));

const cnp = (name: string, tier: 'Admin' | 'Baseline', priority: number) => ({
  apiVersion: 'policy.networking.k8s.io/v1beta1',
  kind: 'ClusterNetworkPolicy',
  metadata: { name },
  spec: {
    tier,
    priority,
    subject: { pods: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'shop' } }, podSelector: { matchLabels: { app: 'web' } } } },
    ingress: [{ name: 'no-8080', action: 'Deny', from: [{ namespaces: {} }], protocols: [{ tcp: { destinationPort: { number: PORT } } }] }],
  },
});

beforeAll(async () => {
  n.namespace('shop');
  for (const name of ['web', 'client'] as const) n.pod('shop', name, { app: name });
  await n.start();
  for (const name of ['web', 'client'] as const) pods[name] = n.attachPod('shop', name);
  server = spawnLines(['ip', 'netns', 'exec', pods.web.netns.name, NODE, '-e', SERVER]);
  await eventually('the server in web', () => (server.lines.includes('listening') ? true : undefined));
}, 120_000);

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

describe('ClusterNetworkPolicy through the agent, the API and the kernel', () => {
  it('without the CRD the agent is ready, enforces what it knows, and says why there are no ClusterNetworkPolicies (logged once)', async () => {
    const s = await status();
    expect(s['ready']).toBe(true);
    expect(s['clusterPolicyApi']).toEqual({
      available: false,
      reason: expect.stringMatching(/ClusterNetworkPolicy CRD \(clusternetworkpolicies\.policy\.networking\.k8s\.io\) is not installed/),
    });
    expect(s['cache']!.clusterpolicies).toMatchObject({ count: 0 });
    expect(connects()).toBe(true);
    // Logged once, whether the list found it missing or the watch of the CRD did.
    expect(n.agent.log().match(/CRD \(clusternetworkpolicies[^)]*\) is not installed/g)).toHaveLength(1);
    expect(await n.metrics()).not.toMatch(/^weir_api_errors_total\{kind="clusterpolicies"\} [1-9]/m);
  });

  it('the CRD installed while the agent runs is picked up through its watch of the CRD, without a restart', async () => {
    kubectl(['apply', '--server-side', '-f', CRD]);
    await waitEstablished(kubectl, 'crd/clusternetworkpolicies.policy.networking.k8s.io');
    const t0 = Date.now();
    await eventually(
      'the agent to list ClusterNetworkPolicies',
      async () => ((await status())['clusterPolicyApi']?.available === true ? true : undefined),
      45_000,
    );
    console.log(`CRD established -> agent mirrors the kind: ${Date.now() - t0} ms`);
    expect(n.agent.log()).toMatch(/clusterpolicies: the API serves it now/);
  });

  it('an Admin Deny created through the API closes new connections and ends the established one; deleting it opens again', async () => {
    const stream = spawnLines(['ip', 'netns', 'exec', pods.client.netns.name, NODE, '-e', STREAM(pods.web.ip)]);
    await eventually('the long-lived connection', () => (stream.lines.includes('connected') ? true : undefined));
    expect(trackedTo8080().length).toBeGreaterThan(0);
    const purgedBefore = purgedTotal(await n.metrics());

    const t0 = Date.now();
    apply(cnp('deny-web-8080', 'Admin', 10));
    await appliedCnps('the Admin Deny');
    console.log(`ClusterNetworkPolicy created -> applied (incl. kubectl and polling): ${Date.now() - t0} ms`);
    expect(nftTable()).toContain('deny-web-8080');
    expect(connects()).toBe(false);
    // The connection tracked before the policy is gone from conntrack, counted, and carries no more data.
    await eventually('the established connection purged', () => (trackedTo8080().length === 0 ? true : undefined));
    expect(purgedTotal(await n.metrics())).toBeGreaterThan(purgedBefore);
    const ticks = (): number => server.lines.filter((l) => l.endsWith(' tick')).length;
    const after = ticks();
    // A window of 20 ticks: not one more line reaches the server over the purged connection.
    await new Promise((r) => setTimeout(r, 1000));
    expect(ticks()).toBe(after);
    expect(after).toBeGreaterThan(0);
    const policies = await get('/policies');
    expect(policies.clusterPolicies).toEqual([
      expect.objectContaining({ name: 'deny-web-8080', tier: 'Admin', priority: 10, chain: expect.stringMatching(/^c[0-9a-f]+/) }),
    ]);

    // The cache digest covers the kind.
    const list = JSON.parse(
      kubectl(['get', 'pods,namespaces,networkpolicies.networking.k8s.io,nodes,clusternetworkpolicies.policy.networking.k8s.io', '-A', '-o', 'json']),
    );
    expect(cacheMatchesApi(await get('/cache'), list)).toMatchObject({ ok: true, kinds: expect.arrayContaining(['clusterpolicies']) });
    expect((await get('/cache')).clusterpolicies.entries.map((e: string[]) => e[0])).toEqual(['deny-web-8080']);
    expect(await get('/verify/cache')).toMatchObject({ ok: true });

    kubectl(['delete', 'clusternetworkpolicy', 'deny-web-8080']);
    await appliedCnps('the deletion');
    expect(nftTable()).not.toContain('deny-web-8080');
    expect(connects()).toBe(true);
  });

  it('tiers in order: a Baseline Deny under a NetworkPolicy that allows leaves the flow open; without the NetworkPolicy it closes it', async () => {
    apply(cnp('baseline-deny-web', 'Baseline', 10));
    await appliedCnps('the Baseline Deny');
    expect(connects()).toBe(false);
    apply(webFromClient(PORT));
    await n.applied('policies', 'the NetworkPolicy');
    expect(connects()).toBe(true);
    kubectl(['-n', 'shop', 'delete', 'networkpolicy', 'web-from-client']);
    kubectl(['delete', 'clusternetworkpolicy', 'baseline-deny-web']);
    await appliedCnps('the deletions');
    expect(connects()).toBe(true);
  });

  it('no incremental sync fell back to a full replacement, and the kernel matches what was applied', async () => {
    expect(await n.metrics()).not.toMatch(/^weir_sync_fallbacks_total\{/m);
    expect(await get('/verify/kernel')).toMatchObject({ clean: true });
  });
});

function purgedTotal(m: string): number {
  return Number(/^weir_conntrack_purged_total (\d+)/m.exec(m)?.[1] ?? 0);
}
