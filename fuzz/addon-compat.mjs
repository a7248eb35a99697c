#!/usr/bin/env node
// Makes Jazzer.js's libFuzzer addon load on Debian 12. The prebuilt
// fuzzer-linux-x64.node of @jazzer.js/fuzzer 4.0.0 is linked against glibc
// 2.38 and GCC 13's libstdc++, and Debian 12 has glibc 2.36 and GCC 12, so
// dlopen fails ("GLIBC_2.38 not found"). It needs only three symbols from
// those versions, each with an older equivalent:
//   __isoc23_strtol, __isoc23_strtoul (C23 strtol/strtoul: they also accept
//     "0b" with base 0/2; libFuzzer only parses decimal flags) -> strtol,
//     strtoul @GLIBC_2.2.5;
//   std::ios_base_library_init() (GCC 13's way to set up std::cout) ->
//     std::ios_base::Init::Init() @GLIBCXX_3.4, which does the same and never
//     reads its `this`.
// The package builds the addon from no sources (its CMake downloads a patched
// LLVM), so this rewrites those three imports in a copy, marks the two
// missing version requirements weak, and puts the copy in dist/prebuilds/,
// which the addon's loader tries before prebuilds/. Idempotent; prints the
// path it loads from. Exits non-zero naming any other unmet import.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = path.join(root, 'node_modules/@jazzer.js/fuzzer');
const name = `fuzzer-${process.platform}-${process.arch}.node`;
const shipped = path.join(pkg, 'prebuilds', name);
const patched = path.join(pkg, 'dist/prebuilds', name);

const RENAME = {
  __isoc23_strtol: ['strtol', 'GLIBC_2.2.5'],
  __isoc23_strtoul: ['strtoul', 'GLIBC_2.2.5'],
  _ZSt21ios_base_library_initv: ['_ZNSt8ios_base4InitC1Ev', 'GLIBCXX_3.4'],
};
const MISSING = new Set(['GLIBC_2.38', 'GLIBCXX_3.4.32']);
const VER_FLG_WEAK = 2;

const loads = (file) => {
  try {
    createRequire(import.meta.url)(file);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
};

function cstr(buf, off) {
  return buf.toString('latin1', off, buf.indexOf(0, off));
}

/** Rewrites the ELF64 little-endian image in place. */
function patch(b) {
  if (b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 2 || b[5] !== 1) throw new Error('not an ELF64 little-endian file');
  const shoff = Number(b.readBigUInt64LE(0x28));
  const shnum = b.readUInt16LE(0x3c);
  const sections = Array.from({ length: shnum }, (_, i) => {
    const h = shoff + i * 64;
    return {
      type: b.readUInt32LE(h + 4),
      offset: Number(b.readBigUInt64LE(h + 0x18)),
      size: Number(b.readBigUInt64LE(h + 0x20)),
      link: b.readUInt32LE(h + 0x28),
      info: b.readUInt32LE(h + 0x2c),
    };
  });
  const dynsym = sections.find((s) => s.type === 11);
  const versym = sections.find((s) => s.type === 0x6fffffff);
  const verneed = sections.find((s) => s.type === 0x6ffffffe);
  if (!dynsym || !versym || !verneed) throw new Error('no .dynsym, .gnu.version or .gnu.version_r');
  const dynstr = sections[dynsym.link];
  const verstr = sections[verneed.link];

  // Version index -> { name, flags offset } from every Vernaux entry.
  const versions = new Map();
  let vn = verneed.offset;
  for (let i = 0; i < verneed.info; i++) {
    let aux = vn + b.readUInt32LE(vn + 8);
    for (let j = 0; j < b.readUInt16LE(vn + 2); j++) {
      versions.set(b.readUInt16LE(aux + 6), { name: cstr(b, verstr.offset + b.readUInt32LE(aux + 8)), flagsAt: aux + 4 });
      aux += b.readUInt32LE(aux + 12);
    }
    vn += b.readUInt32LE(vn + 12);
  }
  const indexOf = (version) => [...versions].find(([, v]) => v.name === version)?.[0];

  const unmet = [];
  for (let i = 0; i < dynsym.size / 24; i++) {
    const at = versym.offset + i * 2;
    const version = versions.get(b.readUInt16LE(at) & 0x7fff)?.name;
    if (!version || !MISSING.has(version)) continue;
    const nameAt = dynstr.offset + b.readUInt32LE(dynsym.offset + i * 24);
    const sym = cstr(b, nameAt);
    const to = RENAME[sym];
    const idx = to && indexOf(to[1]);
    if (!to || idx === undefined || to[0].length > sym.length) {
      unmet.push(`${sym}@${version}`);
      continue;
    }
    // Only the head of the string is overwritten: a shorter name that other
    // symbols share as a suffix keeps its tail.
    b.write(`${to[0]}\0`, nameAt, 'latin1');
    b.writeUInt16LE(idx, at);
  }
  if (unmet.length > 0) throw new Error(`imports with no known older equivalent: ${unmet.join(', ')}`);
  for (const v of versions.values()) if (MISSING.has(v.name)) b.writeUInt16LE(b.readUInt16LE(v.flagsAt) | VER_FLG_WEAK, v.flagsAt);
}

if (loads(shipped) === undefined) {
  fs.rmSync(patched, { force: true });
  console.log(shipped);
} else {
  if (!fs.existsSync(patched) || loads(patched) !== undefined) {
    const b = fs.readFileSync(shipped);
    patch(b);
    fs.mkdirSync(path.dirname(patched), { recursive: true });
    fs.writeFileSync(`${patched}.tmp`, b);
    fs.renameSync(`${patched}.tmp`, patched);
  }
  const why = loads(patched);
  if (why !== undefined) {
    console.error(`addon-compat: the patched Jazzer.js addon still does not load: ${why}`);
    process.exit(1);
  }
  console.log(patched);
}
