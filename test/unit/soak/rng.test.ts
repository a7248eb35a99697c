// The soak's seeded generator: a run is replayable from its seed.
import { describe, expect, it } from 'vitest';
import { Rng, randomSeed } from '../../../lab/soak/rng.ts';

const draw = (seed: number, n: number): number[] => {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.next());
};

describe('Rng', () => {
  it('gives the same sequence for the same seed and another for another seed', () => {
    expect(draw(42, 50)).toEqual(draw(42, 50));
    expect(draw(42, 50)).not.toEqual(draw(43, 50));
  });

  it('stays in its ranges', () => {
    const r = new Rng(7);
    for (let i = 0; i < 2000; i++) {
      const x = r.next();
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThan(1);
      const n = r.int(3, 5);
      expect([3, 4, 5]).toContain(n);
      expect(r.exp(100)).toBeGreaterThanOrEqual(0);
    }
  });

  it('reaches every value of a small range, and every element it picks from', () => {
    const r = new Rng(1);
    const ints = new Set(Array.from({ length: 500 }, () => r.int(0, 9)));
    expect([...ints].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const picked = new Set(Array.from({ length: 200 }, () => r.pick(['a', 'b', 'c'])));
    expect(picked).toEqual(new Set(['a', 'b', 'c']));
    expect(() => r.pick([])).toThrow(/empty/);
  });

  it('draws weighted keys in proportion, never one of weight 0', () => {
    const r = new Rng(99);
    const n = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 10_000; i++) n[r.weighted({ a: 1, b: 3, c: 0 })]++;
    expect(n.c).toBe(0);
    expect(n.b / n.a).toBeGreaterThan(2.5);
    expect(n.b / n.a).toBeLessThan(3.5);
    expect(() => r.weighted({ a: 0 })).toThrow(/no positive weight/);
  });

  it('shuffles into a permutation, leaving its input alone', () => {
    const xs = [1, 2, 3, 4, 5, 6];
    const out = new Rng(5).shuffle(xs);
    expect(xs).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...out].sort()).toEqual(xs);
  });

  it('has a mean close to the one asked for its exponential waits', () => {
    const r = new Rng(11);
    const xs = Array.from({ length: 20_000 }, () => r.exp(1500));
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean).toBeGreaterThan(1400);
    expect(mean).toBeLessThan(1600);
  });

  it('makes fresh seeds that are positive 32-bit integers', () => {
    for (let i = 0; i < 100; i++) {
      const s = randomSeed();
      expect(Number.isInteger(s)).toBe(true);
      expect(s).toBeGreaterThan(0);
      expect(s).toBeLessThanOrEqual(0xffffffff);
    }
  });
});
