// The report of bench-policy, as Markdown: the machine, the sync part's
// tables, the datapath part's table, and the PASS/FAIL lines against the
// targets (throughput and connection rate near no table at all; an
// incremental pod update applied to the kernel in under 5 ms).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { f1, f2 } from '../lib/format.ts';
import { BASE_ENV, loadavg } from '../lib/host.ts';
import { median } from '../lib/stats.ts';
import { BENCH_NODE, NODE_COUNT } from './cluster.ts';
import { type Condition, DENY_PROBE_PORT } from './conditions.ts';
import { type BenchConfig, k, kib } from './config.ts';
import type { SyncRow } from './sync.ts';

export function machine(loadBefore: string): string {
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? '?';
  const ver = (cmd: string, args: string[], re: RegExp): string => re.exec(spawnSync(cmd, args, { encoding: 'utf8', env: BASE_ENV }).stdout ?? '')?.[1] ?? '?';
  return [
    `machine: nproc ${os.availableParallelism()}, kernel ${os.release()}, ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB; node ${process.version}`,
    `load average (1/5/15 min) at start ${loadBefore}, at end ${loadavg()}: other work on the machine shares its ${os.availableParallelism()} cores with every measurement (this run: nice ${os.getPriority(0)})`,
    `tools: nftables ${ver('nft', ['--version'], /v([\d.]+)/)}, iperf3 ${ver('iperf3', ['--version'], /iperf ([\d.]+)/)}, ab ${ver('ab', ['-V'], /Version ([\d.]+)/)}`,
  ].join('\n');
}

export function syncReport(out: string[], cfg: BenchConfig, syncRows: SyncRow[]): void {
  out.push(`### Sync: full replacement, then one pod added (engine: PolicyEngine over LibNftables, fresh netns per repetition)\n`);
  out.push(
    `Synthetic clusters (scripts/bench/policy/cluster.ts, seed ${cfg.seed}): 50 namespaces, ${NODE_COUNT} nodes, labels app/tier/version from a small vocabulary; policies mix pod and namespace selectors, ipBlocks with except, numeric, range and named ports, ingress and egress. ${cfg.reps} full sync(s) per size, each followed by ${cfg.adds} incremental sync(s) adding one pod on this node that several policies select; p50 (median) shown. Node ${BENCH_NODE} holds 1% of the pods; the table includes the agent's guard of the node's pod range${cfg.masq ? " and its masquerade chain (postrouting, nat: every node's pod CIDR exempt)" : ', not its masquerade chain (--no-masquerade)'}.${cfg.cnps > 0 ? ` Every cluster also has ${cfg.cnps} ClusterNetworkPolicies (below).` : ''}`,
  );
  out.push(
    '',
    '| pods | policies | local pods | chains | sets (interval) | set elements (in distinct sets) | tx ops | script | compile ms | build tx ms | apply ms (render + libnftables) | of which render ms | full sync total ms |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of syncRows) {
    const f = r.full;
    out.push(
      `| ${k(r.pods)} | ${k(r.policies)} | ${r.local} | ${f.chains} | ${f.sets} (${f.intervalSets}) | ${f.elements} (${f.distinctElements}) | ${f.ops} | ${kib(f.bytes)} | ${f1(median(f.compile))} | ${f1(median(f.build))} | ${f1(median(f.apply))} | ${f1(median(f.render))} | ${f1(median(f.total))} |`,
    );
  }
  out.push(
    '',
    '| pods | policies | change per added pod | diff ops | script bytes | applied via | **apply ms** (to the kernel) | apply max ms | floor ms (1-element add) | compile ms | diff ms | end-to-end sync ms (compile + diff + apply) |',
    '|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of syncRows) {
    const i = r.inc;
    out.push(
      `| ${k(r.pods)} | ${k(r.policies)} | ${i.stats} | ${median(i.ops)} | ${median(i.bytes)} | netlink ${i.netlink}/${i.apply.length}, libnftables ${i.apply.length - i.netlink} | **${f2(median(i.apply))}** | ${f2(Math.max(...i.apply))} | ${f2(median(i.floor))} | ${f1(median(i.compile))} | ${f1(median(i.diff))} | ${f1(median(i.e2e))} |`,
    );
  }
  out.push(
    '',
    `apply = the diff applied to the kernel, as the agent does it, which the 5 ms target is judged on: a diff of element changes only goes to nf_tables as one netlink batch (NetlinkElementWriter, one atomic transaction), any other through LibNftables (render + nft_run_cmd_from_buffer on the kept context); *applied via* counts the adds per path. floor = \`add element inet weir known4 { IP }\` alone through libnftables on the same context: what a change costs that path at that table size (libnftables 1.0.6 reads every set into its cache first). end-to-end = what the agent spends per pod event: the compile continued from the last one (the engine's ClusterIndexer), the diff, and the apply. The first pod added after a full sync is the first of its labels on the node, so policies start applying here (new chains and their sets); the later ones only join existing sets. Values are p50 over all adds; max is the slowest apply.`,
  );
  if (cfg.cnps > 0) changesReport(out, cfg, syncRows);
}

/** With --cluster-policies: the incremental syncs by kind of change. */
function changesReport(out: string[], cfg: BenchConfig, syncRows: SyncRow[]): void {
  out.push(
    '',
    `With ${cfg.cnps} ClusterNetworkPolicies (scripts/bench/policy/cluster-policies.ts, seed ${cfg.seed}, with \`nodes\` peers): a third Admin tier (Deny, Pass, Accept rules), the rest Baseline (Accept), priorities 0-999; subjects and peers by namespace labels or namespace and pod labels, egress to \`networks\` CIDRs and \`nodes\`, TCP ports or none. After the pods, ${cfg.adds} NetworkPolicy edits and ${cfg.adds} ClusterNetworkPolicy edits alternate, each an incremental sync: the first ingress rule (else the last egress rule) of a NetworkPolicy, or the first rule of a ClusterNetworkPolicy, gets one new TCP port, taking in name order the policies that select pods of this node. p50 over all edits; the pod row repeats the table above.`,
  );
  out.push(
    '',
    '| pods | policies | change | what changed in the table | diff ops | applied via | **apply ms** (to the kernel) | apply max ms | compile ms | diff ms | end-to-end sync ms |',
    '|---:|---:|---|---|---:|---|---:|---:|---:|---:|---:|',
  );
  for (const r of syncRows) {
    const i = r.inc;
    const np = r.changes.np;
    const cnp = r.changes.cnp;
    out.push(
      `| ${k(r.pods)} | ${k(r.policies)} | pod added | ${i.stats} | ${median(i.ops)} | netlink ${i.netlink}/${i.apply.length}, libnftables ${i.apply.length - i.netlink} | **${f2(median(i.apply))}** | ${f2(Math.max(...i.apply))} | ${f1(median(i.compile))} | ${f1(median(i.diff))} | ${f1(median(i.e2e))} |`,
    );
    for (const [what, ch] of [
      ['NetworkPolicy edited', np],
      ['ClusterNetworkPolicy edited', cnp],
    ] as const) {
      out.push(
        `| ${k(r.pods)} | ${k(r.policies)} | ${what} | ${[...ch.stats].join(' or ')} | ${median(ch.ops)} | netlink ${ch.netlink}/${ch.apply.length}, libnftables ${ch.apply.length - ch.netlink} | **${f2(median(ch.apply))}** | ${f2(Math.max(...ch.apply))} | ${f1(median(ch.compile))} | ${f1(median(ch.diff))} | ${f1(median(ch.e2e))} |`,
      );
    }
  }
}

/** Per-pass ratios of a condition to the first row, and their median. */
function ratios(c: Condition, base: Condition, what: 'rate' | 'bps'): { med: number; min: number; max: number } {
  const r = c[what].map((x, i) => x / (base[what][i] as number));
  return { med: median(r), min: Math.min(...r), max: Math.max(...r) };
}

export function datapathReport(out: string[], cfg: BenchConfig, conditions: Condition[]): void {
  const base = conditions.find((c) => c.key === 'ct');
  if (!base) return;
  out.push(`### Datapath: client pod -> server pod through the node netns (pods made by \`dist/bin/weir\` ADD), ${cfg.dpPods} pods in the cluster\n`);
  out.push(
    `Connection rate: \`ab -n ${cfg.requests} -c ${cfg.concurrency}\` (HTTP/1.0, one new TCP connection per request) against agnhost netexec, ${cfg.abPasses} passes; throughput: \`iperf3 -t ${cfg.iperfSecs}\`, one stream, ${cfg.rounds} passes. A pass measures every condition once, in an order rotated per pass; ab and iperf3 passes alternate. Before each measurement: \`flush ruleset\` in the node netns, the condition's table, \`conntrack -F\`. Values: median and min–max over the passes. Ratio: median over the passes of (condition / first row in the same pass), with its min–max.`,
  );
  if (conditions.some((c) => c.passChains))
    out.push(
      '',
      `With ${cfg.cnps} ClusterNetworkPolicies (the sync part's, with \`nodes\` peers) and two of the pair's own: Admin policies that Pass the pair's ports on to NetworkPolicy, one with the server as subject (ingress), one with the client (egress). They start at the lowest precedence; the reference evaluator then moves each ahead of any other Admin rule that would decide the pair's connections, so a connection crosses the rules of every other Admin policy of the pair that does not match it, is passed on, and is accepted by NetworkPolicy. Checked at the first measurement: the two Pass rules' counters are non-zero.`,
    );
  out.push(
    '',
    '| condition | rules in table | req/s | min–max | **ratio** | ratio min–max | Gbit/s | min–max | **ratio** | ratio min–max | notes |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  );
  for (const c of conditions) {
    const mm = (xs: number[], d: number, sc = 1): string => `${(Math.min(...xs) / sc).toFixed(d)}–${(Math.max(...xs) / sc).toFixed(d)}`;
    const rr = ratios(c, base, 'rate');
    const rb = ratios(c, base, 'bps');
    out.push(
      `| ${c.label} | ${c.rules ?? (c.kind === 'ct' ? 1 : '')} | ${median(c.rate).toFixed(0)} | ${mm(c.rate, 0)} | **${f2(rr.med)}** | ${f2(rr.min)}–${f2(rr.max)} | ${f2(median(c.bps) / 1e9)} | ${mm(c.bps, 2, 1e9)} | **${f2(rb.med)}** | ${f2(rb.min)}–${f2(rb.max)} | ${c.note ?? ''} |`,
    );
  }
  out.push(
    '',
    `Checked at each condition's first measurement: a connection to :${DENY_PROBE_PORT}, which the pair's policies do not open, is answered or dropped exactly as the reference evaluator (weir) or the linear chain's own order says, ab saw no failed request, and the rules that accepted the pair's connections in weir's table are named (from their counters; *n of m*: the policy's place among the m policies the server's profile jumps to in order).`,
  );
}

export function targets(out: string[], cfg: BenchConfig, syncRows: SyncRow[], conditions: Condition[]): void {
  const base = conditions.find((c) => c.key === 'ct');
  const top = Math.max(...cfg.dpPolicies);
  const w = conditions.find((c) => c.key === `w${top}`);
  if (base && w) {
    const tr = ratios(w, base, 'bps');
    const rr = ratios(w, base, 'rate');
    const pc = (x: number): string => `${(x * 100).toFixed(1)}%`;
    // When the per-pass ratios lie on both sides of the target, the verdict is within this run's noise: say so.
    const noisy = (r: { min: number; max: number }, target: number): string =>
      r.min < target && r.max >= target ? '; WITHIN NOISE: passes on both sides of the target' : '';
    out.push(
      `${tr.med >= 0.95 ? 'PASS' : 'FAIL'}: throughput with ${k(top)} policies is ${pc(tr.med)} of no-table (target >= 95%; per-pass ratios ${pc(tr.min)}–${pc(tr.max)}, ${cfg.rounds} passes${noisy(tr, 0.95)})`,
    );
    out.push(
      `${rr.med >= 0.9 ? 'PASS' : 'FAIL'}: connection rate with ${k(top)} policies is ${pc(rr.med)} of no-table (target >= 90%; per-pass ratios ${pc(rr.min)}–${pc(rr.max)}, ${cfg.abPasses} passes${noisy(rr, 0.9)})`,
    );
    const t = conditions.find((c) => c.key === `c${top}`);
    if (t) {
      const tb = ratios(t, base, 'bps');
      const tr2 = ratios(t, base, 'rate');
      const what = `${k(top)} policies + ${cfg.cnps} ClusterNetworkPolicies`;
      out.push(
        `${tb.med >= 0.95 ? 'PASS' : 'FAIL'}: throughput with ${what} is ${pc(tb.med)} of no-table (target >= 95%; per-pass ratios ${pc(tb.min)}–${pc(tb.max)}, ${cfg.rounds} passes${noisy(tb, 0.95)})`,
      );
      out.push(
        `${tr2.med >= 0.9 ? 'PASS' : 'FAIL'}: connection rate with ${what} is ${pc(tr2.med)} of no-table (target >= 90%; per-pass ratios ${pc(tr2.min)}–${pc(tr2.max)}, ${cfg.abPasses} passes${noisy(tr2, 0.9)})`,
      );
    }
  }
  if (syncRows.length) {
    const worst = syncRows.reduce((a, r) => (median(r.inc.apply) > median(a.inc.apply) ? r : a));
    const a = median(worst.inc.apply);
    const list = syncRows.map((r) => `${k(r.pods)}x${k(r.policies)}: ${f2(median(r.inc.apply))}`).join(', ');
    out.push(
      `${a < 5 ? 'PASS' : 'FAIL'}: incremental pod update applied to the kernel (p50; ${worst.inc.netlink}/${worst.inc.apply.length} as netlink element batches) in ${f2(a)} ms at ${k(worst.pods)} pods x ${k(worst.policies)} policies, the slowest size (target < 5 ms; ${list} ms; end-to-end sync p50 there, compile + diff + apply: ${f1(median(worst.inc.e2e))} ms)`,
    );
  }
}
