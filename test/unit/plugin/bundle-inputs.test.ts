// What the CNI plugin's bundle holds: the plugin runs once per pod, so the
// address arithmetic on its ADD path stays hand-written (src/ip.ts's masks,
// src/ipam/range.ts) and ip-num, which the agent and the policy compiler use,
// must not reach it through an import (docs/ip.md has the measurement).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

describe("the plugin's bundle", () => {
  it('holds neither ip-num nor src/ip-ranges.ts', async () => {
    const r = await build({
      entryPoints: [path.join(root, 'cni/main.ts')],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node24',
      write: false,
      metafile: true,
      logLevel: 'silent',
      outfile: path.join(root, 'dist/unused.cjs'),
    });
    const inputs = Object.keys(r.metafile.inputs);
    expect(inputs).toContain('src/ip.ts');
    expect(inputs.filter((f) => f.includes('node_modules/ip-num/') || f.endsWith('src/ip-ranges.ts'))).toEqual([]);
  });
});
