// The linear baseline of the policy benchmark: the same policies expanded the
// way an iptables-era implementation evaluates them, one rule per (subject,
// peer address, port), all in ONE base chain on the forward hook that every
// new connection scans from the top. Replies are accepted first by conntrack,
// as everywhere. The rules that let the benchmark's client reach its server
// are placed last among the accepts (a linear scan meets them after all the
// others), and the chain ends with a drop for each isolated pod of the node.
//
// Semantics are simplified where they do not change the cost of the scan: an
// egress accept ends the chain (no second ingress pass), and named ports of
// egress peers that are ipBlocks are skipped (they would need every pod).
import { bytesToBigint, type IpBytes, parseIp } from '../../../src/ip.ts';
import { mergeRanges, rangeText, subtractCidrs } from '../../../src/policy/intervals.ts';
import { type NormalizedPolicy, type NormalizedRule, normalizePolicy } from '../../../src/policy/normalize.ts';
import { namedPortsOf, resolveNamedPort } from '../../../src/policy/ports.ts';
import { selectorMatches } from '../../../src/policy/selector.ts';
import type { ClusterState, Labels, Pod, Protocol } from '../../../src/policy/types.ts';

type Range = readonly [bigint, bigint];

export interface LinearRule {
  saddr?: Range;
  daddr?: Range;
  proto?: Protocol;
  dport?: Range;
  text: string;
}

export interface LinearRuleset {
  /** The accepts, in chain order (the benchmark pair's last). */
  accepts: LinearRule[];
  /** Addresses dropped at the end, per direction. */
  dropDst: string[];
  dropSrc: string[];
  /** The nft script making the table. */
  script: string;
  /** Accepts that match the pair on one of its ports (placed last). */
  pairRules: number;
}

const ip4 = (s: string): bigint => bytesToBigint((parseIp(s) as IpBytes).bytes);
const one = (s: string): Range => [ip4(s), ip4(s)];
const NS_NAME_LABEL = 'kubernetes.io/metadata.name';

interface PodFacts {
  namespace: string;
  ip: string;
  labels: Labels;
  node: string | undefined;
  pod: Pod;
}

function facts(pods: readonly Pod[]): PodFacts[] {
  return pods.flatMap((p) => {
    const ip = p.status?.podIP;
    const ns = p.metadata?.namespace;
    return ip && ns && !ip.includes(':') ? [{ namespace: ns, ip, labels: p.metadata?.labels ?? {}, node: p.spec?.nodeName, pod: p }] : [];
  });
}

function text(r: Omit<LinearRule, 'text'>): string {
  const f = (x: Range): string => rangeText(4, x);
  const parts: string[] = [];
  if (r.saddr) parts.push(`ip saddr ${f(r.saddr)}`);
  if (r.daddr) parts.push(`ip daddr ${f(r.daddr)}`);
  if (r.proto && r.dport) parts.push(`${r.proto.toLowerCase()} dport ${r.dport[0] === r.dport[1] ? r.dport[0] : `${r.dport[0]}-${r.dport[1]}`}`);
  else if (r.proto) parts.push(`meta l4proto ${r.proto.toLowerCase()}`);
  parts.push('counter accept');
  return parts.join(' ');
}

export function matches(r: Omit<LinearRule, 'text'>, saddr: string, daddr: string, proto: Protocol, dport: number): boolean {
  const inR = (x: Range | undefined, v: bigint): boolean => !x || (v >= x[0] && v <= x[1]);
  return inR(r.saddr, ip4(saddr)) && inR(r.daddr, ip4(daddr)) && (!r.proto || r.proto === proto) && inR(r.dport, BigInt(dport));
}

/** The pods of the cluster and their namespaces' labels, as the peers of a rule are matched against them. */
interface PeerIndex {
  pods: PodFacts[];
  nsLabels: Map<string, Labels>;
  /** Namespace selector (by key) and namespace: whether it matches, computed once. */
  nsMatch: Map<string, boolean>;
}

type Peer = { range: Range; pod?: PodFacts };

function peersOf(x: PeerIndex, p: NormalizedPolicy, r: NormalizedRule): Peer[] | 'any' {
  if (r.peers === 'any') return 'any';
  const out: Peer[] = [];
  for (const peer of r.peers) {
    if (peer.kind === 'ipBlock') {
      if (peer.cidr.family !== 4) continue;
      for (const rg of mergeRanges(subtractCidrs(peer.cidr, peer.except))) out.push({ range: rg });
      continue;
    }
    for (const q of x.pods) {
      if (peer.namespaces === 'own') {
        if (q.namespace !== p.namespace) continue;
      } else {
        const k = `${peer.namespaces.key}|${q.namespace}`;
        let m = x.nsMatch.get(k);
        if (m === undefined) {
          m = selectorMatches(peer.namespaces, x.nsLabels.get(q.namespace) ?? { [NS_NAME_LABEL]: q.namespace });
          x.nsMatch.set(k, m);
        }
        if (!m) continue;
      }
      if (selectorMatches(peer.pods, q.labels)) out.push({ range: one(q.ip), pod: q });
    }
  }
  return out;
}

/** The protocol and port matches of a rule; `target` (the pod receiving the connection) resolves named ports. */
function portsOf(r: NormalizedRule, target: PodFacts | undefined): Array<{ proto?: Protocol; dport?: Range }> {
  const portList: Array<{ proto?: Protocol; dport?: Range }> = [];
  if (r.ports === 'any') portList.push({});
  else {
    for (const m of r.ports) {
      if (m.kind === 'all') portList.push({ proto: m.protocol });
      else if (m.kind === 'range') portList.push({ proto: m.protocol, dport: [BigInt(m.from), BigInt(m.to)] });
      else if (target)
        for (const n of resolveNamedPort(namedPortsOf(target.pod), m.protocol, m.name)) portList.push({ proto: m.protocol, dport: [BigInt(n), BigInt(n)] });
    }
  }
  return portList;
}

/** The accepts of the policies selecting pods of `node`, in policy order, and the pods they isolate per direction. */
function expand(state: ClusterState, node: string): { accepts: LinearRule[]; isoIn: Set<string>; isoEg: Set<string> } {
  const pods = facts(state.pods);
  const nsLabels = new Map<string, Labels>();
  for (const n of state.namespaces) if (n.metadata?.name) nsLabels.set(n.metadata.name, { ...(n.metadata.labels ?? {}), [NS_NAME_LABEL]: n.metadata.name });
  const index: PeerIndex = { pods, nsLabels, nsMatch: new Map() };
  const local = pods.filter((p) => p.node === node);
  const seen = new Set<string>();
  const accepts: LinearRule[] = [];
  const isoIn = new Set<string>();
  const isoEg = new Set<string>();
  const push = (r: Omit<LinearRule, 'text'>): void => {
    const t = text(r);
    if (seen.has(t)) return;
    seen.add(t);
    accepts.push({ ...r, text: t });
  };

  for (const np of state.policies) {
    let p: NormalizedPolicy;
    try {
      p = normalizePolicy(np);
    } catch {
      continue;
    }
    const subjects = local.filter((s) => s.namespace === p.namespace && selectorMatches(p.podSelector, s.labels));
    if (subjects.length === 0) continue;
    for (const dir of ['ingress', 'egress'] as const) {
      const rules = p[dir];
      if (rules === undefined) continue;
      for (const s of subjects) (dir === 'ingress' ? isoIn : isoEg).add(s.ip);
      for (const r of rules) {
        const peers = peersOf(index, p, r);
        for (const s of subjects) {
          const peerList: readonly { range?: Range; pod?: PodFacts }[] = peers === 'any' ? [{}] : peers;
          for (const q of peerList) {
            // The pod receiving the connection resolves named ports.
            const target = dir === 'ingress' ? s : q.pod;
            for (const port of portsOf(r, target)) {
              const base =
                dir === 'ingress' ? { ...(q.range ? { saddr: q.range } : {}), daddr: one(s.ip) } : { saddr: one(s.ip), ...(q.range ? { daddr: q.range } : {}) };
              push({ ...base, ...port });
            }
          }
        }
      }
    }
  }
  return { accepts, isoIn, isoEg };
}

/** Expands the policies selecting pods of `node` into linear accepts and drops. */
export function linearRuleset(
  state: ClusterState,
  node: string,
  pair: { client: string; server: string; ports: number[] },
  table = 'weirlinear',
): LinearRuleset {
  const { accepts, isoIn, isoEg } = expand(state, node);
  // The pair's accepts last: a linear scan meets them after everything else.
  const forPair = (r: LinearRule): boolean => pair.ports.some((port) => matches(r, pair.client, pair.server, 'TCP', port));
  const ordered = [...accepts.filter((r) => !forPair(r)), ...accepts.filter(forPair)];
  const dropDst = [...isoIn].sort();
  const dropSrc = [...isoEg].sort();
  const lines = [
    `add table inet ${table}`,
    `add chain inet ${table} forward_linear { type filter hook forward priority 0; policy accept; }`,
    `add rule inet ${table} forward_linear ct state established,related accept`,
    ...ordered.map((r) => `add rule inet ${table} forward_linear ${r.text}`),
    ...dropDst.map((ip) => `add rule inet ${table} forward_linear ip daddr ${ip} counter drop`),
    ...dropSrc.map((ip) => `add rule inet ${table} forward_linear ip saddr ${ip} counter drop`),
  ];
  return { accepts: ordered, dropDst, dropSrc, script: `${lines.join('\n')}\n`, pairRules: accepts.filter(forPair).length };
}

/** What the linear chain does with a new connection: accepted by a rule, dropped at the end, or passed. */
export function linearVerdict(l: LinearRuleset, saddr: string, daddr: string, proto: Protocol, dport: number): boolean {
  if (l.accepts.some((r) => matches(r, saddr, daddr, proto, dport))) return true;
  return !l.dropDst.includes(daddr) && !l.dropSrc.includes(saddr);
}
