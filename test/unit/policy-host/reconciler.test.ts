// The agent's side of host-firewall mode without a kernel: the engine and
// reconciler on FakeNft (mode on and off by incremental diffs), the cache's
// extra kind, finding a hostNetwork pod's cgroup, the missing-CRD lister,
// the flags, and what /status reports.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../../src/agent/agent-metrics.ts';
import { ApiStatusError } from '../../../src/agent/api-list.ts';
import { ClusterCache } from '../../../src/agent/cache.ts';
import { apiServerEndpoints, cgroupResolver, type HostPolicyAvailability, hostPolicyLister } from '../../../src/agent/hostfw.ts';
import { type NodeNetworking, Reconciler } from '../../../src/agent/reconciler.ts';
import { statusRoutes } from '../../../src/agent/status-api.ts';
import { FakeNft } from '../../../src/nft/fake.ts';
import { PolicyEngine } from '../../../src/policy/engine.ts';
import { parseAgentFlags } from '../../helpers/agent-flags.ts';
import { policy } from '../policy/helpers.ts';
import { hfp, PODS } from './fixtures.ts';

const tmpDirs: string[] = [];
afterEach(() => {
  for (const d of tmpDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-hostfw-unit-'));
  tmpDirs.push(d);
  return d;
};

const parse = parseAgentFlags;

const net: NodeNetworking = { writeCniConfig: () => false, reconcileRoutes: () => ({ changed: 0, errors: [] }) };
const NODES = [
  {
    metadata: { name: 'n1', labels: { role: 'worker' } },
    spec: { podCIDRs: ['10.1.0.0/24'] },
    status: { addresses: [{ type: 'InternalIP', address: '192.168.0.1' }] },
  },
  {
    metadata: { name: 'n2', labels: { role: 'cp' } },
    spec: { podCIDRs: ['10.2.0.0/24'] },
    status: { addresses: [{ type: 'InternalIP', address: '192.168.0.2' }] },
  },
];

function cluster(hostFirewall: boolean): ClusterCache {
  const c = new ClusterCache({ hostFirewall });
  c.replace(
    'pods',
    PODS.map((p) => ({ ...p, metadata: { ...p.metadata, uid: `uid-${p.metadata?.name}` } })),
    '1',
  );
  c.replace('namespaces', [{ metadata: { name: 'x' } }, { metadata: { name: 'y' } }], '1');
  c.replace('nodes', NODES, '1');
  c.replace('clusterpolicies', [], '1');
  c.replace('policies', [policy('x/hn-eg', { podSelector: { matchLabels: { app: 'hn' } }, policyTypes: ['Egress'], egress: [{}] })], '1');
  return c;
}

describe('cache', () => {
  it('waits for HostFirewallPolicies only with the mode on; keeps node labels and hostPorts', () => {
    const off = cluster(false);
    expect(off.allSynced).toBe(true);
    expect(Object.keys(off.versions).sort()).toEqual(['clusterpolicies', 'namespaces', 'nodes', 'pods', 'policies']);
    expect('hostPolicies' in off.snapshot()).toBe(false);
    const on = cluster(true);
    expect(on.allSynced).toBe(false);
    on.replace('hostpolicies', [{ ...hfp('a', { nodeSelector: {} }), metadata: { name: 'a', managedFields: [{}] } }], '5');
    expect(on.allSynced).toBe(true);
    const snap = on.snapshot();
    expect(snap.hostPolicies).toEqual([{ metadata: { name: 'a' }, spec: { nodeSelector: {} } }]);
    expect(snap.nodes?.find((n) => n.name === 'n1')?.labels).toEqual({ role: 'worker' });
    expect(snap.pods.find((p) => p.metadata?.name === 'hn')?.spec?.containers[0]?.ports?.[0]).toEqual({
      name: 'http',
      containerPort: 8080,
      protocol: undefined,
      hostPort: 8080,
    });
    on.apply('hostpolicies', 'DELETED', { metadata: { name: 'a' } }, '6');
    expect(on.snapshot().hostPolicies).toEqual([]);
  });
});

describe('engine and reconciler', () => {
  it('mode on, then off: incremental transactions both ways (no fallback to a full replacement)', () => {
    const nft = new FakeNft();
    const engine = new PolicyEngine(nft, { nodeName: 'n1' });
    const cache = cluster(true);
    cache.replace('hostpolicies', [hfp('deny', { nodeSelector: {}, policyTypes: ['Ingress', 'Egress'] })], '2');
    const s = {
      pods: [...cache.pods.values()],
      namespaces: [...cache.namespaces.values()],
      policies: [policy('x/hn-in', { podSelector: { matchLabels: { app: 'hn' } }, ingress: [] })],
      nodes: cache.snapshot().nodes,
      hostPolicies: [...cache.hostpolicies.values()],
    };
    expect(engine.sync(s).full).toBe(true);
    const on = engine.sync(s, { options: { hostFirewall: {} } });
    expect(on.full).toBe(false);
    expect(nft.dump()).toContain('host_input');
    const off = engine.sync(s);
    expect(off.full).toBe(false);
    expect(nft.dump()).not.toMatch(/host_|hprof_/);
  });

  it('the reconciler passes the host options, finds cgroups of local hostNetwork pods, and keeps pod addresses towards nodes', () => {
    const nft = new FakeNft();
    const engine = new PolicyEngine(nft, { nodeName: 'n1' });
    const cache = cluster(true);
    cache.replace('hostpolicies', [], '1');
    const asked: string[] = [];
    const r = new Reconciler(cache, engine, net, {
      nodeName: 'n1',
      debounceMs: 1,
      masquerade: true,
      nonMasqueradeCIDRs: [],
      hostFirewall: {
        options: { audit: false },
        cgroupOf: (uid) => {
          asked.push(uid);
          return uid === 'uid-hn' ? { path: 'kubepods/podhn', level: 2 } : undefined;
        },
      },
    });
    const s = r.syncNow();
    expect(s?.report.result.host?.hostNetworkPods.find((p) => p.name === 'hn')?.egress).toMatchObject({ enforced: true });
    expect(asked.sort()).toEqual(['uid-hn', 'uid-hn2']);
    expect(nft.dump()).toContain('socket cgroupv2 level 2 "kubepods/podhn" goto hprof_');
    // Pods reach other nodes with their own address: HostFirewallPolicies there can tell them apart.
    expect(nft.dump()).toMatch(/add element inet weir nomasq4 \{[^}]*192\.168\.0\.2\/32/);
    const plain = new Reconciler(cluster(false), new PolicyEngine(new FakeNft(), { nodeName: 'n1' }), net, {
      nodeName: 'n1',
      debounceMs: 1,
      masquerade: true,
      nonMasqueradeCIDRs: [],
    });
    expect(plain.syncNow()?.report.result.host).toBeUndefined();
  });
});

describe("hostNetwork pods' cgroups", () => {
  it('templates resolve {uid} and {uid_} below the cgroup v2 root (also the hybrid `unified` one), first existing wins; paths as nft resolves them', () => {
    const root = tmp();
    fs.mkdirSync(path.join(root, 'unified/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda_b.slice'), { recursive: true });
    fs.writeFileSync(path.join(root, 'unified/cgroup.controllers'), '');
    const r = cgroupResolver(root, [
      'kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice',
      'kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid_}.slice',
    ]);
    expect(r.unsupported).toBeUndefined();
    const cg = r.of('a-b');
    expect(cg?.level).toBe(3);
    expect(path.resolve('/sys/fs/cgroup', cg?.path ?? '')).toBe(
      path.join(root, 'unified/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda_b.slice'),
    );
    expect(r.of('c-d')).toBeUndefined();
    expect(r.of('../../etc')).toBeUndefined();
  });

  it('says why egress of hostNetwork pods is not enforced: no template, or no cgroup v2', () => {
    expect(cgroupResolver('/sys/fs/cgroup', []).unsupported).toMatch(/no --host-network-cgroup-template/);
    expect(cgroupResolver(tmp(), ['x/{uid}']).unsupported).toMatch(/no cgroup v2 hierarchy/);
  });
});

describe('HostFirewallPolicy lister', () => {
  it('404 (CRD missing) and 403 (not allowed) are "no host policies", reported; other errors are errors', async () => {
    const st: HostPolicyAvailability = { available: undefined, reason: undefined };
    const fail = (code: number) => hostPolicyLister(() => Promise.reject(new ApiStatusError('GET', '/apis/x', code, 'x')), st);
    expect(await fail(404)({ limit: 1 })).toEqual({ items: [], metadata: { resourceVersion: '' } });
    expect(st).toEqual({ available: false, reason: expect.stringMatching(/CRD .* is not installed/) });
    await fail(403)({ limit: 1 });
    expect(st.reason).toMatch(/may not list/);
    await expect(fail(500)({ limit: 1 })).rejects.toThrow('x');
    const page = { items: [{ metadata: { name: 'a' } }], metadata: { resourceVersion: '9' } };
    expect(await hostPolicyLister(() => Promise.resolve(page), st)({ limit: 1 })).toBe(page);
    expect(st).toEqual({ available: true, reason: undefined });
  });

  it('the API server endpoint comes from the kubeconfig URL', async () => {
    expect(await apiServerEndpoints('https://10.96.0.1:443')).toEqual([{ ip: '10.96.0.1', port: 443 }]);
    expect(await apiServerEndpoints('https://[fd00::1]:6443')).toEqual([{ ip: 'fd00::1', port: 6443 }]);
    expect(await apiServerEndpoints('https://127.0.0.1')).toEqual([{ ip: '127.0.0.1', port: 443 }]);
    expect(await apiServerEndpoints(undefined)).toEqual([]);
  });
});

describe('flags and status', () => {
  it('--host-firewall-audit, failsafe lists (validated), cgroup templates; defaults', async () => {
    const d = await parse([]);
    expect(d).toMatchObject({ hostFirewall: false, hostFirewallAudit: false, hostNetworkCgroupTemplates: [], cgroupRoot: '/sys/fs/cgroup' });
    expect(d.failsafeInbound.map((p) => `${p.protocol}:${p.from}-${p.to}`)).toEqual([
      'tcp:22-22',
      'tcp:6443-6443',
      'tcp:10250-10250',
      'tcp:2379-2380',
      'udp:67-68',
      'udp:546-547',
    ]);
    const c = await parse([
      '--host-firewall',
      '--host-firewall-audit',
      '--failsafe-inbound=tcp:22',
      '--failsafe-outbound=none',
      '--host-network-cgroup-template=a/{uid},b/{uid_}',
    ]);
    expect(c).toMatchObject({
      hostFirewall: true,
      hostFirewallAudit: true,
      failsafeInbound: [{ protocol: 'tcp', from: 22, to: 22 }],
      failsafeOutbound: [],
      hostNetworkCgroupTemplates: ['a/{uid}', 'b/{uid_}'],
    });
    await expect(parse(['--failsafe-inbound=ssh'])).rejects.toThrow(/bad port/);
  });

  it('/status: hostFirewall off lists the failsafes that would apply; on, what is applied', async () => {
    for (const on of [false, true]) {
      const cfg = await parse(on ? ['--host-firewall'] : []);
      const cache = cluster(on);
      if (on) cache.replace('hostpolicies', [hfp('deny', { nodeSelector: {} })], '1');
      const engine = new PolicyEngine(new FakeNft(), { nodeName: 'n1' });
      const reconciler = new Reconciler(cache, engine, net, {
        nodeName: 'n1',
        debounceMs: 1,
        masquerade: false,
        nonMasqueradeCIDRs: [],
        ...(on ? { hostFirewall: { options: {} } } : {}),
      });
      reconciler.syncNow();
      const routes = statusRoutes({
        cache,
        reconciler,
        engine,
        metrics: new AgentMetrics(),
        config: cfg,
        hostPolicies: { available: true, reason: undefined },
        egressUnsupported: 'no template',
      });
      const res = await routes['GET /status']?.({
        method: 'GET',
        path: '/status',
        query: new URLSearchParams(),
        body: undefined,
        headers: {},
        listener: 'local',
      });
      const hf = (res!.json as { hostFirewall: Record<string, unknown> }).hostFirewall;
      expect(hf['failsafe']).toEqual({
        inbound: ['tcp:22', 'tcp:6443', 'tcp:10250', 'tcp:2379-2380', 'udp:67-68', 'udp:546-547'],
        outbound: ['tcp:53', 'udp:53', 'tcp:6443', 'tcp:2379-2380', 'udp:67-68', 'udp:546-547'],
      });
      if (!on) {
        expect(hf).toMatchObject({ enabled: false, policies: [] });
        continue;
      }
      expect(hf).toMatchObject({
        enabled: true,
        audit: false,
        ingress: 'enforce',
        egress: 'open',
        policies: [{ name: 'deny', mode: 'Enforce' }],
        hostNetworkEgress: { enforced: false, reason: 'no template' },
        hostPolicyApi: { available: true },
      });
      expect((hf['hostNetworkPods'] as Array<{ name: string }>).map((p) => p.name)).toEqual(['hn', 'hn2']);
      const hp = await routes['GET /hostpolicies']?.({
        method: 'GET',
        path: '/hostpolicies',
        query: new URLSearchParams(),
        body: undefined,
        headers: {},
        listener: 'local',
      });
      expect(hp?.json).toMatchObject({ enabled: true, policies: [{ name: 'deny', selectsThisNode: true, mode: 'Enforce' }] });
    }
  });
});
