// Host-firewall mode: the node's own traffic, and its hostNetwork pods,
// under policy. Off by default (weir-agent --host-firewall); when off, none
// of the chains below exist, and a normal sync removes them. Pure: it adds
// to the Ruleset compile.ts builds (same `inet weir` table, so one
// transaction covers pods and host alike).
//
// Why: a hostNetwork pod shares the node's network namespace, so its
// traffic never crosses the forward hook where pod policy runs; every
// common plugin lets NetworkPolicy silently miss it. Here it does not.
//
// Shape (all in table `inet weir`, only while the mode is on):
//
//   host_input  (hook input,  priority filter, policy accept)
//     1. ct state established,related accept      replies of allowed connections
//     2. iif "lo" accept                          the node talking to itself
//     3. icmpv6 neighbour/router discovery accept  (IPv6 cannot work without)
//     4. meta l4proto . th dport @host_failsafe_in accept
//                                                 FAILSAFE: before any policy
//     5. meta l4proto . th dport vmap @host_ports  a port declared by a local
//        hostNetwork pod that an ingress NetworkPolicy selects goes to its
//        host profile chain (goto: its verdict is final)
//     6. iifname "weir*" accept                   the node's own pods (host
//        veths are weir+hex): a pod and its node may always talk
//     7. jump <each Enforce HostFirewallPolicy selecting this node>
//     8. log "weir deny host host_input: " + drop (see audit below)
//   host_output (hook output, priority filter, policy accept)
//     1-4 as above, outbound (oif "lo"; @host_failsafe_out on the
//        destination port)
//     5. the API server endpoints the agent uses, before DNAT (ct original),
//        so the agent never cuts its own API access
//     6. socket cgroupv2 level L "<pod cgroup>" goto <host egress profile>
//        for each local hostNetwork pod isolated for egress whose cgroup is
//        known (see "egress of hostNetwork pods")
//     7. oifname "weir*" accept                   to the node's own pods
//     8. jump <HostFirewallPolicy egress chains>, log + drop
//
// hostNetwork pods and NetworkPolicy. A NetworkPolicy selecting a
// hostNetwork pod (its namespace, its podSelector) is enforced for it:
// - ingress: on every port the pod declares (containerPort and hostPort,
//   TCP/UDP/SCTP), traffic to the node is judged by the pod's ingress
//   policies, with the same peer semantics as for ordinary pods (pod peers by
//   pod address, ipBlock by address) and the same policy chains (named ports
//   resolve against the pod's declared ports at the node's address). A port
//   declared by several isolated hostNetwork pods is judged by all their
//   policies together (they share one address, so the port cannot tell them
//   apart). A declared port that is also a failsafe port stays open. Traffic
//   from the node itself (lo) is always allowed; traffic from the node's own
//   pods is judged like any other pod's.
// - egress: only with the pod's cgroup known (agent
//   --host-network-cgroup-template): its sockets are recognised by
//   `socket cgroupv2`, and its new connections are judged by its egress
//   policies. Without it, or while the cgroup does not exist yet, the pod's
//   egress is not enforced; /status says so per pod. Limits: a socket is
//   attributed to the cgroup of the process that created it (a socket passed
//   to another process keeps it); packets the kernel sends without a socket
//   (RST, ICMP errors) are not attributed; the agent must see the host's
//   cgroup v2 hierarchy (mount it at /sys/fs/cgroup in the agent container).
// - Reply traffic of connections a hostNetwork pod accepts, and of those it
//   opens, passes (established). As a peer of other pods' policies a
//   hostNetwork pod is still its node's address (evaluator.ts).
//
// HostFirewallPolicy (weir.dev/v1alpha1, cluster-scoped; host-normalize.ts):
// nodeSelector picks nodes by label; ingress rules apply on the input hook
// (traffic to the node's addresses), egress on the output hook (traffic the
// node sends), with NetworkPolicy's rule semantics: rules and policies only
// add allowances; a node selected by at least one Enforce policy for a
// direction is isolated in it (deny-all but what the rules allow, the
// failsafes, loopback and its own pods). Peers: ipBlock; namespaceSelector
// and/or podSelector (a podSelector alone selects pods in ALL namespaces,
// since the policy has no namespace); nodeSelector (the InternalIPs of the
// matching nodes). Ports as NetworkPolicyPort; a named ingress port names a
// port declared by one of the node's hostNetwork pods, a named egress port
// one of the destination pod. Ports declared by hostNetwork pods that a
// NetworkPolicy isolates are decided by that policy, not by
// HostFirewallPolicies; other hostNetwork pods' ports are node ports.
//
// Audit. A HostFirewallPolicy with mode Audit changes nothing: when Audit
// policies are the only ones selecting the node for a direction, traffic no
// rule of theirs allows is logged with prefix `weir audit host <chain>: ` and
// accepted. As soon as one Enforce policy selects the node, the node is
// isolated by the Enforce policies alone (an Audit policy's rules do not
// open anything; since policies only add allowances, nothing an Audit policy
// would drop is not already dropped). With the node-wide audit flag
// (--host-firewall-audit), every final drop of the host chains (host
// profiles and HostFirewallPolicy isolation) logs as audit and accepts
// instead. Denials log as `weir deny host <chain>: `; both go to the same
// rate-limited nflog group as pod denials.
//
// Failsafe ports: inbound and outbound `proto . port` interval sets matched
// before any policy, so no policy (and no mistake in one) can lock out SSH,
// the API server, the kubelet, etcd or DHCP. Configurable, on by default.
//
// Not enforced, by design: ICMP/ICMPv6 echo and other non-port protocols are
// governed by rules with no ports (as for pods); IPv6 neighbour discovery is
// always allowed. Connections established before a policy change keep going
// (the host chains do not purge conntrack). Traffic forwarded through the
// node (pods, NodePort to pods) is pod traffic, for the pod chains.
import type { IpFamily } from '../ip.ts';
import { tryParseIp } from '../ip.ts';
import type { ClusterIndex, PodFacts } from './cluster-index.ts';
import type { PolicyError } from './errors.ts';
import {
  DEFAULT_FAILSAFE_INBOUND,
  DEFAULT_FAILSAFE_OUTBOUND,
  declaredPorts,
  formatPortRange,
  type NormalizedHostPolicy,
  normalizeHostPolicies,
  type PortRange,
  parsePortRanges,
} from './host-normalize.ts';
import { mergeRanges } from './intervals.ts';
import type { Direction } from './normalize.ts';
import { commentLabel, compileRule, fam, hashId, type RuleContext, type Subjects, short } from './rule-compile.ts';
import type { RulesetBuilder } from './ruleset.ts';
import { type CompiledSelector, selectorMatches } from './selector.ts';
import type { ClusterState, HostFirewallMode, Labels } from './types.ts';

/** HostFirewallPolicy rules protect the node: its hostNetwork pods' declared ports resolve ingress named ports. */
const HOST_SUBJECTS: Subjects = { key: 'hostNetwork', member: (pod) => pod.host === true };

export interface HostCgroup {
  /** Path as nft resolves it, relative to /sys/fs/cgroup (e.g. `kubepods.slice/…/kubepods-besteffort-pod<uid>.slice`). */
  path: string;
  /** Depth of the cgroup below the cgroup v2 root (the `level` of `socket cgroupv2`). */
  level: number;
}

export interface HostFirewallOptions {
  /** The whole node in audit: every host drop logs and accepts instead. */
  audit?: boolean;
  /** Failsafe ports, `proto:port[-port]` lists; defaults DEFAULT_FAILSAFE_INBOUND / _OUTBOUND; `[]` for none. */
  failsafeInbound?: readonly PortRange[];
  failsafeOutbound?: readonly PortRange[];
  /** The cgroup of local hostNetwork pods, by namespace/name, where known: their egress is attributed by it. */
  cgroups?: ReadonlyMap<string, HostCgroup>;
  /** Why hostNetwork pods' egress cannot be attributed at all on this node (shown per pod), e.g. no cgroup template. */
  egressUnsupported?: string;
  /** The API server endpoints the agent talks to (as dialled, before any DNAT): always reachable. */
  apiServers?: readonly { ip: string; port: number }[];
  /** This node's addresses besides its InternalIPs in the state. */
  nodeIPs?: readonly string[];
}

export interface HostNetworkEndpoint {
  namespace: string;
  name: string;
  /** Declared ports, `tcp:8080`. */
  ports: string[];
  /** `chain`: the profile its ports go to; undefined when it declares no port (nothing to police). */
  ingress?: { chain: string | undefined; policies: string[] };
  /** `enforced: false` when the pod is isolated for egress but its traffic cannot be attributed (reason says why). */
  egress?: { chain: string | undefined; policies: string[]; enforced: boolean; reason?: string };
}

export interface HostPolicyApplied {
  name: string;
  mode: HostFirewallMode;
  /** Chain base (`h<hash>`); the directions it governs have `_in` / `_eg` chains. */
  chain: string;
  ingress: boolean;
  egress: boolean;
}

export interface HostFirewallReport {
  audit: boolean;
  failsafe: { inbound: string[]; outbound: string[] };
  /** HostFirewallPolicies selecting this node. */
  policies: HostPolicyApplied[];
  /** What becomes of node traffic that no failsafe, no exemption and no rule allows. */
  ingress: 'open' | 'enforce' | 'audit';
  egress: 'open' | 'enforce' | 'audit';
  hostNetworkPods: HostNetworkEndpoint[];
  /** Inert parts of HostFirewallPolicies (e.g. egress rules without Egress in policyTypes). */
  warnings: string[];
}

export interface HostCompileInput {
  b: RulesetBuilder;
  idx: ClusterIndex;
  state: ClusterState;
  nodeName: string;
  /** This node's addresses (InternalIPs and configured). */
  nodeIPs: readonly string[];
  /** Local hostNetwork pods (cluster-index.ts hostNetworkPods). */
  hostPods: readonly PodFacts[];
  /** NetworkPolicy chains selecting each hostNetwork pod, per direction, in policy order. */
  hostProfiles: ReadonlyMap<PodFacts, Record<Direction, string[]>>;
  /** namespace/name of the NetworkPolicy of each policy chain. */
  refOfChain: ReadonlyMap<string, string>;
  group: number;
  logRate: string;
  logBurst: number;
  options: HostFirewallOptions;
}

/** The IPv6 ICMP types without which IPv6 stops working on a link. */
const ND_TYPES = 'nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert';
/** What a cgroup path may hold in the rule text (kubelet's names are plain). */
const CGROUP_PATH = /^[\w.:@+-]+(?:\/[\w.:@+-]+)*$/;
const podKey = (p: { namespace: string; name: string }): string => `${p.namespace}/${p.name}`;

/** Node addresses by family for the nodes `sel` selects (their InternalIPs). */
export function nodeAddressesFor(state: ClusterState, sel: CompiledSelector): Map<IpFamily, string[]> {
  const out = new Map<IpFamily, string[]>();
  for (const n of state.nodes ?? []) {
    if (!selectorMatches(sel, n.labels ?? {})) continue;
    for (const t of n.internalIPs) {
      const ip = tryParseIp(t);
      if (ip) out.set(ip.family, [...(out.get(ip.family) ?? []), t]);
    }
  }
  return out;
}

/** Labels of a node, for HostFirewallPolicy nodeSelectors (`{}` when unknown). */
export const nodeLabels = (state: ClusterState, node: string): Labels => state.nodes?.find((n) => n.name === node)?.labels ?? {};

/** The HostFirewallPolicies (normalized, fail-closed where needed) selecting `node`. */
export function hostPoliciesFor(state: ClusterState, node: string): { policies: NormalizedHostPolicy[]; errors: PolicyError[] } {
  const { policies, errors } = normalizeHostPolicies(state.hostPolicies ?? []);
  const labels = nodeLabels(state, node);
  return { policies: policies.filter((p) => selectorMatches(p.nodeSelector, labels)), errors };
}

const failsafeOf = (list: readonly PortRange[] | undefined, def: string): readonly PortRange[] => list ?? parsePortRanges(def);

/** The last rules of a chain: log what nothing allowed, then drop it (or, with the node-wide audit flag, accept it). */
function verdictRules(h: HostCompileInput, chain: string, comment: string): void {
  const audit = h.options.audit === true;
  const kind = audit ? 'audit' : 'deny';
  h.b.rule(chain, `limit rate ${h.logRate} burst ${h.logBurst} packets log prefix "weir ${kind} host ${chain}: " group ${h.group}`);
  h.b.rule(chain, audit ? 'counter accept' : 'counter drop', `${comment}${audit ? ' (audit: logged, not dropped)' : ''}`);
}

function failsafeSet(b: RulesetBuilder, name: string, list: readonly PortRange[], what: string): void {
  b.set(name, 'inet_proto . inet_service', ['interval'], `failsafe ${what} ports: no policy closes them`);
  for (const proto of new Set(list.map((r) => r.protocol))) {
    for (const [from, to] of mergeRanges(list.filter((r) => r.protocol === proto).map((r): [bigint, bigint] => [BigInt(r.from), BigInt(r.to)]))) {
      b.element(name, [proto, from === to ? `${from}` : `${from}-${to}`]);
    }
  }
}

type HostPolicyChains = Record<Direction, { chain: string; mode: HostFirewallMode }[]>;

/** A chain per direction of each HostFirewallPolicy selecting this node. */
function compileHostPolicies(h: HostCompileInput): { applied: HostPolicyApplied[]; warnings: string[]; chains: HostPolicyChains; errors: PolicyError[] } {
  const { b, state } = h;
  const { policies: selecting, errors } = hostPoliciesFor(state, h.nodeName);
  const ctx: RuleContext = { b, sets: h.idx.sets, nodeAddresses: (sel) => nodeAddressesFor(state, sel) };
  const applied: HostPolicyApplied[] = [];
  const warnings: string[] = [];
  const chains: HostPolicyChains = { ingress: [], egress: [] };
  for (const p of selecting) {
    const id = `h${hashId(`HostFirewallPolicy/${p.name}`)}`;
    const label = commentLabel(`HostFirewallPolicy ${p.name}`, id);
    for (const w of p.warnings) warnings.push(`HostFirewallPolicy ${p.name}: ${w}`);
    applied.push({ name: p.name, mode: p.mode, chain: id, ingress: p.ingress !== undefined, egress: p.egress !== undefined });
    for (const d of ['ingress', 'egress'] as const) {
      const rules = p[d];
      if (rules === undefined) continue;
      const chain = b.chain(`${id}_${short(d)}`, undefined, `${label} ${d}${p.mode === 'Audit' ? ' (Audit)' : ''}`);
      // Ingress named ports name ports of the node's hostNetwork pods.
      for (const r of rules) compileRule(ctx, chain, `${label} ${d}[${r.index}]`, d, r, '', HOST_SUBJECTS);
      chains[d].push({ chain, mode: p.mode });
    }
  }
  return { applied, warnings, chains, errors };
}

/** The profile chain of a set of policy chains. */
type ProfileOf = (d: Direction, chains: readonly string[]) => string;

/** Makes each profile chain once (sorted: the same set of policy chains is one chain). */
function profileChains(h: HostCompileInput): ProfileOf {
  const { b } = h;
  const profiles = new Set<string>();
  return (d, chains) => {
    const list = [...new Set(chains)].sort();
    const prof = `hprof_${hashId(list.join(','))}_${short(d)}`;
    if (!profiles.has(prof)) {
      profiles.add(prof);
      b.chain(prof, undefined, `hostNetwork pods isolated for ${d} by ${list.length} polic${list.length === 1 ? 'y' : 'ies'}`);
      if (h.options.audit !== true) b.rule(prof, 'ct state invalid counter drop', 'conntrack-invalid packets of a policed hostNetwork pod');
      for (const c of list) b.rule(prof, `jump ${c}`);
      verdictRules(h, prof, `${d} default deny`);
    }
    return prof;
  };
}

const portKey = (p: { protocol: string; port: number }): string => `${p.protocol.toLowerCase()} . ${p.port}`;

/** The host_ports map: each port of an isolated hostNetwork pod to its ingress profile; returns the profile by port key. */
function dispatchHostPorts(h: HostCompileInput, profile: ProfileOf): Map<string, string> {
  h.b.map('host_ports', 'inet_proto . inet_service : verdict', 'ingress profile of each port of an isolated local hostNetwork pod');
  // A port declared by several isolated pods: judged by all their policies.
  const portChains = new Map<string, Set<string>>();
  for (const pod of h.hostPods) {
    const inList = h.hostProfiles.get(pod)?.ingress ?? [];
    if (inList.length === 0) continue;
    for (const p of declaredPorts(pod.raw)) portChains.set(portKey(p), new Set([...(portChains.get(portKey(p)) ?? []), ...inList]));
  }
  const portProfile = new Map<string, string>();
  for (const [k, set] of [...portChains].sort(([a], [c]) => (a < c ? -1 : 1))) {
    const prof = profile('ingress', [...set]);
    portProfile.set(k, prof);
    h.b.element('host_ports', k.split(' . '), `goto ${prof}`);
  }
  return portProfile;
}

interface HostRule {
  rule: string;
  comment: string;
}

/** Each local hostNetwork pod as /status reports it, and the host_output rules sending its attributed egress to its profile. */
function hostNetworkEndpoints(
  h: HostCompileInput,
  profile: ProfileOf,
  portProfile: ReadonlyMap<string, string>,
): { endpoints: HostNetworkEndpoint[]; egressRules: HostRule[] } {
  const { options } = h;
  const refs = (list: readonly string[]): string[] => list.map((c) => h.refOfChain.get(c) ?? c);
  const endpoints: HostNetworkEndpoint[] = [];
  const egressRules: HostRule[] = [];
  for (const pod of h.hostPods) {
    const ports = declaredPorts(pod.raw);
    const ep: HostNetworkEndpoint = { namespace: pod.namespace, name: pod.name, ports: ports.map((p) => `${p.protocol.toLowerCase()}:${p.port}`) };
    const chains = h.hostProfiles.get(pod);
    const inList = chains?.ingress ?? [];
    if (inList.length > 0) {
      // Without declared ports nothing is dispatched: its undeclared ports are node ports.
      const first = ports[0];
      ep.ingress = { chain: first ? portProfile.get(portKey(first)) : undefined, policies: refs(inList) };
    }
    const egList = chains?.egress ?? [];
    if (egList.length > 0) {
      const cg = options.cgroups?.get(podKey(pod));
      if (cg && CGROUP_PATH.test(cg.path) && Number.isInteger(cg.level) && cg.level >= 1) {
        const prof = profile('egress', egList);
        ep.egress = { chain: prof, policies: refs(egList), enforced: true };
        egressRules.push({ rule: `socket cgroupv2 level ${cg.level} ${JSON.stringify(cg.path)} goto ${prof}`, comment: `hostNetwork pod ${podKey(pod)}` });
      } else {
        ep.egress = {
          chain: undefined,
          policies: refs(egList),
          enforced: false,
          reason: options.egressUnsupported ?? "the pod's cgroup was not found on this node (not started yet?)",
        };
      }
    }
    endpoints.push(ep);
  }
  return { endpoints, egressRules };
}

/** host_input or host_output up to the HostFirewallPolicies: replies, loopback, discovery, failsafes and the exemptions of its direction. */
function baseChain(h: HostCompileInput, d: Direction, egressRules: readonly HostRule[]): string {
  const { b } = h;
  const inbound = d === 'ingress';
  const chain = b.chain(
    inbound ? 'host_input' : 'host_output',
    { type: 'filter', hook: inbound ? 'input' : 'output', priority: 0, policy: 'accept' },
    `host firewall: ${inbound ? 'traffic to' : 'traffic from'} this node`,
  );
  b.rule(chain, 'ct state established,related accept', 'replies of allowed connections');
  b.rule(chain, `${inbound ? 'iif' : 'oif'} "lo" accept`, 'the node talking to itself');
  b.rule(chain, `icmpv6 type { ${ND_TYPES} } accept`, 'IPv6 neighbour and router discovery');
  b.rule(chain, `meta l4proto . th dport @host_failsafe_${inbound ? 'in' : 'out'} accept`, `failsafe ${inbound ? 'inbound' : 'outbound'} ports`);
  if (inbound) {
    b.rule(chain, 'meta l4proto . th dport vmap @host_ports', 'ports of isolated hostNetwork pods');
    b.rule(chain, 'iifname "weir*" accept', "from the node's own pods");
  } else {
    for (const a of h.options.apiServers ?? []) {
      const ip = tryParseIp(a.ip);
      if (!ip) continue;
      b.rule(chain, `meta l4proto tcp ct original ${fam(ip.family)} daddr ${a.ip} ct original proto-dst ${a.port} accept`, "the agent's API server");
    }
    for (const r of egressRules) b.rule(chain, r.rule, r.comment);
    b.rule(chain, 'oifname "weir*" accept', "to the node's own pods");
  }
  return chain;
}

/** The end of a base chain: its HostFirewallPolicies and what becomes of traffic none allows. */
function hostPolicyTail(h: HostCompileInput, chain: string, d: Direction, policies: HostPolicyChains[Direction]): 'open' | 'enforce' | 'audit' {
  const enforcing = policies.filter((c) => c.mode === 'Enforce');
  const auditing = policies.filter((c) => c.mode === 'Audit');
  if (enforcing.length > 0) {
    for (const c of enforcing) h.b.rule(chain, `jump ${c.chain}`);
    verdictRules(h, chain, `${d} of the node: default deny of its HostFirewallPolicies`);
    return h.options.audit === true ? 'audit' : 'enforce';
  }
  if (auditing.length > 0) {
    for (const c of auditing) h.b.rule(chain, `jump ${c.chain}`);
    h.b.rule(chain, `limit rate ${h.logRate} burst ${h.logBurst} packets log prefix "weir audit host ${chain}: " group ${h.group}`);
    h.b.rule(chain, 'counter accept', `${d} of the node: Audit HostFirewallPolicies only (logged, not dropped)`);
    return 'audit';
  }
  return 'open';
}

export function compileHost(h: HostCompileInput): { report: HostFirewallReport; errors: PolicyError[] } {
  const { b, options } = h;
  const inbound = failsafeOf(options.failsafeInbound, DEFAULT_FAILSAFE_INBOUND);
  const outbound = failsafeOf(options.failsafeOutbound, DEFAULT_FAILSAFE_OUTBOUND);
  failsafeSet(b, 'host_failsafe_in', inbound, 'inbound');
  failsafeSet(b, 'host_failsafe_out', outbound, 'outbound');
  const { applied, warnings, chains, errors } = compileHostPolicies(h);
  const profile = profileChains(h);
  const portProfile = dispatchHostPorts(h, profile);
  const { endpoints, egressRules } = hostNetworkEndpoints(h, profile, portProfile);
  const ingress = hostPolicyTail(h, baseChain(h, 'ingress', egressRules), 'ingress', chains.ingress);
  const egress = hostPolicyTail(h, baseChain(h, 'egress', egressRules), 'egress', chains.egress);
  return {
    report: {
      audit: options.audit === true,
      failsafe: { inbound: inbound.map(formatPortRange), outbound: outbound.map(formatPortRange) },
      policies: applied,
      ingress,
      egress,
      hostNetworkPods: endpoints,
      warnings,
    },
    errors,
  };
}
