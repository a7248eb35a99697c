// The invariants weir-agent checks itself, on the real agent against a real
// kube-apiserver (the set-up of agent.test.ts, smaller):
//   - cache = API: /status and GET /cache agree with `kubectl get` through
//     cacheMatchesApi() (the function the e2e tier calls), also after a
//     namespace is deleted (the bug that started issue 13), and GET
//     /verify/cache, the agent's own comparison, says so;
//   - kernel = applied: the table edited with nft behind the agent's back is
//     repaired, counted in weir_kernel_repairs_total by reason;
//   - IPAM = pods: a planted record of a pod that is gone, with no veth, is
//     freed by the agent's sweep; a live pod's record is kept;
//   - and no incremental sync fell back to a full replacement.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cacheMatchesApi, digestOf } from '../../src/agent/cache-digest.ts';
import { type AgentDirs, type AgentProcess, agentDirs, agentRequest, eventually, startAgent } from '../helpers/agent.ts';
import { kubectlOf, useControlPlane } from '../helpers/controlplane.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const fx = useControlPlane('agentinv');
let tmp: string;
let dirs: AgentDirs;
let agent: AgentProcess | undefined;

const { kubectl, apply } = kubectlOf(fx);
// biome-ignore lint/suspicious/noExplicitAny: replies of several agent endpoints, read field by field by the assertions.
const get = async (p: string): Promise<any> => (await agentRequest(agent!.socket, 'GET', p, undefined, 30_000)).json;
const metrics = async (): Promise<string> => (await agentRequest(agent!.socket, 'GET', '/metrics')).body;
interface ApiObject {
  kind: string;
  metadata: { name: string; namespace?: string; uid: string; resourceVersion: string };
}
const apiList = (): { items: ApiObject[] } => JSON.parse(kubectl(['get', 'pods,namespaces,networkpolicies.networking.k8s.io,nodes', '-A', '-o', 'json']));

function pod(ns: string, name: string, labels: Record<string, string>, ip: string): void {
  apply({ apiVersion: 'v1', kind: 'Pod', metadata: { namespace: ns, name, labels }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'agnhost' }] } });
  kubectl([
    '-n',
    ns,
    'patch',
    'pod',
    name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } }),
  ]);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-agentinv-'));
  dirs = agentDirs(tmp);
  for (const f of ['10-serviceaccount.yaml', '20-clusterrole.yaml', '30-clusterrolebinding.yaml']) kubectl(['apply', '-f', path.join(REPO, 'deploy/parts', f)]);
  const kubeconfig = fx.cp.kubeconfigForToken(fx.cp.serviceAccountToken('kube-system', 'weir-agent', 3600), path.join(tmp, 'agent.kubeconfig'));
  apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24'] } });
  for (const ns of ['shop', 'doomed']) {
    apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { namespace: ns, name: 'default' } });
  }
  pod('shop', 'web', { app: 'web' }, '10.244.1.10');
  pod('shop', 'client', { app: 'client' }, '10.244.1.11');
  apply({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: 'shop', name: 'web-from-client' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }] },
  });
  agent = startAgent(fx.netns.name, 'n1', kubeconfig, dirs, ['--ipam-sweep-interval=1', '--ipam-sweep-grace=1', '--kernel-check-min-interval=0.2']);
  await eventually('/readyz', async () => ((await agentRequest(agent!.socket, 'GET', '/readyz')).status === 200 ? true : undefined), 30_000).catch((e) => {
    throw new Error(`${String(e)}\nagent log:\n${agent?.log().slice(-3000)}`);
  });
}, 60_000);

afterAll(async () => {
  await agent?.stop('SIGKILL');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('weir-agent checks its invariants', () => {
  it('cache = API: /status digests, GET /cache and /verify/cache agree with kubectl, also after a namespace is deleted', async () => {
    await eventually('the cache to match the API', async () => (cacheMatchesApi(await get('/cache'), apiList()).ok ? true : undefined));
    const status = await get('/status');
    const list = apiList();
    expect(cacheMatchesApi(status.cache, list)).toMatchObject({ ok: true, kinds: ['pods', 'namespaces', 'policies', 'nodes', 'clusterpolicies'] });
    expect(status.cache.pods).toMatchObject(
      digestOf(
        'pods',
        list.items.filter((o: { kind: string }) => o.kind === 'Pod'),
      ),
    );
    kubectl(['delete', 'namespace', 'doomed', '--wait=false']);
    // No namespace controller here: finalize it by hand, so that the API deletes it (a DELETED event).
    const ns = JSON.parse(kubectl(['get', 'namespace', 'doomed', '-o', 'json']));
    kubectl(['replace', '--raw', '/api/v1/namespaces/doomed/finalize', '-f', '-'], JSON.stringify({ ...ns, spec: { finalizers: [] } }));
    kubectl(['-n', 'shop', 'delete', 'pod', 'client', '--grace-period=0', '--force']);
    await eventually('the namespace gone from the API', () =>
      apiList().items.some((o: { kind: string; metadata: { name: string } }) => o.kind === 'Namespace' && o.metadata.name === 'doomed') ? undefined : true,
    );
    await eventually('the cache to follow the deletions', async () => (cacheMatchesApi(await get('/cache'), apiList()).ok ? true : undefined));
    expect((await get('/cache')).namespaces.entries.map((e: string[]) => e[0])).not.toContain('doomed');
    const verify = await get('/verify/cache');
    expect(verify, JSON.stringify(verify.differences)).toMatchObject({ ok: true, differences: [] });
    const m = await metrics();
    expect(m).toMatch(/^weir_cache_objects\{kind="pods"\} 1$/m);
    expect(m).toMatch(/^weir_cache_digest\{kind="namespaces"\} \d+$/m);
  });

  it('names what differs when the cache and the API disagree', async () => {
    const list = apiList();
    const extra = { kind: 'Pod', metadata: { namespace: 'shop', name: 'phantom', uid: 'u-phantom', resourceVersion: '1' } };
    const r = cacheMatchesApi(await get('/cache'), { items: [...list.items, extra] });
    expect(r.differences).toEqual([expect.objectContaining({ kind: 'pods', missing: ['shop/phantom'], extra: [], stale: [] })]);
  });

  it('kernel = applied: an element deleted and the table deleted behind its back are repaired and counted', async () => {
    expect(await get('/verify/kernel')).toMatchObject({ kind: 'full', clean: true });
    fx.netns.sh(['nft', 'delete', 'element', 'inet', 'weir', 'known4', '{ 10.244.1.10 }']);
    await eventually(
      'the element repaired',
      async () => (/^weir_kernel_repairs_total\{reason="element-missing"\} 1$/m.test(await metrics()) ? true : undefined),
      15_000,
    );
    expect(fx.netns.sh(['nft', 'list', 'set', 'inet', 'weir', 'known4'])).toContain('10.244.1.10');
    fx.netns.sh(['nft', 'delete', 'table', 'inet', 'weir']);
    await eventually(
      'the table repaired',
      async () => (/^weir_kernel_repairs_total\{reason="table-missing"\} 1$/m.test(await metrics()) ? true : undefined),
      15_000,
    );
    const s = await get('/status');
    expect(s.kernel).toMatchObject({ repairs: 2, lastCheck: { repaired: true, afterRepair: { clean: true } } });
    expect(await get('/verify/kernel')).toMatchObject({ clean: true });
    expect(agent!.log()).toMatch(/drifted from the applied ruleset/);
  });

  it("IPAM = pods: the sweep frees a record whose pod and veth are gone, and keeps a live pod's", async () => {
    const store = path.join(dirs.dataDir, 'weir');
    fs.mkdirSync(store, { recursive: true, mode: 0o700 });
    const record = (containerID: string, ns: string, name: string, ip: string) =>
      `${JSON.stringify({ containerID, ifname: 'eth0', network: 'weir', podNamespace: ns, podName: name, addresses: [ip], created: new Date(Date.now() - 60_000).toISOString() })}\n`;
    fs.writeFileSync(path.join(store, '10.244.1.200'), record('ctr-gone', 'shop', 'gone', '10.244.1.200'));
    // The live pod's record stays whatever its veth: its pod is in the API.
    fs.writeFileSync(path.join(store, '10.244.1.10'), record('ctr-web', 'shop', 'web', '10.244.1.10'));
    await eventually('the sweep', async () => (fs.existsSync(path.join(store, '10.244.1.200')) ? undefined : true), 15_000);
    expect(fs.existsSync(path.join(store, '10.244.1.10'))).toBe(true);
    expect(await metrics()).toMatch(/^weir_ipam_released_total 1$/m);
  });

  it('no incremental sync fell back to a full replacement', async () => {
    expect(await metrics()).not.toMatch(/^weir_sync_fallbacks_total\{/m);
  });
});
