// The engine's fallback from a failed incremental sync to a full replacement:
// kept (it is the safe choice when the table was edited behind weir's back),
// but reported with its cause, counted in weir_sync_fallbacks_total, and
// refused by a strict engine, so that a test where it should never happen
// fails when it does.
import { describe, expect, it } from 'vitest';
import { AgentMetrics, fallbackReason } from '../../../src/agent/agent-metrics.ts';
import { ClusterCache } from '../../../src/agent/cache.ts';
import { Reconciler } from '../../../src/agent/reconciler.ts';
import { FakeNft } from '../../../src/nft/fake.ts';
import { Transaction } from '../../../src/nft/transaction.ts';
import { IncrementalSyncError, PolicyEngine } from '../../../src/policy/engine.ts';
import type { ClusterState } from '../../../src/policy/types.ts';
import { ns, pod, policy } from '../policy/helpers.ts';

const state = (ips: string[]): ClusterState => ({
  pods: ips.map((ip, i) => pod(`x/p${i}`, { ips: [ip], node: 'n1', labels: { app: 'a' } })),
  namespaces: [ns('x')],
  policies: [policy('x/deny', { podSelector: { matchLabels: { app: 'a' } }, ingress: [] })],
  nodes: [{ name: 'n1', internalIPs: ['192.0.2.1'] }],
});

/** Deletes the table behind the engine's back, so that any diff fails (ENOENT). */
function tamper(nft: FakeNft): void {
  nft.run(new Transaction().delete({ kind: 'table', family: 'inet', name: 'weir' }));
}

describe('incremental sync fallback', () => {
  it('replaces the table whole and says why', () => {
    const nft = new FakeNft();
    const engine = new PolicyEngine(nft, { nodeName: 'n1' });
    expect(engine.sync(state(['10.1.0.5'])).fallback).toBeUndefined();
    tamper(nft);
    const r = engine.sync(state(['10.1.0.5', '10.1.0.6']));
    expect(r.full).toBe(true);
    expect(r.fallback).toBeInstanceOf(Error);
    expect(fallbackReason(r.fallback as Error)).toBe('ENOENT');
    expect(nft.hasTable('inet', 'weir')).toBe(true);
    // Back on the incremental path afterwards.
    expect(engine.sync(state(['10.1.0.5'])).full).toBe(false);
  });

  it('a strict engine refuses instead, and leaves the table alone', () => {
    const nft = new FakeNft();
    const engine = new PolicyEngine(nft, { nodeName: 'n1' }, undefined, { strict: true });
    engine.sync(state(['10.1.0.5']));
    tamper(nft);
    expect(() => engine.sync(state(['10.1.0.5', '10.1.0.6']))).toThrow(IncrementalSyncError);
    expect(nft.hasTable('inet', 'weir')).toBe(false);
  });

  it('the agent counts it by reason', async () => {
    const nft = new FakeNft();
    const engine = new PolicyEngine(nft, { nodeName: 'n1' });
    const cache = new ClusterCache();
    const s = state(['10.1.0.5']);
    cache.replace(
      'pods',
      s.pods.map((p) => ({ ...p, metadata: { ...p.metadata, uid: 'u', resourceVersion: '1' } })),
      '1',
    );
    cache.replace('namespaces', [...s.namespaces], '1');
    cache.replace('policies', [...s.policies], '1');
    cache.replace('nodes', [{ metadata: { name: 'n1' } }], '1');
    cache.replace('clusterpolicies', [], '1');
    const metrics = new AgentMetrics();
    const net = { writeCniConfig: () => false, reconcileRoutes: () => ({ changed: 0, errors: [] }) };
    const r = new Reconciler(cache, engine, net, {
      nodeName: 'n1',
      debounceMs: 1,
      masquerade: false,
      nonMasqueradeCIDRs: [],
      onSync: (x) => metrics.observeSync(x, engine.applied),
    });
    r.syncNow();
    tamper(nft);
    cache.apply(
      'pods',
      'ADDED',
      {
        ...pod('x/p9', { ips: ['10.1.0.9'], node: 'n1', labels: { app: 'a' } }),
        metadata: { namespace: 'x', name: 'p9', uid: 'u9', resourceVersion: '2', labels: { app: 'a' } },
      },
      '2',
    );
    expect(r.syncNow()?.report.fallback).toBeDefined();
    expect(await metrics.registry.metrics()).toContain('weir_sync_fallbacks_total{reason="ENOENT"} 1');
  });
});

describe('after a repair', () => {
  it('purgeAll judges every tracked connection of every local pod again', () => {
    const nft = new FakeNft();
    const engine = new PolicyEngine(nft, { nodeName: 'n1' });
    const cache = new ClusterCache();
    const s = state(['10.1.0.5', '10.1.0.6']);
    cache.replace('pods', [...s.pods], '1');
    cache.replace('namespaces', [...s.namespaces], '1');
    cache.replace('policies', [...s.policies], '1');
    cache.replace('nodes', [{ metadata: { name: 'n1' } }], '1');
    cache.replace('clusterpolicies', [], '1');
    const asked: Array<{ ips: string[]; allowed: boolean }> = [];
    const net = {
      writeCniConfig: () => false,
      reconcileRoutes: () => ({ changed: 0, errors: [] }),
      purgeConnections: (ips: Set<string>, stillAllowed: (c: { src: string; dst: string; proto: number; dport?: number }) => boolean) => {
        asked.push({ ips: [...ips].sort(), allowed: stillAllowed({ src: '10.1.0.6', dst: '10.1.0.5', proto: 6, dport: 80 }) });
        return 1;
      },
    };
    const r = new Reconciler(cache, engine, net, { nodeName: 'n1', debounceMs: 1, masquerade: false, nonMasqueradeCIDRs: [] });
    r.syncNow();
    expect(r.purgeAll()).toBe(1);
    // The deny-all policy isolates both pods for ingress: a connection between them is refused.
    expect(asked.at(-1)).toEqual({ ips: ['10.1.0.5', '10.1.0.6'], allowed: false });
  });
});
