// What the DNS path needs from the ClusterNetworkPolicies in force: which
// local pods' DNS answers to hold (those a policy with a domainNames peer
// selects for egress), and which domain sets of the table each learned
// name goes to (rule-compile.ts makes one set per domain peer and family,
// named after its names). Pure.
import type { IpFamily } from '../ip.ts';
import { type DomainPeer, domainMatches, type NormalizedClusterPolicy } from './cnp-normalize.ts';
import type { LocalEndpoint } from './compile.ts';
import { FAMILIES, sharedSetName } from './rule-compile.ts';

export interface DomainSet {
  /** The set's name in the policy table. */
  readonly name: string;
  readonly family: IpFamily;
  /** Canonical names and `*.` wildcards. */
  readonly patterns: readonly string[];
}

export interface DnsPlan {
  /** Local pods whose DNS answers are held, by family. */
  readonly subjects: Map<IpFamily, Set<string>>;
  /** The domain sets the table holds now. */
  readonly sets: readonly DomainSet[];
}

/** The set holding a domain peer's addresses of one family (the name rule-compile.ts gives it). */
export const domainSetName = (f: IpFamily, peer: DomainPeer): string => sharedSetName(`dns${f}`, peer.names.join(','));

const domainPeers = (p: NormalizedClusterPolicy): DomainPeer[] =>
  p.egress.flatMap((r) => (r.peers === 'any' ? [] : r.peers.filter((x): x is DomainPeer => x.kind === 'domains')));

/**
 * The plan for this node: `endpoints` are the local pods as last compiled
 * (with the tier policies selecting each), `hasSet` says whether the
 * applied table holds a set (a policy selecting no local pod compiles to
 * nothing here).
 */
export function dnsPlan(policies: readonly NormalizedClusterPolicy[], endpoints: readonly LocalEndpoint[], hasSet: (name: string) => boolean): DnsPlan {
  const withDomains = new Map<string, DomainPeer[]>();
  for (const p of policies) {
    const peers = domainPeers(p);
    if (peers.length > 0) withDomains.set(p.name, peers);
  }
  const subjects = new Map<IpFamily, Set<string>>(FAMILIES.map((f) => [f, new Set<string>()]));
  for (const ep of endpoints) {
    const names = [...(ep.tiers?.admin?.egress?.policies ?? []), ...(ep.tiers?.baseline?.egress?.policies ?? [])];
    if (!names.some((n) => withDomains.has(n))) continue;
    for (const ip of ep.ips) subjects.get(ip.includes(':') ? 6 : 4)?.add(ip);
  }
  const sets = new Map<string, DomainSet>();
  for (const peers of withDomains.values()) {
    for (const peer of peers) {
      for (const f of FAMILIES) {
        const name = domainSetName(f, peer);
        if (!sets.has(name) && hasSet(name)) sets.set(name, { name, family: f, patterns: peer.names });
      }
    }
  }
  return { subjects, sets: [...sets.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) };
}

/** The sets a learned (canonical) name goes to, in one family. */
export const setsForName = (plan: DnsPlan, name: string, family: IpFamily): DomainSet[] =>
  plan.sets.filter((s) => s.family === family && s.patterns.some((p) => domainMatches(p, name)));
