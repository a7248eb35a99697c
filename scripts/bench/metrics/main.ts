// scripts/bench-metrics: what the agent's metrics cost it on prom-client,
// the set built as the agent builds it (build.ts: AgentMetrics' constructor
// and the DNS path's families) and filled as a busy agent's would be at 10k
// pods x 1k policies (fill.ts). Every measurement runs in a fresh child
// process (child.ts) with the agent's V8 flags:
// - heap used and RSS after filling, against a baseline process that loaded
//   the same built-ins and workload module but no metrics code;
// - the time to render the exposition text (p50/p99 over all scrapes of all
//   rounds) and its size;
// - the time per call on the hot paths (a labelled counter increment per
//   denied packet or DNS answer, a histogram observation per DNS answer, a
//   labelled gauge set per sync);
// - prom-client's load time: imported in a fresh process, imported after the
//   built-ins the agent loads anyway; and the agent's metrics code bundled by
//   esbuild as scripts/build.mjs bundles the agent (with Node's compile cache
//   warm, as the executable has V8's code cache), with the bundle's size.
// Then the exposition is parsed (src/weirctl/metrics.ts) and checked: every
// sample line reads, each family's lines are together, no series twice, the
// families and series the agent registers. Prints Markdown; exits 1 when the
// check fails.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { AgentMetrics } from '../../../src/agent/agent-metrics.ts';
import { DnsPath } from '../../../src/agent/dns.ts';
import type { DnsKernelOps } from '../../../src/agent/dns-kernel.ts';
import { parsePrometheus } from '../../../src/weirctl/metrics.ts';
import { pct } from '../agent/report.ts';
import { bundleLikeBuild } from '../lib/bundle.ts';
import { benchOptions } from '../options.ts';
import { CLUSTER, type FamilySpec, type Spec } from './fill.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const CHILD = path.join(root, 'scripts/bench/metrics/child.ts');
const NODE = path.join(root, 'node_modules/.bin/node');
/** The agent executable's V8 flags (scripts/build.mjs): they size the heap whose RSS is measured. */
const AGENT_FLAGS = ['--max-semi-space-size=4', '--no-memory-balancer', '--heap-growing-percent=20'];

const USAGE = `usage: scripts/bench-metrics [options]
  --rounds N       rounds, each measuring once per measure in fresh processes (default 7)
  --scrapes N      timed renders per round, at least 200 (default 300)
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

// ---- the DNS path's families, read off a real DnsPath ------------------------------
/** Families and series of the agent's set without the hypothetical one (AgentMetrics and the DNS path). */
const AGENT_SET = { families: 37, series: 131 };

function makeSpec(): Spec {
  const agent = new AgentMetrics();
  const own = new Set(agent.registry.getMetricsAsArray().map((m) => m.name));
  // The DNS path registers its families on the agent's registry (run.ts, dns-agent.ts); the constructor needs no kernel.
  new DnsPath({} as DnsKernelOps, agent.registry, {} as Logger);
  const dns: FamilySpec[] = [];
  for (const m of agent.registry.getMetricsAsArray()) {
    if (own.has(m.name)) continue;
    const c = m as unknown as { type: FamilySpec['type']; labelNames: string[]; upperBounds?: number[] };
    dns.push({
      name: m.name,
      help: m.help,
      type: c.type,
      labelNames: [...c.labelNames],
      ...(c.type === 'histogram' && c.upperBounds ? { buckets: [...c.upperBounds] } : {}),
    });
  }
  if (own.size + dns.length !== AGENT_SET.families)
    throw new Error(`bench-metrics: the agent registers ${own.size + dns.length} families, not ${AGENT_SET.families}`);
  return { dns, podSeries: POD_SERIES };
}

// ---- children ----------------------------------------------------------------------
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

/** The agent's metrics code (prom-client included) bundled with scripts/build.mjs's options for the agent. */
function bundle(dir: string): Promise<{ file: string; bytes: number }> {
  const contents = "export { AgentMetrics } from './src/agent/agent-metrics.ts'; export { metricsOn } from './src/agent/metrics.ts';";
  return bundleLikeBuild(dir, 'agent-metrics', contents, root);
}

// ---- statistics and formatting -----------------------------------------------------
const median = (xs: readonly number[]): number => pct(xs, 0.5);
const kib = (b: number): string => `${(b / 1024).toFixed(1)} KiB`;
const ms2 = (x: number): string => `${x.toFixed(2)} ms`;
const ns0 = (x: number): string => `${x.toFixed(0)} ns`;

interface Mem {
  empty: { heapUsed: number; rss: number };
  loaded?: { heapUsed: number; rss: number };
  filled?: { heapUsed: number; rss: number };
}
interface Round {
  memory: { none: Mem; agent: Required<Mem> };
  render: { ms: number[]; bytes: number };
  hot: { nsPerOp: Record<string, number[]> };
  load: Record<'load-bare' | 'load-agent' | 'load-bundle', number>;
}

/** What a scraper and weirctl need of the exposition: every sample line reads, families whole, no series twice, the agent's families and series. */
function checkExposition(text: string, spec: Spec): { problems: string[]; families: number; samples: number } {
  const problems: string[] = [];
  const samples = parsePrometheus(text);
  const sampleLines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  if (samples.length !== sampleLines.length) problems.push(`${sampleLines.length - samples.length} sample lines do not parse`);
  const keys = new Set(samples.map((s) => `${s.name}{${Object.entries(s.labels).sort().join(',')}}`));
  if (keys.size !== samples.length) problems.push(`${samples.length - keys.size} duplicate series`);
  const families: string[] = [];
  let current = '';
  for (const l of text.split('\n')) {
    const t = /^# TYPE (\S+) /.exec(l);
    if (t) {
      current = t[1] as string;
      families.push(current);
    } else if (l.trim() !== '' && !l.startsWith('#') && !l.startsWith(current)) problems.push(`${l.split(/[{ ]/)[0]} outside its family`);
  }
  if (new Set(families).size !== families.length) problems.push('a family printed twice');
  const want = { families: AGENT_SET.families + (spec.podSeries > 0 ? 1 : 0), series: AGENT_SET.series + spec.podSeries };
  if (families.length !== want.families) problems.push(`${families.length} families, not ${want.families}`);
  if (samples.length !== want.series) problems.push(`${samples.length} series, not ${want.series}`);
  return { problems, families: families.length, samples: samples.length };
}

async function main(): Promise<number> {
  const started = performance.now();
  const loadBefore = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-metrics-'));
  try {
    const spec = makeSpec();
    const specFile = path.join(tmp, 'spec.json');
    fs.writeFileSync(specFile, JSON.stringify(spec));
    const bundled = await bundle(tmp);
    const cacheDir = path.join(tmp, 'compile-cache');
    child({ lib: 'agent', task: 'load-bundle', bundle: bundled.file, cacheDir }); // fills the cache
    const promVersion = JSON.parse(fs.readFileSync(path.join(root, 'node_modules/prom-client/package.json'), 'utf8')).version as string;
    const out = path.join(tmp, 'exposition.txt');

    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      log(`round ${r + 1}/${ROUNDS}`);
      rounds.push({
        memory: { none: child({ lib: 'none', task: 'memory', spec: specFile }), agent: child({ lib: 'agent', task: 'memory', spec: specFile }) },
        render: child({ lib: 'agent', task: 'render', spec: specFile, scrapes: SCRAPES, out }),
        hot: child({ lib: 'agent', task: 'hot', spec: specFile, ops: OPS }),
        load: {
          'load-bare': child({ lib: 'agent', task: 'load-bare' }).ms,
          'load-agent': child({ lib: 'agent', task: 'load-agent' }).ms,
          'load-bundle': child({ lib: 'agent', task: 'load-bundle', bundle: bundled.file, cacheDir }).ms,
        },
      });
    }

    // ---- the table ----
    const rows: string[] = [];
    /** A row: the median over rounds (or `pooled` over all samples) and the lowest and highest round. */
    const row = (label: string, fmt: (x: number) => string, m: (r: Round) => number, pooled?: number): void => {
      const per = rounds.map(m);
      rows.push(`| ${label} | ${fmt(pooled ?? median(per))} | ${fmt(Math.min(...per))}–${fmt(Math.max(...per))} |`);
    };
    const mem = (r: Round) => r.memory.agent;
    row('heap used after filling, Δ vs baseline process', kib, (r) => mem(r).filled.heapUsed - r.memory.none.empty.heapUsed);
    row('  of which the filled metric set (after fill − after import)', kib, (r) => mem(r).filled.heapUsed - mem(r).loaded.heapUsed);
    row('  of which the code loaded (after import − before)', kib, (r) => mem(r).loaded.heapUsed - mem(r).empty.heapUsed);
    row('RSS after filling, Δ vs baseline process', kib, (r) => mem(r).filled.rss - r.memory.none.empty.rss);
    const all = rounds.flatMap((r) => r.render.ms);
    row(`render p50 (${ROUNDS}×${SCRAPES} scrapes)`, ms2, (r) => pct(r.render.ms, 0.5), pct(all, 0.5));
    row('render p99', ms2, (r) => pct(r.render.ms, 0.99), pct(all, 0.99));
    row('exposition size', kib, (r) => r.render.bytes);
    const hot = (name: string) => (r: Round) => median(r.hot.nsPerOp[name] ?? []);
    row('counter `labels({..}).inc()` (per denied packet, per DNS answer)', ns0, hot('counter-labels-inc'));
    row('histogram `observe(v)` (per DNS answer)', ns0, hot('histogram-observe'));
    row('gauge `labels({..}).set(v)` (per sync)', ns0, hot('gauge-labels-set'));
    row('prom-client load: import in a fresh process', ms2, (r) => r.load['load-bare']);
    row("prom-client load: import, the agent's built-ins already loaded", ms2, (r) => r.load['load-agent']);
    row('metrics code load: esbuild bundle as the agent is built, compile cache warm', ms2, (r) => r.load['load-bundle']);
    row("metrics code bundle size (esbuild, the agent's options)", kib, () => bundled.bytes);

    const c = checkExposition(fs.readFileSync(out, 'utf8'), spec);
    const perPod = POD_SERIES > 0 ? ` (one of them the hypothetical per-pod counter, ${POD_SERIES} series)` : '';
    console.log(
      [
        `# bench-metrics: the agent's metric set on prom-client ${promVersion}`,
        '',
        `node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? '?'}), load average ${loadBefore} at start; children run with ${AGENT_FLAGS.join(' ')} --expose-gc, nice ${os.getPriority(0)}`,
        `workload: a day of a busy agent at ${CLUSTER.pods} pods on ${CLUSTER.nodes} nodes, ${CLUSTER.policies} policies (${CLUSTER.localPods} local pods): ${c.families} families${perPod}; 48k syncs, 200k DNS answers observed (scripts/bench/metrics/fill.ts)`,
        `${ROUNDS} rounds; each value is the median over rounds of one fresh process per measure (render: all scrapes pooled, nearest-rank), with the lowest and highest round`,
        '',
        '| measure | median | rounds |',
        '| --- | ---: | ---: |',
        ...rows,
        '',
        c.problems.length === 0
          ? `exposition: PASS — every sample line parses, each family's lines together, ${c.families} families and ${c.samples} series, none twice`
          : `exposition: FAIL — ${c.problems.join('; ')}`,
        `total time: ${((performance.now() - started) / 1000).toFixed(1)} s`,
      ].join('\n'),
    );
    return c.problems.length === 0 ? 0 : 1;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

process.exitCode = await main();
