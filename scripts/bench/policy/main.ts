// NetworkPolicy benchmark, run through scripts/bench-policy. Two parts, one run:
//
// 1. Sync (sync.ts): synthetic clusters (cluster.ts) compiled for one node
//    and applied by the real engine (PolicyEngine over LibNftables) into a
//    fresh network namespace: full-sync time and transaction size, then pods
//    added one at a time, each an incremental sync whose diff transaction is
//    measured alone (the kernel update) and end to end (compile + diff +
//    apply).
// 2. Datapath (datapath.ts, conditions.ts): a node namespace with two pods
//    made by the real plugin (dist/bin/weir), an HTTP server (agnhost
//    netexec) and iperf3 in one, ab and iperf3 -c in the other; new TCP
//    connections per second and single-stream throughput under each
//    condition (no weir table but conntrack on; weir with 0, 100, 1k
//    policies; a linear ruleset made from the same 100 and 1k policies,
//    linear.ts), interleaved in passes.
// With --cluster-policies N, every cluster also has N ClusterNetworkPolicies
// (cluster-policies.ts): the sync part then times edits of a NetworkPolicy
// and of a ClusterNetworkPolicy too (changes.ts), and the datapath part adds
// weir with them and the pair's own Admin Pass policies (pair-tiers.ts).
//
// Everything happens in namespaces made here (named after WEIR_BENCH_TAG),
// removed at the end, on failure and on Ctrl-C alike; the root namespace is
// snapshotted before and compared after (namespaces.ts). The report:
// report.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchTag, interruptible, linkChange, loadavg, logger, rootLinks, run, taggedNetns } from '../lib/host.ts';
import { benchOptions } from '../options.ts';
import type { Condition } from './conditions.ts';
import { agentSyncExtra, type BenchConfig, type RunContext } from './config.ts';
import { datapathPart } from './datapath.ts';
import { RunNamespaces } from './namespaces.ts';
import { datapathReport, machine, syncReport, targets } from './report.ts';
import { type SyncRow, syncPart } from './sync.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const USAGE = `usage: scripts/bench-policy [options]
  --sizes LIST        sync part: PODSxPOLICIES,... (default 1000x100,1000x1000,10000x100,10000x1000)
  --reps N            full syncs per size, each into a fresh netns (default 3)
  --adds N            pods added one by one after each full sync (default 5)
  --dp-pods N         pods of the datapath part's cluster (default 1000)
  --dp-policies LIST  policy counts of the datapath conditions (default 100,1000)
  --rounds N          iperf3 passes, each measuring every condition once (default 3)
  --ab-passes N       ab passes, each measuring every condition once (default 10)
  --requests N        ab requests per measurement (default 5000)
  --concurrency N     ab concurrency (default 8)
  --iperf-seconds N   iperf3 -t (default 5)
  --cluster-policies N  ClusterNetworkPolicies added to every cluster (default 0; cluster-policies.ts):
                      the sync part also times a NetworkPolicy and a ClusterNetworkPolicy
                      change, the datapath part adds weir with them and the pair's own
                      Admin Pass policies (pair-tiers.ts)
  --no-masquerade     weir's table without the agent's masquerade chain (default: with it, as the agent writes it)
  --seed N            cluster seed (default 1)
  --nice N            niceness of the benchmark and everything it starts (default -5:
                      a shared machine's other work takes less from the measurements; 0 to keep)
  --skip-sync | --skip-datapath
  --build             rebuild dist/bin/weir first (otherwise only when it is missing)`;

const { opt, int } = benchOptions('bench-policy', USAGE, {
  sizes: { type: 'string', default: '1000x100,1000x1000,10000x100,10000x1000' },
  reps: { type: 'string', default: '3' },
  adds: { type: 'string', default: '5' },
  'dp-pods': { type: 'string', default: '1000' },
  'dp-policies': { type: 'string', default: '100,1000' },
  rounds: { type: 'string', default: '3' },
  requests: { type: 'string', default: '5000' },
  'ab-passes': { type: 'string', default: '10' },
  concurrency: { type: 'string', default: '8' },
  'iperf-seconds': { type: 'string', default: '5' },
  'cluster-policies': { type: 'string', default: '0' },
  'no-masquerade': { type: 'boolean', default: false },
  seed: { type: 'string', default: '1' },
  nice: { type: 'string', default: '-5' },
  'skip-sync': { type: 'boolean', default: false },
  'skip-datapath': { type: 'boolean', default: false },
  build: { type: 'boolean', default: false },
});
const REPS = int('reps', 1);
const ADDS = int('adds', 1, 50);
const DP_PODS = int('dp-pods', 0, 19_000);
const ROUNDS = int('rounds', 1);
const REQUESTS = int('requests', 100);
const AB_PASSES = int('ab-passes', 1, 100);
const CONCURRENCY = int('concurrency', 1, 1000);
const IPERF_SECS = int('iperf-seconds', 1, 60);
const SEED = int('seed', 0);
const CNPS = int('cluster-policies', 0, 1000);
const NICE = (() => {
  const v = Number(opt.nice);
  if (!Number.isInteger(v) || v < -20 || v > 19) {
    console.error(`bench-policy: --nice must be an integer in -20..19\n${USAGE}`);
    process.exit(2);
  }
  return v;
})();
const MASQ = opt['no-masquerade'] !== true;
const SIZES = String(opt.sizes)
  .split(',')
  .filter(Boolean)
  .map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m || Number(m[1]) > 19_000) {
      console.error(`bench-policy: bad size ${s} (PODSxPOLICIES, at most 19000 pods)`);
      process.exit(2);
    }
    return { pods: Number(m[1]), policies: Number(m[2]) };
  });
const DP_POLICIES = String(opt['dp-policies']).split(',').filter(Boolean).map(Number);
if (DP_POLICIES.some((n) => !Number.isInteger(n) || n < 1)) {
  console.error('bench-policy: bad --dp-policies');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error('bench-policy: needs root (network namespaces)');
  process.exit(1);
}

const cfg: BenchConfig = {
  sizes: SIZES,
  reps: REPS,
  adds: ADDS,
  dpPods: DP_PODS,
  dpPolicies: DP_POLICIES,
  rounds: ROUNDS,
  requests: REQUESTS,
  abPasses: AB_PASSES,
  concurrency: CONCURRENCY,
  iperfSecs: IPERF_SECS,
  seed: SEED,
  cnps: CNPS,
  masq: MASQ,
};

const started = performance.now();
// Inherited by every process started from here (the main thread's niceness).
if (NICE !== 0) os.setPriority(0, NICE);
const loadBefore = loadavg();
const NODE = path.join(root, 'node_modules/.bin/node');
const WEIR = path.join(root, 'dist/bin/weir');
const TAG = benchTag('wbpol');
const log = logger('bench-policy');
const ns = new RunNamespaces(TAG, log);
const { aborted, checkpoint } = interruptible();
const x: RunContext = { cfg, ns, extra: agentSyncExtra(MASQ), log, checkpoint };
const syncRows: SyncRow[] = [];
const conditions: Condition[] = [];

// ---- the run ---------------------------------------------------------------------------
let exitCode = 0;
const rootBefore = rootLinks();
try {
  if (!opt['skip-datapath'] && (opt.build || !fs.existsSync(WEIR))) run(NODE, [path.join(root, 'scripts/build.mjs')], { timeoutMs: 600_000 });
  ns.tmp = fs.mkdtempSync(`/tmp/${TAG}.`);
  if (!opt['skip-sync']) await syncPart(x, syncRows);
  if (!opt['skip-datapath']) await datapathPart(x, root, WEIR, conditions);
  const out: string[] = ['', machine(loadBefore), ''];
  if (syncRows.length) {
    syncReport(out, cfg, syncRows);
    out.push('');
  }
  if (conditions.length) {
    datapathReport(out, cfg, conditions);
    out.push('');
  }
  targets(out, cfg, syncRows, conditions);
  console.log(out.join('\n'));
} catch (e) {
  await new Promise((r) => setImmediate(r)); // let a pending signal handler run
  console.error(`bench-policy: ${aborted() ? `interrupted (${aborted()}): ` : ''}${(e as Error).stack ?? e}`);
  exitCode = aborted() ? 130 : 1;
} finally {
  const alive = await ns.removeAll();
  if (ns.tmp) fs.rmSync(ns.tmp, { recursive: true, force: true });
  const left = taggedNetns(TAG);
  const { text: links, leaked } = linkChange(rootBefore, rootLinks());
  console.log(
    `\ncleanup: ${ns.created} netns created and deleted; left over: ${left.length ? left.join(' ') : 'none'}; ${ns.children.length} server processes started, ${alive.length ? `STILL RUNNING: ${alive.join(' ')}` : 'all stopped'}; root netns links ${links}`,
  );
  if (left.length || alive.length || leaked.length) exitCode ||= 1;
  console.log(`total time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  process.exit(exitCode);
}
