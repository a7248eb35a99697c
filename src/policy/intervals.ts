// ipBlock arithmetic for nftables interval sets: a CIDR minus its `except`
// CIDRs as a list of disjoint address ranges. nft refuses overlapping
// elements in an interval set, so the difference is computed here, exactly,
// with ip-num's ranges (mergeRanges also serves port ranges, so it stays on
// plain bigint pairs).
import { type AbstractIPNum, RangedSet } from 'ip-num';
import { bigintToBytes, type Cidr, formatIp, type IpFamily } from '../ip.ts';
import { cidrSpan, type Span } from '../ip-ranges.ts';

const later = (a: AbstractIPNum, b: AbstractIPNum): AbstractIPNum => (a.isGreaterThan(b) ? a : b);
const earlier = (a: AbstractIPNum, b: AbstractIPNum): AbstractIPNum => (a.isLessThan(b) ? a : b);

/** `piece` without the addresses of `cut`: none, one or two pieces. */
function minus(piece: Span, cut: Span): Span[] {
  if (piece.getLast().isLessThan(cut.getFirst()) || cut.getLast().isLessThan(piece.getFirst())) return [piece];
  // An earlier cut may have left a piece that `cut` only partly covers (its
  // excepts nest inside one another); difference() wants the cut inside.
  const overlap = new RangedSet(later(piece.getFirst(), cut.getFirst()), earlier(piece.getLast(), cut.getLast()));
  return piece.difference(overlap);
}

/** Disjoint, sorted [first, last] ranges covering `cidr` minus every `except`. */
export function subtractCidrs(cidr: Cidr, except: readonly Cidr[]): Array<[bigint, bigint]> {
  let pieces: Span[] = [cidrSpan(cidr)];
  for (const e of except) {
    if (e.family !== cidr.family) continue;
    const cut = cidrSpan(e);
    pieces = pieces.flatMap((p) => minus(p, cut));
  }
  return pieces.map((p) => [p.getFirst().getValue(), p.getLast().getValue()]);
}

/** Merges overlapping or adjacent ranges (several ipBlocks in one rule). */
export function mergeRanges(ranges: ReadonlyArray<readonly [bigint, bigint]>): Array<[bigint, bigint]> {
  const sorted = [...ranges].sort((p, q) => (p[0] < q[0] ? -1 : p[0] > q[0] ? 1 : 0));
  const out: Array<[bigint, bigint]> = [];
  for (const [a, b] of sorted) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1n) {
      if (b > last[1]) last[1] = b;
    } else out.push([a, b]);
  }
  return out;
}

/** nft element text of a range: `a` for one address, else `a-b`. */
export function rangeText(family: IpFamily, [a, b]: readonly [bigint, bigint]): string {
  const fa = formatIp(bigintToBytes(family, a));
  return a === b ? fa : `${fa}-${formatIp(bigintToBytes(family, b))}`;
}
