// The cluster, indexed once per compile for one node: NetworkPolicies
// normalized (or enforced fail-closed), the pods policy applies to, namespace
// labels, this node's pods, and the memo of peer pod lists. Shared by the pod
// chains (compile.ts) and the host firewall (host.ts), so that both read the
// same snapshot the same way. Pure.
import { tryParseIp, type IpFamily } from '../cni/ip.ts';
import { PolicyError } from './errors.ts';
import { effectivePolicyTypes, normalizePolicy, type NormalizedPolicy } from './normalize.ts';
import { namedPortsOf, type NamedPorts } from './ports.ts';
import { EVERYTHING, compileSelector, selectorMatches, type CompiledSelector } from './selector.ts';
import type { ClusterState, Labels, NetworkPolicy, Pod } from './types.ts';

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

/** Pods NetworkPolicy applies to: with an address, not terminated, not hostNetwork. */
export function policyPods(pods: readonly Pod[]): PodFacts[] {
  const out: PodFacts[] = [];
  for (const p of pods) {
    const namespace = p.metadata?.namespace;
    const name = p.metadata?.name;
    if (!namespace || !name || p.spec?.hostNetwork === true || terminated(p)) continue;
    const ips = podAddresses(p, false);
    if (ips.size === 0) continue;
    out.push({ namespace, name, labels: p.metadata?.labels ?? {}, nodeName: p.spec?.nodeName, ips, named: namedPortsOf(p) });
  }
  return out;
}

/**
 * hostNetwork pods of `nodeName` that are live (not terminated). Their
 * addresses are the node's: podIPs, then hostIPs, then `nodeIPs` (a pod the
 * kubelet has not reported yet still gets its ports policed).
 */
export function hostNetworkPods(pods: readonly Pod[], nodeName: string, nodeIPs: readonly string[]): PodFacts[] {
  const out: PodFacts[] = [];
  for (const p of pods) {
    const namespace = p.metadata?.namespace;
    const name = p.metadata?.name;
    if (!namespace || !name || p.spec?.hostNetwork !== true || p.spec?.nodeName !== nodeName || terminated(p)) continue;
    const ips = podAddresses(p, true);
    for (const t of nodeIPs) {
      const ip = tryParseIp(t);
      if (ip && !ips.has(ip.family)) ips.set(ip.family, t);
    }
    out.push({ namespace, name, labels: p.metadata?.labels ?? {}, nodeName, ips, named: namedPortsOf(p), uid: p.metadata?.uid, raw: p });
  }
  return out.sort((a, b) => (a.namespace + '/' + a.name < b.namespace + '/' + b.name ? -1 : 1));
}

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

/** Pods selected by a peer: of `policyNs` (`'own'`) or of the namespaces a selector picks, filtered by a pod selector. */
export type PeerPods = (policyNs: string, nsSel: 'own' | CompiledSelector, podSel: CompiledSelector) => PodFacts[];

export interface ClusterIndex {
  /** Policies that could not be expressed (each is in `policies` fail-closed). */
  readonly errors: PolicyError[];
  /** Every NetworkPolicy, normalized or fail-closed, sorted by namespace/name. */
  readonly policies: NormalizedPolicy[];
  /** Pods NetworkPolicy applies to (see policyPods). */
  readonly pods: PodFacts[];
  readonly podsByNs: Map<string, PodFacts[]>;
  /** Namespace labels, with kubernetes.io/metadata.name as the API sets it. */
  readonly nsLabels: Map<string, Labels>;
  labelsOfNs(ns: string): Labels;
  /** This node's pods among `pods`. */
  readonly local: PodFacts[];
  /** Peer pod lists, memoized: shared by every rule with the same selectors. */
  readonly peerPods: PeerPods;
}

export function indexCluster(state: ClusterState, nodeName: string): ClusterIndex {
  const errors: PolicyError[] = [];
  const policies: NormalizedPolicy[] = [];
  for (const np of state.policies) {
    try {
      policies.push(normalizePolicy(np));
    } catch (e) {
      if (!(e instanceof PolicyError)) throw e;
      errors.push(e);
      policies.push(failClosed(np));
    }
  }
  policies.sort((x, y) => (x.namespace + '/' + x.name < y.namespace + '/' + y.name ? -1 : 1));
  const pods = policyPods(state.pods);
  const podsByNs = new Map<string, PodFacts[]>();
  for (const p of pods) podsByNs.set(p.namespace, [...(podsByNs.get(p.namespace) ?? []), p]);
  const nsLabels = new Map<string, Labels>();
  for (const ns of state.namespaces) {
    const name = ns.metadata?.name;
    if (name) nsLabels.set(name, { ...(ns.metadata?.labels ?? {}), [NS_NAME_LABEL]: name });
  }
  const labelsOfNs = (ns: string): Labels => nsLabels.get(ns) ?? { [NS_NAME_LABEL]: ns };
  const local = pods.filter((p) => p.nodeName === nodeName);

  const peerMemo = new Map<string, PodFacts[]>();
  const peerPods: PeerPods = (policyNs, nsSel, podSel) => {
    const k = `${nsSel === 'own' ? `own:${policyNs}` : nsSel.key}|${podSel.key}`;
    let v = peerMemo.get(k);
    if (!v) {
      const namespaces = nsSel === 'own' ? [policyNs] : [...new Set([...nsLabels.keys(), ...podsByNs.keys()])].filter((n) => selectorMatches(nsSel, labelsOfNs(n)));
      v = namespaces.flatMap((n) => podsByNs.get(n) ?? []).filter((p) => selectorMatches(podSel, p.labels));
      peerMemo.set(k, v);
    }
    return v;
  };
  return { errors, policies, pods, podsByNs, nsLabels, labelsOfNs, local, peerPods };
}
