// ClusterNetworkPolicy tiers in the reference evaluator: which policies of
// a tier select a pod, and the first rule of theirs that matches a
// connection. The evaluator (evaluator.ts) orders the tiers around
// NetworkPolicy; this module knows the policies, the order within a tier
// (cnp-normalize.ts, byPrecedence) and the addresses learned for domain
// names. Pure.
//
// Semantics (network-policy-api v0.3.0, ClusterNetworkPolicySpec and the
// API overview), per direction of a connection (ahead of them all, a pod's
// egress to the cloud metadata address meets weir's metadata guard:
// metadata-guard.ts):
// - Admin tier, by ascending priority (ties by name), each policy's rules in
//   order: the first matching rule decides. Accept allows and Deny denies,
//   and nothing after them is consulted; Pass skips the rest of the Admin
//   tier. A policy with no rules in a direction does not affect it.
// - Then NetworkPolicy: a pod it isolates gets its verdict, final.
// - Then the Baseline tier, likewise; Pass there leaves the default.
// - Then the default: allowed.
// - A pod connecting to itself is never subject to ClusterNetworkPolicy ("a
//   Pod connecting directly to its own Pod IP is never subject to
//   ClusterNetworkPolicy enforcement").
// - hostNetwork pods are neither subjects nor peers: the API says so for
//   subjects and for namespaces/pods peers. That holds with weir's
//   host-firewall mode too: there NetworkPolicy selects a node's
//   hostNetwork pods, but ClusterNetworkPolicy does not (its tiers do not
//   exist for them); as a peer such a pod is its node's address, which
//   `nodes` and `networks` peers match like any node address.
// - Unlike NetworkPolicy, the Admin and Baseline tiers judge a pod's
//   traffic to its own node (egress to `nodes` or `networks` peers): the
//   kernel judges it on the input hook (compile.ts). Ingress peers are pods
//   only, so traffic from a node is never matched by a ClusterNetworkPolicy.
// - `domainNames` peers: the addresses currently learned for a matching
//   name (ClusterState.domainAddresses), nothing else.
import { formatIp, type IpFamily, tryParseIp } from '../ip.ts';
import { type CnpPeer, type CnpRule, canonicalDomain, cnpRef, type DomainPeer, domainMatches, type NormalizedClusterPolicy } from './cnp-normalize.ts';
import type { CnpAction, CnpTier } from './cnp-types.ts';
import type { PolicyRef } from './errors.ts';
import type { Direction } from './normalize.ts';
import type { PortMatch } from './ports.ts';

/** A rule of a ClusterNetworkPolicy that matched the connection. */
export interface ClusterRuleReason {
  readonly kind: 'cluster-rule';
  readonly policy: PolicyRef;
  readonly tier: CnpTier;
  readonly priority: number;
  /** Index in spec.ingress / spec.egress. */
  readonly rule: number;
  readonly name: string | undefined;
  readonly action: CnpAction;
}

/** The addresses learned for the names a domain peer matches, by family, sorted and unique. */
export function learnedAddresses(peer: DomainPeer, learned: ReadonlyMap<string, readonly string[]> | undefined): Map<IpFamily, string[]> {
  const out = new Map<IpFamily, Set<string>>();
  for (const [name, addrs] of learned ?? []) {
    const n = canonicalDomain(name);
    if (!peer.names.some((pat) => domainMatches(pat, n))) continue;
    for (const a of addrs) {
      const ip = tryParseIp(a);
      if (!ip) continue; // the learner hands over only addresses; anything else is not one
      const set = out.get(ip.family) ?? new Set<string>();
      set.add(formatIp(ip.bytes));
      out.set(ip.family, set);
    }
  }
  return new Map([...out].map(([f, s]) => [f, [...s].sort()]));
}

export class ClusterTiers {
  /** Every ClusterNetworkPolicy, Admin tier first, each tier in order of precedence. */
  readonly policies: readonly NormalizedClusterPolicy[];
  readonly #learned: ReadonlyMap<string, readonly string[]> | undefined;
  readonly #domains = new WeakMap<DomainPeer, Set<string>>();

  /** `policies` normalized (or fail-closed) and sorted by precedence. */
  constructor(policies: readonly NormalizedClusterPolicy[], learned: ReadonlyMap<string, readonly string[]> | undefined) {
    this.policies = [...policies.filter((p) => p.tier === 'Admin'), ...policies.filter((p) => p.tier === 'Baseline')];
    this.#learned = learned;
  }

  /** The policies of `tier` with rules in `direction` whose subject `selects` picks (in order). */
  selecting(tier: CnpTier, direction: Direction, selects: (p: NormalizedClusterPolicy) => boolean): NormalizedClusterPolicy[] {
    return this.policies.filter((p) => p.tier === tier && p[direction].length > 0 && selects(p));
  }

  /**
   * The first rule of `list` (one tier, in order) matching the connection:
   * `peerOk` for pod, ipBlock and node peers, domain peers here; `portsOk`
   * for the rule's ports. Undefined: no rule of the tier matched.
   */
  firstMatch(
    list: readonly NormalizedClusterPolicy[],
    direction: Direction,
    ip: string,
    peerOk: (p: CnpPeer) => boolean,
    portsOk: (ports: readonly PortMatch[] | 'any') => boolean,
  ): ClusterRuleReason | undefined {
    for (const p of list) {
      for (const r of p[direction]) {
        if (this.#ruleMatches(r, ip, peerOk) && portsOk(r.ports)) {
          return { kind: 'cluster-rule', policy: cnpRef(p.name), tier: p.tier, priority: p.priority, rule: r.index, name: r.name, action: r.action };
        }
      }
    }
    return undefined;
  }

  #ruleMatches(r: CnpRule, ip: string, peerOk: (p: CnpPeer) => boolean): boolean {
    if (r.peers === 'any') return true;
    return r.peers.some((x) => (x.kind === 'domains' ? this.#domainHas(x, ip) : peerOk(x)));
  }

  #domainHas(peer: DomainPeer, ip: string): boolean {
    let set = this.#domains.get(peer);
    if (!set) {
      set = new Set([...learnedAddresses(peer, this.#learned).values()].flat());
      this.#domains.set(peer, set);
    }
    return set.has(ip);
  }
}
