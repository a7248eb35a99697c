// A module bundled the way scripts/build.mjs bundles weir's executables, for
// benchmarks that time its load or weigh its size.
import fs from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { BUNDLE_OPTIONS } from '../../bundle-options.ts';

/** Bundles `contents` (TypeScript, imports resolved from `resolveDir`) into DIR/NAME.cjs. */
export async function bundleLikeBuild(dir: string, name: string, contents: string, resolveDir: string): Promise<{ file: string; bytes: number }> {
  const file = path.join(dir, `${name}.cjs`);
  await build({ ...BUNDLE_OPTIONS, stdin: { contents, resolveDir, sourcefile: `bench-${name}.ts`, loader: 'ts' }, outfile: file });
  return { file, bytes: fs.statSync(file).size };
}
