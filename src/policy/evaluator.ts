// The reference evaluator: given a cluster snapshot and one connection, is it
// allowed by NetworkPolicy, and why. It is written for clarity, not for the
// datapath; its job is to be the oracle the nftables compiler is tested
// against and the engine of a debugging CLI.
//
// Semantics (networking.k8s.io/v1, as the concept page and API reference state them):
// - Egress is judged at the source pod, ingress at the destination pod; a
//   connection needs both. A pod selected by no policy of a direction is
//   unrestricted in it; policies are additive (the union of their rules).
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
// - The cloud metadata guard (EvaluatorOptions.metadataGuard, on unless
//   false): a pod's egress to the metadata address is denied before any
//   tier unless the pod is exempt (metadata-guard.ts: the opt-in label, or
//   an egress rule naming the address); an exempt pod's is judged as usual.
//
// How endpoints resolve and peers match (terminated pods, bare addresses,
// ipBlock and pod addresses) is snapshot-index.ts, the snapshot as this
// evaluator reads it.
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
import { exemptFamilies, guardOptions, isMetadataAddress, type MetadataGuardOptions } from './metadata-guard.ts';
import { type Direction, type NormalizedPolicy, normalizePolicy } from './normalize.ts';
import { type NamedPorts, type PortMatch, portsMatch } from './ports.ts';
import { selectorMatches } from './selector.ts';
import { type End, type PodInfo, SnapshotIndex } from './snapshot-index.ts';
import { type ClusterRuleReason, ClusterTiers } from './tiers.ts';
import type { ClusterState } from './types.ts';
import type { Connection, DirectionVerdict, EvaluatorOptions, HostFirewallEvalOptions, PodRef, Reason, Verdict } from './verdict.ts';

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

export class PolicyEvaluator {
  readonly policies: readonly NormalizedPolicy[];
  /** ClusterNetworkPolicies that could not be expressed (each judged fail-closed). */
  readonly clusterErrors: readonly PolicyError[];
  readonly #tiers: ClusterTiers;
  readonly #snap: SnapshotIndex;
  readonly #selectingCnp = new Map<string, NormalizedClusterPolicy[]>();
  readonly #policiesByNs = new Map<string, NormalizedPolicy[]>();
  readonly #selecting = new Map<string, NormalizedPolicy[]>();
  readonly #host: HostFirewallEvalOptions | undefined;
  readonly #hostPolicies: readonly NormalizedHostPolicy[];
  readonly #metadata: MetadataGuardOptions | undefined;

  /**
   * Indexes a snapshot; throws PolicyError for a policy it cannot express,
   * PolicyQueryError for unusable state. HostFirewallPolicies are read only
   * with the hostFirewall option; one weir cannot express is judged as
   * host-compile.ts enforces it, deny-all (fail closed).
   */
  constructor(state: ClusterState, opts: EvaluatorOptions = {}) {
    this.#host = opts.hostFirewall;
    this.#metadata = guardOptions(opts.metadataGuard);
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
    this.#snap = new SnapshotIndex(state);
  }

  /** The policies of `direction` in the pod's namespace whose podSelector selects it. */
  #selectingPolicies(pod: PodInfo, direction: Direction): NormalizedPolicy[] {
    const k = `${direction}\u0000${pod.key}`;
    let out = this.#selecting.get(k);
    if (!out) {
      out = (this.#policiesByNs.get(pod.ref.namespace) ?? []).filter((p) => p[direction] !== undefined && this.#snap.selectsPod(p.podSelector, pod));
      this.#selecting.set(k, out);
    }
    return out;
  }

  /** The ClusterNetworkPolicies of `tier` selecting a (live, not hostNetwork) pod for `direction`, in order. */
  #selectingClusterPolicies(pod: PodInfo, direction: Direction, tier: CnpTier): NormalizedClusterPolicy[] {
    const k = `${tier}\u0000${direction}\u0000${pod.key}`;
    let out = this.#selectingCnp.get(k);
    if (!out) {
      const ns = pod.ref.namespace;
      out = this.#tiers.selecting(tier, direction, (p) => this.#snap.selectsNamespace(p.subject.namespaces, ns) && this.#snap.selectsPod(p.subject.pods, pod));
      this.#selectingCnp.set(k, out);
    }
    return out;
  }

  #clusterPeerMatches(peer: CnpPeer, end: End): boolean {
    return peer.kind === 'nodes' ? this.#snap.hostPeerMatches(peer, end) : peer.kind !== 'domains' && this.#snap.peerMatches(peer, '', end);
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
    if (direction === 'egress' && this.#guarded(pod, peer, selecting, [...admin, ...baseline])) return verdict(false, [{ kind: 'metadata-guard' }]);
    // Named ports always name a port of the receiving pod: the subject for
    // ingress, the peer for egress; a non-pod destination has no names.
    const target = dst.pod ? this.#snap.namedPorts(dst.pod) : undefined;
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
      if (this.#snap.isOwnNode(pod, peer)) return verdict(true, [...passed, { kind: 'own-node' }], 'NetworkPolicy');
      const reasons = this.#judgeRules(
        selecting,
        (p) => p[direction] ?? [],
        (p) => ({ namespace: p.namespace, name: p.name }),
        (p, x) => x.kind !== 'nodes' && this.#snap.peerMatches(x, p.namespace, peer),
        () => target,
        conn,
      );
      return verdict(reasons.length > 0, [...passed, ...(reasons.length > 0 ? reasons : [{ kind: 'no-rule-matched' as const }])], 'NetworkPolicy');
    }
    const b = first(baseline);
    if (b && b.action !== 'Pass') return verdict(b.action === 'Accept', [...passed, b], 'Baseline');
    return verdict(true, [...passed, ...(b ? [b] : []), { kind: 'not-isolated' }]);
  }

  /** Whether the metadata guard stops the pod's egress to `peer`: the guard on, the peer the metadata address, the pod not exempt. */
  #guarded(pod: PodInfo, peer: End, selecting: readonly NormalizedPolicy[], clusterPolicies: readonly NormalizedClusterPolicy[]): boolean {
    if (!this.#metadata || !isMetadataAddress(peer.view.ip)) return false;
    const family = peer.view.ip.includes(':') ? 6 : 4;
    const exempt = exemptFamilies(this.#metadata, {
      labels: pod.labels,
      nsLabels: this.#snap.namespaceLabels(pod.ref.namespace),
      networkPolicies: selecting,
      clusterPolicies,
    });
    return !exempt.has(family);
  }

  // ---- host firewall ----

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
    const labels = this.#snap.nodeLabels(node);
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
      (_p, x) => this.#snap.hostPeerMatches(x, peer),
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
    const hostPods = this.#snap.hostNetworkPodsOn(node);
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
        (p, x) => x.kind !== 'nodes' && this.#snap.peerMatches(x, p.namespace, src),
        // Named ports: those of every hostNetwork pod of the node the policy selects (one address).
        (p) => this.#snap.mergedNamed(hostPods.filter((h) => this.#selectingPolicies(h, 'ingress').includes(p))),
        conn,
      );
      if (reasons.length > 0) return this.#hostVerdict('ingress', node, subject, true, refs, true, reasons);
      return this.#hostVerdict('ingress', node, subject, true, refs, this.#host?.audit === true, [{ kind: this.#host?.audit ? 'audit' : 'no-rule-matched' }]);
    }
    if (src.pod && src.pod.nodeName === node) return this.#hostVerdict('ingress', node, undefined, false, [], true, [{ kind: 'own-node' }]);
    return this.#judgeHostPolicies('ingress', node, src, this.#snap.mergedNamed(hostPods), conn);
  }

  /** Traffic from a node's address (src is the node or one of its hostNetwork pods). */
  #judgeHostEgress(src: End & { view: { kind: 'node' } }, dst: End, conn: Connection): DirectionVerdict {
    const node = src.view.node as string;
    if (dst.view.kind === 'node' && dst.view.node === node) return this.#hostVerdict('egress', node, undefined, false, [], true, [{ kind: 'own-node' }]);
    const hn = src.view.hostNetworkPod ? this.#snap.pod(src.view.hostNetworkPod) : undefined;
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
    const target = dst.pod ? this.#snap.namedPorts(dst.pod) : undefined;
    if (hn && npPolicies.length > 0) {
      const refs = npPolicies.map((p) => ({ namespace: p.namespace, name: p.name }));
      const reasons = this.#judgeRules(
        npPolicies,
        (p) => p.egress ?? [],
        (p) => ({ namespace: p.namespace, name: p.name }),
        (p, x) => x.kind !== 'nodes' && this.#snap.peerMatches(x, p.namespace, dst),
        () => target,
        conn,
      );
      if (reasons.length > 0) return this.#hostVerdict('egress', node, hn.ref, true, refs, true, reasons);
      return this.#hostVerdict('egress', node, hn.ref, true, refs, this.#host?.audit === true, [{ kind: this.#host?.audit ? 'audit' : 'no-rule-matched' }]);
    }
    if (dst.pod && dst.pod.nodeName === node) return this.#hostVerdict('egress', node, undefined, false, [], true, [{ kind: 'own-node' }]);
    return this.#judgeHostPolicies('egress', node, dst, target, conn);
  }

  /** Judges one connection. */
  evaluate(conn: Connection): Verdict {
    if (!Number.isInteger(conn.port) || conn.port < 1 || conn.port > 65535) throw new PolicyQueryError(`port must be 1-65535, got ${conn.port}`);
    if (conn.protocol !== 'TCP' && conn.protocol !== 'UDP' && conn.protocol !== 'SCTP') {
      throw new PolicyQueryError(`protocol must be TCP, UDP or SCTP, got ${String(conn.protocol)}`);
    }
    const family = this.#snap.familyOf(conn);
    const src = this.#snap.resolve(conn.src, family);
    const dst = this.#snap.resolve(conn.dst, family);
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
      const pods = this.#snap.allPods().filter((pod) => pod.live && !pod.hostNetwork);
      return pods
        .filter(
          (pod) => this.#selectingClusterPolicies(pod, 'ingress', c.tier).includes(c) || this.#selectingClusterPolicies(pod, 'egress', c.tier).includes(c),
        )
        .map((pod) => pod.ref);
    }
    const p = this.policies.find((x) => x.namespace === policy.namespace && x.name === policy.name);
    if (!p) throw new PolicyQueryError(`NetworkPolicy ${formatPolicyRef(policy)} is not in the cluster state`);
    return this.#snap
      .podsIn(p.namespace)
      .filter((pod) => pod.live && (!pod.hostNetwork || this.#host !== undefined) && this.#snap.selectsPod(p.podSelector, pod))
      .map((pod) => pod.ref);
  }

  /** The policies of `direction` that isolate a pod (empty when it is unrestricted in that direction). */
  policiesFor(pod: PodRef, direction: Direction): PolicyRef[] {
    const info = this.#snap.podOf({ kind: 'pod', ...pod });
    if (info.hostNetwork && !this.#host) return [];
    return this.#selectingPolicies(info, direction).map((p) => ({ namespace: p.namespace, name: p.name }));
  }

  /** The ClusterNetworkPolicies of `direction` selecting a pod, Admin tier first, in order of evaluation. */
  clusterPoliciesFor(pod: PodRef, direction: Direction): PolicyRef[] {
    const info = this.#snap.podOf({ kind: 'pod', ...pod });
    if (info.hostNetwork) return [];
    return (['Admin', 'Baseline'] as const).flatMap((t) => this.#selectingClusterPolicies(info, direction, t).map((p) => cnpRef(p.name)));
  }
}

/** One-shot evaluation; build a PolicyEvaluator once to judge many connections against one snapshot. */
export const evaluate = (state: ClusterState, conn: Connection, opts?: EvaluatorOptions): Verdict => new PolicyEvaluator(state, opts).evaluate(conn);
