// ClusterNetworkPolicy tiers in weir's table (compile.ts builds the rest).
// Pure: it adds to the Ruleset of one compile. Present only while the
// cluster has at least one ClusterNetworkPolicy; without one, the table is
// exactly NetworkPolicy's.
//
// Shape (semantics in tiers.ts), per direction d (egress, ingress):
//
//   pod_egress / pod_ingress (the base chains, compile.ts)
//     ct established,related accept; guards
//     ip saddr vmap @admin_egress4      local pod -> jump adm_<h>_eg     ADMIN
//     ip saddr vmap @egress4            local pod -> goto prof_<h>_eg    NETWORKPOLICY (final)
//     ip saddr vmap @baseline_egress4   local pod -> jump bl_<h>_eg      BASELINE
//     (policy accept)                                                    DEFAULT
//   adm_<h>_eg: the Admin policies selecting a set of pods, in order of
//     precedence: ct invalid drop, jump c<id>_eg, jump c<id2>_eg, ...;
//     bl_<h>_eg likewise for the Baseline tier.
//   c<id>_eg: one policy's rules, in order, each ending in its action:
//     Accept `accept` (ends this base chain; the ingress chain still runs)
//     Deny   `log prefix "weir deny eg cnp:<name>[i]: "` + `drop`
//     Pass   Admin:    `goto egress_pass`
//            Baseline: `accept` (what follows the Baseline tier is the
//                      default, which allows)
//   egress_pass / ingress_pass: the rest of the base chain after the Admin
//     tier (NetworkPolicy dispatch, Baseline dispatch) and `accept`.
//
// Why Pass is a goto to a copy of the base chain's tail: Pass must leave
// two chains at once (the policy's and the Admin profile that jumped to
// it), and nftables' `return` leaves one. A mark bit set by the policy and
// tested by the profile after each jump would work too, but the packet
// mark is shared with kube-proxy and others on the node. `goto` replaces
// the policy chain's frame, and the pass chain ends in a verdict on every
// path, so the profile never resumes: no state, and the policy chains stay
// shared by every profile that uses them (a changed policy rewrites only
// its own chains).
//
// A pod's traffic to its own node never crosses the forward hook, but the
// tiers judge it (egress to `nodes` and `networks` peers): `pod_local`, a
// base chain on the input hook, dispatches the same Admin map, then
// `egress_local`: a pod a NetworkPolicy isolates for egress may always
// reach its node (NetworkPolicy's rule, its tier final), others go to the
// Baseline tier. An Admin Pass on that path reaches egress_pass like any
// other; its first rule (`fib daddr type local`, true only for traffic to
// this node's own addresses, so only on the input path) sends it on to
// egress_local. Ingress needs no such path: ingress peers are pods only, so
// nothing a node sends is matched by a ClusterNetworkPolicy.
//
// A packet costs the same however many policies the cluster has: map
// lookups by address, then only the policies selecting that pod.
import { type ClusterIndex, type ClusterIndexer, type PodFacts, sameLabels } from './cluster-index.ts';
import type { CnpRule, NormalizedClusterPolicy } from './cnp-normalize.ts';
import type { CnpTier } from './cnp-types.ts';
import { nodeAddressesFor } from './host-compile.ts';
import type { Direction } from './normalize.ts';
import { buildOutput, type PolicyOutput } from './policy-output.ts';
import { addrType, commentLabel, compileRule, FAMILIES, fam, hashId, type RuleAction, type Subjects, short } from './rule-compile.ts';
import type { RulesetBuilder } from './ruleset.ts';
import { selectorMatches } from './selector.ts';
import { learnedAddresses } from './tiers.ts';
import type { ClusterState, Labels } from './types.ts';

export interface TierLog {
  readonly group: number;
  readonly rate: string;
  readonly burst: number;
}

export interface TierInput {
  readonly b: RulesetBuilder;
  readonly indexer: ClusterIndexer;
  readonly idx: ClusterIndex;
  readonly state: ClusterState;
  readonly nodeName: string;
  readonly log: TierLog;
  /** Whether a NetworkPolicy isolates a local pod for egress (it may then always reach its own node). */
  readonly npEgress: (pod: PodFacts) => boolean;
  /** The NetworkPolicy dispatch rules of a direction (`ip saddr vmap @egress4`, ...), which the pass chains repeat. */
  readonly npDispatch: (d: Direction) => string[];
  /** The base chains' drop of pod addresses weir does not know yet, by source: pod_local has it too (no window at pod start). */
  readonly guards: readonly string[];
}

/** A local pod's profile chain in one tier and direction, with its policies (names) in order. */
export type TierProfile = { chain: string; policies: string[] };
export type TierProfiles = Partial<Record<'admin' | 'baseline', Partial<Record<Direction, TierProfile>>>>;

export interface TierResult {
  /** Base chain rules before (Admin tier) and after (Baseline tier) the NetworkPolicy dispatch. */
  readonly before: (d: Direction) => string[];
  readonly after: (d: Direction) => string[];
  /** The tier profiles of each local pod some ClusterNetworkPolicy selects. */
  readonly profiles: Map<PodFacts, TierProfiles>;
  /** Chain base (`c<hash>`) of each ClusterNetworkPolicy compiled on this node, by name. */
  readonly chains: Map<string, string>;
}

const TIERS: readonly [CnpTier, 'admin' | 'baseline', string][] = [
  ['Admin', 'admin', 'adm'],
  ['Baseline', 'baseline', 'bl'],
];
const DIRECTIONS: readonly Direction[] = ['egress', 'ingress'];
const passChain = (d: Direction): string => `${d}_pass`;
const tierMap = (tier: 'admin' | 'baseline', d: Direction, f: number): string => `${tier}_${d}${f}`;
const field = (d: Direction): string => (d === 'egress' ? 'saddr' : 'daddr');
const vmapRules = (tier: 'admin' | 'baseline', d: Direction): string[] => FAMILIES.map((f) => `${fam(f)} ${field(d)} vmap @${tierMap(tier, d, f)}`);

/** nft comments: at most 128 bytes, no `"` and no control characters (a rule name may hold any). */
function fitComment(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: nft comments cannot carry control characters; this replaces them.
  const clean = text.replace(/"/g, "'").replace(/[\u0000-\u001f\u007f]/g, ' ');
  const buf = Buffer.from(clean);
  return buf.length <= 128
    ? clean
    : buf
        .subarray(0, 128)
        .toString('utf8')
        .replace(/\uFFFD+$/, '');
}

/** The Admin and Baseline policies selecting a pod, per direction, in order. */
type Selection = Record<CnpTier, Record<Direction, NormalizedClusterPolicy[]>>;
const selections = new WeakMap<ClusterIndexer, WeakMap<PodFacts, { list: readonly NormalizedClusterPolicy[]; labels: Labels; sel: Selection }>>();

/** Memoized per pod object, namespace labels and policy list: a pod event recomputes that pod only. */
function selectionOf(indexer: ClusterIndexer, idx: ClusterIndex, pod: PodFacts): Selection {
  let memo = selections.get(indexer);
  if (!memo) {
    memo = new WeakMap();
    selections.set(indexer, memo);
  }
  const labels = idx.nsLabels(pod.namespace);
  const hit = memo.get(pod);
  if (hit && hit.list === idx.clusterPolicies && (hit.labels === labels || sameLabels(hit.labels, labels))) return hit.sel;
  const sel: Selection = { Admin: { egress: [], ingress: [] }, Baseline: { egress: [], ingress: [] } };
  for (const p of idx.clusterPolicies) {
    if (!selectorMatches(p.subject.namespaces, labels) || !selectorMatches(p.subject.pods, pod.labels)) continue;
    for (const d of DIRECTIONS) if (p[d].length > 0) sel[p.tier][d].push(p);
  }
  memo.set(pod, { list: idx.clusterPolicies, labels, sel });
  return sel;
}

export const clusterChainId = (name: string): string => `c${hashId(`ClusterNetworkPolicy/${name}`)}`;

/** What a rule's match leads to, in its tier and direction. */
function actionOf(p: NormalizedClusterPolicy, r: CnpRule, d: Direction, label: string, log: TierLog): RuleAction {
  switch (r.action) {
    case 'Accept':
      return { verdict: 'accept' };
    case 'Deny':
      return { verdict: 'drop', log: { prefix: `weir deny ${short(d)} cnp:${label}[${r.index}]: `, rate: log.rate, burst: log.burst, group: log.group } };
    case 'Pass':
      return { verdict: p.tier === 'Admin' ? `goto ${passChain(d)}` : 'accept' };
  }
}

/**
 * The addresses a policy's node and domain peers stand for now: part of
 * its output's identity, since those sets are filled when it is built.
 */
function volatileKey(p: NormalizedClusterPolicy, state: ClusterState): string {
  const parts: string[] = [];
  for (const r of [...p.egress, ...p.ingress]) {
    if (r.peers === 'any') continue;
    for (const x of r.peers) {
      if (x.kind === 'nodes') parts.push(`n:${x.nodes.key}=${[...nodeAddressesFor(state, x.nodes).values()].flat().join(',')}`);
      else if (x.kind === 'domains') parts.push(`d:${x.names.join(',')}=${[...learnedAddresses(x, state.domainAddresses).values()].flat().join(',')}`);
    }
  }
  return parts.join('|');
}

const outputs = new WeakMap<ClusterIndexer, WeakMap<NormalizedClusterPolicy, { key: string; out: PolicyOutput }>>();

/** What one ClusterNetworkPolicy compiles to on this node: its chain per direction it has rules for. */
function clusterPolicyOutput(t: TierInput, p: NormalizedClusterPolicy): PolicyOutput {
  let memo = outputs.get(t.indexer);
  if (!memo) {
    memo = new WeakMap();
    outputs.set(t.indexer, memo);
  }
  const key = `${t.log.group}|${t.log.rate}|${t.log.burst}|${volatileKey(p, t.state)}`;
  const hit = memo.get(p);
  if (hit?.key === key) return hit.out;
  const id = clusterChainId(p.name);
  const label = commentLabel(p.name, id);
  // Subjects on this node resolve ingress named ports.
  const who: Subjects = {
    key: `cnp|${p.subject.namespaces.key}|${p.subject.pods.key}`,
    member: (pod, nsLabels) =>
      pod.nodeName === t.nodeName && !pod.host && selectorMatches(p.subject.namespaces, nsLabels) && selectorMatches(p.subject.pods, pod.labels),
    nsDependent: true,
  };
  const extra = {
    nodeAddresses: (sel: Parameters<typeof nodeAddressesFor>[1]) => nodeAddressesFor(t.state, sel),
    domainAddresses: (x: Parameters<typeof learnedAddresses>[0]) => learnedAddresses(x, t.state.domainAddresses),
  };
  const out = buildOutput(t.indexer, extra, (ctx) =>
    DIRECTIONS.filter((d) => p[d].length > 0).map((d): [Direction, string] => {
      // The chain's comment names the policy only: a chain whose definition
      // changes is deleted and made again, which a profile's jump to it forbids.
      const chain = ctx.b.chain(`${id}_${short(d)}`, undefined, `ClusterNetworkPolicy ${label} ${d}`);
      for (const r of p[d]) {
        const comment = fitComment(
          `cnp ${label} ${d}[${r.index}] ${r.action}${r.action === 'Pass' && p.tier === 'Baseline' ? ' (to the default: allow)' : ''}${r.name !== undefined ? ` ${r.name}` : ''}`,
        );
        compileRule(ctx, chain, comment, d, r, '', who, actionOf(p, r, d, label, t.log));
      }
      return [d, chain];
    }),
  );
  memo.set(p, { key, out });
  return out;
}

/** The tier chains, maps and profiles of this node; undefined when the cluster has no ClusterNetworkPolicy. */
export function compileTiers(t: TierInput): TierResult | undefined {
  const { b, idx } = t;
  if (idx.clusterPolicies.length === 0) return undefined;
  for (const [, tier] of TIERS) {
    for (const d of DIRECTIONS) for (const f of FAMILIES) b.map(tierMap(tier, d, f), `${addrType(f)} : verdict`, `${tier} tier ${d} profile of each local pod`);
  }
  for (const f of FAMILIES) b.set(`np_egress${f}`, addrType(f), undefined, 'local pods a NetworkPolicy isolates for egress');
  const chains = new Map<string, string>();
  const chainOf = new Map<NormalizedClusterPolicy, Partial<Record<Direction, string>>>();
  const chainsOf = (p: NormalizedClusterPolicy): Partial<Record<Direction, string>> => {
    let c = chainOf.get(p);
    if (!c) {
      c = Object.fromEntries(clusterPolicyOutput(t, p).replay(b, idx.sets));
      chainOf.set(p, c);
      chains.set(p.name, clusterChainId(p.name));
    }
    return c;
  };
  const profiles = new Map<PodFacts, TierProfiles>();
  for (const pod of [...idx.local.values()].flat()) {
    if (t.npEgress(pod)) for (const [f, ip] of pod.ips) b.element(`np_egress${f}`, [ip]);
    const sel = selectionOf(t.indexer, idx, pod);
    for (const [tier, key, prefix] of TIERS) {
      for (const d of DIRECTIONS) {
        const list = sel[tier][d];
        if (list.length === 0) continue;
        const prof = profileChain(
          b,
          prefix,
          d,
          list.map((p) => ({ chain: chainsOf(p)[d] as string, comment: `ClusterNetworkPolicy ${p.name} (${p.tier} tier, priority ${p.priority})` })),
          tier,
        );
        for (const [f, ip] of pod.ips) b.element(tierMap(key, d, f), [ip], `jump ${prof}`);
        const entry = profiles.get(pod) ?? {};
        entry[key] = { ...entry[key], [d]: { chain: prof, policies: list.map((p) => p.name) } };
        profiles.set(pod, entry);
      }
    }
  }
  passAndLocalChains(t);
  return { before: (d) => vmapRules('admin', d), after: (d) => vmapRules('baseline', d), profiles, chains };
}

/** A profile chain: the tier's policies of a set of pods, in order (shared by pods with the same list). */
function profileChain(b: RulesetBuilder, prefix: string, d: Direction, policies: { chain: string; comment: string }[], tier: CnpTier): string {
  const name = `${prefix}_${hashId(policies.map((p) => p.chain).join(','))}_${short(d)}`;
  if (b.ruleset.chains.has(name)) return name;
  b.chain(name, undefined, `pods under ${policies.length} ${tier} tier ClusterNetworkPolic${policies.length === 1 ? 'y' : 'ies'} for ${d}`);
  b.rule(name, 'ct state invalid counter drop', 'conntrack-invalid packets of a policed pod');
  for (const p of policies) b.rule(name, `jump ${p.chain}`, fitComment(p.comment));
  return name;
}

/** The chains an Admin Pass goes to, and the input-hook path of a pod's traffic to its own node. */
function passAndLocalChains(t: TierInput): void {
  const { b } = t;
  for (const d of DIRECTIONS) {
    const pass = b.chain(passChain(d), undefined, `${d} after an Admin tier Pass: NetworkPolicy, then the Baseline tier`);
    if (d === 'egress') b.rule(pass, 'fib daddr type local goto egress_local', 'to this node itself: on the input hook');
    for (const r of [...t.npDispatch(d), ...vmapRules('baseline', d)]) b.rule(pass, r);
    b.rule(pass, 'counter accept', 'no tier decided: the default allows');
  }
  const local = b.chain('egress_local', undefined, "a pod's traffic to its own node after the Admin tier");
  for (const f of FAMILIES) b.rule(local, `${fam(f)} saddr @np_egress${f} counter accept`, 'NetworkPolicy: a pod may always reach its own node');
  for (const r of vmapRules('baseline', 'egress')) b.rule(local, r);
  b.rule(local, 'counter accept', 'no tier decided: the default allows');
  const base = b.chain(
    'pod_local',
    { type: 'filter', hook: 'input', priority: 0, policy: 'accept' },
    "ClusterNetworkPolicy egress of this node's pods to the node itself",
  );
  b.rule(base, 'ct state established,related accept', 'replies of allowed connections');
  for (const r of t.guards) b.rule(base, r, 'pod address not (yet) known to weir');
  for (const r of vmapRules('admin', 'egress')) b.rule(base, r);
  b.rule(base, 'goto egress_local');
}
