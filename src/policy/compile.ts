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
//   A packet costs the same however many pods and policies the cluster has.
import { createHash } from 'node:crypto';
import { parseCidr, tryParseIp, type IpFamily } from '../cni/ip.ts';
import type { Table } from '../nft/types.ts';
import { PolicyError } from './errors.ts';
import { mergeRanges, rangeText, subtractCidrs } from './intervals.ts';
import { effectivePolicyTypes, normalizePolicy, type Direction, type NormalizedPolicy, type NormalizedRule } from './normalize.ts';
import { namedPortsOf, resolveNamedPort, type NamedPorts } from './ports.ts';
import { RulesetBuilder, type Ruleset } from './ruleset.ts';
import { EVERYTHING, compileSelector, selectorMatches, type CompiledSelector } from './selector.ts';
import type { ClusterState, Labels, Pod, Protocol } from './types.ts';

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
}

export interface LocalEndpoint {
  namespace: string;
  name: string;
  ips: string[];
  /** Profile chain per direction when isolated in it, with the policies (namespace/name) selecting the pod. */
  ingress?: { chain: string; policies: string[] };
  egress?: { chain: string; policies: string[] };
}

export interface CompileResult {
  ruleset: Ruleset;
  /** Policies that could not be expressed; each is enforced as deny-all for the pods it selects (fail closed). */
  errors: PolicyError[];
  /** The node's own pods, with what isolates them. */
  endpoints: LocalEndpoint[];
  /** Chain name of each policy compiled on this node, `namespace/name` to chain base. */
  policyChains: Map<string, string>;
}

const FAMILIES: readonly IpFamily[] = [4, 6];
const fam = (f: IpFamily): string => (f === 4 ? 'ip' : 'ip6');
const addrType = (f: IpFamily): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');
const short = (d: Direction): string => (d === 'ingress' ? 'in' : 'eg');
const NS_NAME_LABEL = 'kubernetes.io/metadata.name';

export const hashId = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);

/**
 * namespace/name for comments. nft caps a comment at 128 bytes, and a
 * Kubernetes namespace (63) plus a policy name (253) can exceed it: long
 * references are cut and end in the chain id, which stays unique.
 */
export const commentLabel = (ref: string, id: string): string => (Buffer.byteLength(ref) <= 80 ? ref : `${Buffer.from(ref).subarray(0, 64).toString('utf8').replace(/\uFFFD$/, '')}~${id}`);

interface PodFacts {
  namespace: string;
  name: string;
  labels: Labels;
  nodeName: string | undefined;
  ips: Map<IpFamily, string>;
  named: NamedPorts;
}

/** Pods NetworkPolicy applies to: with an address, not terminated, not hostNetwork. */
function policyPods(pods: readonly Pod[]): PodFacts[] {
  const out: PodFacts[] = [];
  for (const p of pods) {
    const namespace = p.metadata?.namespace;
    const name = p.metadata?.name;
    const st = p.status ?? {};
    if (!namespace || !name || p.spec?.hostNetwork === true || st.phase === 'Succeeded' || st.phase === 'Failed') continue;
    const ips = new Map<IpFamily, string>();
    const texts = st.podIPs && st.podIPs.length > 0 ? st.podIPs.map((x) => x?.ip) : [st.podIP];
    for (const t of texts) {
      const ip = t ? tryParseIp(t) : undefined;
      if (ip && !ips.has(ip.family)) ips.set(ip.family, t as string);
    }
    if (ips.size === 0) continue;
    out.push({ namespace, name, labels: p.metadata?.labels ?? {}, nodeName: p.spec?.nodeName, ips, named: namedPortsOf(p) });
  }
  return out;
}

/**
 * A policy the engine cannot express is enforced as deny-all for the pods it
 * would select, in the directions it would cover: fail closed, never
 * enforce a silently weakened policy. When even its selector is unusable,
 * every pod of its namespace is isolated.
 */
function failClosed(np: NetworkPolicy): NormalizedPolicy {
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
type NetworkPolicy = ClusterState['policies'][number];

export function compilePolicies(state: ClusterState, opts: CompileOptions): CompileResult {
  const table: Table = { kind: 'table', family: 'inet', name: opts.table ?? 'weir', comment: 'weir NetworkPolicy; managed by weir-agent, do not edit' };
  const b = new RulesetBuilder(table);
  const group = opts.nflogGroup ?? 100;
  const logRate = opts.logRate ?? '10/second';
  const logBurst = opts.logBurst ?? 20;

  // ---- the cluster, indexed ----
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
  const local = pods.filter((p) => p.nodeName === opts.nodeName);

  // Peer pod lists are shared by every rule with the same selectors.
  const peerMemo = new Map<string, PodFacts[]>();
  const peerPods = (policyNs: string, nsSel: 'own' | CompiledSelector, podSel: CompiledSelector): PodFacts[] => {
    const k = `${nsSel === 'own' ? `own:${policyNs}` : nsSel.key}|${podSel.key}`;
    let v = peerMemo.get(k);
    if (!v) {
      const namespaces = nsSel === 'own' ? [policyNs] : [...new Set([...nsLabels.keys(), ...podsByNs.keys()])].filter((n) => selectorMatches(nsSel, labelsOfNs(n)));
      v = namespaces.flatMap((n) => podsByNs.get(n) ?? []).filter((p) => selectorMatches(podSel, p.labels));
      peerMemo.set(k, v);
    }
    return v;
  };

  // ---- policy chains ----
  const policyChains = new Map<string, string>();
  const profilesOf = new Map<PodFacts, Record<Direction, string[]>>();
  const refOfChain = new Map<string, string>();
  for (const p of policies) {
    const subjects = local.filter((pod) => pod.namespace === p.namespace && selectorMatches(p.podSelector, pod.labels));
    if (subjects.length === 0) continue; // nothing on this node to enforce it for
    const ref = `${p.namespace}/${p.name}`;
    const id = `p${hashId(ref)}`;
    const label = commentLabel(ref, id);
    policyChains.set(ref, id);
    for (const d of ['ingress', 'egress'] as const) {
      const rules = p[d];
      if (rules === undefined) continue;
      const chain = b.chain(`${id}_${short(d)}`, undefined, `${label} ${d}`);
      refOfChain.set(chain, ref);
      for (const r of rules) compileRule(b, chain, `${id}_${short(d)}${r.index}`, `${label} ${d}[${r.index}]`, d, r, p.namespace, subjects, pods, peerPods);
      for (const s of subjects) {
        const entry = profilesOf.get(s) ?? { ingress: [], egress: [] };
        entry[d].push(chain);
        profilesOf.set(s, entry);
      }
    }
  }

  // ---- base chains, dispatch maps, profiles ----
  const endpoints: LocalEndpoint[] = [];
  const profiles = new Set<string>();
  const guards = (opts.guardCIDRs ?? []).map((c) => parseCidr(c));
  for (const f of FAMILIES) {
    if (!guards.some((g) => g.family === f)) continue;
    b.set(`known${f}`, addrType(f), undefined, 'addresses of the pods of this node that weir knows');
    for (const pod of local) {
      const ip = pod.ips.get(f);
      if (ip) b.element(`known${f}`, [ip]);
    }
  }
  for (const d of ['egress', 'ingress'] as const) {
    const chain = b.chain(`pod_${d}`, { type: 'filter', hook: 'forward', priority: d === 'egress' ? 0 : 1, policy: 'accept' }, `NetworkPolicy ${d} of this node's pods`);
    b.rule(chain, 'ct state established,related accept', 'replies of allowed connections');
    if (d === 'egress') {
      // Conntrack picks up TCP mid-stream (nf_conntrack_tcp_loose) and would
      // judge the packet's direction as a new connection: after a policy
      // change purges a connection, the server's next segment would revive
      // it as "server connects to client". Only a SYN starts a connection.
      b.rule(chain, 'ct state new tcp flags & (syn | ack) != syn counter drop', 'TCP without a SYN: no connection is picked up mid-stream');
    }
    const field = d === 'egress' ? 'saddr' : 'daddr';
    for (const g of guards) {
      b.rule(chain, `${fam(g.family)} ${field} ${g.address}/${g.prefix} ${fam(g.family)} ${field} != @known${g.family} counter drop`, 'pod address not (yet) known to weir');
    }
    for (const f of FAMILIES) {
      b.map(`${d}${f}`, `${addrType(f)} : verdict`, `${d} profile of each isolated local pod`);
      b.rule(chain, `${fam(f)} ${d === 'egress' ? 'saddr' : 'daddr'} vmap @${d}${f}`);
    }
  }
  for (const pod of local) {
    const ep: LocalEndpoint = { namespace: pod.namespace, name: pod.name, ips: [...pod.ips.values()] };
    const chains = profilesOf.get(pod);
    for (const d of ['ingress', 'egress'] as const) {
      const list = chains?.[d] ?? [];
      if (list.length === 0) continue;
      const prof = `prof_${hashId(list.join(','))}_${short(d)}`;
      if (!profiles.has(prof)) {
        profiles.add(prof);
        b.chain(prof, undefined, `pods isolated for ${d} by ${list.length} polic${list.length === 1 ? 'y' : 'ies'}`);
        b.rule(prof, 'ct state invalid counter drop', 'conntrack-invalid packets of a policed pod');
        for (const c of list) b.rule(prof, `jump ${c}`);
        b.rule(prof, `limit rate ${logRate} burst ${logBurst} packets log prefix "weir deny ${short(d)} ${prof}: " group ${group}`);
        b.rule(prof, 'counter drop', `${d} default deny`);
      }
      for (const [f, ip] of pod.ips) b.element(`${d}${f}`, [ip], `goto ${prof}`);
      ep[d] = { chain: prof, policies: list.map((c) => refOfChain.get(c) ?? c) };
    }
    endpoints.push(ep);
  }
  return { ruleset: b.ruleset, errors, endpoints, policyChains };
}

type PeerPods = (policyNs: string, nsSel: 'own' | CompiledSelector, podSel: CompiledSelector) => PodFacts[];

/** One NetworkPolicy rule: its sets, and one nft rule per (peer kind, port kind, family) it needs. */
function compileRule(
  b: RulesetBuilder,
  chain: string,
  base: string,
  comment: string,
  d: Direction,
  r: NormalizedRule,
  policyNs: string,
  subjects: readonly PodFacts[],
  allPods: readonly PodFacts[],
  peerPods: PeerPods,
): void {
  const peerField = d === 'ingress' ? 'saddr' : 'daddr';

  // Peers, per family: a pod-address set and/or an ipBlock interval set.
  const peerMatch = new Map<IpFamily, string[]>();
  let peerPodList: PodFacts[] | undefined;
  if (r.peers === 'any') {
    for (const f of FAMILIES) peerMatch.set(f, ['']);
  } else {
    const podPeers = r.peers.filter((p) => p.kind === 'pods');
    const blocks = r.peers.filter((p) => p.kind === 'ipBlock');
    if (podPeers.length > 0) peerPodList = [...new Set(podPeers.flatMap((p) => peerPods(policyNs, p.namespaces, p.pods)))];
    for (const f of FAMILIES) {
      const matches: string[] = [];
      if (peerPodList) {
        const set = b.set(`${base}_pods${f}`, addrType(f), undefined, `${comment} peer pods`);
        for (const p of peerPodList) {
          const ip = p.ips.get(f);
          if (ip) b.element(set, [ip]);
        }
        matches.push(`${fam(f)} ${peerField} @${set}`);
      }
      const ranges = mergeRanges(blocks.filter((x) => x.cidr.family === f).flatMap((x) => subtractCidrs(x.cidr, x.except)));
      if (blocks.some((x) => x.cidr.family === f)) {
        const set = b.set(`${base}_cidr${f}`, addrType(f), ['interval'], `${comment} ipBlock peers`);
        for (const rg of ranges) b.element(set, [rangeText(f, rg)]);
        matches.push(`${fam(f)} ${peerField} @${set}`);
      }
      if (matches.length > 0) peerMatch.set(f, matches);
    }
  }

  // Ports: numeric and ranges in one interval set for every family; named
  // ports resolved against the destination pod (the subject for ingress, the
  // peer for egress) into address . protocol . port sets.
  const portMatch = new Map<IpFamily, string[]>();
  if (r.ports === 'any') {
    for (const f of FAMILIES) portMatch.set(f, ['']);
  } else {
    const numeric = r.ports.filter((p) => p.kind !== 'named');
    const named = r.ports.filter((p) => p.kind === 'named');
    const common: string[] = [];
    if (numeric.length > 0) {
      const set = b.set(`${base}_ports`, 'inet_proto . inet_service', ['interval'], `${comment} ports`);
      // Valid policies may overlap (port 80 and 80-90, UDP and UDP 53), and
      // an interval set refuses overlapping elements: merge per protocol.
      for (const proto of new Set(numeric.map((p) => p.protocol))) {
        const spans = numeric.filter((p) => p.protocol === proto).map((p): [bigint, bigint] => (p.kind === 'all' ? [0n, 65535n] : [BigInt(p.from), BigInt(p.to)]));
        for (const [from, to] of mergeRanges(spans)) b.element(set, [proto.toLowerCase(), from === to ? `${from}` : `${from}-${to}`]);
      }
      common.push(`meta l4proto . th dport @${set}`);
    }
    // For egress, only pods that can be the destination need resolving.
    const targets = d === 'ingress' ? subjects : r.peers === 'any' || r.peers.some((p) => p.kind === 'ipBlock') ? allPods : (peerPodList ?? []);
    for (const f of FAMILIES) {
      const matches = [...common];
      if (named.length > 0) {
        const set = b.set(`${base}_named${f}`, `${addrType(f)} . inet_proto . inet_service`, undefined, `${comment} named ports`);
        for (const t of targets) {
          const ip = t.ips.get(f);
          if (!ip) continue;
          for (const n of named) for (const port of resolveNamedPort(t.named, n.protocol as Protocol, n.name)) b.element(set, [ip, n.protocol.toLowerCase(), `${port}`]);
        }
        matches.push(`${fam(f)} daddr . meta l4proto . th dport @${set}`);
      }
      portMatch.set(f, matches);
    }
  }

  // One nft rule per combination; a family with no possible peer gets none.
  // A rule free of family-specific parts is emitted once, not per family.
  const emitted = new Set<string>();
  for (const f of FAMILIES) {
    for (const peer of peerMatch.get(f) ?? []) {
      for (const port of portMatch.get(f) ?? []) {
        const text = [peer, port, 'counter accept'].filter((x) => x !== '').join(' ');
        if (emitted.has(text)) continue;
        emitted.add(text);
        b.rule(chain, text, comment);
      }
    }
  }
}
