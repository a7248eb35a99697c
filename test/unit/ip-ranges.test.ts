// CIDR arithmetic on ip-num (src/ip-ranges.ts, and the ipBlock subtraction of
// src/policy/intervals.ts) against a model of plain bigints: a CIDR is the
// integers from its network to its network plus 2^(bits - prefix) - 1. Both
// families, with the edges drawn often: /0, a host prefix (/32, /128), the
// first and last address of the space, an except equal to its block, and
// excepts nested in one another.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bigintToBytes, bytesToBigint, type Cidr, formatIp, type IpBytes, type IpFamily, parseCidr, parseIp } from '../../src/ip.ts';
import { cidrHolds, cidrInside, cidrNetwork, outermostCidrs } from '../../src/ip-ranges.ts';
import { subtractCidrs } from '../../src/policy/intervals.ts';

const BITS = { 4: 32, 6: 128 } as const;
const top = (f: IpFamily): bigint => (1n << BigInt(BITS[f])) - 1n;

const cidrOf = (family: IpFamily, value: bigint, prefix: number): Cidr => {
  const bytes = bigintToBytes(family, value);
  return { family, address: formatIp(bytes), prefix, bytes };
};
const ipOf = (family: IpFamily, value: bigint): IpBytes => ({ family, bytes: bigintToBytes(family, value) });

// ---- the model ----
function span(c: Cidr): [bigint, bigint] {
  const size = 1n << BigInt(BITS[c.family] - c.prefix);
  const first = bytesToBigint(c.bytes) - (bytesToBigint(c.bytes) % size);
  return [first, first + size - 1n];
}
const inSpan = (c: Cidr, v: bigint): boolean => {
  const [a, b] = span(c);
  return a <= v && v <= b;
};

// ---- generators ----
/** An address, often at the ends of the space. */
const address = (f: IpFamily): fc.Arbitrary<bigint> =>
  fc.oneof({ weight: 3, arbitrary: fc.bigInt({ min: 0n, max: top(f) }) }, { weight: 1, arbitrary: fc.constantFrom(0n, 1n, top(f) - 1n, top(f)) });
/** A prefix, often /0 or a host prefix. */
const prefix = (f: IpFamily, min = 0): fc.Arbitrary<number> =>
  fc.oneof({ weight: 3, arbitrary: fc.integer({ min, max: BITS[f] }) }, { weight: 1, arbitrary: fc.constantFrom(min, BITS[f]) });
const cidr = (f: IpFamily, min = 0): fc.Arbitrary<Cidr> => fc.tuple(address(f), prefix(f, min)).map(([v, p]) => cidrOf(f, v, p));
/** A CIDR inside `outer`: its network plus an offset, at an equal or longer prefix. */
const within = (outer: Cidr): fc.Arbitrary<Cidr> => {
  const [first, last] = span(outer);
  return fc.tuple(fc.bigInt({ min: first, max: last }), prefix(outer.family, outer.prefix)).map(([v, p]) => cidrOf(outer.family, v, p));
};
/** A block and excepts: most inside it (an equal one, nested ones), a few anywhere. */
const blockWithExcepts = (f: IpFamily): fc.Arbitrary<{ block: Cidr; except: Cidr[] }> =>
  cidr(f).chain((block) =>
    fc
      .array(fc.oneof({ weight: 4, arbitrary: within(block) }, { weight: 1, arbitrary: fc.constant(block) }, { weight: 1, arbitrary: cidr(f) }), {
        maxLength: 6,
      })
      .chain((except) =>
        // Nested excepts: some inside another except.
        fc.array(except.length > 0 ? fc.constantFrom(...except).chain(within) : fc.constant(block), { maxLength: 3 }).map((nested) => ({
          block,
          except: [...except, ...nested],
        })),
      ),
  );

/** Points where the model's membership can change: every end of the block and the excepts, and beside them. */
function probes(f: IpFamily, cidrs: readonly Cidr[]): bigint[] {
  const out = new Set<bigint>();
  for (const c of cidrs) for (const e of span(c)) for (const d of [-1n, 0n, 1n]) if (e + d >= 0n && e + d <= top(f)) out.add(e + d);
  return [...out];
}

const families = [4, 6] as const;

describe.each(families)('CIDR arithmetic on ip-num (IPv%i) against the bigint model', (f) => {
  it('cidrNetwork clears the host bits and keeps the prefix', () => {
    fc.assert(
      fc.property(cidr(f), (c) => {
        const n = cidrNetwork(c);
        expect(n.family).toBe(f);
        expect(n.prefix).toBe(c.prefix);
        expect(bytesToBigint(n.bytes)).toBe(span(c)[0]);
        expect(n.address).toBe(formatIp(n.bytes));
      }),
      { numRuns: 300 },
    );
  });

  it('cidrHolds is membership in the span, at its ends and beside them', () => {
    fc.assert(
      fc.property(cidr(f), address(f), (c, v) => {
        for (const p of [v, ...probes(f, [c])]) expect(cidrHolds(c, ipOf(f, p))).toBe(inSpan(c, p));
      }),
      { numRuns: 300 },
    );
  });

  it('cidrInside is span containment, equal CIDRs included', () => {
    fc.assert(
      fc.property(
        cidr(f).chain((outer) => fc.tuple(fc.constant(outer), fc.oneof(within(outer), cidr(f), fc.constant(outer)))),
        ([outer, inner]) => {
          const [a, b] = span(outer);
          const [x, y] = span(inner);
          expect(cidrInside(inner, outer)).toBe(a <= x && y <= b);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('subtractCidrs gives sorted disjoint ranges holding exactly the block minus its excepts', () => {
    fc.assert(
      fc.property(blockWithExcepts(f), address(f), ({ block, except }, v) => {
        const ranges = subtractCidrs(block, except);
        ranges.forEach(([a, b], i) => {
          expect(a <= b).toBe(true);
          if (i > 0) expect((ranges[i - 1] as [bigint, bigint])[1] < a).toBe(true);
        });
        const member = (p: bigint): boolean => ranges.some(([a, b]) => a <= p && p <= b);
        for (const p of [v, ...probes(f, [block, ...except])]) {
          expect(member(p)).toBe(inSpan(block, p) && !except.some((e) => inSpan(e, p)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('outermostCidrs keeps exactly the CIDRs no other holds, the first of equal ones, by prefix then first seen', () => {
    fc.assert(
      fc.property(
        cidr(f).chain((c) => fc.array(fc.oneof(within(c), fc.constant(c), cidr(f)), { minLength: 1, maxLength: 12 })),
        (list) => {
          const byPrefix = list.map((c, i) => ({ c, i })).sort((p, q) => p.c.prefix - q.c.prefix || p.i - q.i);
          const want = byPrefix.filter(({ c }, k) =>
            byPrefix.every(({ c: o }, j) => {
              const [a, b] = span(o);
              const [x, y] = span(c);
              const holds = a <= x && y <= b;
              // An equal span held by an earlier one in that order goes; a strictly wider one always takes it.
              return j === k || !holds || (x === a && y === b && j > k);
            }),
          );
          expect(outermostCidrs(list)).toEqual(want.map(({ c }) => c));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('CIDR arithmetic on ip-num: by hand', () => {
  const c = parseCidr;
  it('the edges of both spaces', () => {
    expect(cidrNetwork(c('10.1.2.3/0')).address).toBe('0.0.0.0');
    expect(cidrNetwork(c('255.255.255.255/32')).address).toBe('255.255.255.255');
    expect(cidrNetwork(c('fd00::1/0')).address).toBe('::');
    expect(cidrNetwork(c('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128')).address).toBe('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff');
    expect(cidrHolds(c('0.0.0.0/0'), parseIp('255.255.255.255'))).toBe(true);
    expect(cidrHolds(c('::/0'), parseIp('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'))).toBe(true);
    expect(subtractCidrs(c('0.0.0.0/0'), [c('0.0.0.0/0')])).toEqual([]);
    expect(subtractCidrs(c('::/0'), [c('::/1'), c('8000::/1')])).toEqual([]);
    expect(subtractCidrs(c('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'), [])).toEqual([[top(6), top(6)]]);
  });

  it('never mixes the families, IPv4-mapped IPv6 included', () => {
    expect(cidrInside(c('10.0.0.0/8'), c('::ffff:0:0/96'))).toBe(false);
    expect(cidrHolds(c('::ffff:0:0/96'), parseIp('10.0.0.1'))).toBe(false);
    expect(cidrHolds(c('::ffff:0:0/96'), parseIp('::ffff:10.0.0.1'))).toBe(true);
    expect(cidrHolds(c('0.0.0.0/0'), parseIp('::1'))).toBe(false);
  });

  it('the same network written with different host bits is the same span', () => {
    expect(cidrInside(c('10.0.0.9/24'), c('10.0.0.200/24'))).toBe(true);
    expect(subtractCidrs(c('10.0.0.7/24'), [c('10.0.0.99/25')])).toEqual(subtractCidrs(c('10.0.0.0/24'), [c('10.0.0.0/25')]));
    expect(outermostCidrs([c('10.0.0.7/24'), c('10.0.0.0/24'), c('10.0.0.0/25')])).toEqual([c('10.0.0.7/24')]);
  });
});
