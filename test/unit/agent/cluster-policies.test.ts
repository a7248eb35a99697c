// ClusterNetworkPolicies through the agent's list-watch machinery: the
// reflector over a scripted API (FakeListWatch) with the lister the agent
// wires for the kind (optional-api.ts), into the cache, the reconciler's
// sync, and what /status and /policies report. A CRD that is not installed
// (404) is an empty list, reported and retried, never an agent that does not
// sync; once the CRD is there the next retry mirrors it.

import { afterEach, describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../../src/agent/agent-metrics.ts';
import { ApiStatusError } from '../../../src/agent/api-list.ts';
import { ClusterCache } from '../../../src/agent/cache.ts';
import type { AgentConfig } from '../../../src/agent/config.ts';
import { FakeListWatch } from '../../../src/agent/fake-list-watch.ts';
import { type ApiAvailability, CLUSTER_POLICY_KIND, isUnavailable, NotServedYetError, optionalLister } from '../../../src/agent/optional-api.ts';
import { Reconciler } from '../../../src/agent/reconciler.ts';
import type { ListPage } from '../../../src/agent/reflector.ts';
import { Reflector } from '../../../src/agent/reflector.ts';
import { OPTIONAL_KIND_GRACE_MS } from '../../../src/agent/resync.ts';
import { statusRoutes } from '../../../src/agent/status-api.ts';
import { CniCode } from '../../../src/errors.ts';
import { FakeNft } from '../../../src/nft/fake.ts';
import { PolicyEngine } from '../../../src/policy/engine.ts';
import type { AgentStatus } from '../../../src/weirctl/context.ts';
import { cnp } from '../policy/cnp-fixtures.ts';
import { ns, pod } from '../policy/helpers.ts';

type Obj = { metadata?: { resourceVersion?: string } };

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const s of stops.splice(0)) await s();
});

function rig() {
  const cache = new ClusterCache();
  const api = new FakeListWatch<Obj>({ path: '/apis/policy.networking.k8s.io/v1beta1/clusternetworkpolicies' });
  const state: ApiAvailability = { available: undefined, reason: undefined };
  const transitions: Array<[boolean | undefined, boolean | undefined]> = [];
  const changes: string[] = [];
  const errors: unknown[] = [];
  const list = optionalLister(api.list, state, CLUSTER_POLICY_KIND, (s, was) => transitions.push([was, s.available]));
  const reflector = new Reflector<Obj>(
    'clusterpolicies',
    { list, watch: (o, e, d) => api.watch(o, e, d) },
    { ...cache.mirror('clusterpolicies', (how) => changes.push(how)), error: (e) => errors.push(e) },
    { minBackoffMs: 0, maxBackoffMs: 0 },
  );
  const running = reflector.run();
  stops.push(async () => {
    reflector.stop();
    await running;
  });
  return { cache, api, state, transitions, changes, errors };
}

const deny = (name: string, rv: string, priority = 10) => ({
  ...cnp(name, 'Admin', priority, { namespaces: {} }, { ingress: [{ name: 'no-web', action: 'Deny', from: [{ namespaces: {} }] }] }),
  metadata: { name, uid: `uid-${name}`, resourceVersion: rv },
});

/** A cache with every kind but ClusterNetworkPolicies listed: shop/web on node n1, no NetworkPolicies. */
function shopCache(): ClusterCache {
  const cache = new ClusterCache();
  cache.replace(
    'pods',
    [
      {
        ...pod('shop/web', { ips: ['10.1.0.5'], node: 'n1', labels: { app: 'web' } }),
        metadata: { namespace: 'shop', name: 'web', uid: 'u1', resourceVersion: '1', labels: { app: 'web' } },
      },
    ],
    '1',
  );
  cache.replace('namespaces', [ns('shop')], '1');
  cache.replace('policies', [], '1');
  cache.replace('nodes', [{ metadata: { name: 'n1' }, spec: { podCIDRs: ['10.1.0.0/24'] } }], '1');
  return cache;
}

describe('ClusterNetworkPolicies in the agent', () => {
  it('a missing CRD (404) lists as empty: the kind counts as synced, availability is reported once, and the agent retries until it is installed', async () => {
    const r = rig();
    expect(r.cache.kinds).toContain('clusterpolicies');
    (await r.api.nextList()).status(404, 'NotFound', 'the server could not find the requested resource');
    // The reflector has taken the (empty) list once it opens the watch.
    let w = await r.api.nextWatch();
    expect(r.cache.synced.has('clusterpolicies')).toBe(true);
    expect(r.changes).toEqual(['list']);
    expect(r.state).toEqual({
      available: false,
      reason: expect.stringMatching(/ClusterNetworkPolicy CRD \(clusternetworkpolicies\.policy\.networking\.k8s\.io\) is not installed/),
    });
    // The watch of a kind the API does not serve fails too; each retry relists (empty again: no news for the reconciler).
    for (let i = 0; i < 3; i++) {
      w.status(404, 'Not Found');
      (await r.api.nextList()).status(404, 'NotFound');
      w = await r.api.nextWatch();
    }
    expect(r.changes).toEqual(['list']);
    expect(r.transitions).toEqual([[undefined, false]]);
    expect(r.errors.length).toBeGreaterThanOrEqual(3);
    // Installed: the next retry lists it, and the watch follows from its version.
    w.status(404, 'Not Found');
    (await r.api.nextList()).reply([deny('a', '20')], '20');
    w = await r.api.nextWatch();
    expect(r.state).toEqual({ available: true, reason: undefined });
    expect(r.transitions).toEqual([
      [undefined, false],
      [false, true],
    ]);
    expect(w.opts.resourceVersion).toBe('20');
    expect(r.cache.snapshot().clusterPolicies?.map((p) => p.metadata?.name)).toEqual(['a']);
    w.added(deny('b', '21', 20));
    w.modified(deny('a', '22', 5));
    expect(r.cache.snapshot().clusterPolicies?.map((p) => [p.metadata?.name, p.spec?.priority])).toEqual([
      ['a', 5],
      ['b', 20],
    ]);
    w.deleted(deny('a', '23', 5));
    expect(r.cache.snapshot().clusterPolicies?.map((p) => p.metadata?.name)).toEqual(['b']);
    expect(r.changes).toEqual(['list', 'list', 'event', 'event', 'event']);
  });

  it('once served, a 404 or 403 keeps the last list (an API server restarting) until it has lasted the grace, then lists empty', async () => {
    const state: ApiAvailability = { available: undefined, reason: undefined };
    const page = { limit: 500 };
    let now = 1000;
    let answer: () => Promise<ListPage<Obj>> = async () => ({ items: [deny('a', '5')], metadata: { resourceVersion: '5' } });
    const list = optionalLister<Obj>(
      () => answer(),
      state,
      CLUSTER_POLICY_KIND,
      undefined,
      () => now,
    );
    expect((await list(page)).items).toHaveLength(1);
    const notFound = new ApiStatusError('GET', '/apis/x', 404, 'Not Found');
    answer = () => Promise.reject(notFound);
    await expect(list(page)).rejects.toBeInstanceOf(NotServedYetError);
    await expect(list(page)).rejects.toMatchObject({ code: 'WEIR_NOT_SERVED_YET', cniCode: CniCode.TryAgainLater });
    expect(isUnavailable(await list(page).catch((e: unknown) => e))).toBe(false);
    expect(state.available).toBe(true);
    now += OPTIONAL_KIND_GRACE_MS - 1;
    await expect(list(page)).rejects.toThrow(/404 from the API that served it before/);
    now += 1;
    expect(await list(page)).toEqual({ items: [], metadata: { resourceVersion: '' } });
    expect(state.available).toBe(false);
    // Served again: the grace starts over at the next failure, a 403 alike.
    answer = async () => ({ items: [], metadata: { resourceVersion: '9' } });
    await list(page);
    answer = () => Promise.reject(new ApiStatusError('GET', '/apis/x', 403, 'Forbidden'));
    await expect(list(page)).rejects.toBeInstanceOf(NotServedYetError);
  });

  it('a 403 (a ClusterRole without the kind) is reported as such; other errors are failures of the reflector', async () => {
    const r = rig();
    (await r.api.nextList()).status(403, 'Forbidden');
    (await r.api.nextWatch()).status(403, 'Forbidden');
    expect(r.state.reason).toMatch(/may not list clusternetworkpolicies\.policy\.networking\.k8s\.io/);
    (await r.api.nextList()).status(500, 'InternalError');
    // A failed list is retried with a list: the error has reached the reflector once the next one is made.
    await r.api.nextList();
    expect(r.state.available).toBe(false);
    expect(r.errors.at(-1)).toMatchObject({ status: 500 });
  });

  it('no sync before the first list of ClusterNetworkPolicies: a table without the Admin tier would open what it denies', () => {
    const cache = shopCache();
    expect(cache.allSynced).toBe(false);
    cache.replace('clusterpolicies', [deny('a', '3')], '3');
    expect(cache.allSynced).toBe(true);
  });

  it('a synced CNP is compiled; /status reports the API and the count, /policies the policy with its tier and chain', async () => {
    const cache = shopCache();
    cache.replace('clusterpolicies', [deny('deny-all', '3')], '3');
    const nft = new FakeNft();
    const engine = new PolicyEngine(nft, { nodeName: 'n1' });
    const reconciler = new Reconciler(
      cache,
      engine,
      { writeCniConfig: () => false, reconcileRoutes: () => ({ changed: 0, errors: [] }) },
      { nodeName: 'n1', debounceMs: 1, masquerade: false, nonMasqueradeCIDRs: [] },
    );
    const s = reconciler.syncNow();
    expect(s?.versions['clusterpolicies']).toBe('3');
    const chain = s?.report.result.clusterPolicyChains.get('deny-all');
    expect(chain).toMatch(/^c[0-9a-f]+/);
    expect(reconciler.endpoints.find((e) => e.name === 'web')?.tiers?.admin?.ingress).toBeDefined();
    const config = {
      nodeName: 'n1',
      hostFirewall: false,
      masquerade: false,
      nflogGroup: 100,
      failsafeInbound: [],
      failsafeOutbound: [],
    } as unknown as AgentConfig;
    const routes = statusRoutes({ cache, reconciler, engine, metrics: new AgentMetrics(), config, clusterPolicies: { available: true, reason: undefined } });
    const req = (p: string) => ({ method: 'GET', path: p, query: new URLSearchParams(), body: undefined, headers: {}, listener: 'local' as const });
    const status = (await routes['GET /status']?.(req('/status')))?.json as AgentStatus;
    expect(status['clusterPolicyApi']).toEqual({ available: true });
    expect(status['counts'].clusterPolicies).toBe(1);
    expect(status['cache']!['clusterpolicies']).toMatchObject({ count: 1, resourceVersion: '3' });
    const policies = (await routes['GET /policies']?.(req('/policies')))?.json as Record<string, unknown>;
    expect(policies['clusterPolicies']).toEqual([expect.objectContaining({ name: 'deny-all', tier: 'Admin', priority: 10, chain })]);
    expect(policies['policies']).toEqual([]);
  });

  it('a CNP change that newly forbids a flow ends the tracked connections it forbids, as a NetworkPolicy change does', async () => {
    const cache = new ClusterCache();
    const podObj = (name: string, ip: string, app: string) => ({
      ...pod(`shop/${name}`, { ips: [ip], node: 'n1', labels: { app } }),
      metadata: { namespace: 'shop', name, uid: `u-${name}`, resourceVersion: '1', labels: { app } },
    });
    cache.replace('pods', [podObj('web', '10.1.0.5', 'web'), podObj('client', '10.1.0.6', 'client')], '1');
    cache.replace('namespaces', [ns('shop')], '1');
    cache.replace('policies', [], '1');
    cache.replace('nodes', [{ metadata: { name: 'n1' }, spec: { podCIDRs: ['10.1.0.0/24'] } }], '1');
    cache.replace('clusterpolicies', [], '1');
    // Tracked: client -> web on 80 and on 443.
    const tracked = [
      { src: '10.1.0.6', dst: '10.1.0.5', proto: 6, dport: 80 },
      { src: '10.1.0.6', dst: '10.1.0.5', proto: 6, dport: 443 },
    ];
    const purges: Array<{ addresses: string[]; ended: number[] }> = [];
    const net = {
      writeCniConfig: () => false,
      reconcileRoutes: () => ({ changed: 0, errors: [] }),
      purgeConnections: (addresses: Set<string>, stillAllowed: (c: (typeof tracked)[number]) => boolean) => {
        const ended = tracked.filter((c) => (addresses.has(c.src) || addresses.has(c.dst)) && !stillAllowed(c)).map((c) => c.dport);
        purges.push({ addresses: [...addresses].sort(), ended });
        return ended.length;
      },
    };
    let purged: (r: unknown) => void = () => {};
    const reconciler = new Reconciler(cache, new PolicyEngine(new FakeNft(), { nodeName: 'n1' }), net, {
      nodeName: 'n1',
      debounceMs: 1,
      masquerade: false,
      nonMasqueradeCIDRs: [],
      onPurge: (r) => purged(r),
    });
    const synced = async (): Promise<unknown> => {
      const done = new Promise((resolve) => (purged = resolve));
      expect(reconciler.syncNow()).toBeDefined();
      return done;
    };
    reconciler.syncNow();
    // An Admin Deny of ingress to web on 80 only, from every namespace.
    const denyWeb80 = (rv: string, port: number) => ({
      ...cnp(
        'no-web-80',
        'Admin',
        10,
        { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } } },
        { ingress: [{ name: 'web', action: 'Deny', from: [{ namespaces: {} }], protocols: [{ tcp: { destinationPort: { number: port } } }] }] },
      ),
      metadata: { name: 'no-web-80', uid: 'u-cnp', resourceVersion: rv },
    });
    cache.apply('clusterpolicies', 'ADDED', denyWeb80('2', 80), '2');
    expect(await synced()).toEqual({ connections: 1 });
    expect(purges.at(-1)).toEqual({ addresses: ['10.1.0.5'], ended: [80] });
    // The rule moves to 443 (the policy's chain is rewritten): the 443 connection is judged again and ended.
    cache.apply('clusterpolicies', 'MODIFIED', denyWeb80('3', 443), '3');
    expect(await synced()).toEqual({ connections: 1 });
    expect(purges.at(-1)).toEqual({ addresses: ['10.1.0.5'], ended: [443] });
    // Deleting it forbids nothing: whatever is judged is allowed.
    cache.apply('clusterpolicies', 'DELETED', denyWeb80('4', 443), '4');
    expect(await synced()).toEqual({ connections: 0 });
  });
});
