// The cluster indexed for one node, kept from one compile to the next:
// NetworkPolicies and ClusterNetworkPolicies normalized (or enforced
// fail-closed), the facts of the pods
// policy applies to, namespace labels, this node's pods, and the contents of
// the pod-dependent sets (pod-sets.ts). Shared by the pod chains (compile.ts)
// and the host firewall (host-compile.ts), so that both read the same state the same
// way. Pure.
import { type IpFamily, tryParseIp } from '../ip.ts';
import type { Table, TableRef } from '../nft/types.ts';
import { byPrecedence, type NormalizedClusterPolicy, normalizeOrFailClosed } from './cnp-normalize.ts';
import type { ClusterNetworkPolicy } from './cnp-types.ts';
import { PolicyError } from './errors.ts';
import { effectivePolicyTypes, type NormalizedPolicy, normalizePolicy } from './normalize.ts';
import { PodSets, type PodUniverse } from './pod-sets.ts';
import { type NamedPorts, namedPortsOf } from './ports.ts';
import { type CompiledSelector, compileSelector, EVERYTHING } from './selector.ts';
import type { ClusterState, Labels, Namespace, NetworkPolicy, Pod } from './types.ts';

export const NS_NAME_LABEL = 'kubernetes.io/metadata.name';

export interface PodFacts {
  namespace: string;
  name: string;
  labels: Labels;
  nodeName: string | undefined;
  /** One address per family; a hostNetwork pod's are its node's. */
  ips: Map<IpFamily, string>;
  named: NamedPorts;
  uid?: string | undefined;
  /** The pod as served (slim), for what the index does not extract. */
  raw?: Pod;
  /** A hostNetwork pod of this node (host-firewall mode): its addresses are the node's. */
  host?: true;
}

/** Addresses of a pod, one per family, in podIPs order (podIP when podIPs is empty). */
function podAddresses(p: Pod, withHostIPs: boolean): Map<IpFamily, string> {
  const st = p.status ?? {};
  const ips = new Map<IpFamily, string>();
  const texts = st.podIPs && st.podIPs.length > 0 ? st.podIPs.map((x) => x?.ip) : [st.podIP];
  if (withHostIPs) texts.push(...(st.hostIPs && st.hostIPs.length > 0 ? st.hostIPs.map((x) => x?.ip) : [st.hostIP]));
  for (const t of texts) {
    const ip = t ? tryParseIp(t) : undefined;
    if (ip && !ips.has(ip.family)) ips.set(ip.family, t as string);
  }
  return ips;
}

const terminated = (p: Pod): boolean => p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';

/** A pod NetworkPolicy applies to (with an address, not terminated, not hostNetwork), or undefined. */
export function policyPodFacts(p: Pod): PodFacts | undefined {
  const namespace = p.metadata?.namespace;
  const name = p.metadata?.name;
  if (!namespace || !name || p.spec?.hostNetwork === true || terminated(p)) return undefined;
  const ips = podAddresses(p, false);
  if (ips.size === 0) return undefined;
  return { namespace, name, labels: p.metadata?.labels ?? {}, nodeName: p.spec?.nodeName, ips, named: namedPortsOf(p) };
}

/**
 * A live (not terminated) hostNetwork pod of `nodeName`, or undefined. Its
 * addresses are the node's: podIPs, then hostIPs, then `nodeIPs` (a pod the
 * kubelet has not reported yet still gets its ports policed).
 */
export function hostPodFacts(p: Pod, nodeName: string, nodeIPs: readonly string[]): PodFacts | undefined {
  const namespace = p.metadata?.namespace;
  const name = p.metadata?.name;
  if (!namespace || !name || p.spec?.hostNetwork !== true || p.spec?.nodeName !== nodeName || terminated(p)) return undefined;
  const ips = podAddresses(p, true);
  for (const t of nodeIPs) {
    const ip = tryParseIp(t);
    if (ip && !ips.has(ip.family)) ips.set(ip.family, t);
  }
  return { namespace, name, labels: p.metadata?.labels ?? {}, nodeName, ips, named: namedPortsOf(p), uid: p.metadata?.uid, raw: p, host: true };
}

const byRef = (a: { namespace: string; name: string }, b: { namespace: string; name: string }): number =>
  `${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1;

/**
 * A policy the engine cannot express is enforced as deny-all for the pods it
 * would select, in the directions it would cover: fail closed, never
 * enforce a silently weakened policy. When even its selector is unusable,
 * every pod of its namespace is isolated.
 */
export function failClosed(np: NetworkPolicy): NormalizedPolicy {
  const ref = { namespace: np.metadata?.namespace ?? '', name: np.metadata?.name ?? '' };
  let podSelector: CompiledSelector = EVERYTHING;
  try {
    podSelector = compileSelector(np.spec?.podSelector ?? {}, 'spec.podSelector', ref);
  } catch {
    // keep EVERYTHING
  }
  let types: ('Ingress' | 'Egress')[] = ['Ingress', 'Egress'];
  try {
    types = effectivePolicyTypes(np.spec);
  } catch {
    // keep both
  }
  return {
    ...ref,
    uid: np.metadata?.uid,
    resourceVersion: np.metadata?.resourceVersion,
    podSelector,
    policyTypes: types,
    ingress: types.includes('Ingress') ? [] : undefined,
    egress: types.includes('Egress') ? [] : undefined,
    warnings: [],
  };
}

export interface ClusterIndex {
  /** Policies (of either kind) that could not be expressed (each is in `policies` or `clusterPolicies` fail-closed). */
  readonly errors: PolicyError[];
  /** Every NetworkPolicy, normalized or fail-closed, sorted by namespace/name. */
  readonly policies: NormalizedPolicy[];
  /** Every ClusterNetworkPolicy, normalized or fail-closed, by priority then name (both tiers). */
  readonly clusterPolicies: NormalizedClusterPolicy[];
  /** A namespace's labels (with kubernetes.io/metadata.name), as the pod sets see them. */
  readonly nsLabels: (ns: string) => Labels;
  /** This node's pods NetworkPolicy applies to, by namespace, in the order of the state. */
  readonly local: Map<string, PodFacts[]>;
  /** This node's hostNetwork pods (host-firewall mode; else none), sorted by namespace/name. */
  readonly hostPods: PodFacts[];
  /** The contents of the pod-dependent sets, up to date with this state. */
  readonly sets: PodSets;
}

interface PodEntry {
  readonly obj: Pod;
  readonly key: string;
  readonly facts: PodFacts | undefined;
  seen: number;
}

/**
 * The cluster indexed for one node, kept across compiles: an object that is
 * the same (by identity) as in the previous state is not looked at again,
 * and each pod or namespace that changed is handed to the pod sets, so that
 * one API event costs work in proportion to what it touched. The agent's
 * cache replaces an object on every change, which is what makes identity a
 * safe test; a caller that edits objects in place must use a new indexer.
 * Valid for one node, one table and one set of node addresses (`key`).
 */
export class ClusterIndexer implements PodUniverse {
  readonly key: string;
  readonly table: Table;
  readonly sets: PodSets;
  readonly #nodeName: string;
  /** The node's addresses for hostNetwork pods; undefined when the host firewall is off. */
  readonly #hostIPs: readonly string[] | undefined;
  readonly #pods = new Map<string, PodEntry>();
  /** The same entries by pod object: an unchanged pod is found without building its key. */
  readonly #podObjs = new Map<Pod, PodEntry>();
  readonly #hostPods = new Map<string, PodEntry>();
  readonly #byNs = new Map<string, Map<string, PodFacts>>();
  readonly #ns = new Map<string, { obj: Namespace; labels: Labels }>();
  readonly #policies = new NormalizedObjects<NetworkPolicy, NormalizedPolicy>(
    (np) => `${np.metadata?.namespace ?? ''}/${np.metadata?.name ?? ''}`,
    (np) => {
      try {
        return { norm: normalizePolicy(np) };
      } catch (e) {
        if (!(e instanceof PolicyError)) throw e;
        return { norm: failClosed(np), error: e };
      }
    },
    byRef,
  );
  readonly #clusterPolicies = new NormalizedObjects<ClusterNetworkPolicy, NormalizedClusterPolicy>(
    (c) => c.metadata?.name ?? '',
    normalizeOrFailClosed,
    byPrecedence,
  );
  #epoch = 0;

  constructor(table: Table, nodeName: string, hostIPs: readonly string[] | undefined) {
    this.key = ClusterIndexer.keyOf(table, nodeName, hostIPs);
    this.table = table;
    this.#nodeName = nodeName;
    this.#hostIPs = hostIPs;
    this.sets = new PodSets(table, this);
  }

  static keyOf(table: TableRef, nodeName: string, hostIPs: readonly string[] | undefined): string {
    return `${table.family} ${table.name}|${nodeName}|${hostIPs ? hostIPs.join(',') : 'off'}`;
  }

  namespaces(): Iterable<string> {
    return this.#byNs.keys();
  }

  pods(namespace: string): Iterable<PodFacts> {
    return this.#byNs.get(namespace)?.values() ?? [];
  }

  labelsOfNs(ns: string): Labels {
    return this.#ns.get(ns)?.labels ?? { [NS_NAME_LABEL]: ns };
  }

  /** Brings the index (and the pod sets) to `state`. */
  update(state: ClusterState): ClusterIndex {
    const epoch = ++this.#epoch;
    // Namespaces first noted, applied after the pods: a pod's change is
    // judged under the labels the sets were filled with, then a relabel
    // re-asks the namespace's pods, now current.
    const nsChanges: { name: string; obj: Namespace | undefined; before: Labels; after: Labels }[] = [];
    const nsSeen = new Set<string>();
    for (const ns of state.namespaces) {
      const name = ns.metadata?.name;
      if (!name) continue;
      nsSeen.add(name);
      const prev = this.#ns.get(name);
      if (prev?.obj === ns) continue;
      const after = { ...(ns.metadata?.labels ?? {}), [NS_NAME_LABEL]: name };
      nsChanges.push({ name, obj: ns, before: this.labelsOfNs(name), after });
    }
    for (const name of this.#ns.keys())
      if (!nsSeen.has(name)) nsChanges.push({ name, obj: undefined, before: this.labelsOfNs(name), after: { [NS_NAME_LABEL]: name } });

    const local = new Map<string, PodFacts[]>();
    const hostIPs = this.#hostIPs;
    // An indexed loop: every pod, every sync, and an iterator result each until V8 optimizes it.
    const pods = state.pods;
    for (let i = 0; i < pods.length; i++) {
      const p = pods[i] as Pod;
      let entry = this.#podObjs.get(p);
      if (entry) entry.seen = epoch;
      else entry = this.#track(this.#pods, `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`, p, epoch, policyPodFacts);
      const facts = entry.facts;
      if (facts?.nodeName === this.#nodeName) {
        const list = local.get(facts.namespace);
        if (list) list.push(facts);
        else local.set(facts.namespace, [facts]);
      }
      if (hostIPs && p.spec?.hostNetwork === true) {
        const known = this.#hostPods.get(entry.key);
        if (known?.obj === p) known.seen = epoch;
        else this.#track(this.#hostPods, entry.key, p, epoch, (x) => hostPodFacts(x, this.#nodeName, hostIPs));
      }
    }
    for (const m of [this.#pods, this.#hostPods]) {
      // forEach, not for-of: this runs over every pod on every sync, and an
      // iterator result (or entry pair) per pod is garbage the next GC pays for.
      m.forEach((e) => {
        if (e.seen === epoch) return;
        m.delete(e.key);
        if (m === this.#pods) this.#podObjs.delete(e.obj);
        this.#place(this.#slot(m, e.key), e.facts, undefined);
      });
    }
    for (const c of nsChanges) {
      if (c.obj) this.#ns.set(c.name, { obj: c.obj, labels: c.after });
      else this.#ns.delete(c.name);
      if (!sameLabels(c.before, c.after)) this.sets.namespaceChanged([...this.pods(c.name)], c.before, c.after);
    }

    const policies = this.#policies.update(state.policies);
    const clusterPolicies = this.#clusterPolicies.update(state.clusterPolicies ?? []);
    const hostPods = [...this.#hostPods.values()].flatMap((e) => (e.facts ? [e.facts] : [])).sort(byRef);
    return {
      errors: [...policies.errors, ...clusterPolicies.errors],
      policies: policies.list,
      clusterPolicies: clusterPolicies.list,
      nsLabels: (ns) => this.labelsOfNs(ns),
      local,
      hostPods,
      sets: this.sets,
    };
  }

  /** One pod of the state: its facts, recomputed (and handed to the sets) only when the object changed. */
  #track(m: Map<string, PodEntry>, key: string, p: Pod, epoch: number, factsOf: (p: Pod) => PodFacts | undefined): PodEntry {
    const prev = m.get(key);
    if (prev?.obj === p) {
      prev.seen = epoch;
      return prev;
    }
    const entry: PodEntry = { obj: p, key, facts: factsOf(p), seen: epoch };
    m.set(key, entry);
    if (m === this.#pods) {
      if (prev) this.#podObjs.delete(prev.obj);
      this.#podObjs.set(p, entry);
    }
    this.#place(this.#slot(m, key), prev?.facts, entry.facts);
    return entry;
  }

  /** The key of a pod in its namespace's group: a hostNetwork pod's facts are kept apart from the same pod's as a policy pod. */
  #slot(m: Map<string, PodEntry>, key: string): string {
    return m === this.#hostPods ? `host:${key}` : key;
  }

  #place(key: string, before: PodFacts | undefined, after: PodFacts | undefined): void {
    if (before === undefined && after === undefined) return;
    const ns = (after ?? before) as PodFacts;
    let group = this.#byNs.get(ns.namespace);
    if (!group) {
      group = new Map();
      this.#byNs.set(ns.namespace, group);
    }
    if (after) group.set(key, after);
    else {
      group.delete(key);
      if (group.size === 0) this.#byNs.delete(ns.namespace);
    }
    this.sets.podChanged(before, after);
  }
}

/**
 * Policy objects of one kind, each normalized once (an object the same by
 * identity as last time is not looked at again), with the error that
 * refused one; `keyOf` names an object across its versions.
 */
class NormalizedObjects<O, N> {
  readonly #byKey = new Map<string, { obj: O; norm: N; error?: PolicyError | undefined }>();
  readonly #keyOf: (o: O) => string;
  readonly #normalize: (o: O) => { norm: N; error?: PolicyError };
  readonly #order: (a: N, b: N) => number;
  #sorted: N[] | undefined;

  constructor(keyOf: (o: O) => string, normalize: (o: O) => { norm: N; error?: PolicyError }, order: (a: N, b: N) => number) {
    this.#keyOf = keyOf;
    this.#normalize = normalize;
    this.#order = order;
  }

  /** Brings the objects to `list`: the normalized ones in order, and the errors. */
  update(list: readonly O[]): { list: N[]; errors: PolicyError[] } {
    const seen = new Set<string>();
    for (const o of list) {
      const key = this.#keyOf(o);
      seen.add(key);
      if (this.#byKey.get(key)?.obj === o) continue;
      this.#sorted = undefined;
      this.#byKey.set(key, { obj: o, ...this.#normalize(o) });
    }
    for (const key of this.#byKey.keys()) {
      if (seen.has(key)) continue;
      this.#byKey.delete(key);
      this.#sorted = undefined;
    }
    this.#sorted ??= [...this.#byKey.values()].map((x) => x.norm).sort(this.#order);
    const errors: PolicyError[] = [];
    for (const x of this.#byKey.values()) if (x.error) errors.push(x.error);
    return { list: this.#sorted, errors };
  }
}

/** Two label maps with the same keys and values. */
export const sameLabels = (a: Labels, b: Labels): boolean => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
};
