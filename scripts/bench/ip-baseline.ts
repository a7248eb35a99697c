// The hand-written arithmetic that ip-num replaced on the policy and agent
// side (src/policy/intervals.ts and src/policy/node-rules.ts before the
// switch), kept for scripts/bench-ip to compare against. Plain bigints over
// src/ip.ts's bytes.
import { bytesToBigint, type Cidr } from '../../src/ip.ts';

/** A CIDR's first and last address. */
export const spanBigint = (c: Cidr): [bigint, bigint] => {
  const host = BigInt((c.family === 4 ? 32 : 128) - c.prefix);
  const first = (bytesToBigint(c.bytes) >> host) << host;
  return [first, first + (1n << host) - 1n];
};

/** `cidr` minus every `except` as disjoint sorted [first, last] ranges. */
export function subtractBigint(cidr: Cidr, except: readonly Cidr[]): Array<[bigint, bigint]> {
  let out: Array<[bigint, bigint]> = [spanBigint(cidr)];
  for (const e of except) {
    if (e.family !== cidr.family) continue;
    const [a, b] = spanBigint(e);
    out = out.flatMap(([x, y]): Array<[bigint, bigint]> => {
      if (b < x || a > y) return [[x, y]];
      const left: Array<[bigint, bigint]> = x < a ? [[x, a - 1n]] : [];
      return b < y ? [...left, [b + 1n, y]] : left;
    });
  }
  return out;
}

/** The CIDRs inside no other, in one pass over them sorted by network address. */
export function outermostBigint(cidrs: readonly Cidr[]): Cidr[] {
  const byPrefix = [...cidrs].sort((a, b) => a.prefix - b.prefix);
  const spans = byPrefix.map(spanBigint);
  const order = byPrefix
    .map((_, i) => i)
    .sort((i, j) => {
      const a = (spans[i] as [bigint, bigint])[0];
      const b = (spans[j] as [bigint, bigint])[0];
      return (
        (byPrefix[i] as Cidr).family - (byPrefix[j] as Cidr).family ||
        (a < b ? -1 : a > b ? 1 : 0) ||
        (byPrefix[i] as Cidr).prefix - (byPrefix[j] as Cidr).prefix
      );
    });
  const kept = new Set<number>();
  const last = new Map<number, number>();
  for (const i of order) {
    const c = byPrefix[i] as Cidr;
    const k = last.get(c.family);
    const [a, b] = spans[i] as [bigint, bigint];
    const outer = k === undefined ? undefined : (spans[k] as [bigint, bigint]);
    if (outer && a >= outer[0] && b <= outer[1]) continue;
    kept.add(i);
    last.set(c.family, i);
  }
  return byPrefix.filter((_, i) => kept.has(i));
}
