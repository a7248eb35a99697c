// The host chains judged without the kernel: host-interp.ts runs packets
// through the input and output hooks of node n1's compiled table, and the
// verdict must equal the reference evaluator's with its hostFirewall option
// (src/policy/evaluator.ts), for random clusters with hostNetwork pods,
// NetworkPolicies selecting them, HostFirewallPolicies, audit, and
// hostNetwork pods whose cgroup is or is not known.
//
// Only the direction the node judges is compared: traffic to n1 is judged by
// its input hook (the verdict's ingress half), traffic from n1 by its output
// hook (the egress half); the other half is another node's business.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compilePolicies } from '../../../src/policy/compile.ts';
import { type Endpoint, ipEndpoint, PolicyEvaluator, type Protocol, podEndpoint } from '../../../src/policy/index.ts';
import { emptyRuleset } from '../../../src/policy/ruleset.ts';
import type {
  ClusterState,
  ContainerPort,
  HostFirewallPeer,
  HostFirewallPolicy,
  LabelSelector,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  Pod,
} from '../../../src/policy/types.ts';
import { HostDatapath, type HostPacket, type L4, parseRule } from './host-interp.ts';

// ---- the interpreter itself ----

describe('host interpreter', () => {
  it('refuses rule text outside the forms the compiler emits', () => {
    expect(() => parseRule('tcp dport 22 accept')).toThrow(/unknown rule text/);
    expect(() => parseRule('iifname "eth0" accept')).toThrow(/unknown rule text/);
    expect(() => parseRule('socket cgroupv2 level 2 unquoted accept')).toThrow(/unknown rule text/);
  });

  it('interfaces, cgroups and protocol.port verdict maps', () => {
    const table = { kind: 'table' as const, family: 'inet' as const, name: 'weir' };
    const rs = emptyRuleset(table);
    const chain = (name: string, rules: string[], hook?: 'input' | 'output'): void => {
      rs.chains.set(name, {
        def: { kind: 'chain', table, name, ...(hook ? { type: 'filter' as const, hook, priority: 0, policy: 'accept' as const } : {}) },
        rules: rules.map((rule) => ({ kind: 'rule' as const, table, chain: name, rule })),
      });
    };
    rs.sets.set('m', {
      def: { kind: 'map', table, name: 'm', type: 'inet_proto . inet_service : verdict' },
      elements: new Map([['tcp . 80', { kind: 'element', table, map: 'm', key: ['tcp', '80'], value: 'goto d' }]]),
    });
    chain('in', ['iif "lo" accept', 'meta l4proto . th dport vmap @m', 'iifname "weir*" accept', 'counter drop'], 'input');
    chain('out', ['socket cgroupv2 level 1 "a" goto d', 'oifname "weir*" accept'], 'output');
    chain('d', ['counter drop']);
    const dp = new HostDatapath(rs);
    const p = (o: Partial<HostPacket>): HostPacket => ({ saddr: '10.0.0.1', daddr: '10.0.0.2', proto: 'tcp', dport: 81, ctState: 'new', ...o });
    expect(dp.hook('input', p({ iif: 'lo', dport: 80 })).verdict).toBe('accept');
    expect(dp.hook('input', p({ iif: 'weir12', dport: 80 })).verdict).toBe('drop');
    expect(dp.hook('input', p({ iif: 'weir12' })).verdict).toBe('accept');
    expect(dp.hook('input', p({ iif: 'eth0' })).verdict).toBe('drop');
    expect(dp.hook('output', p({ oif: 'eth0', cgroup: 'a' })).verdict).toBe('drop');
    expect(dp.hook('output', p({ oif: 'eth0', cgroup: 'b' })).verdict).toBe('accept');
    expect(() => dp.hook('input', p({}))).toThrow(/iif needed/);
  });
});

// ---- random clusters ----

const N1 = '192.168.0.1';
const N2 = '192.168.0.2';
const EXTERNAL = '203.0.113.5';
const HN_PORTS: ContainerPort[] = [
  { name: 'http', containerPort: 8080 },
  { name: 'http', containerPort: 8081, hostPort: 8081 },
  { name: 'dns', containerPort: 53, protocol: 'UDP' },
  { name: 'metrics', containerPort: 9100 },
  { name: 'ssh', containerPort: 22 },
  { name: 'sctp-x', containerPort: 9999, protocol: 'SCTP' },
];
const POD_PORTS: ContainerPort[] = [
  { name: 'http', containerPort: 80 },
  { name: 'metrics', containerPort: 9100 },
  { name: 'dns', containerPort: 53, protocol: 'UDP' },
];
const PROBES: Array<[Protocol, number]> = [
  ['TCP', 22],
  ['TCP', 80],
  ['TCP', 8080],
  ['TCP', 8081],
  ['UDP', 53],
  ['TCP', 9100],
  ['SCTP', 9999],
  ['TCP', 6443],
  ['UDP', 5353],
];
const NS = ['x', 'y'] as const;
const APPS = ['web', 'agent', undefined] as const;

const selectorArb = fc.constantFrom<LabelSelector>(
  {},
  { matchLabels: { app: 'web' } },
  { matchLabels: { app: 'agent' } },
  { matchExpressions: [{ key: 'app', operator: 'Exists' }] },
);
const nsSelectorArb = fc.constantFrom<LabelSelector>({}, { matchLabels: { team: 'ops' } }, { matchLabels: { 'kubernetes.io/metadata.name': 'x' } });
const nodeSelectorArb = fc.constantFrom<LabelSelector>(
  {},
  { matchLabels: { role: 'worker' } },
  { matchLabels: { role: 'cp' } },
  { matchExpressions: [{ key: 'role', operator: 'NotIn', values: ['cp'] }] },
);
const IPBLOCKS = [
  { cidr: '10.0.0.0/8', except: ['10.2.0.0/16'] },
  { cidr: '10.1.0.0/24' },
  { cidr: '192.168.0.0/24', except: ['192.168.0.1/32'] },
  { cidr: '203.0.113.0/24' },
  { cidr: '0.0.0.0/0' },
];
const PORTS: NetworkPolicyPort[] = [
  { port: 8080 },
  { port: 'http' },
  { protocol: 'UDP', port: 'dns' },
  { protocol: 'UDP' },
  { port: 9000, endPort: 9200 },
  { port: 'metrics' },
  { protocol: 'SCTP' },
  { port: 80 },
];
const npPeerArb: fc.Arbitrary<NetworkPolicyPeer> = fc.oneof(
  selectorArb.map((podSelector) => ({ podSelector })),
  nsSelectorArb.map((namespaceSelector) => ({ namespaceSelector })),
  fc.constantFrom(...IPBLOCKS).map((ipBlock) => ({ ipBlock })),
);
const hostPeerArb: fc.Arbitrary<HostFirewallPeer> = fc.oneof(
  npPeerArb,
  nodeSelectorArb.map((nodeSelector) => ({ nodeSelector })),
);
const portsArb = fc.option(fc.uniqueArray(fc.constantFrom(...PORTS), { minLength: 1, maxLength: 2 }), { nil: undefined });
const rulesArb = <P>(peer: fc.Arbitrary<P>) =>
  fc.option(fc.array(fc.record({ peers: fc.option(fc.array(peer, { maxLength: 2 }), { nil: undefined }), ports: portsArb }), { maxLength: 2 }), {
    nil: undefined,
  });
const typesArb = fc.constantFrom<('Ingress' | 'Egress')[] | undefined>(undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']);
const spec = <P>(
  types: ('Ingress' | 'Egress')[] | undefined,
  ingress: { peers?: P[] | undefined; ports?: NetworkPolicyPort[] | undefined }[] | undefined,
  egress: typeof ingress,
) => ({
  ...(types ? { policyTypes: types } : {}),
  ...(ingress ? { ingress: ingress.map((r) => ({ ...(r.peers ? { from: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) })) } : {}),
  ...(egress ? { egress: egress.map((r) => ({ ...(r.peers ? { to: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) })) } : {}),
});

interface Model {
  n1Role: string;
  n2Role: string;
  opsTeam: boolean;
  /** hostNetwork pods on n1: namespace, app, ports, cgroup known. */
  hn: { ns: number; app: (typeof APPS)[number]; ports: number[]; cgroup: boolean; phase: string }[];
  /** ordinary pods: slot i on n1 (i < 2) or n2. */
  pods: { ns: number; app: (typeof APPS)[number]; ports: number[] }[];
  nps: NetworkPolicy[];
  hfps: HostFirewallPolicy[];
  audit: boolean;
}

const modelArb: fc.Arbitrary<Model> = fc.record({
  n1Role: fc.constantFrom('worker', 'cp'),
  n2Role: fc.constantFrom('worker', 'cp'),
  opsTeam: fc.boolean(),
  hn: fc.array(
    fc.record({
      ns: fc.integer({ min: 0, max: 1 }),
      app: fc.constantFrom(...APPS),
      ports: fc.uniqueArray(fc.integer({ min: 0, max: HN_PORTS.length - 1 }), { maxLength: 3 }),
      cgroup: fc.boolean(),
      phase: fc.constantFrom('Running', 'Running', 'Pending', 'Succeeded'),
    }),
    { maxLength: 3 },
  ),
  pods: fc.array(
    fc.record({
      ns: fc.integer({ min: 0, max: 1 }),
      app: fc.constantFrom(...APPS),
      ports: fc.uniqueArray(fc.integer({ min: 0, max: POD_PORTS.length - 1 }), { maxLength: 2 }),
    }),
    { minLength: 4, maxLength: 4 },
  ),
  nps: fc
    .array(
      fc.record({ ns: fc.integer({ min: 0, max: 1 }), sel: selectorArb, types: typesArb, ingress: rulesArb(npPeerArb), egress: rulesArb(npPeerArb) }).map(
        (r): NetworkPolicy => ({
          metadata: { namespace: NS[r.ns] as string, name: 'np' },
          spec: { podSelector: r.sel, ...spec(r.types, r.ingress, r.egress) },
        }),
      ),
      { maxLength: 3 },
    )
    .map((l) => l.map((p, i): NetworkPolicy => ({ ...p, metadata: { ...p.metadata, name: `np${i}` } }))),
  hfps: fc
    .array(
      fc
        .record({
          sel: nodeSelectorArb,
          mode: fc.constantFrom('Enforce', 'Enforce', 'Audit'),
          types: typesArb,
          ingress: rulesArb(hostPeerArb),
          egress: rulesArb(hostPeerArb),
        })
        .map((r): HostFirewallPolicy => ({ metadata: { name: 'h' }, spec: { nodeSelector: r.sel, mode: r.mode, ...spec(r.types, r.ingress, r.egress) } })),
      { maxLength: 2 },
    )
    .map((l) => l.map((p, i): HostFirewallPolicy => ({ ...p, metadata: { name: `hfp${i}` } }))),
  audit: fc.boolean(),
});

const podIp = (i: number): string => (i < 2 ? `10.1.0.${10 + i}` : `10.2.0.${10 + i}`);
const cgroupPath = (i: number): string => `kubepods/pod-hn${i}`;

function build(m: Model): { state: ClusterState; cgroups: Map<string, { path: string; level: number }> } {
  const pods: Pod[] = [];
  const cgroups = new Map<string, { path: string; level: number }>();
  m.hn.forEach((h, i) => {
    pods.push({
      metadata: { namespace: NS[h.ns] as string, name: `hn${i}`, uid: `u${i}`, labels: { ...(h.app ? { app: h.app } : {}) } },
      spec: { nodeName: 'n1', hostNetwork: true, containers: [{ ports: h.ports.map((p) => HN_PORTS[p] as ContainerPort) }] },
      status: { phase: h.phase, ...(h.phase === 'Pending' ? {} : { podIPs: [{ ip: N1 }], podIP: N1 }), hostIPs: [{ ip: N1 }] },
    });
    if (h.cgroup) cgroups.set(`${NS[h.ns]}/hn${i}`, { path: cgroupPath(i), level: 2 });
  });
  // A hostNetwork pod on n2: node traffic as a peer.
  pods.push({
    metadata: { namespace: 'x', name: 'hn-n2', labels: { app: 'web' } },
    spec: { nodeName: 'n2', hostNetwork: true, containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }] },
    status: { phase: 'Running', podIPs: [{ ip: N2 }], hostIPs: [{ ip: N2 }] },
  });
  m.pods.forEach((p, i) => {
    pods.push({
      metadata: { namespace: NS[p.ns] as string, name: `p${i}`, labels: { ...(p.app ? { app: p.app } : {}) } },
      spec: { nodeName: i < 2 ? 'n1' : 'n2', containers: [{ ports: p.ports.map((x) => POD_PORTS[x] as ContainerPort) }] },
      status: { phase: 'Running', podIPs: [{ ip: podIp(i) }], hostIPs: [{ ip: i < 2 ? N1 : N2 }] },
    });
  });
  return {
    state: {
      namespaces: [{ metadata: { name: 'x' } }, { metadata: { name: 'y', labels: m.opsTeam ? { team: 'ops' } : {} } }],
      nodes: [
        { name: 'n1', internalIPs: [N1], labels: { role: m.n1Role } },
        { name: 'n2', internalIPs: [N2], labels: { role: m.n2Role } },
      ],
      pods,
      policies: m.nps,
      hostPolicies: m.hfps,
    },
    cgroups,
  };
}

interface Case {
  hook: 'input' | 'output';
  src: Endpoint;
  dst: Endpoint;
  pkt: Omit<HostPacket, 'proto' | 'dport' | 'ctState'>;
  what: string;
}

const podAt = (m: Model, i: number): Endpoint => podEndpoint(NS[m.pods[i]?.ns ?? 0] as string, `p${i}`);

function cases(m: Model): Case[] {
  const out: Case[] = [];
  const n1 = ipEndpoint(N1);
  // To n1: from its own pods, remote pods, n2, a hostNetwork pod of n2, outside, and n1 itself.
  const sources: Array<[Endpoint, string, string, string]> = [
    [podAt(m, 0), podIp(0), 'weir0a', 'local pod p0'],
    [podAt(m, 1), podIp(1), 'weir0b', 'local pod p1'],
    [podAt(m, 2), podIp(2), 'eth0', 'remote pod p2'],
    [podAt(m, 3), podIp(3), 'eth0', 'remote pod p3'],
    [ipEndpoint(N2), N2, 'eth0', 'node n2'],
    [podEndpoint('x', 'hn-n2'), N2, 'eth0', 'hostNetwork pod of n2'],
    [ipEndpoint(EXTERNAL), EXTERNAL, 'eth0', 'outside'],
    [n1, N1, 'lo', 'n1 itself'],
  ];
  for (const [src, saddr, iif, what] of sources) out.push({ hook: 'input', src, dst: n1, pkt: { saddr, daddr: N1, iif }, what: `${what} -> n1` });
  // From n1: as each of its live hostNetwork pods (cgroup known or not) and as the node, to pods, nodes, outside, itself.
  const senders: Array<[Endpoint, string | undefined, string]> = [[n1, undefined, 'n1']];
  m.hn.forEach((h, i) => {
    if (h.phase !== 'Succeeded' && h.phase !== 'Pending')
      senders.push([podEndpoint(NS[h.ns] as string, `hn${i}`), h.cgroup ? cgroupPath(i) : undefined, `hn${i}${h.cgroup ? ' (cgroup)' : ''}`]);
  });
  const dests: Array<[Endpoint, string, string, string]> = [
    [podAt(m, 0), podIp(0), 'weir0a', 'local pod p0'],
    [podAt(m, 2), podIp(2), 'eth0', 'remote pod p2'],
    [ipEndpoint(N2), N2, 'eth0', 'node n2'],
    [ipEndpoint(EXTERNAL), EXTERNAL, 'eth0', 'outside'],
    [n1, N1, 'lo', 'n1 itself'],
  ];
  for (const [src, cgroup, who] of senders) {
    for (const [dst, daddr, oif, what] of dests)
      out.push({ hook: 'output', src, dst, pkt: { saddr: N1, daddr, oif, ...(cgroup ? { cgroup } : {}) }, what: `${who} -> ${what}` });
  }
  return out;
}

const L4_OF: Record<Protocol, L4> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

function check(m: Model): void {
  const { state, cgroups } = build(m);
  const r = compilePolicies(state, { nodeName: 'n1', hostFirewall: { audit: m.audit, cgroups } });
  const dp = new HostDatapath(r.ruleset);
  const attributed = new Set(cgroups.keys());
  const ev = new PolicyEvaluator(state, { hostFirewall: { audit: m.audit, hostNetworkEgress: (p) => attributed.has(`${p.namespace}/${p.name}`) } });
  for (const c of cases(m)) {
    for (const [protocol, port] of PROBES) {
      const v = ev.evaluate({ src: c.src, dst: c.dst, protocol, port });
      const half = c.hook === 'input' ? v.ingress : v.egress;
      const got = dp.hook(c.hook, { ...c.pkt, proto: L4_OF[protocol], dport: port, ctState: 'new' });
      if ((got.verdict === 'accept') !== half.allowed) {
        throw new Error(
          `${c.what} ${protocol}/${port}: datapath ${got.verdict} (${got.by}), evaluator ${half.allowed ? 'allows' : 'denies'} (${JSON.stringify(half.reasons)})\n` +
            `policies ${JSON.stringify(state.policies)}\nhost policies ${JSON.stringify(state.hostPolicies)}\naudit ${m.audit} cgroups ${JSON.stringify([...cgroups])}`,
        );
      }
    }
  }
}

describe('host chains against the evaluator', () => {
  it('agree on every connection to and from node n1, for random clusters', () => {
    fc.assert(
      fc.property(modelArb, (m) => check(m)),
      { numRuns: 300 },
    );
  });

  it('agree on a hand-made cluster (deny-all host policy, protected hostNetwork server)', () => {
    const base: Model = {
      n1Role: 'worker',
      n2Role: 'cp',
      opsTeam: true,
      hn: [{ ns: 0, app: 'web', ports: [0, 2], cgroup: true, phase: 'Running' }],
      pods: [
        { ns: 0, app: 'agent', ports: [] },
        { ns: 1, app: 'web', ports: [0] },
        { ns: 0, app: 'agent', ports: [] },
        { ns: 1, app: undefined, ports: [] },
      ],
      nps: [
        {
          metadata: { namespace: 'x', name: 'np0' },
          spec: {
            podSelector: { matchLabels: { app: 'web' } },
            policyTypes: ['Ingress', 'Egress'],
            ingress: [{ from: [{ podSelector: { matchLabels: { app: 'agent' } } }], ports: [{ port: 'http' }] }],
            egress: [{ to: [{ ipBlock: { cidr: '10.2.0.0/16' } }] }],
          },
        },
      ],
      hfps: [{ metadata: { name: 'hfp0' }, spec: { nodeSelector: {}, policyTypes: ['Ingress', 'Egress'] } }],
      audit: false,
    };
    check(base);
    check({ ...base, audit: true });
    check({ ...base, hfps: [{ metadata: { name: 'hfp0' }, spec: { nodeSelector: {}, mode: 'Audit', policyTypes: ['Ingress', 'Egress'] } }] });
    // Spot checks of what the comparison covers.
    const { state, cgroups } = build(base);
    const ev = new PolicyEvaluator(state, { hostFirewall: { hostNetworkEgress: (p) => cgroups.has(`${p.namespace}/${p.name}`) } });
    const to = (src: Endpoint, port: number, protocol: Protocol = 'TCP') => ev.evaluate({ src, dst: ipEndpoint(N1), protocol, port }).ingress;
    expect(to(podEndpoint('x', 'p0'), 8080)).toMatchObject({
      allowed: true,
      subject: { namespace: 'x', name: 'hn0' },
      host: 'n1',
      reasons: [{ kind: 'rule', policy: { namespace: 'x', name: 'np0' }, rule: 0 }],
    });
    expect(to(podEndpoint('x', 'p2'), 8080)).toMatchObject({ allowed: true });
    expect(to(podEndpoint('y', 'p1'), 8080)).toMatchObject({ allowed: false, reasons: [{ kind: 'no-rule-matched' }] });
    expect(to(ipEndpoint(EXTERNAL), 22)).toMatchObject({ allowed: true, reasons: [{ kind: 'failsafe' }] });
    expect(to(ipEndpoint(EXTERNAL), 80)).toMatchObject({ allowed: false, policies: [{ name: 'hfp0', kind: 'HostFirewallPolicy' }] });
    expect(to(podEndpoint('y', 'p1'), 80)).toMatchObject({ allowed: true, reasons: [{ kind: 'own-node' }] });
    const from = ev.evaluate({ src: podEndpoint('x', 'hn0'), dst: ipEndpoint(EXTERNAL), protocol: 'TCP', port: 443 }).egress;
    expect(from).toMatchObject({ allowed: false, subject: { namespace: 'x', name: 'hn0' }, policies: [{ namespace: 'x', name: 'np0' }] });
    // Without the option, nothing changes for node traffic.
    expect(new PolicyEvaluator(state).evaluate({ src: ipEndpoint(EXTERNAL), dst: ipEndpoint(N1), protocol: 'TCP', port: 80 }).ingress).toMatchObject({
      allowed: true,
      reasons: [{ kind: 'not-a-pod' }],
    });
  });
});
