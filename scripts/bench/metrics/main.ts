// scripts/bench-metrics: the agent's metric set on the in-house library
// (src/agent/metrics.ts, built by AgentMetrics' constructor) against the same
// set on prom-client, filled as a busy agent's would be at 10k pods x 1k
// policies (fill.ts). Every measurement runs in a fresh child process
// (child.ts) with the agent's V8 flags, the two libraries alternating within
// each round:
// - heap used and RSS after filling, against a baseline process that loaded
//   the same built-ins and workload module but no library;
// - the time to render the exposition text (p50/p99 over all scrapes of all
//   rounds) and its size;
// - the time per call on the hot paths (a labelled counter increment per
//   denied packet or DNS answer, a histogram observation per DNS answer, a
//   labelled gauge set per sync);
// - the library's load time: imported in a fresh process, imported after the
//   built-ins the agent loads anyway, and bundled by esbuild as
//   scripts/build.mjs bundles the agent (with Node's compile cache warm, as
//   the executable has V8's code cache); and the bundle's size.
// Then both expositions are parsed (src/weirctl/metrics.ts) and compared
// series by series. Prints Markdown; exits 1 when the expositions differ.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build as esbuild } from 'esbuild';
import type { Logger } from 'pino';
import { AgentMetrics } from '../../../src/agent/agent-metrics.ts';
import type { ClusterCache } from '../../../src/agent/cache.ts';
import { DnsPath } from '../../../src/agent/dns.ts';
import type { DnsKernelOps } from '../../../src/agent/dns-kernel.ts';
import { Histogram, Registry } from '../../../src/agent/metrics.ts';
import { parsePrometheus } from '../../../src/weirctl/metrics.ts';
import { pct } from '../agent/report.ts';
import { benchOptions } from '../options.ts';
import { CACHE, CLUSTER, type FamilySpec, HYPOTHETICAL, type Spec } from './fill.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHILD = path.join(root, 'scripts/bench/metrics/child.ts');
const NODE = path.join(root, 'node_modules/.bin/node');
/** The agent executable's V8 flags (scripts/build.mjs): they size the heap whose RSS is measured. */
const AGENT_FLAGS = ['--max-semi-space-size=4', '--no-memory-balancer', '--heap-growing-percent=20'];

const USAGE = `usage: scripts/bench-metrics [options]
  --rounds N       rounds, each measuring both libraries once per measure, alternating (default 7)
  --scrapes N      timed renders per round and library, at least 200 (default 300)
  --ops N          calls per timed batch on the hot paths (default 200000)
  --pod-series N   add a hypothetical counter labelled by namespace and pod with N series
                   (default 0: the agent has no per-pod metric)
  --nice N         niceness of the benchmark and its children (default -5 as root, else 0)`;
const { opt, int } = benchOptions('bench-metrics', USAGE, {
  rounds: { type: 'string', default: '7' },
  scrapes: { type: 'string', default: '300' },
  ops: { type: 'string', default: '200000' },
  'pod-series': { type: 'string', default: '0' },
  nice: { type: 'string', default: process.getuid?.() === 0 ? '-5' : '0' },
});
const ROUNDS = int('rounds', 1, 100);
const SCRAPES = int('scrapes', 200, 100_000);
const OPS = int('ops', 1000);
const POD_SERIES = int('pod-series', 0, 1_000_000);
const NICE = Number(opt.nice);
if (!Number.isInteger(NICE) || NICE < -20 || NICE > 19) {
  console.error(`bench-metrics: --nice must be an integer in -20..19\n${USAGE}`);
  process.exit(2);
}
if (NICE !== 0) os.setPriority(0, NICE);
const log = (s: string): void => void process.stderr.write(`bench-metrics: ${s}\n`);

// ---- the metric set's description ------------------------------------------------
/** Families read at render time, by how (agent-metrics.ts's Gauge `collect`s and metrics.ts's processCollectors()). */
const COLLECTED: Record<string, FamilySpec['collect']> = {
  weir_cache_objects: 'cache-count',
  weir_cache_digest: 'cache-digest',
  process_cpu_seconds_total: 'process-cpu',
  process_resident_memory_bytes: 'process-rss',
  process_start_time_seconds: 'process-start',
};

/** Every family of a registry, described from the registry itself (TYPE and HELP lines, label names, buckets). */
function describe(reg: Registry, source: (name: string) => FamilySpec['source']): FamilySpec[] {
  const text = reg.render();
  const help = new Map<string, string>();
  for (const m of text.matchAll(/^# HELP (\S+) (.*)$/gm))
    help.set(
      m[1] as string,
      (m[2] as string).replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\')),
    );
  return [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => {
    const name = m[1] as string;
    const c = reg.get(name) as { labelNames?: readonly string[] } | undefined;
    const collect = COLLECTED[name];
    return {
      name,
      help: help.get(name) ?? '',
      type: m[2] as FamilySpec['type'],
      labelNames: [...(c?.labelNames ?? [])],
      ...(c instanceof Histogram ? { buckets: [...c.buckets] } : {}),
      source: source(name),
      ...(collect ? { collect } : {}),
    };
  });
}

function makeSpec(): Spec {
  const agent = new AgentMetrics();
  agent.watchCache(CACHE as unknown as ClusterCache);
  const families = describe(agent.registry, (n) => (n.startsWith('process_') ? 'process' : 'agent'));
  // The DNS path registers its families on the agent's registry (run.ts, dns-agent.ts); the constructor needs no kernel.
  const dnsRegistry = new Registry({ processMetrics: false });
  new DnsPath({} as DnsKernelOps, dnsRegistry, {} as Logger);
  families.push(...describe(dnsRegistry, () => 'dns'));
  if (POD_SERIES > 0)
    families.push({
      name: HYPOTHETICAL,
      help: 'Hypothetical per-pod counter (scripts/bench-metrics --pod-series): not an agent metric.',
      type: 'counter',
      labelNames: ['namespace', 'pod'],
      source: 'hypothetical',
    });
  for (const n of Object.keys(COLLECTED))
    if (!families.some((f) => f.name === n)) throw new Error(`bench-metrics: ${n} is no longer in the agent's metric set`);
  families.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  return { families, podSeries: POD_SERIES };
}

// ---- children ----------------------------------------------------------------------
type Lib = 'inhouse' | 'prom-client';
const LIBS: readonly Lib[] = ['inhouse', 'prom-client'];

// biome-ignore lint/suspicious/noExplicitAny: a child's JSON result, of a shape per task.
function child(args: Record<string, unknown>): any {
  const r = spawnSync(NODE, [...AGENT_FLAGS, '--expose-gc', CHILD, JSON.stringify(args)], {
    cwd: root,
    encoding: 'utf8',
    timeout: 600_000,
    maxBuffer: 1 << 26,
  });
  if (r.error || r.status !== 0) throw new Error(`child ${JSON.stringify(args)}: ${r.error ?? ''}${r.signal ? ` (${r.signal})` : ''} ${r.stderr}`.trim());
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last);
}

async function bundle(lib: Lib, dir: string): Promise<{ file: string; bytes: number }> {
  const file = path.join(dir, `${lib}.cjs`);
  const contents =
    lib === 'inhouse'
      ? "export { Registry, Counter, Gauge, Histogram, exponentialBuckets, PROMETHEUS_CONTENT_TYPE } from './src/agent/metrics.ts';"
      : "export { Registry, Counter, Gauge, Histogram, exponentialBuckets } from 'prom-client';";
  // scripts/build.mjs's options for the agent's bundle.
  await esbuild({
    stdin: { contents, resolveDir: root, sourcefile: `bench-metrics-${lib}.ts`, loader: 'ts' },
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  return { file, bytes: fs.statSync(file).size };
}

// ---- statistics and formatting -----------------------------------------------------
const median = (xs: readonly number[]): number => pct(xs, 0.5);
const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
const ms2 = (x: number): string => `${x.toFixed(2)} ms`;
const ns0 = (x: number): string => `${x.toFixed(0)} ns`;
const range = (xs: readonly number[]): string => {
  const f = xs.filter(Number.isFinite);
  return f.length === 0 ? '–' : `${Math.min(...f).toFixed(2)}–${Math.max(...f).toFixed(2)}`;
};

interface Round {
  memory: Record<
    Lib | 'none',
    { empty: { heapUsed: number; rss: number }; loaded?: { heapUsed: number; rss: number }; filled?: { heapUsed: number; rss: number } }
  >;
  render: Record<Lib, { ms: number[]; bytes: number }>;
  hot: Record<Lib, { nsPerOp: Record<string, number[]> }>;
  load: Record<Lib, Record<'load-bare' | 'load-agent' | 'load-bundle', number>>;
}

async function main(): Promise<number> {
  const started = performance.now();
  const loadBefore = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-metrics-'));
  try {
    const spec = makeSpec();
    const specFile = path.join(tmp, 'spec.json');
    fs.writeFileSync(specFile, JSON.stringify(spec));
    const bundles = { inhouse: await bundle('inhouse', tmp), 'prom-client': await bundle('prom-client', tmp) };
    const cacheDir = path.join(tmp, 'compile-cache');
    for (const lib of LIBS) child({ lib, task: 'load-bundle', bundle: bundles[lib].file, cacheDir }); // fills the cache
    const promVersion = JSON.parse(fs.readFileSync(path.join(root, 'node_modules/prom-client/package.json'), 'utf8')).version as string;

    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      log(`round ${r + 1}/${ROUNDS}`);
      const order = r % 2 === 0 ? LIBS : [...LIBS].reverse();
      const round = { memory: {}, render: {}, hot: {}, load: {} } as Round;
      round.memory.none = child({ lib: 'none', task: 'memory', spec: specFile });
      for (const lib of order) round.memory[lib] = child({ lib, task: 'memory', spec: specFile });
      for (const lib of order) round.render[lib] = child({ lib, task: 'render', spec: specFile, scrapes: SCRAPES, out: path.join(tmp, `${lib}.txt`) });
      for (const lib of order) round.hot[lib] = child({ lib, task: 'hot', spec: specFile, ops: OPS });
      for (const lib of order) {
        round.load[lib] = {
          'load-bare': child({ lib, task: 'load-bare' }).ms,
          'load-agent': child({ lib, task: 'load-agent' }).ms,
          'load-bundle': child({ lib, task: 'load-bundle', bundle: bundles[lib].file, cacheDir }).ms,
        };
      }
      rounds.push(round);
    }

    // ---- the table ----
    type Measure = (round: Round, lib: Lib) => number;
    const rows: string[] = [];
    /** A row: each library's median over rounds (or `pooled` over all samples), the ratio of those, and the range of the per-round ratios. */
    const row = (label: string, fmt: (x: number) => string, m: Measure, pooled?: (lib: Lib) => number): void => {
      const v = (lib: Lib): number => (pooled ? pooled(lib) : median(rounds.map((r) => m(r, lib))));
      const a = v('inhouse');
      const b = v('prom-client');
      const perRound = rounds.map((r) => m(r, 'prom-client') / m(r, 'inhouse'));
      rows.push(`| ${label} | ${fmt(a)} | ${fmt(b)} | **${(b / a).toFixed(2)}** | ${range(perRound)} |`);
    };
    const mem = (r: Round, lib: Lib) => r.memory[lib] as Required<Round['memory'][Lib]>;
    row('heap used after filling, Δ vs baseline process', kib, (r, lib) => mem(r, lib).filled.heapUsed - r.memory.none.empty.heapUsed);
    row('  of which the filled metric set (after fill − after import)', kib, (r, lib) => mem(r, lib).filled.heapUsed - mem(r, lib).loaded.heapUsed);
    row('  of which the library loaded (after import − before)', kib, (r, lib) => mem(r, lib).loaded.heapUsed - mem(r, lib).empty.heapUsed);
    row('RSS after filling, Δ vs baseline process', kib, (r, lib) => mem(r, lib).filled.rss - r.memory.none.empty.rss);
    const all = (lib: Lib): number[] => rounds.flatMap((r) => r.render[lib].ms);
    row(
      `render p50 (${ROUNDS}×${SCRAPES} scrapes)`,
      ms2,
      (r, lib) => pct(r.render[lib].ms, 0.5),
      (lib) => pct(all(lib), 0.5),
    );
    row(
      'render p99',
      ms2,
      (r, lib) => pct(r.render[lib].ms, 0.99),
      (lib) => pct(all(lib), 0.99),
    );
    row('exposition size', kib, (r, lib) => r.render[lib].bytes);
    const hot =
      (name: string, promName = name): Measure =>
      (r, lib) =>
        median(r.hot[lib].nsPerOp[lib === 'prom-client' ? promName : name] ?? []);
    row('counter `labels({..}).inc()` (per denied packet, per DNS answer)', ns0, hot('counter-labels-inc'));
    row("  same, prom-client's own form `inc({..})`", ns0, hot('counter-labels-inc', 'counter-inc-labels'));
    row('histogram `observe(v)` (per DNS answer)', ns0, hot('histogram-observe'));
    row('gauge `labels({..}).set(v)` (per sync)', ns0, hot('gauge-labels-set'));
    row('module load: import in a fresh process', ms2, (r, lib) => r.load[lib]['load-bare']);
    row("module load: import, the agent's built-ins already loaded", ms2, (r, lib) => r.load[lib]['load-agent']);
    row('module load: esbuild bundle as the agent is built, compile cache warm', ms2, (r, lib) => r.load[lib]['load-bundle']);
    row("bundle size (esbuild, the agent's options)", kib, (_r, lib) => bundles[lib].bytes);

    // ---- the expositions, series by series ----
    const texts = {
      inhouse: fs.readFileSync(path.join(tmp, 'inhouse.txt'), 'utf8'),
      'prom-client': fs.readFileSync(path.join(tmp, 'prom-client.txt'), 'utf8'),
    };
    const check = (lib: Lib) => {
      const text = texts[lib];
      const samples = parsePrometheus(text);
      const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')).length;
      const families = [...text.matchAll(/^# TYPE /gm)].length;
      const series = new Map(
        samples.map((s) => [
          `${s.name}{${Object.entries(s.labels)
            .sort()
            .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
            .join(',')}}`,
          s.value,
        ]),
      );
      return { samples: samples.length, lines, families, series };
    };
    const ci = check('inhouse');
    const cp = check('prom-client');
    const problems: string[] = [];
    for (const [lib, c] of [['in-house', ci] as const, ['prom-client', cp] as const]) {
      if (c.samples !== c.lines) problems.push(`${lib}: ${c.lines - c.samples} sample lines do not parse`);
      if (c.series.size !== c.samples) problems.push(`${lib}: ${c.samples - c.series.size} duplicate series`);
    }
    if (ci.families !== spec.families.length || cp.families !== spec.families.length)
      problems.push(`families: spec ${spec.families.length}, in-house ${ci.families}, prom-client ${cp.families}`);
    const onlyIn = [...ci.series.keys()].filter((k) => !cp.series.has(k));
    const onlyProm = [...cp.series.keys()].filter((k) => !ci.series.has(k));
    if (onlyIn.length > 0) problems.push(`only in-house: ${onlyIn.slice(0, 5).join(' ')}${onlyIn.length > 5 ? ` (+${onlyIn.length - 5})` : ''}`);
    if (onlyProm.length > 0) problems.push(`only prom-client: ${onlyProm.slice(0, 5).join(' ')}${onlyProm.length > 5 ? ` (+${onlyProm.length - 5})` : ''}`);
    const differ = [...ci.series].filter(([k, v]) => !k.startsWith('process_') && cp.series.has(k) && !Object.is(cp.series.get(k), v));
    if (differ.length > 0)
      problems.push(
        `values differ: ${differ
          .slice(0, 5)
          .map(([k, v]) => `${k} ${v} vs ${cp.series.get(k)}`)
          .join('; ')}`,
      );

    const perPod = POD_SERIES > 0 ? ` (one of them the hypothetical per-pod counter, ${POD_SERIES} series)` : '';
    console.log(
      [
        `# bench-metrics: the agent's metric set, in-house (src/agent/metrics.ts) vs prom-client ${promVersion}`,
        '',
        `node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? '?'}), load average ${loadBefore} at start; children run with ${AGENT_FLAGS.join(' ')} --expose-gc, nice ${os.getPriority(0)}`,
        `workload: a day of a busy agent at ${CLUSTER.pods} pods on ${CLUSTER.nodes} nodes, ${CLUSTER.policies} policies (${CLUSTER.localPods} local pods): ${spec.families.length} families${perPod}; 48k syncs, 200k DNS answers observed (scripts/bench/metrics/fill.ts)`,
        `${ROUNDS} rounds; each value is the median over rounds of one fresh process per library and measure (render: all scrapes pooled, nearest-rank); ratio = prom-client / in-house of those values, range = the lowest and highest ratio of a single round`,
        '',
        '| measure | in-house | prom-client | ratio | range |',
        '| --- | ---: | ---: | ---: | ---: |',
        ...rows,
        '',
        problems.length === 0
          ? `expositions: PASS — both parse (every sample line), ${ci.families} families and ${ci.samples} series each, the same series; values equal except process_*`
          : `expositions: FAIL — ${problems.join('; ')}`,
        `total time: ${((performance.now() - started) / 1000).toFixed(1)} s`,
      ].join('\n'),
    );
    return problems.length === 0 ? 0 : 1;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

process.exitCode = await main();
