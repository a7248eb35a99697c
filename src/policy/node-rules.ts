// The rest of weir's table that is not NetworkPolicy: masquerade of pod
// traffic leaving the cluster. It lives in the same `inet weir` table so the
// agent's one atomic replacement covers it too.
import { type Cidr, type IpFamily, maskBytes, parseCidr } from '../ip.ts';
import { type Ruleset, RulesetBuilder } from './ruleset.ts';

export interface MasqueradeOptions {
  /** This node's pod CIDRs: the sources masqueraded. */
  podCIDRs: string[];
  /** Destinations never masqueraded: every node's pod CIDRs, plus configured ones (service CIDR, on-prem ranges…). */
  nonMasqueradeCIDRs: string[];
}

const fam = (f: IpFamily): string => (f === 4 ? 'ip' : 'ip6');

/**
 * `masquerade` on postrouting at srcnat priority: pod traffic to anywhere but
 * the cluster's pods (and the configured exceptions) leaves with the node's
 * address, since the network beyond the node has no route back to pods.
 */
export function addMasquerade(rs: Ruleset, opts: MasqueradeOptions): void {
  const b = new RulesetBuilder(rs.table, rs);
  const chain = b.chain(
    'pod_masquerade',
    { type: 'nat', hook: 'postrouting', priority: 100, policy: 'accept' },
    'pod traffic leaving the cluster takes the node address',
  );
  const sources = opts.podCIDRs.map(parseCidr);
  const exceptions = opts.nonMasqueradeCIDRs.map(parseCidr);
  for (const f of [4, 6] as const) {
    const src = sources.filter((c) => c.family === f);
    if (src.length === 0) continue;
    const set = b.set(`nomasq${f}`, f === 4 ? 'ipv4_addr' : 'ipv6_addr', ['interval'], 'destinations that see pod addresses unchanged');
    for (const c of mergeCidrs(exceptions.filter((e) => e.family === f).map((e) => `${e.address}/${e.prefix}`))) b.element(set, [c]);
    for (const s of src) b.rule(chain, `${fam(f)} saddr ${s.address}/${s.prefix} ${fam(f)} daddr != @${set} counter masquerade`, 'pods to outside the cluster');
  }
}

/**
 * Drops CIDRs contained in another of the list, so interval elements never
 * overlap. Every node's pod CIDR is in the list, so it must not be quadratic
 * (at 5k nodes a pairwise check was seconds of every sync): CIDRs nest or are
 * disjoint, so in order of network address (wider first on a tie) a CIDR is
 * inside some kept one exactly when it is inside the last one kept of its
 * family. The result keeps the order of the pairwise version (by prefix,
 * then first seen).
 */
function mergeCidrs(cidrs: string[]): string[] {
  const parsed = [...new Set(cidrs)].map(parseCidr).sort((a, b) => a.prefix - b.prefix);
  const nets = parsed.map((c) => maskBytes(c.bytes, c.prefix));
  const order = parsed
    .map((_, i) => i)
    .sort(
      (i, j) =>
        (parsed[i] as Cidr).family - (parsed[j] as Cidr).family ||
        compareBytes(nets[i] as Uint8Array, nets[j] as Uint8Array) ||
        (parsed[i] as Cidr).prefix - (parsed[j] as Cidr).prefix,
    );
  const kept = new Set<number>();
  const last = new Map<IpFamily, number>();
  for (const i of order) {
    const c = parsed[i] as Cidr;
    const k = last.get(c.family);
    if (k !== undefined && inside(nets[i] as Uint8Array, c.prefix, nets[k] as Uint8Array, (parsed[k] as Cidr).prefix)) continue;
    kept.add(i);
    last.set(c.family, i);
  }
  return parsed.filter((_, i) => kept.has(i)).map((c) => `${c.address}/${c.prefix}`);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return (a[i] ?? 0) - (b[i] ?? 0);
  return 0;
}

/** Whether network `net`/`prefix` lies inside network `outer`/`outerPrefix` (same family, host bits cleared). */
function inside(net: Uint8Array, prefix: number, outer: Uint8Array, outerPrefix: number): boolean {
  if (prefix < outerPrefix) return false;
  for (let i = 0; i < outer.length && 8 * i < outerPrefix; i++) {
    const bits = Math.min(8, outerPrefix - 8 * i);
    const mask = (0xff << (8 - bits)) & 0xff;
    if (((net[i] ?? 0) & mask) !== (outer[i] ?? 0)) return false;
  }
  return true;
}
