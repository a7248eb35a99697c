// A small seeded pseudo-random generator (mulberry32): the soak's scenario
// and fault schedule are functions of the seed alone, so a run can be
// replayed with `scripts/soak --seed S` (the cluster's own timing still
// differs from run to run; the sequence of requested changes does not).
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from an empty list');
    return xs[Math.floor(this.next() * xs.length)] as T;
  }

  /** One of the keys, with probability proportional to its weight (weights ≤ 0 never). */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = (Object.entries(weights) as [K, number][]).filter(([, w]) => w > 0);
    const total = entries.reduce((s, [, w]) => s + w, 0);
    if (total <= 0) throw new Error('no positive weight');
    let r = this.next() * total;
    for (const [k, w] of entries) {
      r -= w;
      if (r < 0) return k;
    }
    return (entries[entries.length - 1] as [K, number])[0];
  }

  shuffle<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }

  /** An exponential wait with this mean (a Poisson process of changes). */
  exp(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }
}

/** A fresh seed when none is given (printed, so the run can be replayed). */
export const randomSeed = (): number => Math.floor(Math.random() * 0xffffffff) >>> 0 || 1;
