// The pure parts of every command: building reports from what the agent,
// the store and the kernel say, and printing them.
import { describe, expect, it } from 'vitest';
import { hostVethName } from '../../../src/plugin/names.ts';
import { PolicyEvaluator, podEndpoint } from '../../../src/policy/evaluator.ts';
import type { ClusterState, Pod } from '../../../src/policy/types.ts';
import { formatDoctor } from '../../../src/weirctl/commands/doctor.ts';
import { formatDrops, resolveDrop } from '../../../src/weirctl/commands/drops.ts';
import { formatEndpoints, joinEndpoints } from '../../../src/weirctl/commands/endpoints.ts';
import { formatGc } from '../../../src/weirctl/commands/gc.ts';
import { allocations, findLeaks, formatIpam, type IpamReport } from '../../../src/weirctl/commands/ipam.ts';
import { explainPod, formatPodPolicy } from '../../../src/weirctl/commands/policy.ts';
import { buildStatus, formatStatus } from '../../../src/weirctl/commands/status.ts';
import { agreement, buildTrace, formatTrace, parseEndpoint } from '../../../src/weirctl/commands/trace.ts';
import type { AgentStatus, DropRecord } from '../../../src/weirctl/context.ts';
import { chainIndex, nodeByIp, podByIp } from '../../../src/weirctl/resolve.ts';

const pod = (namespace: string, name: string, labels: Record<string, string>, ip: string, nodeName = 'n1'): Pod => ({
  metadata: { namespace, name, labels },
  spec: { nodeName, containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }] },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] },
});

const state: ClusterState = {
  pods: [
    pod('shop', 'web', { app: 'web' }, '10.244.1.10'),
    pod('shop', 'client', { app: 'client' }, '10.244.1.11'),
    pod('other', 'far', { app: 'x' }, '10.244.2.5', 'n2'),
    pod('shop', 'locked', { app: 'locked' }, '10.244.1.12'),
  ],
  namespaces: [{ metadata: { name: 'shop', labels: { team: 'a' } } }, { metadata: { name: 'other' } }],
  policies: [
    {
      metadata: { namespace: 'shop', name: 'web-in' },
      spec: {
        podSelector: { matchLabels: { app: 'web' } },
        ingress: [
          {
            from: [{ podSelector: { matchLabels: { app: 'client' } } }, { namespaceSelector: { matchLabels: { team: 'b' } } }],
            ports: [{ port: 80 }, { port: 'http' }],
          },
          { from: [{ ipBlock: { cidr: '172.16.0.0/12', except: ['172.17.0.0/16'] } }] },
        ],
      },
    },
    { metadata: { namespace: 'shop', name: 'lockdown' }, spec: { podSelector: { matchLabels: { app: 'locked' } }, policyTypes: ['Egress'] } },
  ],
  nodes: [{ name: 'n1', internalIPs: ['192.0.2.1'] }],
};

describe("policy: a pod's allowances", () => {
  it('lists ingress rule by rule with peers and ports in words', () => {
    const r = explainPod(state, 'shop', 'web');
    expect(r.ingress.isolated).toBe(true);
    expect(r.ingress.policies).toEqual(['shop/web-in']);
    expect(r.ingress.allowances).toEqual([
      {
        policy: 'shop/web-in',
        rule: 0,
        peers: ['pods app=client in namespace shop', 'namespaces team=b'],
        ports: ['TCP 80', 'named http (TCP 8080 on this pod)'],
      },
      { policy: 'shop/web-in', rule: 1, peers: ['172.16.0.0/12 except 172.17.0.0/16'], ports: ['all ports'] },
    ]);
    expect(r.egress).toEqual({ isolated: false, policies: [], allowances: [], summary: 'not isolated: all allowed', clusterPolicies: [] });
    const text = formatPodPolicy(r, false);
    expect(text).toContain('Egress: not isolated: all allowed');
    expect(text).toContain('pods app=client in namespace shop');
    expect(text).toContain('shop/web-in ingress[0]');
  });

  it('an isolating policy without rules allows nothing', () => {
    const r = explainPod(state, 'shop', 'locked');
    expect(r.egress.summary).toBe('isolated: nothing allowed');
    expect(r.ingress.summary).toBe('not isolated: all allowed');
  });

  it('refuses an unknown pod, and warns about policies weir cannot express', () => {
    expect(() => explainPod(state, 'shop', 'nope')).toThrow(/not in the cluster state/);
    const bad = {
      ...state,
      policies: [...state.policies, { metadata: { namespace: 'shop', name: 'broken' }, spec: { podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] } }],
    };
    const r = explainPod(bad, 'shop', 'web');
    expect(r.warnings.join()).toMatch(/shop\/broken.*deny-all/);
  });
});

describe('policy and trace with ClusterNetworkPolicy tiers', () => {
  const cnp = (name: string, tier: 'Admin' | 'Baseline', priority: number, ingress: unknown[]) => ({
    apiVersion: 'policy.networking.k8s.io/v1beta1',
    kind: 'ClusterNetworkPolicy',
    metadata: { name },
    spec: { tier, priority, subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'web' } } } }, ingress },
  });
  const tiered: ClusterState = {
    ...state,
    clusterPolicies: [
      cnp('pass-clients', 'Admin', 20, [
        { name: 'to-np', action: 'Pass', from: [{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'client' } } } }] },
      ]),
      cnp('deny-81', 'Admin', 10, [{ name: 'no 81', action: 'Deny', from: [{ namespaces: {} }], protocols: [{ tcp: { destinationPort: { number: 81 } } }] }]),
      cnp('baseline-deny', 'Baseline', 5, [{ action: 'Deny', from: [{ namespaces: { matchLabels: { team: 'a' } } }] }]),
      // Not expressible (a Pass in the Baseline tier is fine; an unknown action is not): "Deny all" for its subjects, and said so.
      cnp('broken', 'Baseline', 7, [{ action: 'Maybe', from: [{ namespaces: {} }] }]),
    ] as never,
  };

  it('policy lists the tiers in the order a packet meets them, rule by rule, and warns about what weir cannot express', () => {
    const r = explainPod(tiered, 'shop', 'web');
    expect(r.ingress.clusterPolicies.map((p) => [p.name, p.tier, p.priority])).toEqual([
      ['deny-81', 'Admin', 10],
      ['pass-clients', 'Admin', 20],
      ['baseline-deny', 'Baseline', 5],
      ['broken', 'Baseline', 7],
    ]);
    expect(r.ingress.clusterPolicies[0]?.rules).toEqual([{ rule: 0, name: 'no 81', action: 'Deny', peers: ['all pods in all namespaces'], ports: ['TCP 81'] }]);
    expect(r.ingress.clusterPolicies[2]?.rules).toEqual([{ rule: 0, action: 'Deny', peers: ['namespaces team=a'], ports: ['all ports'] }]);
    expect(r.ingress.order).toBe(
      'Admin tier: deny-81 (10), pass-clients (20) -> NetworkPolicy: shop/web-in -> Baseline tier: baseline-deny (5), broken (7) -> default',
    );
    expect(r.egress.clusterPolicies).toEqual([]);
    expect(r.egress.order).toBeUndefined();
    expect(r.warnings.join('\n')).toMatch(/ClusterNetworkPolicy broken.*"Deny all"/);
    const text = formatPodPolicy(r, false);
    expect(text).toContain('in order: Admin tier: deny-81 (10)');
    expect(text).toMatch(/Admin 10 +Deny +all pods in all namespaces +TCP 81 +deny-81 ingress\[0\] "no 81"/);
    // A pod no ClusterNetworkPolicy selects reads as before.
    expect(explainPod(tiered, 'shop', 'client').ingress.order).toBeUndefined();
  });

  it('trace says which tier and which rule decided, per direction', () => {
    const ev = new PolicyEvaluator(tiered);
    const judge = (port: number) => ev.evaluate({ src: podEndpoint('shop', 'client'), dst: podEndpoint('shop', 'web'), protocol: 'TCP', port });
    const none = { method: 'unavailable' as const, detail: '' };
    const at81 = buildTrace(judge(81), { from: 'shop/client', to: 'shop/web', protocol: 'TCP', port: 81 }, none);
    expect(at81.verdict).toBe('deny');
    expect(at81.ingress).toMatchObject({
      tier: 'Admin',
      decidedBy: { kind: 'ClusterNetworkPolicy', policy: 'deny-81', rule: 'ingress[0]', name: 'no 81', action: 'Deny', tier: 'Admin', priority: 10 },
    });
    expect(at81.ingress.clusterPolicies).toEqual(['deny-81', 'pass-clients', 'baseline-deny', 'broken']);
    expect(at81.reasons[1]).toMatch(
      /^ingress at shop\/web: denied \(isolated\) \[Admin tier\]: denied by ClusterNetworkPolicy deny-81 \(Admin tier, priority 10\) spec\.ingress\[0\] "no 81"/,
    );
    // Port 80: the Admin Pass hands it to NetworkPolicy, whose rule allows it (the Baseline Deny is never reached).
    const at80 = buildTrace(judge(80), { from: 'shop/client', to: 'shop/web', protocol: 'TCP', port: 80 }, none);
    expect(at80.verdict).toBe('allow');
    expect(at80.ingress).toMatchObject({
      tier: 'NetworkPolicy',
      decidedBy: { kind: 'NetworkPolicy', policy: 'shop/web-in', rule: 'ingress[0]', action: 'Allow' },
    });
    // Egress of the client: no ClusterNetworkPolicy selects it; no tier is reported.
    expect(at80.egress.tier).toBeUndefined();
    expect(at80.egress.decidedBy).toBeUndefined();
    expect(formatTrace(at81, judge(81), false)).toContain('[Admin tier]');
  });
});

describe('trace: the report', () => {
  const ev = new PolicyEvaluator(state);
  const allowed = ev.evaluate({ src: podEndpoint('shop', 'client'), dst: podEndpoint('shop', 'web'), protocol: 'TCP', port: 80 });
  const denied = ev.evaluate({ src: podEndpoint('shop', 'client'), dst: podEndpoint('shop', 'web'), protocol: 'TCP', port: 81 });

  it('parses endpoints', () => {
    expect(parseEndpoint('shop/web', '--from')).toEqual({ kind: 'pod', namespace: 'shop', name: 'web' });
    expect(parseEndpoint('10.0.0.1', '--to')).toEqual({ kind: 'ip', ip: '10.0.0.1' });
    expect(() => parseEndpoint('web', '--to')).toThrow(/--to: expected NAMESPACE\/POD or an IP address/);
  });

  it('agreement compares the whole verdict, or egress alone when only egress was judged', () => {
    expect(agreement(allowed, { method: 'nftrace', detail: '', verdict: 'allow', scope: 'both' })).toBe(true);
    expect(agreement(allowed, { method: 'nftrace', detail: '', verdict: 'deny', scope: 'both' })).toBe(false);
    expect(agreement(allowed, { method: 'unavailable', detail: '' })).toBeNull();
    expect(agreement({ allowed: false, egress: { allowed: true } }, { method: 'nftrace', detail: '', verdict: 'allow', scope: 'egress' })).toBe(true);
  });

  it('has the JSON contract: verdict allow|deny, reasons, kernel, agree', () => {
    const k = {
      method: 'nftrace' as const,
      detail: 'dropped in inet weir chain prof_x_eg: counter drop',
      verdict: 'deny' as const,
      scope: 'both' as const,
      how: 'probe',
    };
    const r = buildTrace(denied, { from: 'shop/client', to: 'shop/web', protocol: 'TCP', port: 81 }, k);
    expect(r.verdict).toBe('deny');
    expect(r.agree).toBe(true);
    expect(r.reasons).toEqual([
      'egress at shop/client: allowed: no NetworkPolicy selects it for egress',
      'ingress at shop/web: denied (isolated): no rule allows it in shop/web-in',
    ]);
    expect(r.connection).toEqual({ from: 'shop/client', to: 'shop/web', protocol: 'TCP', port: 81, family: 4 });
    const ok = buildTrace(
      allowed,
      { from: 'shop/client', to: 'shop/web', protocol: 'TCP', port: 80 },
      { method: 'unavailable', detail: 'run weirctl trace on node n2' },
    );
    expect(ok.verdict).toBe('allow');
    expect(ok.agree).toBeNull();
    expect(ok.ingress.reasons).toEqual(['allowed by NetworkPolicy shop/web-in spec.ingress[0]']);
    const text = formatTrace(r, denied, false);
    expect(text).toContain('Kernel (nftrace): DENIED');
    expect(text).toContain('method: probe');
    expect(text).toContain('Agreement: the kernel agrees');
    expect(formatTrace({ ...r, agree: false }, denied, false)).toContain('DISAGREEMENT');
  });
});

describe('drops: resolved to pods and policies', () => {
  const eps = [{ namespace: 'shop', name: 'web', ips: ['10.244.1.10'], ingress: { chain: 'prof_abc_in', policies: ['shop/web-in'] } }];
  const ix = { pods: podByIp(state), nodes: nodeByIp(state), chains: chainIndex(eps) };
  const drop: DropRecord = {
    seq: 7,
    time: '2025-01-01T10:00:00.123Z',
    direction: 'ingress',
    chain: 'prof_abc_in',
    audit: false,
    family: 4,
    src: '10.244.1.11',
    dst: '10.244.1.10',
    protocol: 'TCP',
    sport: 40000,
    dport: 81,
    flags: ['SYN'],
  };

  it('names the pods, the denying pod and its policies', () => {
    const r = resolveDrop(drop, ix);
    expect(r).toMatchObject({ srcPod: 'shop/client', dstPod: 'shop/web', pod: 'shop/web', policies: ['shop/web-in'] });
    const eg = resolveDrop({ ...drop, direction: 'egress', chain: 'prof_unknown_eg', src: '10.244.1.11', dst: '8.8.8.8' }, ix);
    expect(eg.pod).toBe('shop/client');
    expect(eg.dstPod).toBeUndefined();
    expect(eg.policies).toEqual([]);
    expect(resolveDrop({ ...drop, src: '192.0.2.1' }, ix).srcPod).toBe('node n1');
  });

  it('prints a table', () => {
    const t = formatDrops([resolveDrop(drop, ix)], false);
    expect(t.split('\n')[0]).toMatch(/^TIME\s+DIRECTION\s+SOURCE\s+DESTINATION\s+PROTO\s+DENIED AT POD\s+BY POLICIES$/);
    expect(t).toContain('2025-01-01 10:00:00Z  ingress    shop/client (10.244.1.11:40000)  shop/web (10.244.1.10:81)  TCP SYN  shop/web');
    expect(formatDrops([], false)).toBe('No denied packets logged.');
  });
});

describe('ipam: allocations and leaks', () => {
  const rec = (cid: string, ns: string, name: string, ip: string) => ({
    containerID: cid,
    ifname: 'eth0',
    podNamespace: ns,
    podName: name,
    addresses: [ip],
    created: '2025-01-01T00:00:00.000Z',
  });
  const records = [
    rec('c-web', 'shop', 'web', '10.244.1.10'),
    rec('c-gone', 'shop', 'gone', '10.244.1.12'),
    rec('c-wired', 'shop', 'deleted', '10.244.1.13'),
    rec('c-recreated', 'shop', 'client', '10.244.1.14'),
  ];
  const pods = new Set(['shop/web', 'shop/client']);
  const links = [hostVethName('c-web', 'eth0'), hostVethName('c-wired', 'eth0')];
  const now = Date.parse('2025-01-01T01:00:00Z');

  it('a leaked record: pod gone from the API AND host veth gone; nothing else', () => {
    const a = allocations(records, pods, new Set(links), now);
    expect(a.map((x) => x.addresses[0])).toEqual(['10.244.1.10', '10.244.1.12', '10.244.1.13', '10.244.1.14']);
    expect(a[0]).toMatchObject({ pod: 'shop/web', podExists: true, hostVethPresent: true, ageSeconds: 3600 });
    const orphan = { name: 'weir0123456789a', index: 9, alias: 'weir/weir/x/y/c-zzz' };
    const foreign = { name: 'weirabcdefabcde', index: 10, alias: 'weir/othernet/x/y/c' };
    const leaks = findLeaks(a, [...links.map((name, i) => ({ name, index: i + 2 })), orphan, foreign, { name: 'eth0', index: 1 }], 'weir');
    expect(leaks.records.map((x) => x.containerID)).toEqual(['c-gone']);
    expect(leaks.veths).toEqual([orphan]);
  });

  it('prints ranges, allocations and leaks', () => {
    const a = allocations(records, pods, new Set(links), now);
    const report: IpamReport = {
      network: 'weir',
      dataDir: '/var/lib/cni/weir',
      conflist: '/etc/cni/net.d/10-weir.conflist',
      ranges: [{ range: '10.244.1.0/24', size: 254, used: 4, free: 250 }],
      allocations: a,
      warnings: [],
      leaks: findLeaks(a, [], 'weir'),
    };
    const t = formatIpam(report, false);
    expect(t).toContain('10.244.1.0/24  254   4     250');
    expect(t).toMatch(/10\.244\.1\.12\s+shop\/gone \(not in API\)\s+c-gone\s+weir[0-9a-f]{11} \(gone\)\s+1h/);
    expect(t).toContain('Leaks: 1 (run `weirctl gc` to repair)');
    expect(t).toMatch(/record 10\.244\.1\.12 of shop\/gone \(container c-gone\): the pod is not in the API and weir[0-9a-f]{11} is gone/);
    expect(formatIpam({ ...report, allocations: [], leaks: { records: [], veths: [] } }, false)).toContain('Leaks: none');
  });

  it('gc prints what it did', () => {
    expect(formatGc({ network: 'weir', actions: [] }, false)).toMatch(/Nothing to repair/);
    expect(
      formatGc(
        {
          network: 'weir',
          actions: [
            { action: 'released', what: '10.244.1.12', pod: 'shop/gone', containerID: 'c-gone', reason: 'the pod is not in the API' },
            { action: 'deleted-veth', what: 'weir0123456789a', reason: 'no IPAM record owns it' },
          ],
        },
        false,
      ),
    ).toBe('released record 10.244.1.12 of shop/gone: the pod is not in the API\ndeleted host veth weir0123456789a: no IPAM record owns it');
  });
});

describe('endpoints, status, doctor', () => {
  it("joins the agent's endpoints with IPAM records and links", () => {
    const veth = hostVethName('c-web', 'eth0');
    const r = joinEndpoints(
      'n1',
      [
        { namespace: 'shop', name: 'web', ips: ['10.244.1.10'], ingress: { chain: 'prof_a_in', policies: ['shop/web-in'] } },
        { namespace: 'shop', name: 'client', ips: ['10.244.1.11'] },
      ],
      [{ containerID: 'c-web', ifname: 'eth0', podNamespace: 'shop', podName: 'web', addresses: ['10.244.1.10'], created: '' }],
      new Set([veth]),
    );
    expect(r.endpoints.map((e) => e.name)).toEqual(['client', 'web']);
    expect(r.endpoints[1]).toMatchObject({
      hostVeth: veth,
      hostVethPresent: true,
      containerID: 'c-web',
      ingress: { isolated: true, chain: 'prof_a_in', policies: ['shop/web-in'] },
      egress: { isolated: false },
    });
    expect(r.endpoints[0]?.hostVeth).toBeUndefined();
    const t = formatEndpoints(r, false);
    expect(t).toMatch(new RegExp(`shop/web\\s+10\\.244\\.1\\.10\\s+${veth}\\s+isolated\\s+open\\s+shop/web-in`));
  });

  it('status: API per kind from /status and /metrics', () => {
    const s: AgentStatus = {
      version: '0.1.0',
      node: 'n1',
      ready: true,
      api: { synced: ['pods', 'namespaces', 'policies', 'nodes'], versions: { pods: '10', namespaces: '3', policies: '7', nodes: '2' } },
      applied: { generation: 4, at: '2025-01-01T00:00:00.000Z', durationMs: 3.2, full: false, operations: 5, versions: { pods: '10' } },
      counts: { localPods: 2, pods: 3, namespaces: 2, policies: 1, nodes: 1, sets: 9, chains: 6, rules: 20, elements: 4 },
      errors: { sync: null, policies: [], routes: ['add 10.244.2.0/24 (node n2): unreachable'] },
      config: { hostFirewall: false, masquerade: true, nflogGroup: 100 },
    };
    const metrics = 'weir_api_watch_up{kind="nodes"} 1\nweir_api_watch_up{kind="pods"} 0\nweir_api_errors_total{kind="pods"} 3\n';
    const r = buildStatus('/run/weir/agent.sock', s, true, metrics, Date.parse('2025-01-01T00:01:00Z'));
    expect(r.ready).toBe(true);
    expect(r.api.find((k) => k.kind === 'pods')).toEqual({ kind: 'pods', synced: true, watchUp: false, errors: 3, resourceVersion: '10' });
    expect(r.api.find((k) => k.kind === 'namespaces')?.watchUp).toBeUndefined();
    expect(r.lastSync).toEqual({ at: '2025-01-01T00:00:00.000Z', ageSeconds: 60, durationMs: 3.2 });
    const t = formatStatus(r, false);
    expect(t).toContain('Last sync: 1m ago');
    expect(t).toMatch(/pods\s+yes\s+DOWN\s+3\s+10/);
    expect(t).toContain('route: add 10.244.2.0/24 (node n2): unreachable');
    // Kinds an agent mirrors besides the four (host firewall policies) are listed too.
    const more = buildStatus('s', { ...s, api: { synced: [...s.api.synced, 'hostpolicies'], versions: { ...s.api.versions, hostpolicies: '5' } } }, true, '');
    expect(more.api.map((k) => k.kind)).toEqual(['pods', 'namespaces', 'policies', 'nodes', 'hostpolicies']);
    // ClusterNetworkPolicies: a kind of its own, and a line saying whether the agent can read them.
    expect(t).not.toContain('CNP:');
    const missing = buildStatus(
      's',
      {
        ...s,
        api: { synced: [...s.api.synced, 'clusterpolicies'], versions: { ...s.api.versions, clusterpolicies: '' } },
        clusterPolicyApi: { available: false, reason: 'the ClusterNetworkPolicy CRD (clusternetworkpolicies.policy.networking.k8s.io) is not installed' },
      },
      true,
      '',
    );
    expect(missing.api.map((k) => k.kind)).toContain('clusterpolicies');
    expect(formatStatus(missing, false)).toContain(
      'CNP:       not available: the ClusterNetworkPolicy CRD (clusternetworkpolicies.policy.networking.k8s.io) is not installed',
    );
    const there = buildStatus('s', { ...s, counts: { ...s.counts, clusterPolicies: 3 }, clusterPolicyApi: { available: true } }, true, '');
    expect(formatStatus(there, false)).toContain('CNP:       3 ClusterNetworkPolicies');
  });

  it('doctor prints OK/FAIL with the fix of each failure', () => {
    const t = formatDoctor(
      {
        ok: false,
        checks: [
          { name: 'net.ipv4.ip_forward', ok: false, detail: 'net.ipv4.ip_forward = 0', fix: 'sysctl -w net.ipv4.ip_forward=1' },
          { name: 'CNI config', ok: true, detail: 'fine' },
        ],
      },
      false,
    );
    expect(t).toMatch(/FAIL\s+net\.ipv4\.ip_forward\s+net\.ipv4\.ip_forward = 0/);
    expect(t).toMatch(/\n\s+fix: sysctl -w net\.ipv4\.ip_forward=1/);
    expect(t).toMatch(/OK\s+CNI config\s+fine/);
    expect(t).toContain('1 of 2 checks failed.');
  });
});
