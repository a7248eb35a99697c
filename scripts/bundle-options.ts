// The esbuild options every weir executable is bundled with (scripts/build.mjs),
// shared with the benchmarks that measure what a module costs to load as the
// executables would load it.
import type { BuildOptions } from 'esbuild';

export const BUNDLE_OPTIONS: BuildOptions = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
};
