// One fixture per kind the agent mirrors: objects as the API sends them, and
// how to read them back out of the cache's snapshot (what policy and /state
// see), so that cache and reflector tests run the same checks on every kind.
import type { ClusterCache, Kind } from '../../../src/agent/cache.ts';

type Snapshot = ReturnType<ClusterCache['snapshot']>;

export interface KindFixture {
  kind: Kind;
  namespaced: boolean;
  /** An object as the API sends it: `id` is `namespace/name` or `name`; `v` is a label (or selector) value that MODIFIED changes. */
  make(id: string, resourceVersion: string, v?: string): object;
  /** The ids of this kind's objects in a snapshot, sorted. */
  ids(s: Snapshot): string[];
  /** The `v` of object `id` in a snapshot. */
  v(s: Snapshot, id: string): string | undefined;
}

const split = (id: string): { namespace?: string; name: string } => {
  const i = id.indexOf('/');
  return i < 0 ? { name: id } : { namespace: id.slice(0, i), name: id.slice(i + 1) };
};
const meta = (id: string, resourceVersion: string, labels?: Record<string, string>) => ({
  ...split(id),
  uid: `uid-${id}`,
  resourceVersion,
  managedFields: [{ manager: 'kubectl' }],
  ...(labels ? { labels } : {}),
});
const nsName = (m: { namespace?: string; name?: string } | undefined): string => (m?.namespace ? `${m.namespace}/${m.name}` : (m?.name ?? ''));
const sorted = (xs: string[]): string[] => [...xs].sort();

export const KINDS: readonly KindFixture[] = [
  {
    kind: 'pods',
    namespaced: true,
    make: (id, rv, v = 'a') => ({
      metadata: meta(id, rv, { v }),
      spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'i', ports: [{ containerPort: 80 }] }] },
      status: { phase: 'Running', podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }] },
    }),
    ids: (s) => sorted(s.pods.map((p) => nsName(p.metadata))),
    v: (s, id) => s.pods.find((p) => nsName(p.metadata) === id)?.metadata?.labels?.['v'],
  },
  {
    kind: 'namespaces',
    namespaced: false,
    make: (id, rv, v = 'a') => ({ metadata: meta(id, rv, { v }), spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } }),
    ids: (s) => sorted(s.namespaces.map((n) => nsName(n.metadata))),
    v: (s, id) => s.namespaces.find((n) => n.metadata?.name === id)?.metadata?.labels?.['v'],
  },
  {
    kind: 'policies',
    namespaced: true,
    make: (id, rv, v = 'a') => ({ metadata: meta(id, rv), spec: { podSelector: { matchLabels: { v } }, policyTypes: ['Ingress'], ingress: [] } }),
    ids: (s) => sorted(s.policies.map((p) => nsName(p.metadata))),
    v: (s, id) => s.policies.find((p) => nsName(p.metadata) === id)?.spec?.podSelector?.matchLabels?.['v'],
  },
  {
    kind: 'nodes',
    namespaced: false,
    make: (id, rv, v = 'a') => ({
      metadata: meta(id, rv, { v }),
      spec: { podCIDRs: ['10.9.0.0/24'] },
      status: { addresses: [{ type: 'InternalIP', address: '192.168.9.1' }] },
    }),
    ids: (s) => sorted(s.nodeFacts.map((n) => n.name)),
    v: (s, id) => s.nodes?.find((n) => n.name === id)?.labels?.['v'],
  },
  {
    kind: 'clusterpolicies',
    namespaced: false,
    make: (id, rv, v = 'a') => ({
      apiVersion: 'policy.networking.k8s.io/v1beta1',
      kind: 'ClusterNetworkPolicy',
      metadata: { ...meta(id, rv), annotations: { note: 'x' } },
      spec: { tier: 'Admin', priority: 10, subject: { namespaces: { matchLabels: { v } } }, ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }] },
      status: { conditions: [] },
    }),
    ids: (s) => sorted((s.clusterPolicies ?? []).map((p) => nsName(p.metadata))),
    v: (s, id) => (s.clusterPolicies ?? []).find((p) => p.metadata?.name === id)?.spec?.subject?.namespaces?.matchLabels?.['v'],
  },
  {
    kind: 'hostpolicies',
    namespaced: false,
    make: (id, rv, v = 'a') => ({ metadata: meta(id, rv), spec: { nodeSelector: { matchLabels: { v } }, policyTypes: ['Ingress'], ingress: [] } }),
    ids: (s) => sorted((s.hostPolicies ?? []).map((p) => nsName(p.metadata))),
    v: (s, id) => (s.hostPolicies ?? []).find((p) => p.metadata?.name === id)?.spec?.nodeSelector?.matchLabels?.['v'],
  },
];

/** Two ids of a kind (in two namespaces, with the same name, for namespaced kinds) and a third. */
export const idsOf = (f: KindFixture): [string, string, string] => (f.namespaced ? ['ns1/x', 'ns2/x', 'ns1/y'] : ['x', 'y', 'z']);
