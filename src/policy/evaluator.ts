// The reference evaluator: given a cluster snapshot and one connection, is it
// allowed by NetworkPolicy, and why. It is written for clarity, not for the
// datapath; its job is to be the oracle the nftables compiler is tested
// against and the engine of a debugging CLI.
//
// Semantics (networking.k8s.io/v1, as the concept page and API reference state them):
// - Egress is judged at the source pod, ingress at the destination pod; a
//   connection needs both. A pod selected by no policy of a direction is
//   unrestricted in it; policies are additive (the union of their rules).
// - Pods in phase Succeeded/Failed or without an IP are ignored: they are
//   neither subjects nor peers, and their old IPs are plain addresses.
// - hostNetwork pods are never subjects, and as peers they are their node's
//   address. Why: the docs leave hostNetwork behaviour to the plugin, limited to
//   two options; weir cannot tell a hostNetwork pod's packets from its node's,
//   so it takes the "most common implementation": such traffic is node traffic,
//   podSelector/namespaceSelector peers never match it, ipBlock peers can.
// - Traffic between a pod and its own node is always allowed, both ways. Why:
//   the concept page says "traffic to and from the node where a Pod is running
//   is always allowed, regardless of the IP address of the Pod or the node"
//   (kubelet probes need the ingress half). Node addresses come from
//   pod.status.hostIPs/hostIP and from ClusterState.nodes.
// - A pod connecting to itself is always allowed. Why: "a pod cannot block
//   access to itself" (the traffic never leaves its network namespace; the
//   upstream e2e probes skip it). Isolation is still reported truthfully.
// - ipBlock matches by address, pod addresses included. The docs advise that
//   ipBlock "should be cluster-external IPs, since Pod IPs are ephemeral and
//   unpredictable", but do not exempt pods, and the upstream e2e suite tests
//   ipBlock against pod IPs; so a pod peer matches an ipBlock containing its IP.
// - A bare IP endpoint that is a live pod's IP is that pod; a node's IP is
//   that node; anything else is external.
// - With the host-firewall option (EvaluatorOptions.hostFirewall), traffic to
//   and from nodes is judged as host-firewall mode enforces it (host-compile.ts):
//   ingress at a node by the NetworkPolicies of the hostNetwork pods
//   declaring the port, else by the HostFirewallPolicies selecting the node;
//   egress of a hostNetwork pod by its NetworkPolicies where its traffic can
//   be attributed (hostNetworkEgress), else by the HostFirewallPolicies;
//   failsafe ports, the node itself and its own pods exempt as in host-compile.ts.
// - ClusterNetworkPolicy (ClusterState.clusterPolicies): its Admin tier is
//   judged before NetworkPolicy and its Baseline tier after, as tiers.ts
//   describes; a verdict says which tier decided (DirectionVerdict.tier).
//   One weir cannot express is judged as the kernel enforces it, "Deny all"
//   for its subjects (fail closed; cnp-normalize.ts).
import { formatIp, type IpBytes, type IpFamily, tryParseIp } from '../ip.ts';
import { type CnpPeer, cnpRef, type NormalizedClusterPolicy, normalizeClusterPolicies } from './cnp-normalize.ts';
import type { CnpTier } from './cnp-types.ts';
import { formatPolicyRef, type PolicyError, PolicyQueryError, type PolicyRef } from './errors.ts';
import {
  DEFAULT_FAILSAFE_INBOUND,
  DEFAULT_FAILSAFE_OUTBOUND,
  declaredPorts,
  type HostPeer,
  hostPolicyRef,
  type NormalizedHostPolicy,
  normalizeHostPolicies,
  parsePortRanges,
  portRangesContain,
} from './host-normalize.ts';
import { type Direction, ipBlockContains, type NormalizedPeer, type NormalizedPolicy, normalizePolicy } from './normalize.ts';
import { type NamedPorts, namedPortsOf, type PortMatch, portsMatch } from './ports.ts';
import { type CompiledSelector, selectorMatches } from './selector.ts';
import { type ClusterRuleReason, ClusterTiers } from './tiers.ts';
import type { ClusterState, Labels, NodeInfo, Pod } from './types.ts';
import type {
  Connection,
  DirectionVerdict,
  Endpoint,
  EvaluatorOptions,
  HostFirewallEvalOptions,
  PodRef,
  Reason,
  ResolvedEndpoint,
  Verdict,
} from './verdict.ts';

export type {
  Connection,
  DirectionVerdict,
  Endpoint,
  EvaluatorOptions,
  HostFirewallEvalOptions,
  PodRef,
  Reason,
  ResolvedEndpoint,
  Verdict,
} from './verdict.ts';
export { ipEndpoint, podEndpoint } from './verdict.ts';

interface PodInfo {
  readonly ref: PodRef;
  readonly key: string;
  readonly labels: Labels;
  readonly nodeName: string | undefined;
  readonly hostNetwork: boolean;
  /** Considered by NetworkPolicy at all (has an IP, not terminated). */
  readonly live: boolean;
  /** Pod addresses by family, in podIPs order. */
  readonly ips: ReadonlyMap<IpFamily, IpBytes>;
  readonly families: readonly IpFamily[];
  readonly hostIps: ReadonlyMap<IpFamily, IpBytes>;
  readonly hostIpTexts: ReadonlySet<string>;
  readonly raw: Pod;
}

/** Internal: a resolved endpoint plus what the judging needs. */
interface End {
  readonly view: ResolvedEndpoint;
  readonly bytes: IpBytes;
  readonly pod: PodInfo | undefined;
}

const podKey = (ns: string, name: string): string => `${ns}/${name}`;
const NS_NAME_LABEL = 'kubernetes.io/metadata.name';

function parseIps(list: readonly (string | undefined)[], what: string): Map<IpFamily, IpBytes> {
  const out = new Map<IpFamily, IpBytes>();
  for (const s of list) {
    if (s === undefined || s === '') continue;
    const ip = tryParseIp(s);
    if (!ip) throw new PolicyQueryError(`${what}: invalid IP address ${JSON.stringify(s)}`);
    if (!out.has(ip.family)) out.set(ip.family, ip);
  }
  return out;
}

export class PolicyEvaluator {
  readonly policies: readonly NormalizedPolicy[];
  /** ClusterNetworkPolicies that could not be expressed (each judged fail-closed). */
  readonly clusterErrors: readonly PolicyError[];
  readonly #tiers: ClusterTiers;
  readonly #selectingCnp = new Map<string, NormalizedClusterPolicy[]>();
  readonly #pods = new Map<string, PodInfo>();
  readonly #podsByNs = new Map<string, PodInfo[]>();
  readonly #podByIp = new Map<string, PodInfo | 'ambiguous'>();
  readonly #nodeByIp = new Map<string, string>();
  readonly #nodeIps = new Map<string, Set<string>>();
  readonly #nsLabels = new Map<string, Labels>();
  readonly #policiesByNs = new Map<string, NormalizedPolicy[]>();
  readonly #memo = new Map<string, boolean>();
  readonly #selecting = new Map<string, NormalizedPolicy[]>();
  readonly #named = new Map<string, NamedPorts>();
  readonly #host: HostFirewallEvalOptions | undefined;
  readonly #nodes: readonly NodeInfo[];
  readonly #hostPolicies: readonly NormalizedHostPolicy[];

  /**
   * Indexes a snapshot; throws PolicyError for a policy it cannot express,
   * PolicyQueryError for unusable state. HostFirewallPolicies are read only
   * with the hostFirewall option; one weir cannot express is judged as
   * host-compile.ts enforces it, deny-all (fail closed).
   */
  constructor(state: ClusterState, opts: EvaluatorOptions = {}) {
    this.#host = opts.hostFirewall;
    this.#nodes = state.nodes ?? [];
    this.#hostPolicies = this.#host ? normalizeHostPolicies(state.hostPolicies ?? []).policies : [];
    this.policies = state.policies.map(normalizePolicy);
    const cnps = normalizeClusterPolicies(state.clusterPolicies ?? []);
    this.clusterErrors = cnps.errors;
    this.#tiers = new ClusterTiers(cnps.policies, state.domainAddresses);
    for (const p of this.policies) {
      const list = this.#policiesByNs.get(p.namespace) ?? [];
      list.push(p);
      this.#policiesByNs.set(p.namespace, list);
    }
    for (const ns of state.namespaces) {
      const name = ns.metadata?.name;
      if (typeof name !== 'string' || name === '') throw new PolicyQueryError('a namespace has no metadata.name');
      // The API server sets kubernetes.io/metadata.name on every namespace;
      // a snapshot missing it (or missing the namespace) still selects as the cluster does.
      this.#nsLabels.set(name, { ...(ns.metadata?.labels ?? {}), [NS_NAME_LABEL]: name });
    }
    for (const n of state.nodes ?? []) {
      for (const ip of parseIps(n.internalIPs, `node ${n.name}`).values()) this.#addNodeIp(n.name, ip);
    }
    for (const raw of state.pods) this.#addPod(raw);
  }

  #addNodeIp(node: string, ip: IpBytes): void {
    const text = formatIp(ip.bytes);
    if (!this.#nodeByIp.has(text)) this.#nodeByIp.set(text, node);
    const set = this.#nodeIps.get(node) ?? new Set<string>();
    set.add(text);
    this.#nodeIps.set(node, set);
  }

  #addPod(raw: Pod): void {
    const ns = raw.metadata?.namespace;
    const name = raw.metadata?.name;
    if (typeof ns !== 'string' || ns === '' || typeof name !== 'string' || name === '') {
      throw new PolicyQueryError('a pod has no metadata.namespace or metadata.name');
    }
    const key = podKey(ns, name);
    if (this.#pods.has(key)) throw new PolicyQueryError(`pod ${key} appears twice in the cluster state`);
    const st = raw.status ?? {};
    const ipTexts = st.podIPs && st.podIPs.length > 0 ? st.podIPs.map((p) => p?.ip) : [st.podIP];
    const ips = parseIps(ipTexts, `pod ${key}`);
    const hostTexts = st.hostIPs && st.hostIPs.length > 0 ? st.hostIPs.map((p) => p?.ip) : [st.hostIP];
    const hostNetwork = raw.spec?.hostNetwork === true;
    // A hostNetwork pod's podIPs are its node's addresses.
    const hostIps = parseIps(hostNetwork ? [...hostTexts, ...ipTexts] : hostTexts, `pod ${key} hostIPs`);
    const nodeName = raw.spec?.nodeName || undefined;
    const live = ips.size > 0 && st.phase !== 'Succeeded' && st.phase !== 'Failed';
    const hostIpTexts = new Set([...hostIps.values()].map((ip) => formatIp(ip.bytes)));
    const labels = raw.metadata?.labels ?? {};
    const info: PodInfo = { ref: { namespace: ns, name }, key, labels, nodeName, hostNetwork, live, ips, families: [...ips.keys()], hostIps, hostIpTexts, raw };
    this.#pods.set(key, info);
    const list = this.#podsByNs.get(ns) ?? [];
    list.push(info);
    this.#podsByNs.set(ns, list);
    if (nodeName) for (const ip of hostIps.values()) this.#addNodeIp(nodeName, ip);
    if (live && !hostNetwork) {
      for (const ip of ips.values()) {
        const text = formatIp(ip.bytes);
        this.#podByIp.set(text, this.#podByIp.has(text) ? 'ambiguous' : info);
      }
    }
  }

  #matches(sel: CompiledSelector, what: 'pod' | 'ns', id: string, labels: () => Labels): boolean {
    const k = `${sel.key}\u0000${what}\u0000${id}`;
    let v = this.#memo.get(k);
    if (v === undefined) {
      v = selectorMatches(sel, labels());
      this.#memo.set(k, v);
    }
    return v;
  }

  #nsLabelsOf(ns: string): Labels {
    return this.#nsLabels.get(ns) ?? { [NS_NAME_LABEL]: ns };
  }

  /** The policies of `direction` in the pod's namespace whose podSelector selects it. */
  #selectingPolicies(pod: PodInfo, direction: Direction): NormalizedPolicy[] {
    const k = `${direction}\u0000${pod.key}`;
    let out = this.#selecting.get(k);
    if (!out) {
      out = (this.#policiesByNs.get(pod.ref.namespace) ?? []).filter(
        (p) => p[direction] !== undefined && this.#matches(p.podSelector, 'pod', pod.key, () => pod.labels),
      );
      this.#selecting.set(k, out);
    }
    return out;
  }

  #peerMatches(peer: NormalizedPeer, policyNs: string, end: End): boolean {
    if (peer.kind === 'ipBlock') return ipBlockContains(peer, end.bytes);
    const pod = end.pod;
    if (!pod) return false;
    const nsOk =
      peer.namespaces === 'own'
        ? pod.ref.namespace === policyNs
        : this.#matches(peer.namespaces, 'ns', pod.ref.namespace, () => this.#nsLabelsOf(pod.ref.namespace));
    return nsOk && this.#matches(peer.pods, 'pod', pod.key, () => pod.labels);
  }

  #namedPorts(pod: PodInfo): NamedPorts {
    let n = this.#named.get(pod.key);
    if (!n) {
      n = namedPortsOf(pod.raw);
      this.#named.set(pod.key, n);
    }
    return n;
  }

  #isOwnNode(pod: PodInfo, peer: End): boolean {
    const ip = peer.view.ip;
    return pod.hostIpTexts.has(ip) || (pod.nodeName !== undefined && (this.#nodeIps.get(pod.nodeName)?.has(ip) ?? false));
  }

  /** The ClusterNetworkPolicies of `tier` selecting a (live, not hostNetwork) pod for `direction`, in order. */
  #selectingClusterPolicies(pod: PodInfo, direction: Direction, tier: CnpTier): NormalizedClusterPolicy[] {
    const k = `${tier}\u0000${direction}\u0000${pod.key}`;
    let out = this.#selectingCnp.get(k);
    if (!out) {
      const ns = pod.ref.namespace;
      out = this.#tiers.selecting(
        tier,
        direction,
        (p) => this.#matches(p.subject.namespaces, 'ns', ns, () => this.#nsLabelsOf(ns)) && this.#matches(p.subject.pods, 'pod', pod.key, () => pod.labels),
      );
      this.#selectingCnp.set(k, out);
    }
    return out;
  }

  #clusterPeerMatches(peer: CnpPeer, end: End): boolean {
    return peer.kind === 'nodes' ? this.#hostPeerMatches(peer, end) : peer.kind !== 'domains' && this.#peerMatches(peer, '', end);
  }

  /** One direction at a pod: Admin tier, NetworkPolicy, Baseline tier, default (tiers.ts). */
  #judge(direction: Direction, subject: End, peer: End, dst: End, conn: Connection, self: boolean): DirectionVerdict {
    const pod = subject.pod;
    if (!pod) return { direction, subject: undefined, isolated: false, allowed: true, policies: [], reasons: [{ kind: 'not-a-pod' }] };
    const selecting = this.#selectingPolicies(pod, direction);
    const admin = this.#selectingClusterPolicies(pod, direction, 'Admin');
    const baseline = this.#selectingClusterPolicies(pod, direction, 'Baseline');
    const clusterPolicies = [...admin, ...baseline].map((p) => cnpRef(p.name));
    const policies = selecting.map((p) => ({ namespace: p.namespace, name: p.name }));
    const verdict = (allowed: boolean, reasons: Reason[], tier?: DirectionVerdict['tier']): DirectionVerdict => ({
      direction,
      subject: pod.ref,
      isolated: selecting.length > 0,
      allowed,
      policies,
      reasons,
      ...(clusterPolicies.length > 0 ? { clusterPolicies, ...(tier ? { tier } : {}) } : {}),
    });
    if (self) return verdict(true, [{ kind: selecting.length > 0 || clusterPolicies.length > 0 ? 'self' : 'not-isolated' }]);
    // Named ports always name a port of the receiving pod: the subject for
    // ingress, the peer for egress; a non-pod destination has no names.
    const target = dst.pod ? this.#namedPorts(dst.pod) : undefined;
    const first = (list: NormalizedClusterPolicy[]): ClusterRuleReason | undefined =>
      list.length === 0
        ? undefined
        : this.#tiers.firstMatch(
            list,
            direction,
            peer.view.ip,
            (x) => this.#clusterPeerMatches(x, peer),
            (ports) => portsMatch(ports, conn.protocol, conn.port, target),
          );
    const a = first(admin);
    if (a && a.action !== 'Pass') return verdict(a.action === 'Accept', [a], 'Admin');
    const passed: Reason[] = a ? [a] : [];
    if (selecting.length > 0) {
      if (this.#isOwnNode(pod, peer)) return verdict(true, [...passed, { kind: 'own-node' }], 'NetworkPolicy');
      const reasons = this.#judgeRules(
        selecting,
        (p) => p[direction] ?? [],
        (p) => ({ namespace: p.namespace, name: p.name }),
        (p, x) => x.kind !== 'nodes' && this.#peerMatches(x, p.namespace, peer),
        () => target,
        conn,
      );
      return verdict(reasons.length > 0, [...passed, ...(reasons.length > 0 ? reasons : [{ kind: 'no-rule-matched' as const }])], 'NetworkPolicy');
    }
    const b = first(baseline);
    if (b && b.action !== 'Pass') return verdict(b.action === 'Accept', [...passed, b], 'Baseline');
    return verdict(true, [...passed, ...(b ? [b] : []), { kind: 'not-isolated' }]);
  }

  // ---- host firewall ----

  /** hostNetwork pods of a node that are not terminated (their ports are the node's). */
  #hostNetworkPodsOn(node: string): PodInfo[] {
    return [...this.#pods.values()].filter(
      (p) => p.hostNetwork && p.nodeName === node && p.raw.status?.phase !== 'Succeeded' && p.raw.status?.phase !== 'Failed',
    );
  }

  #nodeLabels(node: string): Labels {
    return this.#nodes.find((n) => n.name === node)?.labels ?? {};
  }

  #hostPeerMatches(peer: HostPeer, end: End): boolean {
    if (peer.kind !== 'nodes') return this.#peerMatches(peer, '', end);
    return this.#nodes.some(
      (n) =>
        selectorMatches(peer.nodes, n.labels ?? {}) &&
        n.internalIPs.some((t) => {
          const ip = tryParseIp(t);
          return ip !== undefined && formatIp(ip.bytes) === end.view.ip;
        }),
    );
  }

  /** Union of named ports of the pods given (they share the node's address). */
  #mergedNamed(pods: readonly PodInfo[]): NamedPorts {
    const out = new Map<string, number[]>();
    for (const p of pods) for (const [k, v] of this.#namedPorts(p)) out.set(k, [...new Set([...(out.get(k) ?? []), ...v])]);
    return out;
  }

  #hostVerdict(
    direction: Direction,
    node: string,
    subject: PodRef | undefined,
    isolated: boolean,
    policies: PolicyRef[],
    allowed: boolean,
    reasons: Reason[],
  ): DirectionVerdict {
    return { direction, subject, isolated, allowed, policies, reasons, host: node };
  }

  /**
   * Rules of policies judged in turn; `peerOk` and `named` per policy. The
   * verdict when nothing matches: denied, or allowed as audit.
   */
  #judgeRules<P>(
    list: readonly P[],
    rulesOf: (p: P) => readonly { index: number; peers: readonly HostPeer[] | 'any'; ports: readonly PortMatch[] | 'any' }[],
    refOf: (p: P) => PolicyRef,
    peerOk: (p: P, x: HostPeer) => boolean,
    named: (p: P) => NamedPorts | undefined,
    conn: Connection,
  ): Reason[] {
    const reasons: Reason[] = [];
    for (const p of list) {
      for (const rule of rulesOf(p)) {
        const ok = rule.peers === 'any' || rule.peers.some((x) => peerOk(p, x));
        if (ok && portsMatch(rule.ports, conn.protocol, conn.port, named(p))) reasons.push({ kind: 'rule', policy: refOf(p), rule: rule.index });
      }
    }
    return reasons;
  }

  /** The HostFirewallPolicies of `node` for `direction`, judged as host-compile.ts does. */
  #judgeHostPolicies(direction: Direction, node: string, peer: End, named: NamedPorts | undefined, conn: Connection): DirectionVerdict {
    const labels = this.#nodeLabels(node);
    const selecting = this.#hostPolicies.filter((p) => p[direction] !== undefined && selectorMatches(p.nodeSelector, labels));
    const refs = selecting.map((p) => hostPolicyRef(p.name));
    if (selecting.length === 0) return this.#hostVerdict(direction, node, undefined, false, [], true, [{ kind: 'not-isolated' }]);
    const enforcing = selecting.filter((p) => p.mode === 'Enforce');
    // Audit policies count only when no Enforce policy isolates the node.
    const judged = enforcing.length > 0 ? enforcing : selecting;
    const reasons = this.#judgeRules(
      judged,
      (p) => p[direction] ?? [],
      (p) => hostPolicyRef(p.name),
      (_p, x) => this.#hostPeerMatches(x, peer),
      () => named,
      conn,
    );
    if (reasons.length > 0) return this.#hostVerdict(direction, node, undefined, true, refs, true, reasons);
    if (enforcing.length === 0 || this.#host?.audit) return this.#hostVerdict(direction, node, undefined, true, refs, true, [{ kind: 'audit' }]);
    return this.#hostVerdict(direction, node, undefined, true, refs, false, [{ kind: 'no-rule-matched' }]);
  }

  /** Traffic to a node's address (dst is the node or one of its hostNetwork pods). */
  #judgeHostIngress(dst: End & { view: { kind: 'node' } }, src: End, conn: Connection): DirectionVerdict {
    const node = dst.view.node as string;
    if (src.view.kind === 'node' && src.view.node === node) return this.#hostVerdict('ingress', node, undefined, false, [], true, [{ kind: 'own-node' }]);
    const hostPods = this.#hostNetworkPodsOn(node);
    const declaring = hostPods.filter((p) => declaredPorts(p.raw).some((x) => x.protocol === conn.protocol && x.port === conn.port));
    const npPolicies = [...new Set(declaring.flatMap((p) => this.#selectingPolicies(p, 'ingress')))];
    const subject = declaring.find((p) => this.#selectingPolicies(p, 'ingress').length > 0)?.ref;
    if (portRangesContain(this.#host?.failsafeInbound ?? parsePortRanges(DEFAULT_FAILSAFE_INBOUND), conn.protocol, conn.port)) {
      return this.#hostVerdict(
        'ingress',
        node,
        subject,
        npPolicies.length > 0,
        npPolicies.map((p) => ({ namespace: p.namespace, name: p.name })),
        true,
        [{ kind: 'failsafe' }],
      );
    }
    if (npPolicies.length > 0) {
      const refs = npPolicies.map((p) => ({ namespace: p.namespace, name: p.name }));
      const reasons = this.#judgeRules(
        npPolicies,
        (p) => p.ingress ?? [],
        (p) => ({ namespace: p.namespace, name: p.name }),
        (p, x) => x.kind !== 'nodes' && this.#peerMatches(x, p.namespace, src),
        // Named ports: those of every hostNetwork pod of the node the policy selects (one address).
        (p) => this.#mergedNamed(hostPods.filter((h) => this.#selectingPolicies(h, 'ingress').includes(p))),
        conn,
      );
      if (reasons.length > 0) return this.#hostVerdict('ingress', node, subject, true, refs, true, reasons);
      return this.#hostVerdict('ingress', node, subject, true, refs, this.#host?.audit === true, [{ kind: this.#host?.audit ? 'audit' : 'no-rule-matched' }]);
    }
    if (src.pod && src.pod.nodeName === node) return this.#hostVerdict('ingress', node, undefined, false, [], true, [{ kind: 'own-node' }]);
    return this.#judgeHostPolicies('ingress', node, src, this.#mergedNamed(hostPods), conn);
  }

  /** Traffic from a node's address (src is the node or one of its hostNetwork pods). */
  #judgeHostEgress(src: End & { view: { kind: 'node' } }, dst: End, conn: Connection): DirectionVerdict {
    const node = src.view.node as string;
    if (dst.view.kind === 'node' && dst.view.node === node) return this.#hostVerdict('egress', node, undefined, false, [], true, [{ kind: 'own-node' }]);
    const hn = src.view.hostNetworkPod ? this.#pods.get(podKey(src.view.hostNetworkPod.namespace, src.view.hostNetworkPod.name)) : undefined;
    const attributed = (p: PodInfo): boolean => {
      const o = this.#host?.hostNetworkEgress;
      return typeof o === 'function' ? o(p.ref) : o === true;
    };
    const npPolicies = hn && attributed(hn) ? this.#selectingPolicies(hn, 'egress') : [];
    if (portRangesContain(this.#host?.failsafeOutbound ?? parsePortRanges(DEFAULT_FAILSAFE_OUTBOUND), conn.protocol, conn.port)) {
      return this.#hostVerdict(
        'egress',
        node,
        hn?.ref,
        npPolicies.length > 0,
        npPolicies.map((p) => ({ namespace: p.namespace, name: p.name })),
        true,
        [{ kind: 'failsafe' }],
      );
    }
    const target = dst.pod ? this.#namedPorts(dst.pod) : undefined;
    if (hn && npPolicies.length > 0) {
      const refs = npPolicies.map((p) => ({ namespace: p.namespace, name: p.name }));
      const reasons = this.#judgeRules(
        npPolicies,
        (p) => p.egress ?? [],
        (p) => ({ namespace: p.namespace, name: p.name }),
        (p, x) => x.kind !== 'nodes' && this.#peerMatches(x, p.namespace, dst),
        () => target,
        conn,
      );
      if (reasons.length > 0) return this.#hostVerdict('egress', node, hn.ref, true, refs, true, reasons);
      return this.#hostVerdict('egress', node, hn.ref, true, refs, this.#host?.audit === true, [{ kind: this.#host?.audit ? 'audit' : 'no-rule-matched' }]);
    }
    if (dst.pod && dst.pod.nodeName === node) return this.#hostVerdict('egress', node, undefined, false, [], true, [{ kind: 'own-node' }]);
    return this.#judgeHostPolicies('egress', node, dst, target, conn);
  }

  #podOf(e: Endpoint & { kind: 'pod' }): PodInfo {
    const info = this.#pods.get(podKey(e.namespace, e.name));
    if (!info) throw new PolicyQueryError(`pod ${podKey(e.namespace, e.name)} is not in the cluster state`);
    if (!info.live) {
      throw new PolicyQueryError(`pod ${info.key} has no IP or has terminated: NetworkPolicy ignores it, so it has no connections to judge`);
    }
    return info;
  }

  #resolve(e: Endpoint, family: IpFamily): End {
    if (e.kind === 'pod') {
      const info = this.#podOf(e);
      if (info.hostNetwork) {
        const bytes = info.hostIps.get(family);
        if (!bytes) throw new PolicyQueryError(`hostNetwork pod ${info.key} has no IPv${family} host address`);
        return { view: { kind: 'node', ip: formatIp(bytes.bytes), node: info.nodeName, hostNetworkPod: info.ref }, bytes, pod: undefined };
      }
      const bytes = info.ips.get(family);
      if (!bytes) throw new PolicyQueryError(`pod ${info.key} has no IPv${family} address`);
      return { view: { kind: 'pod', pod: info.ref, ip: formatIp(bytes.bytes), node: info.nodeName }, bytes, pod: info };
    }
    const bytes = tryParseIp(e.ip);
    if (!bytes) throw new PolicyQueryError(`invalid IP address ${JSON.stringify(e.ip)}`);
    const ip = formatIp(bytes.bytes);
    const owner = this.#podByIp.get(ip);
    if (owner === 'ambiguous') throw new PolicyQueryError(`${ip} is the address of more than one live pod`);
    if (owner) return { view: { kind: 'pod', pod: owner.ref, ip, node: owner.nodeName }, bytes, pod: owner };
    const node = this.#nodeByIp.get(ip);
    if (node !== undefined) return { view: { kind: 'node', ip, node }, bytes, pod: undefined };
    return { view: { kind: 'external', ip }, bytes, pod: undefined };
  }

  #familyOf(conn: Connection): IpFamily {
    const fams = new Set<IpFamily>();
    for (const e of [conn.src, conn.dst]) {
      if (e.kind !== 'ip') continue;
      const ip = tryParseIp(e.ip);
      if (!ip) throw new PolicyQueryError(`invalid IP address ${JSON.stringify(e.ip)}`);
      fams.add(ip.family);
    }
    if (conn.family !== undefined) fams.add(conn.family);
    if (fams.size > 1) throw new PolicyQueryError('the connection mixes IPv4 and IPv6');
    const [only] = fams;
    if (only !== undefined) return only;
    // Both ends are pods: the source's primary family that the destination also has.
    const famsOf = (e: Endpoint & { kind: 'pod' }): readonly IpFamily[] => {
      const p = this.#podOf(e);
      return p.hostNetwork ? [...p.hostIps.keys()] : p.families;
    };
    const s = famsOf(conn.src as Endpoint & { kind: 'pod' });
    const d = famsOf(conn.dst as Endpoint & { kind: 'pod' });
    const common = s.find((f) => d.includes(f));
    if (common === undefined) throw new PolicyQueryError('the two pods share no address family');
    return common;
  }

  /** Judges one connection. */
  evaluate(conn: Connection): Verdict {
    if (!Number.isInteger(conn.port) || conn.port < 1 || conn.port > 65535) throw new PolicyQueryError(`port must be 1-65535, got ${conn.port}`);
    if (conn.protocol !== 'TCP' && conn.protocol !== 'UDP' && conn.protocol !== 'SCTP') {
      throw new PolicyQueryError(`protocol must be TCP, UDP or SCTP, got ${String(conn.protocol)}`);
    }
    const family = this.#familyOf(conn);
    const src = this.#resolve(conn.src, family);
    const dst = this.#resolve(conn.dst, family);
    const self = src.pod !== undefined && src.pod === dst.pod;
    const hostSrc = this.#host && src.view.kind === 'node' && src.view.node !== undefined;
    const hostDst = this.#host && dst.view.kind === 'node' && dst.view.node !== undefined;
    const egress = hostSrc ? this.#judgeHostEgress(src as End & { view: { kind: 'node' } }, dst, conn) : this.#judge('egress', src, dst, dst, conn, self);
    const ingress = hostDst ? this.#judgeHostIngress(dst as End & { view: { kind: 'node' } }, src, conn) : this.#judge('ingress', dst, src, dst, conn, self);
    return { allowed: egress.allowed && ingress.allowed, ingress, egress, src: src.view, dst: dst.view, family };
  }

  /** The live pods a policy selects as subjects (for explanations). */
  subjectsOf(policy: PolicyRef): PodRef[] {
    if (policy.kind === 'ClusterNetworkPolicy') {
      const c = this.#tiers.policies.find((x) => x.name === policy.name);
      if (!c) throw new PolicyQueryError(`ClusterNetworkPolicy ${policy.name} is not in the cluster state`);
      const pods = [...this.#pods.values()].filter((pod) => pod.live && !pod.hostNetwork);
      return pods
        .filter(
          (pod) => this.#selectingClusterPolicies(pod, 'ingress', c.tier).includes(c) || this.#selectingClusterPolicies(pod, 'egress', c.tier).includes(c),
        )
        .map((pod) => pod.ref);
    }
    const p = this.policies.find((x) => x.namespace === policy.namespace && x.name === policy.name);
    if (!p) throw new PolicyQueryError(`NetworkPolicy ${formatPolicyRef(policy)} is not in the cluster state`);
    return (this.#podsByNs.get(p.namespace) ?? [])
      .filter((pod) => pod.live && (!pod.hostNetwork || this.#host !== undefined) && this.#matches(p.podSelector, 'pod', pod.key, () => pod.labels))
      .map((pod) => pod.ref);
  }

  /** The policies of `direction` that isolate a pod (empty when it is unrestricted in that direction). */
  policiesFor(pod: PodRef, direction: Direction): PolicyRef[] {
    const info = this.#podOf({ kind: 'pod', ...pod });
    if (info.hostNetwork && !this.#host) return [];
    return this.#selectingPolicies(info, direction).map((p) => ({ namespace: p.namespace, name: p.name }));
  }

  /** The ClusterNetworkPolicies of `direction` selecting a pod, Admin tier first, in order of evaluation. */
  clusterPoliciesFor(pod: PodRef, direction: Direction): PolicyRef[] {
    const info = this.#podOf({ kind: 'pod', ...pod });
    if (info.hostNetwork) return [];
    return (['Admin', 'Baseline'] as const).flatMap((t) => this.#selectingClusterPolicies(info, direction, t).map((p) => cnpRef(p.name)));
  }
}

/** One-shot evaluation; build a PolicyEvaluator once to judge many connections against one snapshot. */
export const evaluate = (state: ClusterState, conn: Connection, opts?: EvaluatorOptions): Verdict => new PolicyEvaluator(state, opts).evaluate(conn);
