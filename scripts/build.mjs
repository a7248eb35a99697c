#!/usr/bin/env node
// Builds self-contained executables: each entrypoint is bundled by esbuild into
// one CommonJS file, then injected into a copy of the pinned Node binary as a
// single-executable application (SEA). koffi's native addon cannot live inside
// the SEA blob, so it is shipped beside the executables in dist/bin/.
// The plugin starts once per pod per verb, so its start is what a pod waits
// for: its blob is a V8 startup snapshot of the evaluated bundle (and of the
// built-ins it imports) rather than source and a code cache, and a start
// deserializes that heap and calls the main function cni/main.ts registered
// (docs/cni-start.md).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { BUNDLE_OPTIONS } from './bundle-options.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const bin = path.join(dist, 'bin');
const only = process.argv.slice(2);

const entries = [
  { name: 'weir', entry: 'cni/main.ts', snapshot: true },
  // The agent runs for months: V8's young generation would otherwise grow to
  // 64 MiB (two 32 MiB semi-spaces), resident once a burst of changes has
  // used it, and its old generation to ~4x the live heap between full GCs.
  // At 10k pods, 4 MiB semi-spaces and a 1.2x growth step kept RSS after a
  // 200-change burst at ~210 MiB instead of ~330, and the first sync's peak
  // at ~330 instead of ~490, at the same change latency (bench-agent).
  // Flags set at run time (v8.setFlagsFromString) do not resize the heap;
  // the executable's execArgv does.
  { name: 'weir-agent', entry: 'agent/main.ts', execArgv: ['--max-semi-space-size=4', '--no-memory-balancer', '--heap-growing-percent=20'] },
  { name: 'weirctl', entry: 'weirctl/main.ts' },
];

const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

function koffiAddon() {
  const p = path.join(root, 'node_modules/@koromix/koffi-linux-x64/linux_x64/koffi.node');
  if (!fs.existsSync(p)) throw new Error(`koffi native addon not found at ${p}; run npm ci`);
  return p;
}

/**
 * @kubernetes/client-node declares no `sideEffects`, so esbuild keeps every
 * module its index and config.js reach: all API groups' generated clients and
 * ~700 model classes the agent never uses (it lists and watches plain JSON,
 * src/agent/api-list.ts). Its modules only define things, so they are marked
 * side-effect free and what nothing uses is left out.
 */
const clientNodePure = {
  name: 'client-node-pure',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData === 'inner') return undefined;
      const inside = args.importer.includes('/node_modules/@kubernetes/client-node/') || args.path.startsWith('@kubernetes/client-node');
      if (!inside || args.path.startsWith('node:')) return undefined;
      const r = await b.resolve(args.path, { resolveDir: args.resolveDir, kind: args.kind, importer: args.importer, pluginData: 'inner' });
      if (r.errors.length > 0 || !r.path.includes('/node_modules/@kubernetes/client-node/'))
        return r.errors.length > 0 ? { errors: r.errors } : { path: r.path, external: r.external, sideEffects: r.sideEffects };
      return { path: r.path, sideEffects: false };
    });
  },
};

async function buildOne({ name, entry, execArgv, snapshot }) {
  const bundle = path.join(dist, `${name}.cjs`);
  await build({
    entryPoints: [path.join(root, entry)],
    outfile: bundle,
    ...BUNDLE_OPTIONS,
    // ESM sources use import.meta.url; give the CommonJS bundle an equivalent.
    banner: { js: 'const __weir_import_meta_url = require("node:url").pathToFileURL(__filename).href;' },
    define: { 'import.meta.url': '__weir_import_meta_url' },
    plugins: [clientNodePure],
  });
  const seaConfig = path.join(dist, `${name}.sea.json`);
  const blob = path.join(dist, `${name}.blob`);
  fs.writeFileSync(
    seaConfig,
    JSON.stringify({
      main: bundle,
      output: blob,
      disableExperimentalSEAWarning: true,
      ...(snapshot ? { useSnapshot: true } : { useCodeCache: true }),
      ...(execArgv ? { execArgv } : {}),
    }),
  );
  const node = process.execPath;
  // Building a snapshot runs the bundle as a SEA, which warns that SEAs are
  // experimental; the executable itself does not (disableExperimentalSEAWarning).
  const quiet = snapshot ? ['--disable-warning=ExperimentalWarning'] : [];
  execFileSync(node, [...quiet, '--experimental-sea-config', seaConfig], { stdio: ['ignore', 'ignore', 'inherit'] });
  const out = path.join(bin, name);
  const tmp = `${out}.tmp`;
  fs.copyFileSync(node, tmp);
  fs.chmodSync(tmp, 0o755);
  execFileSync(path.join(root, 'node_modules/.bin/postject'), [tmp, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE], { stdio: 'ignore' });
  fs.renameSync(tmp, out);
  fs.rmSync(seaConfig);
  fs.rmSync(blob);
  console.log(`built ${path.relative(root, out)}`);
}

fs.mkdirSync(bin, { recursive: true });
// Copy then rename: a running plugin or agent has koffi.node mapped, and
// overwriting it in place would change its code under it.
const koffiTmp = path.join(bin, `.koffi.node.${process.pid}`);
fs.copyFileSync(koffiAddon(), koffiTmp);
fs.renameSync(koffiTmp, path.join(bin, 'koffi.node'));
for (const e of entries) if (only.length === 0 || only.includes(e.name)) await buildOne(e);
