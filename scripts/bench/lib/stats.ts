// Summaries of the benchmarks' samples, one definition for every script so
// that a p99 or a median means the same in each report.

/** Nearest-rank percentile, `p` in 0..1: always a value that was measured (the maximum at p = 1). NaN without samples. */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : (s[Math.max(0, Math.ceil(p * s.length) - 1)] as number);
}

/** The middle sample, or the mean of the two middle ones. NaN without samples. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? (s[(n - 1) / 2] as number) : ((s[n / 2 - 1] as number) + (s[n / 2] as number)) / 2;
}

/** Milliseconds that `fn` took, by the monotonic clock. */
export function timeMs(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}
