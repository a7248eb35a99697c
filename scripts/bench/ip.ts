// scripts/bench-ip: weir's hand-written address arithmetic against ip-num,
// operation by operation, both timed in the same process and each round
// alternating which goes first; the ratio is ip-num / hand-written.
// - The CNI ADD path (what the plugin runs per pod): reading the pod range,
//   whether an address is in it, the allocator's next address, a whole pick in
//   a /24 that holds 250 pods (the allocator's round-robin walk over every
//   taken address), the conflist's check of a pod CIDR against the reserved
//   ranges, and loading the code: an esbuild bundle as scripts/build.mjs
//   builds the plugin, in a fresh process with Node's compile cache warm.
//   The ip-num side of these is written here: the plugin keeps the
//   hand-written one (src/ip.ts, src/ipam/range.ts).
// - The policy compiler and the agent (now on ip-num, src/ip-ranges.ts and
//   src/policy/intervals.ts): an ipBlock minus its excepts, whether an ipBlock
//   holds an address, a CIDR's network, and the masquerade set's outermost
//   CIDRs among 5k nodes' pod CIDRs. Their hand-written side is
//   scripts/bench/ip-baseline.ts (the code before the switch). ip-num finds a
//   range's ends slowly, so src/ip-ranges.ts keeps each CIDR's ends once
//   found: the cases say whether they time a CIDR seen before (every sync
//   after the first) or the first sight of one.
// Prints a Markdown table (results in docs/ip.md).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { IPv4, IPv4CidrRange, IPv6, IPv6CidrRange } from 'ip-num';
import { bytesToBigint, type Cidr, cidrContains, hasHostBits, type IpBytes, networkOf, parseCidr, parseIp } from '../../src/ip.ts';
import { cidrNetwork, cidrRange, outermostCidrs } from '../../src/ip-ranges.ts';
import { PodRange } from '../../src/ipam/range.ts';
import { subtractCidrs } from '../../src/policy/intervals.ts';
import { type IpBlockPeer, ipBlockContains } from '../../src/policy/normalize.ts';
import { pct } from './agent/report.ts';
import { outermostBigint, spanBigint, subtractBigint } from './ip-baseline.ts';
import { bundleLikeBuild } from './lib/bundle.ts';
import { benchOptions } from './options.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const USAGE = `usage: scripts/bench-ip [options]
  --rounds N   rounds; each times every operation once per side, alternating (default 9)
  --ms N       target milliseconds per timed batch (default 40)
  --loads N    fresh processes per side for the load time (default 15)`;
const { int } = benchOptions('bench-ip', USAGE, {
  rounds: { type: 'string', default: '9' },
  ms: { type: 'string', default: '40' },
  loads: { type: 'string', default: '15' },
});
const ROUNDS = int('rounds', 1, 1000);
const BATCH_MS = int('ms', 1, 10_000);
const LOADS = int('loads', 1, 1000);

type Side = 'hand' | 'ipnum';
interface Case {
  path: 'ADD' | 'policy/agent';
  name: string;
  hand: () => unknown;
  ipnum: () => unknown;
}

// ---- the ADD path's operations on ip-num, as the plugin would write them ----
type V4or6 = IPv4 | IPv6;
const ipnumAddress = (text: string): V4or6 => (text.includes(':') ? IPv6.fromString(text) : IPv4.fromString(text));

class IpnumPodRange {
  readonly range: IPv4CidrRange | IPv6CidrRange;
  readonly first: V4or6;
  readonly last: V4or6;
  constructor(text: string) {
    const addr = text.slice(0, text.indexOf('/'));
    this.range = text.includes(':') ? IPv6CidrRange.fromCidr(text) : IPv4CidrRange.fromCidr(text);
    if (!this.range.getFirst().isEquals(ipnumAddress(addr))) throw new Error(`host bits set in ${text}`);
    this.first = this.range.getFirst().nextIPNumber();
    const last = this.range.getLast();
    this.last = text.includes(':') ? last : last.previousIPNumber();
  }
  contains(text: string): boolean {
    const a = ipnumAddress(text);
    return a.isGreaterThanOrEquals(this.first) && a.isLessThanOrEquals(this.last);
  }
  next(text: string): string {
    const a = ipnumAddress(text);
    return (a.isLessThan(this.first) || a.isGreaterThanOrEquals(this.last) ? this.first : a.nextIPNumber()).toString();
  }
}

/** The allocator's pick(): count the range's taken addresses, then walk from the hint to a free one. */
function pick(range: { contains(a: string): boolean; next(a: string): string }, used: ReadonlySet<string>, last: string): string {
  const steps = [...used].filter((a) => range.contains(a)).length + 1;
  let candidate = range.next(last);
  for (let i = 0; i < steps; i++) {
    if (!used.has(candidate)) return candidate;
    candidate = range.next(candidate);
  }
  throw new Error('full');
}

function cases(): Case[] {
  const v4 = PodRange.parse('10.244.1.0/24');
  const v6 = PodRange.parse('fd00:10:244:1::/64');
  const n4 = new IpnumPodRange('10.244.1.0/24');
  const n6 = new IpnumPodRange('fd00:10:244:1::/64');
  const used = new Set(Array.from({ length: 250 }, (_, i) => `10.244.1.${i + 1}`));
  const reserved = ['0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/3'].map(parseCidr);
  const pod = parseCidr('10.244.1.0/24');
  const overlapsHand = (a: Cidr, b: Cidr): boolean => (a.prefix <= b.prefix ? cidrContains(a, b) : cidrContains(b, a));
  // A plugin process sees each CIDR once: ip-num's ranges, not src/ip-ranges.ts's cache of their ends.
  const holds = (outer: Cidr, inner: Cidr): boolean => (cidrRange(outer) as IPv4CidrRange).contains(cidrRange(inner) as IPv4CidrRange);
  const overlapsIpnum = (a: Cidr, b: Cidr): boolean => (a.prefix <= b.prefix ? holds(a, b) : holds(b, a));

  const block4: IpBlockPeer = { kind: 'ipBlock', cidr: parseCidr('10.0.0.0/8'), except: ['10.1.0.0/16', '10.1.2.0/24', '10.200.0.0/16'].map(parseCidr) };
  const block6: IpBlockPeer = { kind: 'ipBlock', cidr: parseCidr('fd00::/48'), except: ['fd00:0:0:1::/64', 'fd00:0:0:1::/80'].map(parseCidr) };
  const ip4 = parseIp('10.1.3.7');
  const ip6 = parseIp('fd00:0:0:2::7');
  const blockHand = (b: IpBlockPeer, ip: IpBytes): boolean => cidrContains(b.cidr, ip) && !b.except.some((e) => cidrContains(e, ip));
  const withHost = parseCidr('10.244.7.9/24');
  const nodes = [
    ...Array.from({ length: 5000 }, (_, i) => parseCidr(`10.${64 + (i >> 8)}.${i & 255}.0/24`)),
    parseCidr('10.64.0.0/10'),
    parseCidr('10.96.0.0/12'),
  ];

  return [
    { path: 'ADD', name: 'read a pod range (IPv4 /24)', hand: () => PodRange.parse('10.244.1.0/24'), ipnum: () => new IpnumPodRange('10.244.1.0/24') },
    {
      path: 'ADD',
      name: 'read a pod range (IPv6 /64)',
      hand: () => PodRange.parse('fd00:10:244:1::/64'),
      ipnum: () => new IpnumPodRange('fd00:10:244:1::/64'),
    },
    { path: 'ADD', name: 'address in the pod range (IPv4)', hand: () => v4.contains('10.244.1.77'), ipnum: () => n4.contains('10.244.1.77') },
    { path: 'ADD', name: 'next address (IPv4)', hand: () => v4.next('10.244.1.77'), ipnum: () => n4.next('10.244.1.77') },
    { path: 'ADD', name: 'next address (IPv6)', hand: () => v6.next('fd00:10:244:1::4d'), ipnum: () => n6.next('fd00:10:244:1::4d') },
    { path: 'ADD', name: 'pick in a /24 holding 250 pods', hand: () => pick(v4, used, '10.244.1.254'), ipnum: () => pick(n4, used, '10.244.1.254') },
    {
      path: 'ADD',
      name: 'pod CIDR against the reserved ranges',
      hand: () => !hasHostBits(pod) && reserved.some((r) => overlapsHand(r, pod)),
      ipnum: () => cidrRange(pod).getFirst().getValue() === bytesToBigint(pod.bytes) && reserved.some((r) => overlapsIpnum(r, pod)),
    },
    {
      path: 'policy/agent',
      name: 'ipBlock minus excepts (IPv4, 3 excepts)',
      hand: () => subtractBigint(block4.cidr, block4.except),
      ipnum: () => subtractCidrs(block4.cidr, block4.except),
    },
    {
      path: 'policy/agent',
      name: 'ipBlock minus excepts (IPv6, nested excepts)',
      hand: () => subtractBigint(block6.cidr, block6.except),
      ipnum: () => subtractCidrs(block6.cidr, block6.except),
    },
    { path: 'policy/agent', name: 'ipBlock holds an address (IPv4)', hand: () => blockHand(block4, ip4), ipnum: () => ipBlockContains(block4, ip4) },
    { path: 'policy/agent', name: 'ipBlock holds an address (IPv6)', hand: () => blockHand(block6, ip6), ipnum: () => ipBlockContains(block6, ip6) },
    { path: 'policy/agent', name: 'ends of a CIDR seen for the first time', hand: () => spanBigint(withHost), ipnum: () => cidrRange(withHost).toRangeSet() },
    { path: 'policy/agent', name: "a CIDR's network (routes, ipBlock), seen before", hand: () => networkOf(withHost), ipnum: () => cidrNetwork(withHost) },
    {
      path: 'policy/agent',
      name: "ends of 5k node CIDRs seen for the first time (the agent's first sync)",
      hand: () => nodes.map(spanBigint),
      ipnum: () => nodes.map((c) => cidrRange(c).toRangeSet()),
    },
    {
      path: 'policy/agent',
      name: 'masquerade set: outermost of 5k node CIDRs, seen before',
      hand: () => outermostBigint(nodes),
      ipnum: () => outermostCidrs(nodes),
    },
  ];
}

let sink: unknown;
/** ns per call over a batch of `n` calls. */
function time(fn: () => unknown, n: number): number {
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink = fn();
  return Number(process.hrtime.bigint() - t) / n;
}
/** Calls per batch so one batch takes about BATCH_MS, after a warm-up of as long. */
function calibrate(fn: () => unknown): number {
  const t = performance.now();
  let calls = 0;
  while (calls < 3 || performance.now() - t < BATCH_MS) {
    sink = fn();
    calls++;
  }
  return Math.max(1, Math.round((calls * BATCH_MS) / (performance.now() - t)));
}

// ---- load time, as the plugin is built ----
function bundle(dir: string, name: string, contents: string): Promise<{ file: string; bytes: number }> {
  return bundleLikeBuild(dir, `ip-${name}`, contents, root);
}

const LOAD_CHILD = `const { enableCompileCache } = require('node:module');
enableCompileCache(process.argv[2]);
const t = performance.now();
require(process.argv[1]);
process.stdout.write(String(performance.now() - t));`;

function loadMs(file: string, cacheDir: string): number {
  const r = spawnSync(process.execPath, ['-e', LOAD_CHILD, file, cacheDir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`load ${file}: ${r.stderr}`);
  return Number(r.stdout);
}

async function loads(): Promise<Record<Side, { ms: number[]; bytes: number }>> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-ip-'));
  try {
    const hand = "export * from './src/ip.ts'; export { PodRange } from './src/ipam/range.ts';";
    const files = {
      hand: await bundle(dir, 'hand', hand),
      ipnum: await bundle(dir, 'ipnum', `${hand} export { IPv4, IPv6, IPv4CidrRange, IPv6CidrRange } from 'ip-num';`),
    };
    const cache = path.join(dir, 'cache');
    const out: Record<Side, { ms: number[]; bytes: number }> = { hand: { ms: [], bytes: files.hand.bytes }, ipnum: { ms: [], bytes: files.ipnum.bytes } };
    for (const s of ['hand', 'ipnum'] as const) loadMs(files[s].file, cache); // fills the compile cache
    for (let i = 0; i < LOADS; i++)
      for (const s of i % 2 === 0 ? (['hand', 'ipnum'] as const) : (['ipnum', 'hand'] as const)) out[s].ms.push(loadMs(files[s].file, cache));
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const fmt = (ns: number): string => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(2)} µs` : `${ns.toFixed(0)} ns`);

async function main(): Promise<void> {
  const loadavg = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const all = cases();
  const batch = all.map((c) => ({ hand: calibrate(c.hand), ipnum: calibrate(c.ipnum) }));
  const ns = all.map(() => ({ hand: [] as number[], ipnum: [] as number[], ratio: [] as number[] }));
  for (let r = 0; r < ROUNDS; r++) {
    all.forEach((c, i) => {
      const m = ns[i] as { hand: number[]; ipnum: number[]; ratio: number[] };
      const b = batch[i] as Record<Side, number>;
      const order: Side[] = r % 2 === 0 ? ['hand', 'ipnum'] : ['ipnum', 'hand'];
      const got: Partial<Record<Side, number>> = {};
      for (const s of order) got[s] = time(c[s], b[s]);
      m.hand.push(got.hand as number);
      m.ipnum.push(got.ipnum as number);
      m.ratio.push((got.ipnum as number) / (got.hand as number));
    });
    process.stderr.write(`round ${r + 1}/${ROUNDS}\n`);
  }
  const load = await loads();
  const ipnumVersion = JSON.parse(fs.readFileSync(path.join(root, 'node_modules/ip-num/package.json'), 'utf8')).version as string;

  console.log(`ip-num ${ipnumVersion}, Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), load average ${loadavg}`);
  console.log(`${ROUNDS} rounds, batches of about ${BATCH_MS} ms; medians per call; ratio = median over rounds of ip-num / hand-written in the same round\n`);
  console.log('| path | operation | hand-written | ip-num | ratio |');
  console.log('| --- | --- | --- | --- | --- |');
  all.forEach((c, i) => {
    const m = ns[i] as { hand: number[]; ipnum: number[]; ratio: number[] };
    console.log(`| ${c.path} | ${c.name} | ${fmt(pct(m.hand, 0.5))} | ${fmt(pct(m.ipnum, 0.5))} | ${pct(m.ratio, 0.5).toFixed(1)}x |`);
  });
  const lh = pct(load.hand.ms, 0.5);
  const li = pct(load.ipnum.ms, 0.5);
  console.log(
    `| ADD | load the address code (esbuild bundle, compile cache warm; ${LOADS} processes) | ${lh.toFixed(2)} ms | ${li.toFixed(2)} ms | ${(li / lh).toFixed(1)}x |`,
  );
  console.log(
    `| ADD | bundle size | ${(load.hand.bytes / 1024).toFixed(1)} KiB | ${(load.ipnum.bytes / 1024).toFixed(1)} KiB | ${(load.ipnum.bytes / load.hand.bytes).toFixed(1)}x |`,
  );
  if (sink === Symbol.for('never')) console.log('');
}

await main();
