// One policy rule compiled into nft rules of a policy chain: the peer sets,
// the port sets, and one rule per (peer kind, port kind, family) it needs.
// Used for NetworkPolicy rules of pods (compile.ts), of hostNetwork pods and
// for HostFirewallPolicy rules (host-compile.ts), and for ClusterNetworkPolicy rules
// (cnp-compile.ts), so all of them mean the same thing; the last give other
// verdicts than accept. Pure.
import { createHash } from 'node:crypto';
import type { IpFamily } from '../ip.ts';
import type { Set as NftSet } from '../nft/types.ts';
import { NS_NAME_LABEL, type PodFacts } from './cluster-index.ts';
import type { DomainPeer } from './cnp-normalize.ts';
import type { HostRule } from './host-normalize.ts';
import { mergeRanges, rangeText, subtractCidrs } from './intervals.ts';
import type { Direction, NormalizedPeer } from './normalize.ts';
import type { PodSets, SetMembership } from './pod-sets.ts';
import { type PortMatch, resolveNamedPort } from './ports.ts';
import type { RulesetBuilder } from './ruleset.ts';
import { type CompiledSelector, selectorMatches } from './selector.ts';
import type { Labels, Protocol } from './types.ts';

export const FAMILIES: readonly IpFamily[] = [4, 6];
export const fam = (f: IpFamily): string => (f === 4 ? 'ip' : 'ip6');
export const addrType = (f: IpFamily): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');
export const short = (d: Direction): string => (d === 'ingress' ? 'in' : 'eg');

const hashMemo = new Map<string, string>();
/**
 * A short stable id of a text (chain and set names). Memoized: every compile
 * names the same ~2k sets and chains again, and a sha256 each costs more than
 * the rest of an incremental compile; the memo is dropped when it grows past
 * what any cluster's names need.
 */
export const hashId = (s: string): string => {
  let id = hashMemo.get(s);
  if (id === undefined) {
    if (hashMemo.size >= 50_000) hashMemo.clear();
    id = createHash('sha256').update(s).digest('hex').slice(0, 12);
    hashMemo.set(s, id);
  }
  return id;
};

/**
 * namespace/name for comments. nft caps a comment at 128 bytes, and a
 * Kubernetes namespace (63) plus a policy name (253) can exceed it: long
 * references are cut and end in the chain id, which stays unique.
 */
export const commentLabel = (ref: string, id: string): string =>
  Buffer.byteLength(ref) <= 80
    ? ref
    : `${Buffer.from(ref)
        .subarray(0, 64)
        .toString('utf8')
        .replace(/\uFFFD$/, '')}~${id}`;

/** A rule as normalized: NetworkPolicy rules, HostFirewallPolicy rules (which may also name nodes), ClusterNetworkPolicy rules (also domain names). */
export interface CompilableRule {
  readonly index: number;
  readonly peers: readonly (Exclude<HostRule['peers'], 'any'>[number] | DomainPeer)[] | 'any';
  readonly ports: HostRule['ports'];
}

/**
 * What a matching packet gets: `verdict` (default `accept`) after the
 * counter; with `log`, a rule before it logs the packet (rate-limited, to
 * the nflog group) under that prefix.
 */
export interface RuleAction {
  readonly verdict: string;
  readonly log?: { readonly prefix: string; readonly rate: string; readonly burst: number; readonly group: number };
}
const ACCEPT: RuleAction = { verdict: 'accept' };

export interface RuleContext {
  readonly b: RulesetBuilder;
  /** The contents of pod-dependent sets (peer pods, named ports), kept across compiles. */
  readonly sets: Pick<PodSets, 'declare'>;
  /** The addresses of the nodes a node selector picks, by family (HostFirewallPolicy and ClusterNetworkPolicy peers). */
  readonly nodeAddresses?: (sel: CompiledSelector) => Map<IpFamily, string[]>;
  /** The addresses learned for a domain-name peer, by family (ClusterNetworkPolicy peers). */
  readonly domainAddresses?: (peer: DomainPeer) => Map<IpFamily, string[]>;
}

/** The pods a rule protects: their addresses and declared ports resolve ingress named ports. */
export interface Subjects {
  /** Names the membership below (equal keys: equal memberships, for one node). */
  readonly key: string;
  /** Only pods of this namespace can be subjects. */
  readonly namespace?: string;
  readonly member: (pod: PodFacts, nsLabels: Labels) => boolean;
  /** Membership reads namespace labels (a cluster-wide subject). */
  readonly nsDependent?: boolean;
}

/**
 * The name of a shared set: `s<hash>_<what>`, the hash of what defines the
 * set's contents. Rules (of any policy) whose peers or ports are defined the
 * same way use one set, so that the table holds each list of addresses once.
 * Pod-dependent sets are named by their definition (selector keys), not by
 * their current elements, so that a pod coming or going stays an element
 * update and never renames a set under a rule.
 */
export const sharedSetName = (what: string, definition: string): string => `s${hashId(`${what}|${definition}`)}_${what}`;

/**
 * Adds a shared set unless this compile already made it; returns its name and
 * whether it is new (and so must be filled by the caller).
 */
function sharedSet(
  b: RulesetBuilder,
  what: string,
  definition: string,
  type: string,
  flags: NftSet['flags'],
  comment: string,
): { name: string; fresh: boolean } {
  const name = sharedSetName(what, definition);
  if (b.ruleset.sets.has(name)) return { name, fresh: false };
  b.set(name, type, flags, comment);
  return { name, fresh: true };
}

/**
 * A shared set whose contents depend on pods: its elements are the live
 * contents kept by the pod sets (filled once, then moved pod by pod).
 */
function livePodSet(ctx: RuleContext, what: string, definition: string, type: string, comment: string, m: SetMembership): string {
  const name = sharedSetName(what, definition);
  if (!ctx.b.ruleset.sets.has(name)) {
    const def: NftSet = { kind: 'set', table: ctx.b.table, name, type, comment };
    ctx.b.live(def, ctx.sets.declare(def, m));
  }
  return name;
}

type PodPeer = NormalizedPeer & { kind: 'pods' };
type RulePeer = Exclude<CompilableRule['peers'], 'any'>[number];
type NumericPort = Exclude<PortMatch, { kind: 'named' }>;
type NamedPort = Extract<PortMatch, { kind: 'named' }>;

/** The key of one pod peer (which namespaces, which pods in them): equal keys select the same pods. */
const podPeerKey = (policyNs: string, p: PodPeer): string => `${p.namespaces === 'own' ? `own:${policyNs}` : `ns:${p.namespaces.key}`}|${p.pods.key}`;
const sortedUnique = (xs: readonly string[]): string[] => [...new Set(xs)].sort();
const NONE: readonly (readonly string[])[] = [];

/** Whether a pod is selected by a pod peer of a policy of namespace `policyNs`. */
const peerSelects = (policyNs: string, p: PodPeer, pod: PodFacts, nsLabels: Labels): boolean =>
  !pod.host && (p.namespaces === 'own' ? pod.namespace === policyNs : selectorMatches(p.namespaces, nsLabels)) && selectorMatches(p.pods, pod.labels);

/** Where the pods of a list of pod peers can be: one namespace, or the namespaces some peer's selector picks. */
function nsScope(policyNs: string, peers: readonly PodPeer[]): Pick<SetMembership, 'namespace' | 'nsDependent' | 'nsMatch'> {
  const own = peers.every((p) => p.namespaces === 'own');
  if (own) return { namespace: policyNs, nsDependent: false };
  const sels = peers.map((p) => p.namespaces);
  return { nsDependent: true, nsMatch: (labels) => sels.some((s) => (s === 'own' ? labels[NS_NAME_LABEL] === policyNs : selectorMatches(s, labels))) };
}

/** What the parts of one rule's compile share. */
interface RuleScope {
  readonly ctx: RuleContext;
  readonly d: Direction;
  readonly policyNs: string;
  readonly subjects: Subjects;
  /** Pod peers by key, in the rule's order. */
  readonly podPeers: ReadonlyMap<string, PodPeer>;
}

/** One way a packet's peer address can match, in one family; `podPeer` is the pod peer key of a match, for egress named ports. */
interface PeerMatch {
  readonly match: string;
  readonly podPeer?: string;
}

/** The ports part of the nft rules of one family, for a peer match (its pod peer, if any). */
type PortMatcher = (f: IpFamily, podPeer: string | undefined) => string[];

/**
 * One rule: its sets, and one nft rule per (peer kind, port kind, family)
 * it needs. `subjects` are the pods the rule protects (their addresses and
 * declared ports resolve ingress named ports).
 */
export function compileRule(
  ctx: RuleContext,
  chain: string,
  comment: string,
  d: Direction,
  r: CompilableRule,
  policyNs: string,
  subjects: Subjects,
  action: RuleAction = ACCEPT,
): void {
  const podPeers = new Map<string, PodPeer>();
  if (r.peers !== 'any') for (const p of r.peers) if (p.kind === 'pods') podPeers.set(podPeerKey(policyNs, p), p);
  const scope: RuleScope = { ctx, d, policyNs, subjects, podPeers };
  const peerMatch = peerMatches(scope, r.peers);
  const portMatch = portMatcher(scope, r);
  emitRules(ctx.b, chain, comment, action, peerMatch, portMatch);
}

/**
 * Peers, per family: a pod-address set per distinct pod peer, and/or an
 * ipBlock interval set (and, for the host firewall, a node-address set).
 * Each is its own nft rule (the rule allows when any of them matches):
 * one set per pod peer is what lets rules with overlapping peer lists
 * share sets. A family with no possible peer has no entry.
 */
function peerMatches(scope: RuleScope, peers: CompilableRule['peers']): Map<IpFamily, PeerMatch[]> {
  const peerMatch = new Map<IpFamily, PeerMatch[]>();
  if (peers === 'any') {
    for (const f of FAMILIES) peerMatch.set(f, [{ match: '' }]);
    return peerMatch;
  }
  const { ctx, d } = scope;
  const peerField = d === 'ingress' ? 'saddr' : 'daddr';
  const blocks = peers.filter((p) => p.kind === 'ipBlock');
  const nodePeers = peers.filter((p) => p.kind === 'nodes');
  const domainPeers = peers.filter((p) => p.kind === 'domains');
  const nodeAddresses = lazyNodeAddresses(ctx, nodePeers);
  for (const f of FAMILIES) {
    const at = (set: string): string => `${fam(f)} ${peerField} @${set}`;
    const matches: PeerMatch[] = [...scope.podPeers].map(([key, peer]) => ({ match: at(podPeerSet(scope, f, peer, key)), podPeer: key }));
    if (blocks.some((x) => x.cidr.family === f)) matches.push({ match: at(ipBlockSet(ctx.b, f, blocks)) });
    if (nodePeers.length > 0) matches.push({ match: at(nodeSet(ctx.b, f, nodePeers, nodeAddresses)) });
    for (const p of domainPeers) matches.push({ match: at(domainSet(ctx, f, p)) });
    if (matches.length > 0) peerMatch.set(f, matches);
  }
  return peerMatch;
}

/** The live set of the addresses of family `f` of the pods a pod peer (of key `key`) selects. */
function podPeerSet({ ctx, policyNs }: RuleScope, f: IpFamily, peer: PodPeer, key: string): string {
  return livePodSet(ctx, `pods${f}`, key, addrType(f), 'peer pods', {
    member: (pod, nsLabels) => {
      const ip = pod.ips.get(f);
      return ip !== undefined && peerSelects(policyNs, peer, pod, nsLabels) ? [[ip]] : NONE;
    },
    ...nsScope(policyNs, [peer]),
  });
}

/** The interval set of the ipBlock peers of family `f`, their `except` subtracted. */
function ipBlockSet(b: RulesetBuilder, f: IpFamily, blocks: readonly Extract<RulePeer, { kind: 'ipBlock' }>[]): string {
  const ranges = mergeRanges(blocks.filter((x) => x.cidr.family === f).flatMap((x) => subtractCidrs(x.cidr, x.except))).map((rg) => rangeText(f, rg));
  const set = sharedSet(b, `cidr${f}`, ranges.join(','), addrType(f), ['interval'], 'ipBlock peers');
  if (set.fresh) for (const rg of ranges) b.element(set.name, [rg]);
  return set.name;
}

/** The addresses of the nodes the node peers pick, by family: read once, and only when a set of them is new. */
function lazyNodeAddresses(ctx: RuleContext, nodePeers: readonly Extract<RulePeer, { kind: 'nodes' }>[]): () => Map<IpFamily, Set<string>> {
  let nodeAddrs: Map<IpFamily, Set<string>> | undefined;
  return () => {
    if (nodeAddrs) return nodeAddrs;
    nodeAddrs = new Map();
    for (const p of nodePeers) {
      for (const [f, list] of ctx.nodeAddresses?.(p.nodes) ?? new Map<IpFamily, string[]>()) nodeAddrs.set(f, new Set([...(nodeAddrs.get(f) ?? []), ...list]));
    }
    return nodeAddrs;
  };
}

/** The set of the addresses of family `f` of the nodes the node peers pick. */
function nodeSet(
  b: RulesetBuilder,
  f: IpFamily,
  nodePeers: readonly Extract<RulePeer, { kind: 'nodes' }>[],
  nodeAddresses: () => Map<IpFamily, Set<string>>,
): string {
  const nodesKey = sortedUnique(nodePeers.map((p) => p.nodes.key)).join(',');
  const set = sharedSet(b, `nodes${f}`, nodesKey, addrType(f), undefined, 'peer nodes');
  if (set.fresh) for (const ip of [...(nodeAddresses().get(f) ?? [])].sort()) b.element(set.name, [ip]);
  return set.name;
}

/**
 * One set per domain peer (its names), holding the addresses learned for
 * them. `timeout`: the agent's DNS path adds each address with its
 * record's TTL, and the kernel expires it (agent/dns.ts).
 */
function domainSet(ctx: RuleContext, f: IpFamily, p: DomainPeer): string {
  const set = sharedSet(ctx.b, `dns${f}`, p.names.join(','), addrType(f), ['timeout'], `addresses learned for ${p.names.length} domain name(s)`);
  if (set.fresh) for (const ip of ctx.domainAddresses?.(p).get(f) ?? []) ctx.b.element(set.name, [ip]);
  return set.name;
}

/**
 * Ports: numeric and ranges in one interval set for every family; named
 * ports resolved against the destination pod (the subject for ingress, the
 * peer for egress) into address . protocol . port sets.
 */
function portMatcher(scope: RuleScope, r: CompilableRule): PortMatcher {
  if (r.ports === 'any') return () => [''];
  const numeric = r.ports.filter((p) => p.kind !== 'named');
  const named = r.ports.filter((p) => p.kind === 'named');
  const common = numeric.length > 0 ? [`meta l4proto . th dport @${numericPortSet(scope.ctx.b, numeric)}`] : [];
  if (named.length === 0) return () => common;
  // For egress, only pods that can be the destination need resolving: with
  // an ipBlock (or any) peer, every pod; else the pods of the peer the nft
  // rule matches (the rule's pod peers for its other peer kinds).
  const allTargets = r.peers === 'any' || r.peers.some((p) => p.kind === 'ipBlock');
  return (f, podPeer) => [...common, `${fam(f)} daddr . meta l4proto . th dport @${namedPortSet(scope, named, allTargets, f, podPeer)}`];
}

/** The set of numeric ports and port ranges, by protocol. */
function numericPortSet(b: RulesetBuilder, numeric: readonly NumericPort[]): string {
  // Valid policies may overlap (port 80 and 80-90, UDP and UDP 53), and
  // an interval set refuses overlapping elements: merge per protocol.
  const elements: string[][] = [];
  for (const proto of new Set(numeric.map((p) => p.protocol))) {
    const spans = numeric.filter((p) => p.protocol === proto).map((p): [bigint, bigint] => (p.kind === 'all' ? [0n, 65535n] : [BigInt(p.from), BigInt(p.to)]));
    for (const [from, to] of mergeRanges(spans)) elements.push([proto.toLowerCase(), from === to ? `${from}` : `${from}-${to}`]);
  }
  // `flags interval` only when a range needs it: libnftables 1.0.6 reads
  // every interval set of the table before any element change (~20 µs
  // each), so at 1k policies plain port lists kept as hash sets keep a
  // pod update within a few ms.
  const ranged = elements.some((e) => (e[1] ?? '').includes('-'));
  const set = sharedSet(
    b,
    'ports',
    sortedUnique(elements.map((e) => e.join(' . '))).join(','),
    'inet_proto . inet_service',
    ranged ? ['interval'] : undefined,
    'ports',
  );
  if (set.fresh) for (const e of elements) b.element(set.name, e);
  return set.name;
}

/** The named ports of one destination pod, resolved: `address . protocol . port` elements. */
function resolvedNamedPorts(named: readonly NamedPort[], pod: PodFacts, f: IpFamily): readonly (readonly string[])[] {
  const ip = pod.ips.get(f);
  if (ip === undefined) return NONE;
  const out: string[][] = [];
  for (const n of named) for (const port of resolveNamedPort(pod.named, n.protocol as Protocol, n.name)) out.push([ip, n.protocol.toLowerCase(), `${port}`]);
  return out;
}

/**
 * The live set of the named ports resolved on the pods a packet of family
 * `f` can go to: the subjects for ingress; for egress every pod
 * (`allTargets`), else the pods of the peer matched (all pod peers of the
 * rule when the match is of another kind).
 */
function namedPortSet(scope: RuleScope, named: readonly NamedPort[], allTargets: boolean, f: IpFamily, podPeer: string | undefined): string {
  const { ctx, policyNs, subjects, podPeers } = scope;
  const namesKey = sortedUnique(named.map((n) => `${n.protocol}/${n.name}`)).join(',');
  const type = `${addrType(f)} . inet_proto . inet_service`;
  if (scope.d === 'ingress') {
    return livePodSet(ctx, `named${f}`, `subjects:${subjects.key}|${namesKey}`, type, 'named ports', {
      member: (pod, nsLabels) => (subjects.member(pod, nsLabels) ? resolvedNamedPorts(named, pod, f) : NONE),
      ...(subjects.namespace !== undefined ? { namespace: subjects.namespace } : {}),
      nsDependent: subjects.nsDependent === true,
    });
  }
  if (allTargets) {
    return livePodSet(ctx, `named${f}`, `all|${namesKey}`, type, 'named ports', {
      member: (pod) => (pod.host ? NONE : resolvedNamedPorts(named, pod, f)),
      nsDependent: false,
    });
  }
  const peerKeys = podPeer !== undefined ? [podPeer] : [...podPeers.keys()];
  if (peerKeys.length > 0) {
    const peers = peerKeys.map((k) => podPeers.get(k) as PodPeer);
    return livePodSet(ctx, `named${f}`, `peers:${sortedUnique(peerKeys).join(',')}|${namesKey}`, type, 'named ports', {
      member: (pod, nsLabels) => (peers.some((p) => peerSelects(policyNs, p, pod, nsLabels)) ? resolvedNamedPorts(named, pod, f) : NONE),
      ...nsScope(policyNs, peers),
    });
  }
  return sharedSet(ctx.b, `named${f}`, `none|${namesKey}`, type, undefined, 'named ports').name;
}

/**
 * One nft rule per combination; a family with no possible peer gets none.
 * A rule free of family-specific parts is emitted once, not per family.
 */
function emitRules(
  b: RulesetBuilder,
  chain: string,
  comment: string,
  action: RuleAction,
  peerMatch: ReadonlyMap<IpFamily, readonly PeerMatch[]>,
  portMatch: PortMatcher,
): void {
  const emitted = new Set<string>();
  const log = action.log
    ? `limit rate ${action.log.rate} burst ${action.log.burst} packets log prefix "${action.log.prefix}" group ${action.log.group}`
    : undefined;
  for (const f of FAMILIES) {
    for (const peer of peerMatch.get(f) ?? []) {
      for (const port of portMatch(f, peer.podPeer)) {
        const match = [peer.match, port].filter((x) => x !== '').join(' ');
        if (emitted.has(match)) continue;
        emitted.add(match);
        if (log) b.rule(chain, match === '' ? log : `${match} ${log}`, comment);
        b.rule(chain, match === '' ? `counter ${action.verdict}` : `${match} counter ${action.verdict}`, comment);
      }
    }
  }
}
