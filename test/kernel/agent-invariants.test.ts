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
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cacheMatchesApi, digestOf } from '../../src/agent/cache-digest.ts';
import { eventually } from '../helpers/agent.ts';
import { useAgentNode } from '../helpers/agent-node.ts';

const n = useAgentNode('agentinv');
const { fx, kubectl, apply, get, metrics } = n;
interface ApiObject {
  kind: string;
  metadata: { name: string; namespace?: string; uid: string; resourceVersion: string };
}
const apiList = (): { items: ApiObject[] } => JSON.parse(kubectl(['get', 'pods,namespaces,networkpolicies.networking.k8s.io,nodes', '-A', '-o', 'json']));

beforeAll(async () => {
  for (const ns of ['shop', 'doomed']) n.namespace(ns);
  n.pod('shop', 'web', { app: 'web' }, { ip: '10.244.1.10' });
  n.pod('shop', 'client', { app: 'client' }, { ip: '10.244.1.11' });
  apply({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { namespace: 'shop', name: 'web-from-client' },
    spec: { podSelector: { matchLabels: { app: 'web' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 80 }] }] },
  });
  await n.start(['--ipam-sweep-interval=1', '--ipam-sweep-grace=1', '--kernel-check-min-interval=0.2']);
}, 60_000);

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
    expect(n.agent.log()).toMatch(/drifted from the applied ruleset/);
  });

  it("IPAM = pods: the sweep frees a record whose pod and veth are gone, and keeps a live pod's", async () => {
    const store = path.join(n.dirs.dataDir, 'weir');
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
