#!/usr/bin/env node
// Shrinks a corpus folder to the inputs that cover it, as libFuzzer's
// -merge=1 would (which cannot run under Jazzer.js: it re-executes argv[0]).
//
//   node fuzz/minimize.mjs plan CONTROL DIR     writes the control file for DIR's files
//   node fuzz/minimize.mjs apply CONTROL DIR    after `-merge_inner=1 -merge_control_file=CONTROL`
//                                               ran them: keeps the smallest set of files that
//                                               reaches every feature, deletes the rest
//
// The control file is libFuzzer's: the file count, the count of files
// already in the corpus (0), one path a line; the inner run appends
// "STARTED i size" and "FT i feature..." per file. Files with a name of
// their own (hand-written seeds, past findings) are always kept; then, like
// libFuzzer, the others smallest first (then richest), each kept when it adds
// a feature. libFuzzer names the inputs it saves by their SHA-1.
import fs from 'node:fs';
import path from 'node:path';

const [mode, control, dir] = process.argv.slice(2);
if (!control || !dir || (mode !== 'plan' && mode !== 'apply')) {
  console.error('usage: minimize.mjs plan|apply CONTROL DIR');
  process.exit(2);
}

if (mode === 'plan') {
  const files = fs.readdirSync(dir).map((f) => path.join(dir, f));
  fs.writeFileSync(control, `${files.length}\n0\n${files.join('\n')}\n`);
  process.exit(0);
}

const lines = fs.readFileSync(control, 'utf8').split('\n');
const n = Number(lines[0]);
const files = lines.slice(2, 2 + n);
const size = new Map();
const features = new Map();
for (const line of lines.slice(2 + n)) {
  const [kind, i, ...rest] = line.split(' ');
  if (kind === 'STARTED') size.set(Number(i), Number(rest[0]));
  else if (kind === 'FT') features.set(Number(i), rest.map(Number));
}
if (features.size !== n) {
  console.error(`minimize: the inner run reported ${features.size} of ${n} files; keeping them all`);
  process.exit(1);
}
const named = (i) => !/^[0-9a-f]{40}$/.test(path.basename(files[i]));
const bySize = (a, b) => size.get(a) - size.get(b) || features.get(b).length - features.get(a).length;
const order = [...features.keys()].sort((a, b) => Number(named(b)) - Number(named(a)) || bySize(a, b));
const seen = new Set();
let kept = 0;
for (const i of order) {
  const fresh = features.get(i).filter((f) => !seen.has(f));
  if (fresh.length > 0 || named(i)) {
    for (const f of fresh) seen.add(f);
    kept++;
  } else fs.rmSync(files[i]);
}
console.log(`minimize: kept ${kept} of ${n} inputs (${seen.size} features)`);
