// Numbers as the benchmarks' reports print them; a figure that could not be
// measured (NaN, an empty sample) prints as a dash rather than "NaN".

const fixed =
  (digits: number) =>
  (x: number): string =>
    Number.isFinite(x) ? x.toFixed(digits) : '–';

export const f0 = fixed(0);
export const f1 = fixed(1);
export const f2 = fixed(2);

/** Bytes in MiB, one decimal. */
export const mib = (b: number): string => `${f1(b / 2 ** 20)} MiB`;

/** Milliseconds as seconds, one decimal. */
export const secs = (ms: number): string => `${f1(ms / 1000)} s`;
