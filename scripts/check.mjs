#!/usr/bin/env node
// `npm test`: the type-check, the format and lint check and the unit tier, run
// at once rather than one after the other: none needs another's result, and
// the two quick checks then fill the gaps the unit tier's workers leave
// instead of adding to its time. The unit tier prints as it runs; the other
// two are held and printed whole when it is done, each under its own heading,
// so no output interleaves. Every check runs to its end, and the exit status
// is 1 when any failed.
//
//   scripts/check.mjs [VITEST ARGS...]     e.g. npm test -- test/unit/ipam
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => path.join(root, 'node_modules/.bin', name);
const color = process.stdout.isTTY === true;

const held = [
  { title: 'type-check (tsc)', cmd: bin('tsc'), args: ['--noEmit', '-p', '.', ...(color ? ['--pretty'] : [])] },
  { title: 'format and lint (biome)', cmd: bin('biome'), args: ['check', '--error-on-warnings', ...(color ? ['--colors=force'] : []), '.'] },
];
const live = { title: 'unit tier (vitest)', cmd: bin('vitest'), args: ['run', '--project', 'unit', ...process.argv.slice(2)] };

/** Runs one check; resolves to its exit status and, when held, its interleaved stdout and stderr. */
function run(check, hold) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(check.cmd, check.args, { cwd: root, stdio: hold ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    let output = '';
    if (hold) {
      child.stdout.setEncoding('utf8').on('data', (d) => (output += d));
      child.stderr.setEncoding('utf8').on('data', (d) => (output += d));
    }
    child.on('error', (e) => resolve({ check, code: 127, output: `${e.message}\n`, seconds: 0 }));
    child.on('close', (code, signal) => resolve({ check, code: code ?? (signal ? 128 : 1), output, seconds: (Date.now() - started) / 1000 }));
  });
}

const results = await Promise.all([run(live, false), ...held.map((c) => run(c, true))]);
for (const r of results.slice(1)) {
  if (r.output.trim()) process.stdout.write(`\n── ${r.check.title}\n${r.output.trimEnd()}\n`);
}
const verdict = (r) => `${r.check.title}: ${r.code === 0 ? 'ok' : `FAILED (exit ${r.code})`}, ${r.seconds.toFixed(1)} s`;
process.stdout.write(`\n${results.map(verdict).join('\n')}\n`);
process.exitCode = results.every((r) => r.code === 0) ? 0 : 1;
