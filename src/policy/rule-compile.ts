// One policy rule compiled into nft rules of a policy chain: the peer sets,
// the port sets, and one rule per (peer kind, port kind, family) it needs.
// Used for NetworkPolicy rules of pods (compile.ts), of hostNetwork pods and
// for HostFirewallPolicy rules (host.ts), so all three mean the same thing.
// Pure.
import { createHash } from 'node:crypto';
import type { IpFamily } from '../cni/ip.ts';
import type { PeerPods, PodFacts } from './cluster-index.ts';
import type { NodePeer } from './host-policy.ts';
import { mergeRanges, rangeText, subtractCidrs } from './intervals.ts';
import type { Direction, NormalizedPeer } from './normalize.ts';
import { resolveNamedPort, type PortMatch } from './ports.ts';
import type { RulesetBuilder } from './ruleset.ts';
import type { CompiledSelector } from './selector.ts';
import type { Protocol } from './types.ts';

export const FAMILIES: readonly IpFamily[] = [4, 6];
export const fam = (f: IpFamily): string => (f === 4 ? 'ip' : 'ip6');
export const addrType = (f: IpFamily): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');
export const short = (d: Direction): string => (d === 'ingress' ? 'in' : 'eg');

export const hashId = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);

/**
 * namespace/name for comments. nft caps a comment at 128 bytes, and a
 * Kubernetes namespace (63) plus a policy name (253) can exceed it: long
 * references are cut and end in the chain id, which stays unique.
 */
export const commentLabel = (ref: string, id: string): string => (Buffer.byteLength(ref) <= 80 ? ref : `${Buffer.from(ref).subarray(0, 64).toString('utf8').replace(/\uFFFD$/, '')}~${id}`);

/** A rule as normalized: NetworkPolicy rules, and HostFirewallPolicy rules (which may also name nodes). */
export interface CompilableRule {
  readonly index: number;
  readonly peers: readonly (NormalizedPeer | NodePeer)[] | 'any';
  readonly ports: readonly PortMatch[] | 'any';
}

export interface RuleContext {
  readonly b: RulesetBuilder;
  /** Every pod policy applies to (destinations of named egress ports). */
  readonly allPods: readonly PodFacts[];
  readonly peerPods: PeerPods;
  /** The addresses of the nodes a node selector picks, by family (HostFirewallPolicy peers). */
  readonly nodeAddresses?: (sel: CompiledSelector) => Map<IpFamily, string[]>;
}

/**
 * One rule: its sets, and one nft rule per (peer kind, port kind, family)
 * it needs. `subjects` are the pods the rule protects (their addresses and
 * declared ports resolve ingress named ports).
 */
export function compileRule(
  ctx: RuleContext,
  chain: string,
  base: string,
  comment: string,
  d: Direction,
  r: CompilableRule,
  policyNs: string,
  subjects: readonly PodFacts[],
): void {
  const { b } = ctx;
  const peerField = d === 'ingress' ? 'saddr' : 'daddr';

  // Peers, per family: a pod-address set and/or an ipBlock interval set
  // (and, for the host firewall, a node-address set).
  const peerMatch = new Map<IpFamily, string[]>();
  let peerPodList: PodFacts[] | undefined;
  if (r.peers === 'any') {
    for (const f of FAMILIES) peerMatch.set(f, ['']);
  } else {
    const podPeers = r.peers.filter((p) => p.kind === 'pods');
    const blocks = r.peers.filter((p) => p.kind === 'ipBlock');
    const nodePeers = r.peers.filter((p) => p.kind === 'nodes');
    if (podPeers.length > 0) peerPodList = [...new Set(podPeers.flatMap((p) => ctx.peerPods(policyNs, p.namespaces, p.pods)))];
    const nodeAddrs = new Map<IpFamily, Set<string>>();
    for (const p of nodePeers) {
      for (const [f, list] of ctx.nodeAddresses?.(p.nodes) ?? new Map<IpFamily, string[]>()) nodeAddrs.set(f, new Set([...(nodeAddrs.get(f) ?? []), ...list]));
    }
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
      if (nodePeers.length > 0) {
        const set = b.set(`${base}_nodes${f}`, addrType(f), undefined, `${comment} peer nodes`);
        for (const ip of [...(nodeAddrs.get(f) ?? [])].sort()) b.element(set, [ip]);
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
    const targets = d === 'ingress' ? subjects : r.peers === 'any' || r.peers.some((p) => p.kind === 'ipBlock') ? ctx.allPods : (peerPodList ?? []);
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
