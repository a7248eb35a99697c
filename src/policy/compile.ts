// NetworkPolicy compiled into weir's nftables table for one node. Pure: from a
// cluster snapshot to a Ruleset (ruleset.ts) that the engine applies.
//
// Shape of the table (`inet weir`):
// - Two base chains on the forward hook, `pod_egress` (priority 0) then
//   `pod_ingress` (priority 1). Both run after kube-proxy's DNAT (dstnat,
//   -100), so policy sees the backend pod, not the Service address. `accept`
//   ends only the base chain it is in, so a packet allowed by egress still
//   meets ingress; `drop` is final. Node-to-pod traffic takes the output hook
//   and pod-to-own-node the input hook: neither passes here, which is the
//   Kubernetes rule that a pod and its node may always talk.
// - Each base chain accepts established/related first (replies of allowed
//   connections), then dispatches on the pod address through a verdict map
//   (O(1) in the number of pods): a policed local pod jumps (goto) to the
//   chain of its "profile", the set of policies selecting it in that
//   direction; pods that share policies share a chain. Pods no policy selects
//   have no map element and pass.
// - A profile chain drops ct-invalid packets, jumps to each policy's chain,
//   and ends in a rate-limited nflog of the denial and a drop.
// - A policy chain has one or more rules per NetworkPolicy rule, each with a
//   counter and a comment naming namespace/policy and the rule. Peers are
//   named sets (pod addresses; ipBlock intervals with `except` subtracted),
//   ports a concatenated interval set `inet_proto . inet_service`, named
//   ports a set of `address . inet_proto . inet_service` resolved per pod.
//   Sets are shared: each is named by a hash of what defines its contents
//   (rule-compile.ts, sharedSetName), so rules of any policy with the same
//   peers or ports use one set, with a neutral comment.
//   A packet costs the same however many pods and policies the cluster has.
// - ClusterNetworkPolicy (cnp-compile.ts, while the cluster has any): its
//   Admin tier is dispatched before the NetworkPolicy map and its Baseline
//   tier after, through maps of the same kind, and a pod's traffic to its
//   own node is judged by the tiers on the input hook.
// - With host-firewall mode on (opts.hostFirewall), NetworkPolicies also
//   select this node's hostNetwork pods, and host-compile.ts adds base chains on the
//   input and output hooks for the node's own traffic (documented there).
// - The cloud metadata guard (metadata-guard.ts, on unless
//   opts.metadataGuard is false): a base chain on the prerouting hook drops
//   pods' packets for the metadata address before any tier or NetworkPolicy
//   sees them, except from the pods a set lists as exempt.
import { type Cidr, parseCidr } from '../ip.ts';
import type { Table } from '../nft/types.ts';
import { type ClusterIndex, ClusterIndexer, type PodFacts } from './cluster-index.ts';
import { compileTiers, type TierLog, type TierProfiles, type TierResult } from './cnp-compile.ts';
import type { PolicyError } from './errors.ts';
import { compileHost, type HostFirewallOptions, type HostFirewallReport } from './host-compile.ts';
import { compileMetadataGuard, exemptAddresses, guardOptions, type MetadataGuardSetting } from './metadata-guard.ts';
import type { Direction, NormalizedPolicy } from './normalize.ts';
import { buildOutput, type PolicyOutput } from './policy-output.ts';
import { addrType, commentLabel, compileRule, FAMILIES, fam, hashId, type Subjects, short } from './rule-compile.ts';
import { type Ruleset, RulesetBuilder } from './ruleset.ts';
import { selectorMatches } from './selector.ts';
import type { ClusterState } from './types.ts';

export { commentLabel, hashId } from './rule-compile.ts';

export interface CompileOptions {
  nodeName: string;
  /** Table name (family inet); `weir` on nodes. */
  table?: string;
  /** nflog group that denied packets are logged to. */
  nflogGroup?: number;
  /** Rate limit of that log, e.g. `10/second`, and its burst in packets. */
  logRate?: string;
  logBurst?: number;
  /**
   * This node's pod CIDRs. With them, an address of these ranges that is no
   * known pod of this node is dropped both ways: a pod is policed from its
   * first packet, even before the API shows its IP (the hand-off from the
   * CNI plugin closes that gap), and a stale address of a deleted pod is dead.
   */
  guardCIDRs?: string[];
  /**
   * Host-firewall mode (host-compile.ts): the node's own traffic and its hostNetwork
   * pods under policy. Absent: off, and no host chain exists.
   */
  hostFirewall?: HostFirewallOptions;
  /** The cloud metadata guard (metadata-guard.ts): absent, on with the default opt-in label; false, off. */
  metadataGuard?: MetadataGuardSetting;
}

export interface LocalEndpoint {
  namespace: string;
  name: string;
  ips: string[];
  /** Profile chain per direction when isolated in it, with the policies (namespace/name) selecting the pod. */
  ingress?: { chain: string; policies: string[] };
  egress?: { chain: string; policies: string[] };
  /** ClusterNetworkPolicy profile chains per tier and direction, with the policies (names) in order; absent: none selects the pod. */
  tiers?: TierProfiles;
}

export interface CompileResult {
  ruleset: Ruleset;
  /** Policies that could not be expressed; each is enforced as deny-all for the pods it selects (fail closed). */
  errors: PolicyError[];
  /** The node's own pods, with what isolates them. */
  endpoints: LocalEndpoint[];
  /** Chain name of each policy compiled on this node, `namespace/name` to chain base. */
  policyChains: Map<string, string>;
  /** Chain name of each ClusterNetworkPolicy compiled on this node, name to chain base. */
  clusterPolicyChains: Map<string, string>;
  /** What the host firewall applies on this node; present exactly when the mode is on. */
  host?: HostFirewallReport;
}

const tableOf = (opts: CompileOptions): Table => ({
  kind: 'table',
  family: 'inet',
  name: opts.table ?? 'weir',
  comment: 'weir NetworkPolicy; managed by weir-agent, do not edit',
});

/** This node's addresses as the host firewall sees them (undefined: mode off). */
const hostIPsOf = (state: ClusterState, opts: CompileOptions): string[] | undefined =>
  opts.hostFirewall
    ? [...new Set([...(state.nodes?.find((n) => n.name === opts.nodeName)?.internalIPs ?? []), ...(opts.hostFirewall.nodeIPs ?? [])])]
    : undefined;

/**
 * The index a compile of `state` with `opts` can continue from: `previous`
 * when it was made for the same node, table and node addresses, else a new
 * one (whose sets are then filled from scratch).
 */
export function indexerFor(state: ClusterState, opts: CompileOptions, previous?: ClusterIndexer): ClusterIndexer {
  const table = tableOf(opts);
  const hostIPs = hostIPsOf(state, opts);
  if (previous && previous.key === ClusterIndexer.keyOf(table, opts.nodeName, hostIPs) && previous.table.comment === table.comment) return previous;
  return new ClusterIndexer(table, opts.nodeName, hostIPs);
}

const outputs = new WeakMap<ClusterIndexer, WeakMap<NormalizedPolicy, PolicyOutput>>();

/** What one NetworkPolicy compiles to on this node (policy-output.ts), made once per normalized policy. */
function policyOutput(indexer: ClusterIndexer, p: NormalizedPolicy, nodeName: string): PolicyOutput {
  let memo = outputs.get(indexer);
  if (!memo) {
    memo = new WeakMap();
    outputs.set(indexer, memo);
  }
  let out = memo.get(p);
  if (out) return out;
  const ref = `${p.namespace}/${p.name}`;
  const id = `p${hashId(ref)}`;
  const label = commentLabel(ref, id);
  // The subjects are a function of the namespace and the pod selector (for this node).
  const who: Subjects = {
    key: `${p.namespace}|${p.podSelector.key}`,
    namespace: p.namespace,
    member: (pod) => pod.nodeName === nodeName && pod.namespace === p.namespace && selectorMatches(p.podSelector, pod.labels),
  };
  out = buildOutput(indexer, {}, (ctx) =>
    (['ingress', 'egress'] as const).flatMap((d): [Direction, string][] => {
      const rules = p[d];
      if (rules === undefined) return [];
      const chain = ctx.b.chain(`${id}_${short(d)}`, undefined, `${label} ${d}`);
      for (const r of rules) compileRule(ctx, chain, `${label} ${d}[${r.index}]`, d, r, p.namespace, who);
      return [[d, chain]];
    }),
  );
  memo.set(p, out);
  return out;
}

/** The NetworkPolicy chains of this node: what the profiles and the report are made of. */
interface PolicyChains {
  /** Chain base of each policy compiled on this node, by `namespace/name`. */
  readonly policyChains: Map<string, string>;
  /** The policy chains of each pod (local or hostNetwork) they select, by direction, in policy order. */
  readonly profilesOf: Map<PodFacts, Record<Direction, string[]>>;
  /** namespace/name of the policy of each policy chain. */
  readonly refOfChain: Map<string, string>;
}

/**
 * Compiles `state` for one node. With `indexer` (see indexerFor), the work
 * continues from the state it last saw: unchanged objects are not looked at
 * again and pod-dependent sets move element by element; the result is the
 * same as a compile from scratch (tested), and its live sets journal what
 * changed for the next diff. The caller commits the journals (indexer.sets)
 * once the result is applied.
 */
export function compilePolicies(state: ClusterState, opts: CompileOptions, indexer: ClusterIndexer = indexerFor(state, opts)): CompileResult {
  const table = tableOf(opts);
  const b = new RulesetBuilder(table);
  const log: TierLog = { group: opts.nflogGroup ?? 100, rate: opts.logRate ?? '10/second', burst: opts.logBurst ?? 20 };

  // ---- the cluster, indexed ----
  const idx = indexer.update(state);
  const { errors, local, hostPods } = idx;
  idx.sets.beginCompile();

  const np = compilePolicyChains(b, indexer, idx, opts.nodeName);
  const guards = (opts.guardCIDRs ?? []).map((c) => parseCidr(c));
  const tiers = compileTiers({
    b,
    indexer,
    idx,
    state,
    nodeName: opts.nodeName,
    log,
    npEgress: (pod) => (np.profilesOf.get(pod)?.egress.length ?? 0) > 0,
    npDispatch,
    guards: guardRules(guards, 'saddr'),
  });
  knownPodSets(b, guards, local);
  baseChains(b, guards, tiers);
  const metadata = guardOptions(opts.metadataGuard);
  if (metadata) compileMetadataGuard(b, exemptAddresses(metadata, idx), log);
  const endpoints = profileChains(b, local, np, tiers, log);

  const { policyChains } = np;
  const clusterPolicyChains = tiers?.chains ?? new Map<string, string>();
  if (!opts.hostFirewall) {
    idx.sets.sweep();
    return { ruleset: b.ruleset, errors, endpoints, policyChains, clusterPolicyChains };
  }
  // With the host firewall on, NetworkPolicies also select this node's
  // hostNetwork pods (at the node's addresses).
  const nodeIPs = hostIPsOf(state, opts) ?? [];
  const host = compileHost({
    b,
    idx,
    state,
    nodeName: opts.nodeName,
    nodeIPs,
    hostPods,
    hostProfiles: np.profilesOf,
    refOfChain: np.refOfChain,
    group: log.group,
    logRate: log.rate,
    logBurst: log.burst,
    options: opts.hostFirewall,
  });
  idx.sets.sweep();
  return { ruleset: b.ruleset, errors: [...errors, ...host.errors], endpoints, policyChains, clusterPolicyChains, host: host.report };
}

/** The chain of each NetworkPolicy that selects a pod of this node (local or hostNetwork), and which pods each selects. */
function compilePolicyChains(b: RulesetBuilder, indexer: ClusterIndexer, idx: ClusterIndex, nodeName: string): PolicyChains {
  const { policies, local, hostPods } = idx;
  const policyChains = new Map<string, string>();
  const profilesOf = new Map<PodFacts, Record<Direction, string[]>>();
  const refOfChain = new Map<string, string>();
  for (const p of policies) {
    const locals = local.get(p.namespace);
    if (!locals && hostPods.length === 0) continue; // no pod of its namespace on this node (most policies, every sync)
    const subjects = locals ? locals.filter((pod) => selectorMatches(p.podSelector, pod.labels)) : [];
    const hostSubjects = hostPods.length > 0 ? hostPods.filter((pod) => pod.namespace === p.namespace && selectorMatches(p.podSelector, pod.labels)) : [];
    if (subjects.length === 0 && hostSubjects.length === 0) continue; // nothing on this node to enforce it for
    const ref = `${p.namespace}/${p.name}`;
    policyChains.set(ref, `p${hashId(ref)}`);
    const all = hostSubjects.length > 0 ? [...subjects, ...hostSubjects] : subjects;
    for (const [d, chain] of policyOutput(indexer, p, nodeName).replay(b, idx.sets)) {
      refOfChain.set(chain, ref);
      for (const s of all) {
        const entry = profilesOf.get(s) ?? { ingress: [], egress: [] };
        entry[d].push(chain);
        profilesOf.set(s, entry);
      }
    }
  }
  return { policyChains, profilesOf, refOfChain };
}

/** The NetworkPolicy dispatch of a base chain: the pod address through the direction's verdict map. */
const npDispatch = (d: Direction): string[] => FAMILIES.map((f) => `${fam(f)} ${d === 'egress' ? 'saddr' : 'daddr'} vmap @${d}${f}`);

/** The drop of an address of this node's pod CIDRs that is no pod weir knows, matched on `field`. */
const guardRules = (guards: readonly Cidr[], field: 'saddr' | 'daddr'): string[] =>
  guards.map((g) => `${fam(g.family)} ${field} ${g.address}/${g.prefix} ${fam(g.family)} ${field} != @known${g.family} counter drop`);

/** The addresses of this node's pods, per family that has a guarded pod CIDR. */
function knownPodSets(b: RulesetBuilder, guards: readonly Cidr[], local: ClusterIndex['local']): void {
  for (const f of FAMILIES) {
    if (!guards.some((g) => g.family === f)) continue;
    b.set(`known${f}`, addrType(f), undefined, 'addresses of the pods of this node that weir knows');
    for (const pods of local.values()) {
      for (const pod of pods) {
        const ip = pod.ips.get(f);
        if (ip) b.element(`known${f}`, [ip]);
      }
    }
  }
}

/** The base chains on the forward hook and their dispatch maps (the Admin tier before the NetworkPolicy map, the Baseline tier after). */
function baseChains(b: RulesetBuilder, guards: readonly Cidr[], tiers: TierResult | undefined): void {
  for (const d of ['egress', 'ingress'] as const) {
    const chain = b.chain(
      `pod_${d}`,
      { type: 'filter', hook: 'forward', priority: d === 'egress' ? 0 : 1, policy: 'accept' },
      `NetworkPolicy ${d} of this node's pods`,
    );
    b.rule(chain, 'ct state established,related accept', 'replies of allowed connections');
    if (d === 'egress') {
      // Conntrack picks up TCP mid-stream (nf_conntrack_tcp_loose) and would
      // judge the packet's direction as a new connection: after a policy
      // change purges a connection, the server's next segment would revive
      // it as "server connects to client". Only a SYN starts a connection.
      b.rule(chain, 'ct state new tcp flags & (syn | ack) != syn counter drop', 'TCP without a SYN: no connection is picked up mid-stream');
    }
    for (const r of guardRules(guards, d === 'egress' ? 'saddr' : 'daddr')) b.rule(chain, r, 'pod address not (yet) known to weir');
    for (const f of FAMILIES) b.map(`${d}${f}`, `${addrType(f)} : verdict`, `${d} profile of each isolated local pod`);
    for (const r of [...(tiers?.before(d) ?? []), ...npDispatch(d), ...(tiers?.after(d) ?? [])]) b.rule(chain, r);
  }
}

/**
 * The profile chain of each set of policy chains isolating a local pod in a
 * direction, and the pod's elements in the dispatch maps; returns the local
 * pods with what isolates them.
 */
function profileChains(b: RulesetBuilder, local: ClusterIndex['local'], np: PolicyChains, tiers: TierResult | undefined, log: TierLog): LocalEndpoint[] {
  const endpoints: LocalEndpoint[] = [];
  const profiles = new Set<string>();
  for (const pod of [...local.values()].flat()) {
    const ep: LocalEndpoint = { namespace: pod.namespace, name: pod.name, ips: [...pod.ips.values()] };
    const chains = np.profilesOf.get(pod);
    for (const d of ['ingress', 'egress'] as const) {
      const list = chains?.[d] ?? [];
      if (list.length === 0) continue;
      const prof = `prof_${hashId(list.join(','))}_${short(d)}`;
      if (!profiles.has(prof)) {
        profiles.add(prof);
        profileChain(b, prof, d, list, log);
      }
      for (const [f, ip] of pod.ips) b.element(`${d}${f}`, [ip], `goto ${prof}`);
      ep[d] = { chain: prof, policies: list.map((c) => np.refOfChain.get(c) ?? c) };
    }
    const tp = tiers?.profiles.get(pod);
    if (tp) ep.tiers = tp;
    endpoints.push(ep);
  }
  return endpoints;
}

/** A profile chain: drops ct-invalid packets, jumps to each policy chain, then logs the denial and drops. */
function profileChain(b: RulesetBuilder, prof: string, d: Direction, list: readonly string[], log: TierLog): void {
  b.chain(prof, undefined, `pods isolated for ${d} by ${list.length} polic${list.length === 1 ? 'y' : 'ies'}`);
  b.rule(prof, 'ct state invalid counter drop', 'conntrack-invalid packets of a policed pod');
  for (const c of list) b.rule(prof, `jump ${c}`);
  b.rule(prof, `limit rate ${log.rate} burst ${log.burst} packets log prefix "weir deny ${short(d)} ${prof}: " group ${log.group}`);
  b.rule(prof, 'counter drop', `${d} default deny`);
}
