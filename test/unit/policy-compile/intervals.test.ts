// ipBlock arithmetic (src/policy/intervals.ts): a CIDR minus its excepts as
// disjoint sorted ranges, merging of ranges from several blocks, and the nft
// element text of a range. Checked by hand on the edges and, as a property,
// against address-by-address membership on small IPv4 blocks.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bytesToBigint, type IpFamily, parseCidr, parseIp } from '../../../src/ip.ts';
import { mergeRanges, rangeText, subtractCidrs } from '../../../src/policy/intervals.ts';

const ip = (s: string): bigint => bytesToBigint(parseIp(s).bytes);
/** subtractCidrs rendered as nft element texts, for readable expectations. */
const minus = (cidr: string, except: string[] = []): string[] => {
  const c = parseCidr(cidr);
  return subtractCidrs(c, except.map(parseCidr)).map((r) => rangeText(c.family, r));
};
const r = (a: string, b: string): [bigint, bigint] => [ip(a), ip(b)];

describe('subtractCidrs (IPv4)', () => {
  it('a cidr without except is its whole span, host bits of the cidr ignored', () => {
    expect(minus('10.0.0.0/8')).toEqual(['10.0.0.0-10.255.255.255']);
    expect(minus('192.168.1.77/24')).toEqual(['192.168.1.0-192.168.1.255']);
    expect(minus('10.1.2.3/32')).toEqual(['10.1.2.3']);
  });

  it('0.0.0.0/0 spans the whole space, and excepts at both of its ends leave the middle', () => {
    expect(minus('0.0.0.0/0')).toEqual(['0.0.0.0-255.255.255.255']);
    expect(minus('0.0.0.0/0', ['0.0.0.0/8', '255.0.0.0/8'])).toEqual(['1.0.0.0-254.255.255.255']);
  });

  it('an except at the start, at the end, and in the middle', () => {
    expect(minus('10.0.0.0/16', ['10.0.0.0/24'])).toEqual(['10.0.1.0-10.0.255.255']);
    expect(minus('10.0.0.0/16', ['10.0.255.0/24'])).toEqual(['10.0.0.0-10.0.254.255']);
    expect(minus('10.0.0.0/16', ['10.0.7.0/24'])).toEqual(['10.0.0.0-10.0.6.255', '10.0.8.0-10.0.255.255']);
  });

  it('a /32 except at the very first and very last address', () => {
    expect(minus('10.0.0.0/30', ['10.0.0.0/32'])).toEqual(['10.0.0.1-10.0.0.3']);
    expect(minus('10.0.0.0/30', ['10.0.0.3/32'])).toEqual(['10.0.0.0-10.0.0.2']);
    expect(minus('10.0.0.0/31', ['10.0.0.0/32'])).toEqual(['10.0.0.1']);
  });

  it('several excepts, unsorted, give sorted disjoint ranges', () => {
    expect(minus('10.0.0.0/24', ['10.0.0.192/26', '10.0.0.0/26', '10.0.0.100/32'])).toEqual(['10.0.0.64-10.0.0.99', '10.0.0.101-10.0.0.191']);
  });

  it('nested excepts: one inside another changes nothing, in either order', () => {
    const want = ['10.0.0.0-10.0.255.255', '10.2.0.0-10.255.255.255'];
    expect(minus('10.0.0.0/8', ['10.1.0.0/16', '10.1.2.0/24'])).toEqual(want);
    expect(minus('10.0.0.0/8', ['10.1.2.0/24', '10.1.0.0/16'])).toEqual(want);
  });

  it('an except equal to the cidr, or wider, leaves nothing', () => {
    expect(minus('10.1.0.0/16', ['10.1.0.0/16'])).toEqual([]);
    expect(minus('10.1.0.0/16', ['10.0.0.0/8'])).toEqual([]);
    expect(minus('10.1.2.3/32', ['10.1.2.3/32'])).toEqual([]);
  });

  it('an except outside the cidr, or of the other family, is ignored', () => {
    expect(minus('10.1.0.0/16', ['10.2.0.0/16'])).toEqual(['10.1.0.0-10.1.255.255']);
    expect(minus('10.1.0.0/16', ['fd00::/8'])).toEqual(['10.1.0.0-10.1.255.255']);
  });

  it('except host bits are ignored like the cidr ones', () => {
    expect(minus('10.0.0.0/24', ['10.0.0.77/25'])).toEqual(['10.0.0.128-10.0.0.255']);
  });
});

describe('subtractCidrs (IPv6)', () => {
  it('whole spans and single addresses', () => {
    expect(minus('fd00::/16')).toEqual(['fd00::-fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff']);
    expect(minus('::/0')).toEqual(['::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']);
    expect(minus('fd00::1/128')).toEqual(['fd00::1']);
  });

  it('excepts at the edges and in the middle', () => {
    expect(minus('fd00::/120', ['fd00::/121'])).toEqual(['fd00::80-fd00::ff']);
    expect(minus('fd00::/120', ['fd00::80/121'])).toEqual(['fd00::-fd00::7f']);
    expect(minus('fd00::/120', ['fd00::10/124'])).toEqual(['fd00::-fd00::f', 'fd00::20-fd00::ff']);
    expect(minus('::/0', ['::/1'])).toEqual(['8000::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']);
  });

  it('nested excepts, and an except equal to the cidr', () => {
    expect(minus('fd00::/16', ['fd00:1::/32', 'fd00:1:2::/48'])).toEqual([
      'fd00::-fd00:0:ffff:ffff:ffff:ffff:ffff:ffff',
      'fd00:2::-fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    ]);
    expect(minus('fd00:1::/32', ['fd00:1::/32'])).toEqual([]);
  });

  it('an IPv4 except on an IPv6 cidr is ignored', () => {
    expect(minus('fd00::/120', ['10.0.0.0/8'])).toEqual(['fd00::-fd00::ff']);
  });
});

describe('mergeRanges', () => {
  it('merges overlapping, contained and adjacent ranges; keeps gaps', () => {
    expect(mergeRanges([r('10.0.0.0', '10.0.0.9'), r('10.0.0.10', '10.0.0.20')])).toEqual([r('10.0.0.0', '10.0.0.20')]);
    expect(mergeRanges([r('10.0.0.5', '10.0.0.30'), r('10.0.0.0', '10.0.0.9')])).toEqual([r('10.0.0.0', '10.0.0.30')]);
    expect(mergeRanges([r('10.0.0.0', '10.0.0.255'), r('10.0.0.4', '10.0.0.8')])).toEqual([r('10.0.0.0', '10.0.0.255')]);
    expect(mergeRanges([r('10.0.0.0', '10.0.0.9'), r('10.0.0.11', '10.0.0.20')])).toEqual([r('10.0.0.0', '10.0.0.9'), r('10.0.0.11', '10.0.0.20')]);
  });

  it('merges a chain of adjacent ranges given out of order, and duplicates', () => {
    expect(mergeRanges([r('10.0.0.2', '10.0.0.2'), r('10.0.0.0', '10.0.0.0'), r('10.0.0.1', '10.0.0.1'), r('10.0.0.1', '10.0.0.1')])).toEqual([
      r('10.0.0.0', '10.0.0.2'),
    ]);
  });

  it('two blocks whose excepts complement each other merge back into one range', () => {
    const a = subtractCidrs(parseCidr('10.0.0.0/24'), [parseCidr('10.0.0.128/25')]);
    const b = subtractCidrs(parseCidr('10.0.0.128/25'), []);
    expect(mergeRanges([...a, ...b]).map((x) => rangeText(4, x))).toEqual(['10.0.0.0-10.0.0.255']);
  });

  it('works at the top of the IPv6 space and on empty input', () => {
    const top = 2n ** 128n - 1n;
    expect(
      mergeRanges([
        [top - 1n, top],
        [top - 5n, top - 2n],
      ]),
    ).toEqual([[top - 5n, top]]);
    expect(mergeRanges([])).toEqual([]);
  });

  it('does not modify its input', () => {
    const input: Array<[bigint, bigint]> = [r('10.0.0.5', '10.0.0.9'), r('10.0.0.0', '10.0.0.6')];
    const copy = input.map((x) => [...x]);
    mergeRanges(input);
    expect(input).toEqual(copy);
  });
});

describe('rangeText', () => {
  it('one address alone, a range as a-b, canonical text in both families', () => {
    expect(rangeText(4, r('10.0.0.1', '10.0.0.1'))).toBe('10.0.0.1');
    expect(rangeText(4, r('0.0.0.0', '255.255.255.255'))).toBe('0.0.0.0-255.255.255.255');
    expect(rangeText(6, r('fd00:0:0:0:0:0:0:1', 'fd00::1'))).toBe('fd00::1');
    expect(rangeText(6, r('2001:db8::', '2001:db8:0:0:0:0:0:ff'))).toBe('2001:db8::-2001:db8::ff');
  });
});

// Property: on a /24 with up to 4 random excepts inside it, an address is in
// the ranges exactly when it is in the cidr and in no except; ranges are
// sorted, disjoint and non-adjacent after merging.
describe('properties', () => {
  const prefixArb = fc.integer({ min: 25, max: 32 });
  const exceptArb = fc.tuple(fc.integer({ min: 0, max: 255 }), prefixArb).map(([host, p]) => `10.0.0.${host}/${p}`);

  it('subtract then merge is exact address membership on a /24', () => {
    fc.assert(
      fc.property(fc.array(exceptArb, { maxLength: 4 }), fc.array(exceptArb, { maxLength: 2 }), (ex1, ex2) => {
        const blocks = [
          { cidr: parseCidr('10.0.0.0/24'), except: ex1.map(parseCidr) },
          { cidr: parseCidr('10.0.0.64/26'), except: ex2.map(parseCidr) },
        ];
        const ranges = mergeRanges(blocks.flatMap((b) => subtractCidrs(b.cidr, b.except)));
        for (let i = 1; i < ranges.length; i++) expect((ranges[i] as [bigint, bigint])[0]).toBeGreaterThan((ranges[i - 1] as [bigint, bigint])[1] + 1n);
        const inCidr = (c: { address: string; prefix: number }, a: number): boolean => {
          const base = Number(ip(c.address) & 0xffn);
          const size = 2 ** (32 - c.prefix);
          const first = Math.floor(base / size) * size;
          return a >= first && a < first + size;
        };
        const want: number[] = [];
        const got: number[] = [];
        const base = ip('10.0.0.0');
        for (let a = 0; a < 256; a++) {
          if (blocks.some((b) => inCidr(b.cidr, a) && !b.except.some((e) => inCidr(e, a)))) want.push(a);
          const x = base + BigInt(a);
          if (ranges.some(([lo, hi]) => x >= lo && x <= hi)) got.push(a);
        }
        expect(got).toEqual(want);
      }),
      { numRuns: 200 },
    );
  });

  it('rangeText round-trips through the parser in both families', () => {
    const fams: IpFamily[] = [4, 6];
    fc.assert(
      fc.property(fc.constantFrom(...fams), fc.bigInt({ min: 0n, max: 2n ** 32n - 1n }), fc.bigInt({ min: 0n, max: 1000n }), (f, a, d) => {
        const lo = f === 4 ? a : a << 96n;
        const hi = f === 4 ? (lo + d > 2n ** 32n - 1n ? lo : lo + d) : lo + d;
        const [x, y] = rangeText(f, [lo, hi]).split('-');
        expect(ip(x as string)).toBe(lo);
        expect(ip(y ?? (x as string))).toBe(hi);
      }),
    );
  });
});
