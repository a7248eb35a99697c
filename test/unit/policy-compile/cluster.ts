// Random small clusters for the compiler's properties: two nodes, up to
// three namespaces, pods in fixed slots (so a slot keeps its address while it
// is relabelled, removed or re-added) and policies in fixed slots, all drawn
// from a small vocabulary so that selectors, ports and ipBlocks often hit.
import fc from 'fast-check';
import type { ClusterNetworkPolicy } from '../../../src/policy/cnp-types.ts';
import type {
  ClusterState,
  ContainerPort,
  LabelSelector,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NetworkPolicySpec,
  Pod,
} from '../../../src/policy/types.ts';

export const NODES = ['n1', 'n2'] as const;
export const NAMESPACES = ['x', 'y', 'z'] as const;
export const NODE_IPS: Record<string, [string, string]> = { n1: ['192.168.0.1', 'fd01::1'], n2: ['192.168.0.2', 'fd01::2'] };
/** Addresses outside the cluster, and one in the pod range that no pod holds. */
export const EXTERNAL_IPS = ['203.0.113.5', '198.51.100.7', '10.9.0.1', '2001:db8::5', 'fd00:9::1'];
export const POD_SLOTS = 8;
export const POLICY_SLOTS = 4;
/** Host part of each slot's address: spread so that the ipBlocks below cut between them. */
const HOST = [3, 14, 17, 40, 130, 131, 200, 254];

export type PodKind = 'normal' | 'v4only' | 'hostNetwork' | 'noIp' | 'Failed' | 'Succeeded' | 'Pending';

export interface PodModel {
  ns: number;
  node: number;
  app: string | undefined;
  tier: string | undefined;
  kind: PodKind;
  ports: number[];
}

export interface ClusterModel {
  teams: (string | undefined)[];
  /** Whether namespace z has a Namespace object (pods there select with the default labels either way). */
  zObject: boolean;
  pods: (PodModel | null)[];
  policies: (NetworkPolicy | null)[];
  /** ClusterNetworkPolicies in fixed slots (cnp-arb.ts); absent: none. */
  clusterPolicies?: (ClusterNetworkPolicy | null)[];
  /** The domain names whose addresses are learned now (LEARNED in cnp-arb.ts). */
  learned?: string[];
}

/** What the DNS learner would hand over for each name (cnp-arb.ts draws subsets of these names). */
export const LEARNED: Record<string, string[]> = {
  'www.example.com': ['203.0.113.5', '2001:db8::5'],
  'api.example.com': ['198.51.100.7', '10.1.0.40'],
  'example.org': ['10.9.0.1', 'fd00:1::83'],
};

export const PORT_VOCAB: ContainerPort[] = [
  { name: 'http', containerPort: 8080 },
  { name: 'http', containerPort: 80 },
  { name: 'dns', containerPort: 53, protocol: 'UDP' },
  { name: 'dns', containerPort: 5353 },
  { name: 'metrics', containerPort: 9090 },
  { name: 'sctp-x', containerPort: 9999, protocol: 'SCTP' },
];

/** Slot `i` of node `n` (0-based): its addresses. */
export const podIps = (node: number, slot: number): [string, string] => [
  `10.${node + 1}.0.${HOST[slot]}`,
  `fd00:${node + 1}::${(HOST[slot] as number).toString(16)}`,
];

export function buildPod(slot: number, m: PodModel): Pod {
  const node = NODES[m.node] as string;
  const [v4, v6] = m.kind === 'hostNetwork' ? (NODE_IPS[node] as [string, string]) : podIps(m.node, slot);
  const ips = m.kind === 'noIp' ? [] : m.kind === 'v4only' ? [v4] : [v4, v6];
  const labels: Record<string, string> = { pod: `p${slot}` };
  if (m.app) labels.app = m.app;
  if (m.tier) labels.tier = m.tier;
  const phase = m.kind === 'Failed' || m.kind === 'Succeeded' || m.kind === 'Pending' ? m.kind : 'Running';
  return {
    metadata: { namespace: NAMESPACES[m.ns] as string, name: `p${slot}`, labels },
    spec: {
      nodeName: node,
      ...(m.kind === 'hostNetwork' ? { hostNetwork: true } : {}),
      containers: [{ ports: m.ports.map((i) => PORT_VOCAB[i] as ContainerPort) }],
    },
    status: {
      phase,
      ...(ips.length > 0 ? { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) } : {}),
      hostIP: (NODE_IPS[node] as [string, string])[0],
      hostIPs: (NODE_IPS[node] as string[]).map((ip) => ({ ip })),
    },
  };
}

export function buildState(m: ClusterModel): ClusterState {
  const namespaces = NAMESPACES.filter((n) => n !== 'z' || m.zObject).map((n) => {
    const i = NAMESPACES.indexOf(n);
    const team = m.teams[i];
    return { metadata: { name: n, labels: { 'kubernetes.io/metadata.name': n, ...(team ? { team } : {}) } } };
  });
  return {
    namespaces,
    pods: m.pods.flatMap((p, i) => (p ? [buildPod(i, p)] : [])),
    policies: m.policies.flatMap((p) => (p ? [p] : [])),
    nodes: NODES.map((n, i) => ({ name: n, internalIPs: NODE_IPS[n] as string[], labels: { 'kubernetes.io/hostname': n, zone: i === 0 ? 'a' : 'b' } })),
    ...(m.clusterPolicies ? { clusterPolicies: m.clusterPolicies.flatMap((p) => (p ? [p] : [])) } : {}),
    ...(m.learned ? { domainAddresses: new Map(m.learned.map((n) => [n, LEARNED[n] ?? []])) } : {}),
  };
}

// ---- arbitraries ----

const podKindArb = fc.constantFrom<PodKind>(
  'normal',
  'normal',
  'normal',
  'normal',
  'normal',
  'v4only',
  'hostNetwork',
  'noIp',
  'Failed',
  'Succeeded',
  'Pending',
);
export const podArb: fc.Arbitrary<PodModel> = fc.record({
  ns: fc.integer({ min: 0, max: 2 }),
  node: fc.integer({ min: 0, max: 1 }),
  app: fc.constantFrom('web', 'db', undefined),
  tier: fc.constantFrom('fe', 'be', undefined),
  kind: podKindArb,
  ports: fc.uniqueArray(fc.integer({ min: 0, max: PORT_VOCAB.length - 1 }), { maxLength: 3 }),
});

export const podSelectorArb = fc.constantFrom<LabelSelector>(
  {},
  { matchLabels: { app: 'web' } },
  { matchLabels: { app: 'db' } },
  { matchLabels: { tier: 'fe' } },
  { matchLabels: { pod: 'p1' } },
  { matchExpressions: [{ key: 'app', operator: 'In', values: ['web', 'db'] }] },
  { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['web'] }] },
  { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
  { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] },
);
export const nsSelectorArb = fc.constantFrom<LabelSelector>(
  {},
  { matchLabels: { team: 'red' } },
  { matchLabels: { 'kubernetes.io/metadata.name': 'y' } },
  { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] },
  { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['x'] }] },
);
export const IPBLOCKS = [
  { cidr: '10.0.0.0/8', except: ['10.2.0.0/16'] },
  { cidr: '10.1.0.0/24', except: ['10.1.0.0/28', '10.1.0.128/31'] },
  { cidr: '10.2.0.0/25' },
  { cidr: '10.1.0.200/32' },
  { cidr: '192.168.0.0/24', except: ['192.168.0.1/32'] },
  { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] },
  { cidr: '203.0.113.0/24' },
  { cidr: 'fd00::/16', except: ['fd00:2::/32'] },
  { cidr: 'fd00:1::/120', except: ['fd00:1::/124'] },
  { cidr: '::/0', except: ['fd00::/8'] },
  { cidr: 'fd01::/64' },
  { cidr: '169.254.169.254/32' },
  { cidr: 'fd00:ec2::254/128' },
];
const peerArb: fc.Arbitrary<NetworkPolicyPeer> = fc.oneof(
  podSelectorArb.map((podSelector) => ({ podSelector })),
  nsSelectorArb.map((namespaceSelector) => ({ namespaceSelector })),
  fc.tuple(podSelectorArb, nsSelectorArb).map(([podSelector, namespaceSelector]) => ({ podSelector, namespaceSelector })),
  fc.constantFrom(...IPBLOCKS).map((ipBlock) => ({ ipBlock })),
);
export const POLICY_PORTS: NetworkPolicyPort[] = [
  { port: 80 },
  { protocol: 'TCP', port: 8080 },
  { protocol: 'UDP', port: 53 },
  { protocol: 'UDP' },
  { port: 'http' },
  { protocol: 'UDP', port: 'dns' },
  { port: 'dns' },
  { port: 8000, endPort: 9100 },
  { protocol: 'SCTP' },
  { port: 'metrics' },
  { protocol: 'SCTP', port: 'sctp-x' },
];
const portsArb = fc.option(
  fc
    .uniqueArray(fc.integer({ min: 0, max: POLICY_PORTS.length - 1 }), { minLength: 1, maxLength: 3 })
    .map((is) => is.map((i) => POLICY_PORTS[i] as NetworkPolicyPort)),
  { nil: undefined },
);
const peersArb = fc.option(fc.array(peerArb, { minLength: 0, maxLength: 2 }), { nil: undefined });
const ruleArb = fc.record({ peers: peersArb, ports: portsArb });

export const policyArb = (slot: number): fc.Arbitrary<NetworkPolicy> =>
  fc
    .record({
      ns: fc.integer({ min: 0, max: 2 }),
      podSelector: podSelectorArb,
      types: fc.constantFrom<NetworkPolicySpec['policyTypes']>(undefined, ['Ingress'], ['Egress'], ['Ingress', 'Egress']),
      ingress: fc.option(fc.array(ruleArb, { maxLength: 2 }), { nil: undefined }),
      egress: fc.option(fc.array(ruleArb, { maxLength: 2 }), { nil: undefined }),
    })
    .map(({ ns, podSelector, types, ingress, egress }) => {
      const spec: NetworkPolicySpec = { podSelector };
      if (types) spec.policyTypes = types;
      if (ingress) spec.ingress = ingress.map((r) => ({ ...(r.peers ? { from: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) }));
      if (egress) spec.egress = egress.map((r) => ({ ...(r.peers ? { to: r.peers } : {}), ...(r.ports ? { ports: r.ports } : {}) }));
      return { metadata: { namespace: NAMESPACES[ns] as string, name: `pol${slot}` }, spec };
    });

export const clusterArb: fc.Arbitrary<ClusterModel> = fc.record({
  teams: fc.tuple(...NAMESPACES.map(() => fc.constantFrom('red', 'blue', undefined))),
  zObject: fc.boolean(),
  pods: fc.tuple(...Array.from({ length: POD_SLOTS }, () => fc.option(podArb, { nil: null, freq: 4 }))),
  policies: fc.tuple(...Array.from({ length: POLICY_SLOTS }, (_, i) => fc.option(policyArb(i), { nil: null, freq: 3 }))),
});

/** One change to a cluster: a few pod slots, policy slots or namespace labels rewritten. */
export type Change =
  | { kind: 'pod'; slot: number; pod: PodModel | null }
  | { kind: 'relabel'; slot: number; app: string | undefined; tier: string | undefined }
  | { kind: 'policy'; slot: number; policy: NetworkPolicy | null }
  | { kind: 'team'; ns: number; team: string | undefined }
  | { kind: 'cnp'; slot: number; policy: ClusterNetworkPolicy | null }
  | { kind: 'dns'; learned: string[] };

export const changeArb: fc.Arbitrary<Change> = fc.oneof(
  fc.record({ kind: fc.constant('pod' as const), slot: fc.integer({ min: 0, max: POD_SLOTS - 1 }), pod: fc.option(podArb, { nil: null }) }),
  fc.record({
    kind: fc.constant('relabel' as const),
    slot: fc.integer({ min: 0, max: POD_SLOTS - 1 }),
    app: fc.constantFrom('web', 'db', undefined),
    tier: fc.constantFrom('fe', 'be', undefined),
  }),
  fc
    .integer({ min: 0, max: POLICY_SLOTS - 1 })
    .chain((slot) => fc.record({ kind: fc.constant('policy' as const), slot: fc.constant(slot), policy: fc.option(policyArb(slot), { nil: null }) })),
  fc.record({ kind: fc.constant('team' as const), ns: fc.integer({ min: 0, max: 2 }), team: fc.constantFrom('red', 'blue', undefined) }),
);

export function applyChange(m: ClusterModel, c: Change): ClusterModel {
  const next: ClusterModel = {
    ...m,
    teams: [...m.teams],
    pods: [...m.pods],
    policies: [...m.policies],
    ...(m.clusterPolicies ? { clusterPolicies: [...m.clusterPolicies] } : {}),
  };
  switch (c.kind) {
    case 'pod':
      next.pods[c.slot] = c.pod;
      break;
    case 'relabel': {
      const p = next.pods[c.slot];
      if (p) next.pods[c.slot] = { ...p, app: c.app, tier: c.tier };
      break;
    }
    case 'policy':
      next.policies[c.slot] = c.policy;
      break;
    case 'team':
      next.teams[c.ns] = c.team;
      break;
    case 'cnp':
      next.clusterPolicies = [...(m.clusterPolicies ?? [])];
      next.clusterPolicies[c.slot] = c.policy;
      break;
    case 'dns':
      next.learned = c.learned;
      break;
  }
  return next;
}

/**
 * The states a model goes through: the start, then one state per batch of
 * changes. `next` builds each state from the previous one (e.g. keeping
 * unchanged objects by identity, as the agent's cache does).
 */
export function statesOf(
  start: ClusterModel,
  steps: readonly (readonly Change[])[],
  next: (prev: ClusterState, built: ClusterState) => ClusterState = (_, b) => b,
): ClusterState[] {
  const out = [buildState(start)];
  let m = start;
  for (const batch of steps) {
    for (const c of batch) m = applyChange(m, c);
    out.push(next(out.at(-1) as ClusterState, buildState(m)));
  }
  return out;
}
