// Text output shared by every weirctl command: aligned columns, colours only
// on a terminal, and short human durations. Pure, except colorEnabled() which
// looks at the process's stdout and environment.

export type Paint = 'bold' | 'red' | 'green' | 'yellow' | 'dim';

const CODES: Record<Paint, [number, number]> = {
  bold: [1, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  dim: [2, 22],
};

// biome-ignore lint/suspicious/noControlCharactersInRegex: an SGR colour sequence starts with ESC; widths must not count it.
const ANSI = /\u001b\[[0-9;]*m/g;

/** Colours only on a terminal, and never when NO_COLOR is set or TERM is dumb. */
export function colorEnabled(stream: { isTTY?: boolean } = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && env['NO_COLOR'] === undefined && env['TERM'] !== 'dumb';
}

/** Text in a colour when `on`, unchanged otherwise. */
export const paint = (text: string, how: Paint, on: boolean): string => (on ? `\u001b[${CODES[how][0]}m${text}\u001b[${CODES[how][1]}m` : text);

/** Display width: escape codes take no room. */
export const visibleWidth = (s: string): number => [...s.replace(ANSI, '')].length;

export interface TableOptions {
  color?: boolean;
  /** Prefix of every line (e.g. two spaces under a heading). */
  indent?: string;
  /** Spaces between columns; default 2. */
  gap?: number;
}

/**
 * Columns padded to their widest cell; the last column is not padded, so no
 * line ends in spaces. Headers are upper case as given, bold on a terminal.
 * A cell holding several lines (`\n`) continues on the next lines, aligned.
 */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[], opts: TableOptions = {}): string {
  const color = opts.color ?? false;
  const indent = opts.indent ?? '';
  const gap = ' '.repeat(opts.gap ?? 2);
  // Expand multi-line cells into extra physical rows.
  const physical: string[][] = [];
  for (const row of rows) {
    const cells = headers.map((_, i) => (row[i] ?? '').split('\n'));
    const height = Math.max(1, ...cells.map((c) => c.length));
    for (let k = 0; k < height; k++) physical.push(cells.map((c) => c[k] ?? ''));
  }
  const widths = headers.map((h, i) => Math.max(visibleWidth(h), ...physical.map((r) => visibleWidth(r[i] ?? ''))));
  const line = (cells: readonly string[]): string => {
    const parts = cells.map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - visibleWidth(c))));
    return (indent + parts.join(gap)).replace(/\s+$/, '');
  };
  const head = line(headers.map((h) => paint(h, 'bold', color)));
  return [head, ...physical.map(line)].join('\n');
}

/** `42s`, `5m`, `3h12m`, `4d2h`: how long ago, compactly. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
}

/** Milliseconds with sensible precision: `0.42 ms`, `12.3 ms`, `1.25 s`. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '?';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** `ok` / `FAIL` as a doctor prints them, green or red on a terminal. */
export const okFail = (ok: boolean, color: boolean): string => (ok ? paint('OK', 'green', color) : paint('FAIL', 'red', color));

/** A JSON-safe number for a bigint: a number when exact, else its decimal text. */
export const bigToJson = (v: bigint): number | string => (v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString());

/** One line of fixed-width columns (for output printed row by row); the last cell is not padded. */
export function fixedRow(cells: readonly string[], widths: readonly number[], gap = 2): string {
  return cells
    .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleWidth(c)) + gap)))
    .join('')
    .replace(/\s+$/, '');
}
