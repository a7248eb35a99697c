// The masquerade exceptions (every node's pod CIDR plus the configured ones)
// become one interval set with no element inside another: checked against
// the pairwise definition on random lists (nested, duplicated, with host
// bits, both families), and at 5k nodes, where the exceptions must still
// come out one per node.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cidrContains, parseCidr } from '../../../src/ip.ts';
import { addMasquerade } from '../../../src/policy/node-rules.ts';
import { emptyRuleset } from '../../../src/policy/ruleset.ts';

const table = { kind: 'table', family: 'inet', name: 'weir' } as const;

function exceptionsOf(nonMasqueradeCIDRs: string[], podCIDRs = ['10.244.1.0/24', 'fd00:1::/64']): Record<string, string[]> {
  const rs = emptyRuleset(table);
  addMasquerade(rs, { podCIDRs, nonMasqueradeCIDRs });
  const out: Record<string, string[]> = {};
  for (const f of ['4', '6']) out[f] = [...(rs.sets.get(`nomasq${f}`)?.elements.keys() ?? [])];
  return out;
}

/** The definition: drop every CIDR another one of the list holds; wider first, then in order of appearance. */
function pairwise(cidrs: string[], family: 4 | 6): string[] {
  const parsed = [...new Set(cidrs)].map(parseCidr).sort((a, b) => a.prefix - b.prefix);
  const out: ReturnType<typeof parseCidr>[] = [];
  for (const c of parsed) if (!out.some((o) => o.family === c.family && c.prefix >= o.prefix && cidrContains(o, c))) out.push(c);
  return out.filter((c) => c.family === family).map((c) => `${c.address}/${c.prefix}`);
}

const v4 = fc
  .tuple(
    fc.constantFrom(10, 192),
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 0, max: 255 }),
    fc.constantFrom(8, 12, 16, 22, 24, 24, 28, 32),
  )
  .map(([a, b, c, d, p]) => `${a}.${b}.${c}.${d}/${p}`);
const v6 = fc
  .tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.constantFrom(32, 48, 56, 64, 64, 128))
  .map(([a, b, p]) => `fd00:${a}:${b}::${p === 128 ? '1' : ''}/${p}`);

describe('masquerade exceptions', () => {
  it('are the CIDRs no other one holds, as the pairwise definition gives them, in the same order', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(v4, v6), { maxLength: 40 }), (cidrs) => {
        const got = exceptionsOf(cidrs);
        expect(got['4']).toEqual(pairwise(cidrs, 4));
        expect(got['6']).toEqual(pairwise(cidrs, 6));
      }),
      { numRuns: 500 },
    );
  });

  it('keep one element per node at 5k nodes, and a cluster CIDR swallows them all', () => {
    const nodes = Array.from({ length: 5000 }, (_, k) => `10.${((244 * 256 + k) >> 8) & 255}.${k & 255}.0/24`);
    expect(exceptionsOf(nodes)['4']).toHaveLength(5000);
    expect(exceptionsOf([...nodes, '10.0.0.0/8', '10.96.0.0/12'])['4']).toEqual(['10.0.0.0/8']);
  });
});
