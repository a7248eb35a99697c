// One measurement of scripts/bench-metrics in a process of its own, started
// by main.ts with one JSON argument ({ lib, task, ... }); prints its result as
// one JSON line. It imports nothing but Node's built-ins until the task says
// so, so a module load is timed from a process that has loaded no metrics
// code yet.
//
// Tasks:
// - memory: the agent's built-ins loaded, the spec and the workload module
//   read, then (lib "agent") the agent's metrics code imported (prom-client
//   with it) and the metric set built and filled; heap used (after full
//   collections) and RSS at each step. lib "none" stops before the import:
//   the empty baseline.
// - render: the filled set rendered `scrapes` times (after 20 untimed), with one
//   counter increment between scrapes as the agent would have; the last text
//   is written to `out`.
// - hot: the calls the agent makes per packet or per DNS answer, timed in
//   batches of `ops` on the filled set.
// - load-bare | load-agent | load-bundle: the time to import prom-client in a
//   fresh process; with the agent's built-ins already loaded; the esbuild
//   bundle `bundle` of the agent's metrics code required with the agent's
//   built-ins loaded and Node's compile cache in `cacheDir` (the executable
//   has V8's code cache too).
import fs from 'node:fs';
import { createRequire, enableCompileCache } from 'node:module';

interface Args {
  lib: 'agent' | 'none';
  task: 'memory' | 'render' | 'hot' | 'load-bare' | 'load-agent' | 'load-bundle';
  spec?: string;
  out?: string;
  scrapes?: number;
  ops?: number;
  batches?: number;
  bundle?: string;
  cacheDir?: string;
}

const a = JSON.parse(process.argv[2] ?? '{}') as Args;
if (a.task === 'load-bundle' && a.cacheDir) enableCompileCache(a.cacheDir);

/** Built-in modules the agent has loaded before it builds its metrics (its server, API client, nflog and DNS paths). */
const AGENT_BUILTINS = ['node:http', 'node:https', 'node:tls', 'node:crypto', 'node:zlib', 'node:perf_hooks', 'node:v8', 'node:stream', 'node:net', 'node:url'];
async function agentBuiltins(): Promise<void> {
  for (const b of AGENT_BUILTINS) await import(b);
}

const gc = (globalThis as { gc?: () => void }).gc;
async function settled(): Promise<{ heapUsed: number; rss: number }> {
  if (!gc) throw new Error('bench-metrics child: run with --expose-gc');
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss };
}

type Built = { render: () => Promise<string>; get: import('./fill.ts').Lookup };
type FillModule = typeof import('./fill.ts');

async function builder(lib: Args['lib']): Promise<{ build: (spec: import('./fill.ts').Spec) => Built }> {
  if (lib === 'agent') return import('./build.ts');
  throw new Error(`bench-metrics child: no metrics for ${lib}`);
}

function readSpec(): import('./fill.ts').Spec {
  if (!a.spec) throw new Error('bench-metrics child: no spec');
  return JSON.parse(fs.readFileSync(a.spec, 'utf8'));
}

async function filled(): Promise<{ set: Built; w: FillModule }> {
  await agentBuiltins();
  const w = await import('./fill.ts');
  const spec = readSpec();
  const set = (await builder(a.lib)).build(spec);
  w.fill(set.get, spec);
  return { set, w };
}

let keep: unknown;
async function memory(): Promise<Record<string, unknown>> {
  await agentBuiltins();
  const w = await import('./fill.ts');
  const spec = readSpec();
  const empty = await settled();
  if (a.lib === 'none') return { empty };
  const b = await builder(a.lib);
  const loaded = await settled();
  const set = b.build(spec);
  w.fill(set.get, spec);
  keep = set;
  const full = await settled();
  return { empty, loaded, filled: full, kept: keep !== undefined };
}

async function render(): Promise<Record<string, unknown>> {
  const { set } = await filled();
  const answers = set.get('weir_dns_answers_total');
  const scrape = (): Promise<string> => set.render();
  for (let i = 0; i < 20; i++) await scrape();
  const ms: number[] = [];
  let text = '';
  for (let i = 0; i < (a.scrapes ?? 300); i++) {
    answers.labels({ result: 'none' }).inc();
    const t0 = performance.now();
    text = await scrape();
    ms.push(performance.now() - t0);
  }
  if (a.out) fs.writeFileSync(a.out, text);
  return { ms, bytes: Buffer.byteLength(text) };
}

async function hot(): Promise<Record<string, unknown>> {
  const { set, w } = await filled();
  const ops = a.ops ?? 200_000;
  const batches = a.batches ?? 7;
  const denied = set.get('weir_denied_packets_total');
  const hold = set.get('weir_dns_hold_seconds');
  const isolated = set.get('weir_isolated_pods');
  const DIR = ['ingress', 'egress'];
  const ACT = ['drop', 'audit'];
  const next = w.durations(4, 0.0003);
  const vals = Float64Array.from({ length: 1024 }, next);
  // Each loop builds its label object per call, as the agent's call sites do.
  const cases: Record<string, (n: number) => void> = {
    'counter-labels-inc': (n) => {
      for (let i = 0; i < n; i++) denied.labels({ direction: DIR[i & 1] as string, action: ACT[(i >> 1) & 1] as string }).inc();
    },
    'histogram-observe': (n) => {
      for (let i = 0; i < n; i++) hold.observe(vals[i & 1023] as number);
    },
    'gauge-labels-set': (n) => {
      for (let i = 0; i < n; i++) isolated.labels({ direction: DIR[i & 1] as string }).set(i);
    },
  };
  const out: Record<string, number[]> = {};
  for (const [name, fn] of Object.entries(cases)) {
    fn(ops); // warm-up: optimized code before timing
    const ns: number[] = [];
    for (let b = 0; b < batches; b++) {
      const t0 = process.hrtime.bigint();
      fn(ops);
      ns.push(Number(process.hrtime.bigint() - t0) / ops);
    }
    out[name] = ns;
  }
  return { nsPerOp: out };
}

async function load(): Promise<Record<string, unknown>> {
  if (a.lib === 'none') throw new Error('bench-metrics child: load needs lib "agent"');
  if (a.task !== 'load-bare') await agentBuiltins();
  const t0 = performance.now();
  if (a.task === 'load-bundle') {
    if (!a.bundle) throw new Error('bench-metrics child: no bundle');
    createRequire(import.meta.url)(a.bundle);
  } else await import('prom-client');
  return { ms: performance.now() - t0 };
}

const tasks = { memory, render, hot, 'load-bare': load, 'load-agent': load, 'load-bundle': load };
const result = await tasks[a.task]();
process.stdout.write(`${JSON.stringify(result)}\n`);
