// Command-line options of the benchmark scripts: parseArgs with a usage text,
// --help, and integer options checked against their range. Exits 2 on bad
// input, as the scripts' usage says.
import { type ParseArgsConfig, parseArgs } from 'node:util';

export type BenchOpts = Record<string, string | boolean | undefined>;

export function benchOptions(
  script: string,
  usage: string,
  options: NonNullable<ParseArgsConfig['options']>,
): { opt: BenchOpts; int: (name: string, min: number, max?: number) => number } {
  let opt: BenchOpts;
  try {
    opt = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h', default: false } } }).values as BenchOpts;
  } catch (e) {
    console.error(`${(e as Error).message}\n${usage}`);
    process.exit(2);
  }
  if (opt.help) {
    console.log(usage);
    process.exit(0);
  }
  const int = (name: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = Number(opt[name]);
    if (!Number.isInteger(v) || v < min || v > max) {
      console.error(`${script}: --${name} must be an integer in ${min}..${max}\n${usage}`);
      process.exit(2);
    }
    return v;
  };
  return { opt, int };
}
