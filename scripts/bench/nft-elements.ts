// Micro-benchmark: one element add and delete through libnftables against
// NetlinkElementWriter, on a table the size of weir's on a busy node (~1300
// sets, 300 of them interval sets, ~50k elements). libnftables 1.0.6 lists
// every set of the table into its cache before an element change (the
// kernel's generation moved since its last run, so its cache is stale every
// time here, as in the agent); the writer sends the one message.
// Runs in a network namespace it creates and removes. Needs root.
// Usage: node_modules/.bin/node scripts/bench/nft-elements.ts [--reps 50]
import { spawnSync } from 'node:child_process';
import type { ElementChange } from '../../src/nft/element-writer.ts';
import { LibNftables } from '../../src/nft/libnftables.ts';
import { NetlinkElementWriter } from '../../src/nft/netlink-elements.ts';
import { nft, Transaction } from '../../src/nft/transaction.ts';
import type { NftMap, NftSet } from '../../src/nft/types.ts';
import { Netns } from '../../src/sys/netns.ts';
import { IP, run } from './lib/host.ts';
import { median, timeMs as time } from './lib/stats.ts';
import { benchOptions } from './options.ts';

const USAGE = `usage: node_modules/.bin/node scripts/bench/nft-elements.ts [--reps N]
  --reps N  timed adds and deletes through each path (default 50)`;
const { int } = benchOptions('nft-elements', USAGE, { reps: { type: 'string', default: '50' } });
const REPS = int('reps', 1);
if (process.getuid?.() !== 0) {
  console.error('nft-elements bench: needs root (network namespaces)');
  process.exit(1);
}

const NS = `weirbench-nftel-${process.pid}`;
const ip = (...args: string[]): void => void run(IP, args);

let netns: Netns | undefined;
let lib: LibNftables | undefined;
let writer: NetlinkElementWriter | undefined;
let made = false;
function cleanup(): void {
  for (const step of [() => writer?.close(), () => lib?.close(), () => netns?.close()]) {
    try {
      step();
    } catch (e) {
      console.error(`cleanup: ${String(e)}`);
    }
  }
  if (made) spawnSync(IP, ['netns', 'del', NS]);
  made = false;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });
}

const t = nft.table('inet', 'weirb');
/** [sets, elements per set, type, flag, element j of set i] */
type SetKind = [number, number, string, 'interval' | undefined, (i: number, j: number) => string[]];
// prettier-ignore
const KINDS: Record<string, SetKind> = {
  a4: [400, 40, 'ipv4_addr', undefined, (i, j) => [`10.${i >> 8}.${i & 255}.${j}`]],
  a6: [200, 40, 'ipv6_addr', undefined, (i, j) => [`fd00::${i.toString(16)}:${j.toString(16)}`]],
  c4: [300, 30, 'ipv4_addr . inet_proto . inet_service', undefined, (i, j) => [`10.${i >> 8}.${i & 255}.${j}`, j % 2 ? 'udp' : 'tcp', String(1000 + j)]],
  pp: [100, 10, 'inet_proto . inet_service', undefined, (_i, j) => ['tcp', String(8000 + j)]],
  n4: [200, 50, 'ipv4_addr', 'interval', (i, j) => [`172.${16 + (i >> 8)}.${i & 255}.${j * 4}/30`]],
  pr: [100, 20, 'inet_proto . inet_service', 'interval', (_i, j) => ['tcp', `${1000 + j * 10}-${1005 + j * 10}`]],
};
const M4_ELEMENTS = 4000;

function build(): { sets: number; intervals: number; elements: number; target: NftSet; map: NftMap } {
  let sets = 0;
  let intervals = 0;
  let elements = 0;
  let tx = new Transaction().add(t).add(nft.chain(t, 'prof_a')).add(nft.chain(t, 'prof_b'));
  const flush = (): void => {
    lib?.run(tx);
    tx = new Transaction();
  };
  for (const [prefix, [count, per, type, flag, elem]] of Object.entries(KINDS)) {
    if (flag) intervals += count;
    for (let i = 0; i < count; i++) {
      const name = `${prefix}_${i}`;
      tx.add(nft.set(t, name, type, flag ? { flags: [flag] } : {}));
      for (let j = 0; j < per; j++) tx.add(nft.setElement(t, name, elem(i, j)));
      sets++;
      elements += per;
      if (sets % 100 === 0) flush();
    }
  }
  const map = nft.map(t, 'm4', 'ipv4_addr : verdict');
  tx.add(map);
  for (let j = 0; j < M4_ELEMENTS; j++) tx.add(nft.mapElement(t, 'm4', [`10.200.${j >> 8}.${j & 255}`], j % 2 ? 'goto prof_a' : 'goto prof_b'));
  flush();
  return { sets: sets + 1, intervals, elements: elements + M4_ELEMENTS, target: nft.set(t, 'a4_7', 'ipv4_addr'), map };
}

try {
  ip('netns', 'add', NS);
  made = true;
  netns = Netns.open(`/var/run/netns/${NS}`);
  lib = new LibNftables({ netns });
  const t0 = performance.now();
  const { sets, intervals, elements, target, map } = build();
  console.log(
    `table inet weirb: ${sets} sets and maps (${intervals} interval), ${elements} elements, loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  writer = NetlinkElementWriter.open(netns);
  const w = writer;
  const l = lib;

  // One pod's worth: its address into a plain set, its profile into the verdict map.
  const cases: { what: string; changes: ElementChange[] }[] = [
    { what: 'one ipv4_addr element', changes: [{ verb: 'add', set: target, key: ['10.99.0.1'] }] },
    { what: 'one `ipv4_addr : verdict` element (goto)', changes: [{ verb: 'add', set: map, key: ['10.99.0.1'], value: 'goto prof_a' }] },
  ];
  const undo = (cs: ElementChange[]): ElementChange[] => cs.map((c) => ({ verb: 'delete', set: c.set, key: c.key }));
  const asTx = (cs: ElementChange[]): Transaction => {
    const tx = new Transaction();
    for (const c of cs) {
      const { table, name } = c.set;
      const el = c.set.kind === 'map' ? nft.mapElement(table, name, c.key, c.value ?? '') : nft.setElement(table, name, c.key);
      if (c.verb === 'add') tx.add(el);
      else tx.delete(el);
    }
    return tx;
  };

  const rows: string[] = [];
  for (const { what, changes } of cases) {
    const add = { lib: [] as number[], nl: [] as number[] };
    const del = { lib: [] as number[], nl: [] as number[] };
    // Interleaved, so drift (other load, caches) hits both alike; the first rounds warm up.
    for (let r = -5; r < REPS; r++) {
      const la = time(() => l.run(asTx(changes)));
      const ld = time(() => l.run(asTx(undo(changes))));
      const na = time(() => w.apply(changes));
      const nd = time(() => w.apply(undo(changes)));
      if (r < 0) continue;
      add.lib.push(la);
      del.lib.push(ld);
      add.nl.push(na);
      del.nl.push(nd);
    }
    const sum = (a: number[], b: number[]): number[] => a.map((x, i) => x + (b[i] ?? 0));
    for (const [op, lt, nt] of [
      ['add', add.lib, add.nl],
      ['delete', del.lib, del.nl],
      ['add + delete', sum(add.lib, del.lib), sum(add.nl, del.nl)],
    ] as const) {
      const [ml, mn] = [median(lt), median(nt)];
      rows.push(`| ${what}: ${op} | ${ml.toFixed(3)} | ${mn.toFixed(3)} | ${(ml / mn).toFixed(0)}x |`);
    }
  }
  console.log(`\nmedian of ${REPS}, ms\n`);
  console.log('| change | libnftables | NetlinkElementWriter | ratio |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const row of rows) console.log(row);
} finally {
  cleanup();
}
