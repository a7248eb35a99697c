// CIDR arithmetic for the agent and the policy compiler, over ip-num: which
// network a CIDR names, whether one lies inside another or holds an address,
// which CIDRs of a list lie inside no other; src/policy/intervals.ts
// subtracts an ipBlock's excepts with ip-num's ranges too. Text still goes in
// and out through src/ip.ts: weir's parser is stricter than ip-num's (it
// refuses zone IDs, which ip-num reads) and its IPv6 text is RFC 5952 (ip-num
// writes groups uncompressed), so equal addresses stay equal as text.
//
// The CNI plugin does not import this file: its ADD path keeps src/ip.ts's own
// masks and src/ipam/range.ts's bigint walk, because loading ip-num would cost
// the plugin more than its whole address arithmetic (measured: docs/ip.md).
import { type AbstractIPNum, IPv4, IPv4CidrRange, IPv4Prefix, IPv6, IPv6CidrRange, IPv6Prefix, RangedSet } from 'ip-num';
import { bigintToBytes, bytesToBigint, type Cidr, formatIp, type IpBytes } from './ip.ts';

export type CidrRange = IPv4CidrRange | IPv6CidrRange;
/** A CIDR's addresses as ip-num's first-to-last range: what the comparisons below work on. */
export type Span = RangedSet<AbstractIPNum>;

/** ip-num's number for an address. */
export function ipNumber(ip: IpBytes): IPv4 | IPv6 {
  const v = bytesToBigint(ip.bytes);
  return ip.family === 4 ? IPv4.fromNumber(v) : IPv6.fromBigInt(v);
}

/** ip-num's range for a CIDR (host bits in `c` are ignored by the range). */
export function cidrRange(c: Cidr): CidrRange {
  const prefix = BigInt(c.prefix);
  return c.family === 4
    ? new IPv4CidrRange(ipNumber(c) as IPv4, IPv4Prefix.fromNumber(prefix))
    : new IPv6CidrRange(ipNumber(c) as IPv6, IPv6Prefix.fromNumber(prefix));
}

// ip-num finds a range's first and last address through bit strings on every
// call, a cost that every agent sync would pay again for each node's pod CIDR
// (measured: docs/ip.md). A cluster's CIDRs are few and seen again and again,
// so each one's ends are found once; comparing ends is cheap.
const spans = new Map<string, Span>();
const MAX_SPANS = 1 << 16;
const numbers = new WeakMap<IpBytes, IPv4 | IPv6>();

/** The addresses of a CIDR, host bits ignored. */
export function cidrSpan(c: Cidr): Span {
  // The address text says the family (IPv6 text always holds a colon).
  const key = `${c.address}/${c.prefix}`;
  let span = spans.get(key);
  if (!span) {
    if (spans.size >= MAX_SPANS) spans.clear();
    span = cidrRange(c).toRangeSet();
    spans.set(key, span);
  }
  return span;
}

const toCidr = (family: Cidr['family'], value: bigint, prefix: number): Cidr => {
  const bytes = bigintToBytes(family, value);
  return { family, address: formatIp(bytes), prefix, bytes };
};

/** The network a CIDR lies in, host bits cleared. */
export const cidrNetwork = (c: Cidr): Cidr => toCidr(c.family, cidrSpan(c).getFirst().getValue(), c.prefix);

/** True when network `inner` lies inside network `outer` (equal counts as inside). */
export const cidrInside = (inner: Cidr, outer: Cidr): boolean => inner.family === outer.family && cidrSpan(inner).inside(cidrSpan(outer));

/** True when `ip` lies inside network `c`. */
export function cidrHolds(c: Cidr, ip: IpBytes): boolean {
  if (ip.family !== c.family) return false;
  let n = numbers.get(ip);
  if (!n) {
    n = ipNumber(ip);
    numbers.set(ip, n);
  }
  return cidrSpan(c).contains(RangedSet.fromSingleIP<AbstractIPNum>(n));
}

/**
 * The CIDRs of the list that lie inside no other, each once, so interval
 * elements never overlap. CIDRs nest or are disjoint, so in order of network
 * address (wider first on a tie) a CIDR is inside some kept one exactly when
 * it is inside the last one kept of its family: one pass, not pairwise (every
 * node's pod CIDR can be in the list). The result is in the list's order by
 * prefix, then first seen.
 */
export function outermostCidrs(cidrs: readonly Cidr[]): Cidr[] {
  const byPrefix = [...cidrs].sort((a, b) => a.prefix - b.prefix);
  const ranges = byPrefix.map(cidrSpan);
  const first = ranges.map((r) => r.getFirst().getValue());
  const order = byPrefix
    .map((_, i) => i)
    .sort((i, j) => {
      const a = byPrefix[i] as Cidr;
      const b = byPrefix[j] as Cidr;
      const fi = first[i] as bigint;
      const fj = first[j] as bigint;
      return a.family - b.family || (fi < fj ? -1 : fi > fj ? 1 : 0) || a.prefix - b.prefix;
    });
  const kept = new Set<number>();
  const last = new Map<Cidr['family'], number>();
  for (const i of order) {
    const c = byPrefix[i] as Cidr;
    const k = last.get(c.family);
    if (k !== undefined && (ranges[i] as Span).inside(ranges[k] as Span)) continue;
    kept.add(i);
    last.set(c.family, i);
  }
  return byPrefix.filter((_, i) => kept.has(i));
}
