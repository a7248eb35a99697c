// ipBlock arithmetic for nftables interval sets: a CIDR minus its `except`
// CIDRs as a list of disjoint address ranges. nft refuses overlapping
// elements in an interval set, so the difference is computed here, exactly.
import { bigintToBytes, bytesToBigint, type Cidr, formatIp, type IpFamily } from '../ip.ts';

const bits = (f: IpFamily): bigint => (f === 4 ? 32n : 128n);

function span(c: Cidr): [bigint, bigint] {
  const host = bits(c.family) - BigInt(c.prefix);
  const first = (bytesToBigint(c.bytes) >> host) << host;
  return [first, first + (1n << host) - 1n];
}

/** Disjoint, sorted [first, last] ranges covering `cidr` minus every `except`. */
export function subtractCidrs(cidr: Cidr, except: readonly Cidr[]): Array<[bigint, bigint]> {
  let out: Array<[bigint, bigint]> = [span(cidr)];
  for (const e of except) {
    if (e.family !== cidr.family) continue;
    const [a, b] = span(e);
    const next: Array<[bigint, bigint]> = [];
    for (const [x, y] of out) {
      if (b < x || a > y) {
        next.push([x, y]);
        continue;
      }
      if (x < a) next.push([x, a - 1n]);
      if (b < y) next.push([b + 1n, y]);
    }
    out = next;
  }
  return out;
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
