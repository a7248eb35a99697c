// The agent's view of the cluster: the objects NetworkPolicy and routing
// depend on, slimmed to the fields weir reads (a full Pod weighs several KiB;
// 10k of them must fit in a small agent), plus the addresses the CNI plugin
// reported for local pods before the API shows them. ClusterNetworkPolicies
// (kind `clusterpolicies`) are always mirrored, as an empty list while their
// CRD is not installed (optional-api.ts); with the host firewall on, also
// the HostFirewallPolicies (kind `hostpolicies`).

import type { ClusterNetworkPolicy } from '../policy/cnp-types.ts';
import type { ClusterState, Container, HostFirewallPolicy, Namespace, NetworkPolicy, NodeInfo, Pod, PodSpec } from '../policy/types.ts';
import { type DigestJson, entryOf, KindDigest } from './cache-digest.ts';
import type { ReflectorHandlers } from './reflector.ts';

export interface NodeFacts {
  name: string;
  podCIDRs: string[];
  internalIPs: string[];
  /** The Node's labels (HostFirewallPolicy node selectors). */
  labels: Record<string, string>;
}

export type Kind = 'pods' | 'namespaces' | 'policies' | 'nodes' | 'clusterpolicies' | 'hostpolicies';
const BASE_KINDS: readonly Kind[] = ['pods', 'namespaces', 'policies', 'nodes', 'clusterpolicies'];
/** Kinds of a CRD that may be missing: listed empty while it is (optional-api.ts). */
const OPTIONAL_KINDS: ReadonlySet<Kind> = new Set(['clusterpolicies', 'hostpolicies']);

/** A Node as the API sends it, or as listedSlim() copies it: a member it lacks may be present as undefined. */
interface RawNode {
  metadata?: { name?: string | undefined; uid?: string | undefined; resourceVersion?: string | undefined; labels?: Record<string, string> | undefined };
  spec?: { podCIDR?: string | undefined; podCIDRs?: string[] | undefined };
  status?: { addresses?: { type?: string; address?: string }[] | undefined };
}

/** Whether a kind's objects live in a namespace (their key is `namespace/name`) or in the cluster (`name`). */
const NAMESPACED: Record<Kind, boolean> = { pods: true, namespaces: false, policies: true, nodes: false, clusterpolicies: false, hostpolicies: false };

/**
 * The one key an object of `kind` is stored, replaced and deleted under:
 * `namespace/name` for namespaced kinds, `name` for cluster-scoped ones.
 * Read from the object as the API sends it (before slimming), so that an
 * ADDED and the DELETED of the same object always agree.
 */
export function objectKey(kind: Kind, o: unknown): string {
  const m = (o as { metadata?: { namespace?: string; name?: string } } | undefined)?.metadata;
  return NAMESPACED[kind] ? `${m?.namespace ?? ''}/${m?.name ?? ''}` : (m?.name ?? '');
}

/** Only what policy, routing and weirctl read of a Pod. */
export function slimPod(p: Pod): Pod {
  const m = p.metadata ?? {};
  const ports = (cs: Container[] | undefined): Container[] =>
    (cs ?? []).map((c) => ({
      ports: (c?.ports ?? []).map((x) => ({
        name: x.name,
        containerPort: x.containerPort,
        protocol: x.protocol,
        ...(x.hostPort ? { hostPort: x.hostPort } : {}),
      })),
    }));
  const spec: Partial<PodSpec> = p.spec ?? {};
  const sidecars = (spec.initContainers ?? []).filter((c) => c?.restartPolicy === 'Always');
  const st = p.status ?? {};
  return {
    metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, labels: m.labels ?? {} },
    spec: {
      nodeName: spec.nodeName,
      hostNetwork: spec.hostNetwork,
      containers: ports(spec.containers),
      ...(sidecars.length ? { initContainers: ports(sidecars).map((c) => ({ ...c, restartPolicy: 'Always' })) } : {}),
    },
    status: { phase: st.phase, podIP: st.podIP, podIPs: st.podIPs, hostIP: st.hostIP, hostIPs: st.hostIPs },
  } as Pod;
}

/**
 * The policy as the API sends it. client-node's typed list renames the
 * ingress rule's `from` to `_from` (a reserved word in its generator), while
 * watch events carry the wire JSON. Read as is, a listed policy's rules would
 * have no `from`, which means "every source": every policy known at startup
 * would open its ports to the whole cluster.
 */
export function wireForm(np: NetworkPolicy): NetworkPolicy {
  const ingress = np.spec?.ingress;
  if (!ingress?.some((r) => r && '_from' in r)) return np;
  const fixed = ingress.map((r) => {
    if (!r || !('_from' in r)) return r;
    const { _from, ...rest } = r as typeof r & { _from?: unknown };
    return { ...rest, ...(rest.from === undefined && _from !== undefined ? { from: _from } : {}) } as typeof r;
  });
  return { ...np, spec: { ...np.spec, ingress: fixed } } as NetworkPolicy;
}

export function nodeFacts(n: RawNode): NodeFacts {
  const cidrs = n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
  const ips = (n.status?.addresses ?? []).filter((a) => a.type === 'InternalIP' && a.address).map((a) => a.address as string);
  return { name: n.metadata?.name ?? '', podCIDRs: cidrs, internalIPs: ips, labels: n.metadata?.labels ?? {} };
}

export interface CniReport {
  namespace: string;
  name: string;
  uid?: string;
  containerID: string;
  ips: string[];
}

export class ClusterCache {
  readonly pods = new Map<string, Pod>();
  readonly namespaces = new Map<string, Namespace>();
  readonly policies = new Map<string, NetworkPolicy>();
  readonly nodes = new Map<string, NodeFacts>();
  /** ClusterNetworkPolicies by name. */
  readonly clusterpolicies = new Map<string, ClusterNetworkPolicy>();
  /** HostFirewallPolicies by name (only mirrored with the host firewall on). */
  readonly hostpolicies = new Map<string, HostFirewallPolicy>();
  /** Local pods' addresses as the CNI plugin reported them, by namespace/name. */
  readonly cni = new Map<string, CniReport>();
  /** resourceVersion last seen per kind mirrored. */
  readonly versions: Partial<Record<Kind, string>> = { pods: '', namespaces: '', policies: '', nodes: '', clusterpolicies: '' };
  /** Per kind, the count and hash of uid/resourceVersion of what is stored (cache-digest.ts). */
  readonly digests: Record<Kind, KindDigest> = {
    pods: new KindDigest(),
    namespaces: new KindDigest(),
    policies: new KindDigest(),
    nodes: new KindDigest(),
    clusterpolicies: new KindDigest(),
    hostpolicies: new KindDigest(),
  };
  /** Bumped on every change; a sync records the generation it applied. */
  generation = 0;
  /** Which kinds have completed their first list. */
  readonly synced = new Set<Kind>();
  /** The kinds a sync waits for. */
  readonly kinds: readonly Kind[];

  constructor(opts: { hostFirewall?: boolean } = {}) {
    this.kinds = opts.hostFirewall ? [...BASE_KINDS, 'hostpolicies'] : BASE_KINDS;
    if (opts.hostFirewall) this.versions.hostpolicies = '';
  }

  replace(kind: Kind, items: unknown[], rv: string): void {
    const m = this.#map(kind);
    m.clear();
    this.digests[kind].clear();
    for (const o of items) this.#put(kind, o);
    this.versions[kind] = rv;
    this.synced.add(kind);
    this.generation++;
  }

  apply(kind: Kind, type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: unknown, rv: string): void {
    if (type === 'DELETED') {
      const key = objectKey(kind, obj);
      this.#map(kind).delete(key);
      this.digests[kind].delete(key);
      if (kind === 'pods') this.cni.delete(key);
    } else this.#put(kind, obj);
    this.versions[kind] = rv;
    this.generation++;
  }

  bookmark(kind: Kind, rv: string): void {
    this.versions[kind] = rv;
  }

  /**
   * The reflector handlers that mirror `kind` into this cache. `changed`
   * runs after every change the cache took (a list or an event), for the
   * reconciler to schedule a sync; a bookmark changes no object and does not
   * call it. A missing CRD (ClusterNetworkPolicy, HostFirewallPolicy) is
   * relisted (empty) at every retry: an empty list of them when none are
   * known is no news (resync.ts).
   */
  mirror<T = unknown>(kind: Kind, changed: (how: 'list' | 'event') => void): Omit<ReflectorHandlers<T>, 'error'> {
    return {
      // The slim object keeps the metadata the reflector reads back (name, namespace, uid, resourceVersion).
      ...(kind === 'pods' || kind === 'nodes' ? { keep: (o: T) => listedSlim(kind, o) as T } : {}),
      replace: (items, rv) => {
        if (OPTIONAL_KINDS.has(kind) && items.length === 0 && this.#map(kind).size === 0 && this.synced.has(kind)) return;
        this.replace(kind, items, rv);
        changed('list');
      },
      event: (type, obj, rv) => {
        this.apply(kind, type, obj, rv);
        changed('event');
      },
      bookmark: (rv) => this.bookmark(kind, rv),
    };
  }

  reportCni(r: CniReport): void {
    this.cni.set(objectKey('pods', { metadata: { namespace: r.namespace, name: r.name } }), r);
    this.generation++;
  }

  forgetCni(containerID: string): void {
    for (const [k, r] of this.cni) if (r.containerID === containerID) this.cni.delete(k);
    this.generation++;
  }

  get allSynced(): boolean {
    return this.kinds.every((k) => this.synced.has(k));
  }

  /**
   * The snapshot policy is compiled from. A local pod the API still shows
   * without addresses gets the ones its CNI ADD reported, so it is policed
   * from its first packet, not from whenever the kubelet updates its status.
   */
  snapshot(): ClusterState & { nodes: NodeInfo[]; nodeFacts: NodeFacts[] } {
    const pods: Pod[] = [];
    for (const [k, p] of this.pods) {
      const r = this.cni.get(k);
      const hasIps = (p.status?.podIPs?.length ?? 0) > 0 || !!p.status?.podIP;
      if (r && !hasIps && (!r.uid || r.uid === p.metadata?.uid)) {
        pods.push({ ...p, status: { ...p.status, podIPs: r.ips.map((ip) => ({ ip })), phase: p.status?.phase ?? 'Pending' } } as Pod);
      } else pods.push(p);
    }
    const nodeFacts = [...this.nodes.values()];
    const nodes: NodeInfo[] = nodeFacts.map((n) => ({ name: n.name, internalIPs: n.internalIPs, labels: n.labels }));
    return {
      pods,
      namespaces: [...this.namespaces.values()],
      policies: [...this.policies.values()],
      clusterPolicies: [...this.clusterpolicies.values()],
      nodes,
      ...(this.kinds.includes('hostpolicies') ? { hostPolicies: [...this.hostpolicies.values()] } : {}),
      nodeFacts,
    };
  }

  #map(kind: Kind): Map<string, unknown> {
    return this[kind] as Map<string, unknown>;
  }

  #put(kind: Kind, o: unknown): void {
    const entry = entryOf(kind, o);
    this.#map(kind).set(entry[0], slim(kind, o));
    this.digests[kind].put(...entry);
  }

  /** The digest of each kind mirrored, with its resourceVersion; with `entries`, every object's key, uid and version (GET /cache). */
  digestView(entries = false): Partial<Record<Kind, DigestJson & { resourceVersion: string; entries?: ReturnType<KindDigest['entries']> }>> {
    const out: Partial<Record<Kind, DigestJson & { resourceVersion: string; entries?: ReturnType<KindDigest['entries']> }>> = {};
    for (const k of this.kinds)
      out[k] = { ...this.digests[k].json(), resourceVersion: this.versions[k] ?? '', ...(entries ? { entries: this.digests[k].entries() } : {}) };
    return out;
  }
}

/**
 * A listed Pod or Node cut down, page by page, to what slim() reads, in the
 * API's shape (slim() runs on it again when the list is stored): the only
 * kinds whose full objects add up to much in a list.
 */
export function listedSlim(kind: 'pods' | 'nodes', o: unknown): unknown {
  if (kind === 'pods') return slimPod(o as Pod);
  const n = o as RawNode;
  const m = n.metadata ?? {};
  return {
    metadata: { name: m.name, uid: m.uid, resourceVersion: m.resourceVersion, labels: m.labels },
    spec: { podCIDR: n.spec?.podCIDR, podCIDRs: n.spec?.podCIDRs },
    status: { addresses: n.status?.addresses },
  } satisfies RawNode;
}

/** What the cache keeps of an object of `kind`. */
function slim(kind: Kind, o: unknown): unknown {
  switch (kind) {
    case 'pods':
      return slimPod(o as Pod);
    case 'namespaces': {
      const ns = o as Namespace;
      return { metadata: { name: ns.metadata?.name, labels: ns.metadata?.labels ?? {} } } as Namespace;
    }
    case 'policies': {
      const np = o as NetworkPolicy & { metadata?: { managedFields?: unknown } };
      const { managedFields: _drop, ...metadata } = np.metadata ?? {};
      return { ...wireForm(np), metadata } as NetworkPolicy;
    }
    case 'nodes':
      return nodeFacts(o as RawNode);
    case 'clusterpolicies': {
      // Status (conditions written by implementations) and annotations are not policy.
      const cnp = o as ClusterNetworkPolicy & { metadata?: { managedFields?: unknown; annotations?: unknown } };
      const { managedFields: _drop, annotations: _a, ...metadata } = cnp.metadata ?? {};
      return { metadata, spec: cnp.spec } as ClusterNetworkPolicy;
    }
    case 'hostpolicies': {
      const hp = o as HostFirewallPolicy & { metadata?: { managedFields?: unknown; annotations?: unknown } };
      const { managedFields: _drop, annotations: _a, ...metadata } = hp.metadata ?? {};
      return { metadata, spec: hp.spec } as HostFirewallPolicy;
    }
  }
}
