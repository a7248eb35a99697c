// In-process micro-benchmark of the agent's per-event policy work, without a
// kernel or an API server: the synthetic cluster of scripts/bench/policy
// (10k pods on 100 nodes, 1k policies, the bench node holding 1%), compiled
// for the bench node, then one pod relabel and one policy change, each timed
// as compilePolicies (continuing from the last, as the engine does) +
// diffTransaction (what PolicyEngine.sync does besides running the
// transaction). Also the cost of the reconciler's whole-cluster
// PolicyEvaluator, and the heap retained by one applied ruleset.
// Usage: node --expose-gc scripts/bench/compile-micro.ts [--pods N] [--policies N] [--reps N]
import { type CompileOptions, compilePolicies, indexerFor } from '../../src/policy/compile.ts';
import { PolicyEvaluator } from '../../src/policy/evaluator.ts';
import { diffTransaction } from '../../src/policy/ruleset.ts';
import type { NetworkPolicy, Pod } from '../../src/policy/types.ts';
import { f1 } from './lib/format.ts';
import { gc } from './lib/host.ts';
import { pct } from './lib/stats.ts';
import { benchOptions } from './options.ts';
import { BENCH_NODE, BENCH_POD_CIDR, makeCluster, snapshot } from './policy/cluster.ts';

const USAGE = `usage: node --expose-gc scripts/bench/compile-micro.ts [options]
  --pods N      pods in the synthetic cluster (default 10000)
  --policies N  NetworkPolicies (default 1000)
  --reps N      timed repetitions of each change (default 9)`;
const { int } = benchOptions('compile-micro', USAGE, {
  pods: { type: 'string', default: '10000' },
  policies: { type: 'string', default: '1000' },
  reps: { type: 'string', default: '9' },
});
const PODS = int('pods', 1);
const POLICIES = int('policies', 0);
const REPS = int('reps', 1);
const heapMiB = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

const heap0 = heapMiB();
const c = makeCluster({ pods: PODS, policies: POLICIES, seed: 1 });
const opts: CompileOptions = { nodeName: BENCH_NODE, guardCIDRs: [BENCH_POD_CIDR] };
const heapCluster = heapMiB();

let t = performance.now();
// The engine keeps one indexer across syncs: each sync continues from the last.
const indexer = indexerFor(snapshot(c), opts);
let res = compilePolicies(snapshot(c), opts, indexer);
indexer.sets.commit();
const coldMs = performance.now() - t;
let applied = res.ruleset;
let elements = 0;
for (const s of applied.sets.values()) elements += s.elements.size;
let rules = 0;
for (const ch of applied.chains.values()) rules += ch.rules.length;
console.log(
  `cluster: ${PODS} pods, ${POLICIES} policies; bench node ${BENCH_NODE}: ${res.endpoints.length} local pods, ${res.policyChains.size} policies compiled`,
);
console.log(`table: ${applied.sets.size} sets/maps, ${elements} elements, ${applied.chains.size} chains, ${rules} rules`);
console.log(`cold compile: ${f1(coldMs)} ms`);
const changed = [...res.policyChains.keys()].find((ref) =>
  c.state.policies.some((p) => `${p.metadata?.namespace}/${p.metadata?.name}` === ref && p.spec?.ingress?.length),
) as string;
res = undefined as never;
const heapApplied = heapMiB();
console.log(
  `heap: cluster objects ${f1(heapCluster - heap0)} MiB; applied ruleset (+ caches) ${f1(heapApplied - heapCluster)} MiB; total ${f1(heapApplied)} MiB`,
);

// One sync as the engine does it, minus running the transaction.
function sync(): { compile: number; diff: number; ops: number } {
  const t0 = performance.now();
  const r = compilePolicies(snapshot(c), opts, indexer);
  const t1 = performance.now();
  const { tx } = diffTransaction(applied, r.ruleset);
  indexer.sets.commit();
  const t2 = performance.now();
  applied = r.ruleset;
  return { compile: t1 - t0, diff: t2 - t1, ops: tx.size };
}

const localIdx = c.state.pods
  .map((p, i) => [p, i] as const)
  .filter(([p]) => p.spec?.nodeName === BENCH_NODE)
  .map(([, i]) => i);
const remoteIdx = c.state.pods
  .map((p, i) => [p, i] as const)
  .filter(([p]) => p.spec?.nodeName !== BENCH_NODE)
  .map(([, i]) => i);
const relabel = (i: number, k: number): void => {
  const p = c.state.pods[i] as Pod;
  const app = k % 2 === 0 ? 'web' : 'api';
  c.state.pods[i] = { ...p, metadata: { ...p.metadata, labels: { ...(p.metadata?.labels ?? {}), app }, resourceVersion: `r${k}` } };
};
const changePolicy = (k: number): void => {
  // A policy of the bench node's (one compiled there): its first ingress rule gains a port, then loses it.
  const i = c.state.policies.findIndex((p) => `${p.metadata?.namespace}/${p.metadata?.name}` === changed);
  const p = c.state.policies[i] as NetworkPolicy;
  const spec = structuredClone(p.spec ?? {});
  spec.ingress = spec.ingress?.length ? spec.ingress : [{}];
  const r0 = spec.ingress[0] as NonNullable<typeof spec.ingress>[number];
  r0.ports = k % 2 === 0 ? [...(r0.ports ?? []), { protocol: 'TCP', port: 7000 + k }] : (r0.ports ?? []).slice(0, 1);
  spec.policyTypes = [...new Set([...(spec.policyTypes ?? []), 'Ingress'])];
  c.state.policies[i] = { ...p, metadata: { ...p.metadata, resourceVersion: `r${k}` }, spec };
};
const idle = (): void => {};

const cases: Array<[string, (k: number) => void]> = [
  ['no change', idle],
  ['local pod relabel', (k) => relabel(localIdx[k % localIdx.length] as number, k)],
  ['remote pod relabel', (k) => relabel(remoteIdx[(k * 37) % remoteIdx.length] as number, k)],
  ['policy change', changePolicy],
];
sync(); // warm
for (const [name, change] of cases) {
  const comp: number[] = [];
  const diff: number[] = [];
  const tot: number[] = [];
  const ops: number[] = [];
  for (let k = 0; k < REPS; k++) {
    change(k);
    const s = sync();
    comp.push(s.compile);
    diff.push(s.diff);
    tot.push(s.compile + s.diff);
    ops.push(s.ops);
  }
  console.log(
    `${name.padEnd(20)} compile p50 ${f1(pct(comp, 0.5))} ms, diff p50 ${f1(pct(diff, 0.5))} ms, total p50 ${f1(pct(tot, 0.5))} max ${f1(Math.max(...tot))} ms; tx ops p50 ${pct(ops, 0.5)}`,
  );
}

t = performance.now();
const ev = new PolicyEvaluator(snapshot(c));
console.log(`PolicyEvaluator over the whole cluster (reconciler purge): ${f1(performance.now() - t)} ms${ev ? '' : ''}`);
console.log(`heap after syncs: ${f1(heapMiB())} MiB; rss ${f1(process.memoryUsage().rss / 2 ** 20)} MiB`);
