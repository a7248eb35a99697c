// Synthetic clusters for the policy and agent benchmarks (scripts/bench-policy,
// scripts/bench-agent): a fixed number of pods spread evenly over 100 nodes
// (or `nodes`) and 50 namespaces (or `namespaces`), and policies drawn from a
// small label vocabulary so that selectors overlap the way real ones do.
// Deterministic: the same sizes and seed give the same cluster.
//
// Addresses: node k has the k-th /24 counted from 10.244.0.0/24 as its pod
// CIDR (podCIDR(k)): node-00 .. node-255 keep 10.244.k.0/24; past 10.255.255.0/24
// the count wraps to 10.0.0.0/24 and goes on inside 10.0.0.0/8, so 5k nodes
// end at 10.8.135.0/24, and up to MAX_NODES the plan stays clear of the
// service range 10.96.0.0/12. Its InternalIP is 192.168.0.1 + k in
// 192.168.0.0/16 (nodeIP(k)). The node the benchmark plays is node-01
// (10.244.1.0/24, the range the real plugin is configured with). Synthetic
// pods take host parts from 20 up, so the real pods the plugin makes
// (allocated from the bottom of the range) never collide with them, and pods
// added later take them from 200 up.
import { Rng } from '../../../lab/soak/rng.ts';
import type {
  ClusterState,
  ContainerPort,
  LabelSelector,
  Namespace,
  NetworkPolicy,
  NetworkPolicyEgressRule,
  NetworkPolicyIngressRule,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NodeInfo,
  Pod,
} from '../../../src/policy/types.ts';

export const NODE_COUNT = 100;
export const BENCH_NODE = 'node-01';
export const BENCH_NODE_INDEX = 1;
export const BENCH_POD_CIDR = '10.244.1.0/24';
/** Every node's pod CIDR together (at the default 100 nodes): pod-to-pod traffic is never masqueraded. */
export const CLUSTER_POD_CIDR = '10.244.0.0/16';
/** The most nodes the address plan holds clear of 10.96.0.0/12 (wrapped /24s 10.0.0 .. 10.95.255). */
export const MAX_NODES = 256 * (256 - 244) + 256 * 96;

/** The first three octets of node k's pod /24. */
export function podPrefix(k: number): string {
  if (!Number.isInteger(k) || k < 0 || k >= MAX_NODES) throw new Error(`node index ${k} outside the address plan (0..${MAX_NODES - 1})`);
  const j = (244 * 256 + k) % (256 * 256);
  return `10.${j >> 8}.${j & 255}`;
}
export const podCIDR = (k: number): string => `${podPrefix(k)}.0/24`;
/** Node k's InternalIP: 192.168.0.1 + k, in 192.168.0.0/16 (192.168.0.k+1 for the first 254). */
export function nodeIP(k: number): string {
  const n = 1 + k;
  if (n > 65534) throw new Error(`node index ${k} outside 192.168.0.0/16`);
  return `192.168.${n >> 8}.${n & 255}`;
}
const FIRST_HOST = 20;
const ADDED_FIRST_HOST = 200;

export const APPS = [
  'web',
  'api',
  'auth',
  'cart',
  'checkout',
  'search',
  'catalog',
  'users',
  'orders',
  'billing',
  'mail',
  'media',
  'reports',
  'ingest',
  'queue',
  'cache',
  'db',
  'metrics',
  'logs',
  'admin',
];
export const TIERS = ['frontend', 'backend', 'data', 'ops'];
export const TEAMS = ['red', 'blue', 'green', 'yellow', 'purple'];
export const ENVS = ['prod', 'staging', 'dev'];
const NUMERIC_PORTS = [80, 443, 8080, 8443, 5432, 6379, 9090, 3000, 9000, 27017];
const NAMED = ['http', 'metrics', 'grpc'];

/** The soak's seeded generator (mulberry32) as a function: the same clusters from the same seed, everywhere. */
export function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}
type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
const chance = (r: Rand, p: number): boolean => r() < p;

export const nsName = (i: number): string => `ns-${String(i).padStart(2, '0')}`;
export const nodeName = (k: number): string => `node-${String(k).padStart(2, '0')}`;

export interface Cluster {
  state: { pods: Pod[]; namespaces: Namespace[]; policies: NetworkPolicy[]; nodes: NodeInfo[] };
  /** Pods on the bench node. */
  localPods: number;
  /** Host part of the next address handed out on each node. */
  nextHost: number[];
  /** Host part of the next pod added with addPod on the bench node. */
  nextAdded: number;
  namespaces: number;
}

function containerPorts(tier: string): ContainerPort[] {
  const ports: ContainerPort[] = [{ name: 'metrics', containerPort: 9090 }];
  if (tier === 'frontend') ports.push({ name: 'http', containerPort: 8080 });
  if (tier === 'backend') ports.push({ name: 'http', containerPort: 8080 }, { name: 'grpc', containerPort: 9000 });
  if (tier === 'data') ports.push({ name: 'db', containerPort: 5432 });
  return ports;
}

export function makePod(namespace: string, name: string, node: string, ip: string, labels: Record<string, string>): Pod {
  return {
    metadata: { namespace, name, labels, uid: `uid-${namespace}-${name}` },
    spec: { nodeName: node, containers: [{ ports: containerPorts(labels.tier ?? '') }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: nodeIP(Number(node.slice(5))) },
  };
}

function randomLabels(r: Rand): Record<string, string> {
  return { app: pick(r, APPS), tier: pick(r, TIERS), version: pick(r, ['v1', 'v2']) };
}

function podSelector(r: Rand): LabelSelector {
  const x = r();
  if (x < 0.12) return {};
  if (x < 0.6) return { matchLabels: { app: pick(r, APPS) } };
  if (x < 0.8) return { matchLabels: { tier: pick(r, TIERS) } };
  if (x < 0.9) return { matchLabels: { app: pick(r, APPS), version: pick(r, ['v1', 'v2']) } };
  return { matchExpressions: [{ key: 'app', operator: 'In', values: [pick(r, APPS), pick(r, APPS)] }] };
}

function nsSelector(r: Rand, nsCount: number): LabelSelector {
  const x = r();
  if (x < 0.5) return { matchLabels: { team: pick(r, TEAMS) } };
  if (x < 0.75) return { matchLabels: { 'kubernetes.io/metadata.name': nsName(Math.floor(r() * nsCount)) } };
  if (x < 0.9) return { matchLabels: { env: pick(r, ENVS) } };
  return {};
}

function peer(r: Rand, nsCount: number, nodeCount: number): NetworkPolicyPeer {
  const x = r();
  if (x < 0.4) return { podSelector: podSelector(r) };
  if (x < 0.62) return { namespaceSelector: nsSelector(r, nsCount) };
  if (x < 0.9) return { namespaceSelector: nsSelector(r, nsCount), podSelector: podSelector(r) };
  const y = r();
  if (y < 0.4) return { ipBlock: { cidr: '10.0.0.0/8', except: [podCIDR(Math.floor(r() * nodeCount)), '10.96.0.0/12'] } };
  if (y < 0.7) return { ipBlock: { cidr: `192.168.${Math.floor(r() * 256)}.0/24` } };
  return { ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] } };
}

function ports(r: Rand): NetworkPolicyPort[] | undefined {
  if (chance(r, 0.12)) return undefined;
  const n = 1 + Math.floor(r() * 3);
  const out: NetworkPolicyPort[] = [];
  for (let i = 0; i < n; i++) {
    const x = r();
    if (x < 0.62) out.push({ protocol: 'TCP', port: pick(r, NUMERIC_PORTS) });
    else if (x < 0.75) out.push(chance(r, 0.5) ? { protocol: 'TCP', port: 30000, endPort: 32767 } : { protocol: 'TCP', port: 8000, endPort: 8099 });
    else if (x < 0.9) out.push({ protocol: 'TCP', port: pick(r, NAMED) });
    else out.push({ protocol: 'UDP', port: 53 });
  }
  return out;
}

function makePolicy(r: Rand, i: number, nsCount: number, nodeCount: number): NetworkPolicy {
  const namespace = nsName(Math.floor(r() * nsCount));
  const name = `np-${String(i).padStart(4, '0')}`;
  const meta = { namespace, name, uid: `uid-np-${i}`, resourceVersion: '1' };
  if (chance(r, 0.06)) return { metadata: meta, spec: { podSelector: {}, policyTypes: ['Ingress'] } }; // default deny
  const x = r();
  const types: ('Ingress' | 'Egress')[] = x < 0.65 ? ['Ingress'] : x < 0.8 ? ['Egress'] : ['Ingress', 'Egress'];
  const spec: NetworkPolicy['spec'] = { podSelector: podSelector(r), policyTypes: types };
  if (types.includes('Ingress')) {
    const rules: NetworkPolicyIngressRule[] = [];
    for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
      const from = chance(r, 0.08) ? undefined : Array.from({ length: 1 + Math.floor(r() * 2) }, () => peer(r, nsCount, nodeCount));
      const p = ports(r);
      rules.push({ ...(from ? { from } : {}), ...(p ? { ports: p } : {}) });
    }
    spec.ingress = rules;
  }
  if (types.includes('Egress')) {
    const rules: NetworkPolicyEgressRule[] = [
      // DNS, as nearly every egress policy has.
      {
        to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ns-00' } }, podSelector: { matchLabels: { app: 'dns' } } }],
        ports: [
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 53 },
        ],
      },
    ];
    for (let k = 1 + Math.floor(r() * 2); k > 0; k--) {
      const p = ports(r);
      rules.push({ to: Array.from({ length: 1 + Math.floor(r() * 2) }, () => peer(r, nsCount, nodeCount)), ...(p ? { ports: p } : {}) });
    }
    spec.egress = rules;
  }
  return { metadata: meta, spec };
}

export interface ClusterSpec {
  pods: number;
  policies: number;
  namespaces?: number;
  /** Nodes (default NODE_COUNT); the pods are spread evenly, pod i on node i mod nodes. */
  nodes?: number;
  seed?: number;
}

/** A cluster of `pods` pods (1/nodes of them on the bench node) and `policies` policies. */
export function makeCluster(spec: ClusterSpec): Cluster {
  const nsCount = spec.namespaces ?? 50;
  const nodeCount = spec.nodes ?? NODE_COUNT;
  if (nodeCount <= BENCH_NODE_INDEX || nodeCount > MAX_NODES) throw new Error(`nodes must be in ${BENCH_NODE_INDEX + 1}..${MAX_NODES}`);
  const r = rng(spec.seed ?? 1);
  const namespaces: Namespace[] = Array.from({ length: nsCount }, (_, i) => ({
    metadata: { name: nsName(i), labels: { 'kubernetes.io/metadata.name': nsName(i), team: pick(r, TEAMS), env: pick(r, ENVS) } },
  }));
  const nodes: NodeInfo[] = Array.from({ length: nodeCount }, (_, k) => ({ name: nodeName(k), internalIPs: [nodeIP(k)] }));
  const nextHost = Array.from({ length: nodeCount }, () => FIRST_HOST);
  const prefixes = Array.from({ length: nodeCount }, (_, k) => podPrefix(k));
  const pods: Pod[] = [];
  let localPods = 0;
  for (let i = 0; i < spec.pods; i++) {
    const k = i % nodeCount; // exactly pods/nodes per node
    const host = nextHost[k] as number;
    if (host >= ADDED_FIRST_HOST) throw new Error(`more than ${ADDED_FIRST_HOST - FIRST_HOST} pods per node`);
    nextHost[k] = host + 1;
    // A few DNS pods in ns-00 (8 per 100 nodes), which every egress policy allows.
    const labels = i < 4 * nodeCount && i % 50 === 0 ? { app: 'dns', tier: 'ops', version: 'v1' } : randomLabels(r);
    const ns = labels.app === 'dns' ? nsName(0) : nsName(Math.floor(r() * nsCount));
    pods.push(makePod(ns, `${labels.app}-${i}`, nodeName(k), `${prefixes[k]}.${host}`, labels));
    if (k === BENCH_NODE_INDEX) localPods++;
  }
  const policies = Array.from({ length: spec.policies }, (_, i) => makePolicy(r, i, nsCount, nodeCount));
  return { state: { pods, namespaces, policies, nodes }, localPods, nextHost, nextAdded: ADDED_FIRST_HOST, namespaces: nsCount };
}

/**
 * A new pod on the bench node, with labels that several policies of its
 * namespace select when there are any (the app most selected there).
 */
export function addedPod(c: Cluster, n: number): Pod {
  const host = c.nextAdded++;
  if (host > 254) throw new Error('too many added pods');
  // The namespace with the most policies, and the app label its policies name most.
  const count = new Map<string, number>();
  for (const p of c.state.policies) count.set(p.metadata?.namespace ?? '', (count.get(p.metadata?.namespace ?? '') ?? 0) + 1);
  const ns = [...count.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0] ?? nsName(1);
  const apps = new Map<string, number>();
  for (const p of c.state.policies) {
    const app = p.metadata?.namespace === ns ? p.spec?.podSelector?.matchLabels?.app : undefined;
    if (app) apps.set(app, (apps.get(app) ?? 0) + 1);
  }
  const app = [...apps.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]?.[0] ?? 'web';
  return makePod(ns, `added-${app}-${n}`, BENCH_NODE, `${podPrefix(BENCH_NODE_INDEX)}.${host}`, { app, tier: 'backend', version: 'v1' });
}

/** The state as the engine reads it (a fresh top-level object, same arrays). */
export const snapshot = (c: Cluster): ClusterState => ({
  pods: c.state.pods,
  namespaces: c.state.namespaces,
  policies: c.state.policies,
  nodes: c.state.nodes,
});

export interface PairPods {
  client: { namespace: string; name: string; ip: string; labels: Record<string, string> };
  server: { namespace: string; name: string; ip: string; labels: Record<string, string> };
}

export const PAIR_PORTS = [8080, 5201];

/**
 * Puts the two real pods in the cluster (on the bench node) and makes the
 * first two policies the ones that let the client reach the server on the
 * benchmark's ports: an ingress policy selecting the server and an egress
 * policy selecting the client. The others stay as drawn; those that select
 * the server or client add to their profiles like in a real cluster. Their
 * names sort last, so in the profile chains of the pair the allowing policy is
 * the last one jumped to: a new connection of the pair crosses the rules of
 * every other policy selecting the server first (the worst order for weir).
 */
export function addPair(c: Cluster, pair: PairPods): void {
  for (const p of [pair.client, pair.server]) c.state.pods.push(makePod(p.namespace, p.name, BENCH_NODE, p.ip, p.labels));
  c.localPods += 2;
  const ports = [...PAIR_PORTS.map((port) => ({ protocol: 'TCP', port })), { protocol: 'TCP', port: 'http' }];
  const nsSel = (ns: string): LabelSelector => ({ matchLabels: { 'kubernetes.io/metadata.name': ns } });
  const allow: NetworkPolicy[] = [
    {
      metadata: { namespace: pair.server.namespace, name: 'zz-allow-bench-client', uid: 'uid-allow-bench-client', resourceVersion: '1' },
      spec: {
        podSelector: { matchLabels: { app: pair.server.labels.app as string } },
        policyTypes: ['Ingress'],
        ingress: [
          { from: [{ namespaceSelector: nsSel(pair.client.namespace), podSelector: { matchLabels: { app: pair.client.labels.app as string } } }], ports },
        ],
      },
    },
    {
      metadata: { namespace: pair.client.namespace, name: 'zz-bench-client-egress', uid: 'uid-bench-client-egress', resourceVersion: '1' },
      spec: {
        podSelector: { matchLabels: { app: pair.client.labels.app as string } },
        policyTypes: ['Egress'],
        egress: [
          {
            to: [{ namespaceSelector: nsSel('ns-00'), podSelector: { matchLabels: { app: 'dns' } } }],
            ports: [
              { protocol: 'UDP', port: 53 },
              { protocol: 'TCP', port: 53 },
            ],
          },
          { to: [{ namespaceSelector: nsSel(pair.server.namespace), podSelector: { matchLabels: { app: pair.server.labels.app as string } } }], ports },
        ],
      },
    },
  ];
  const n = Math.min(allow.length, c.state.policies.length);
  c.state.policies.splice(0, n, ...allow.slice(0, n));
}
