// Small helpers shared by the probe entry points (serve-main.ts, probe-main.ts).
import { InvalidConfigError } from '../../src/errors.ts';

/** `80,81` (flag given once or several times) -> [80, 81]; duplicates removed, order kept. */
export function parsePortList(values: readonly string[] | undefined, flag: string): number[] {
  const out: number[] = [];
  for (const v of values ?? []) {
    for (const part of v.split(',')) {
      const s = part.trim();
      if (s === '') continue;
      if (!/^[0-9]{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
        throw new InvalidConfigError(`${flag}: bad port ${JSON.stringify(s)}`);
      }
      if (!out.includes(Number(s))) out.push(Number(s));
    }
  }
  return out;
}

/** Writes one JSON object per line to stdout (synchronous for pipes and files on Linux). */
export function emitLine(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

export async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs an entry point's main and exits with its status; an unexpected failure is exit 1 with the error on stderr. */
export function runMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`${name}: ${String(e)}\n`);
      process.exit(1);
    },
  );
}
