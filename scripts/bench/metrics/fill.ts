// The workload of scripts/bench-metrics: what a busy agent's metric set holds
// after a day on a node of the benchmark cluster (scripts/bench/policy/
// cluster.ts at 10k pods on 100 nodes, 50 namespaces, 1k NetworkPolicies; the
// node holds 1% of the pods), and the description of the DNS path's families
// (read off a real DnsPath by main.ts). Imports no metrics code: the child
// process loads this before what it measures.
//
// None of the agent's metrics is labelled by pod, policy or address: the
// label values come from small fixed sets (sync kind, direction, action,
// watched kind, errno name, drift reason, check and result, DNS result and
// cap). So the series count does not grow with the cluster; only the values
// do. `--pod-series N` adds one hypothetical family labelled by namespace and
// pod to see what a per-pod metric would cost.
import { DRIFT_REASONS } from '../../../src/agent/kernel-drift.ts';
import { rng } from '../policy/cluster.ts';

/** One metric family as dns.ts declares it. */
export interface FamilySpec {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  labelNames: string[];
  /** Histogram bounds, `+Inf` implicit. */
  buckets?: number[];
}

export interface Spec {
  /** The DNS path's families, registered on the agent's registry as dns.ts does. */
  dns: FamilySpec[];
  podSeries: number;
}

export const CLUSTER = { pods: 10_000, nodes: 100, namespaces: 50, policies: 1_000, localPods: 100 } as const;

/** The watched kinds (cache.ts BASE_KINDS; host firewall off, the default) with their object counts and digests. */
export const CACHE = {
  kinds: ['pods', 'namespaces', 'policies', 'nodes', 'clusterpolicies'],
  digests: {
    pods: { count: CLUSTER.pods, metricValue: 3_761_824_212_390_917 },
    namespaces: { count: CLUSTER.namespaces, metricValue: 1_238_912_740_127_113 },
    policies: { count: CLUSTER.policies, metricValue: 4_411_002_938_551_086 },
    nodes: { count: CLUSTER.nodes, metricValue: 872_340_112_095_447 },
    clusterpolicies: { count: 0, metricValue: 0 },
  },
} as const;

export const HYPOTHETICAL = 'weir_bench_hypothetical_pod_packets_total';

/** Log-normal around `median` seconds (sigma 1): spreads over most of an exponential bucket range. */
export function durations(seed: number, median: number): () => number {
  const r = rng(seed);
  return () => {
    const u = Math.max(r(), 1e-12);
    const v = r();
    return median * Math.exp(Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
  };
}

/** The calls the agent makes on its metrics and their children (labels by object, as the agent calls them). */
export interface ChildLike {
  inc(by?: number): void;
  set(v: number): void;
  observe(v: number): void;
}
export interface MetricLike extends ChildLike {
  labels(values: Record<string, string>): ChildLike;
}
export type Lookup = (name: string) => MetricLike;

/** A hypothetical per-pod label set: namespace and pod name as the benchmark cluster spells them. */
export function podLabels(i: number): Record<string, string> {
  return {
    namespace: `ns-${String(i % CLUSTER.namespaces).padStart(2, '0')}`,
    pod: `pod-${String(i).padStart(6, '0')}-${(i * 2654435761).toString(36).slice(-5)}`,
  };
}

/**
 * Fills the metric set as a day of the agent would (counts in proportion: a
 * sync every ~2 s, DNS answers and denied packets far more often). Each call
 * is one the agent makes (agent-metrics.ts observeSync/observeCheck, run.ts,
 * dns.ts, invariants.ts).
 */
export function fill(get: Lookup, spec: Spec): void {
  fillSyncs(get);
  fillDatapath(get);
  fillKernelChecks(get);
  fillDns(get);
  for (let i = 0; i < spec.podSeries; i++)
    get(HYPOTHETICAL)
      .labels(podLabels(i))
      .inc(1 + (i % 97));
}

/** The syncs and what they left in the kernel's table. */
function fillSyncs(c: Lookup): void {
  const syncs = 48_000;
  const full = 3;
  c('weir_syncs_total').labels({ kind: 'full' }).inc(full);
  c('weir_syncs_total')
    .labels({ kind: 'incremental' })
    .inc(syncs - full);
  c('weir_sync_errors_total').inc(2);
  const syncD = durations(1, 0.025);
  const applyD = durations(2, 0.06);
  for (let i = 0; i < syncs; i++) {
    c('weir_sync_duration_seconds').observe(syncD());
    c('weir_event_to_applied_seconds').observe(applyD());
  }
  c('weir_last_transaction_operations').set(412);
  c('weir_nft_sets').set(1_312);
  c('weir_nft_chains').set(421);
  c('weir_nft_rules').set(2_608);
  c('weir_nft_elements').set(51_234);
  c('weir_local_pods').set(CLUSTER.localPods);
  c('weir_isolated_pods').labels({ direction: 'ingress' }).set(87);
  c('weir_isolated_pods').labels({ direction: 'egress' }).set(64);
  c('weir_policy_errors').set(2);
  c('weir_route_errors').set(0);
  c('weir_conntrack_purged_total').inc(1_834);
}

/** Denied packets, the host firewall, the log reader and the API watches. */
function fillDatapath(c: Lookup): void {
  const denied = [
    ['ingress', 'drop', 1_204_311],
    ['egress', 'drop', 98_114],
    ['ingress', 'audit', 5_120],
    ['egress', 'audit', 733],
  ] as const;
  for (const [direction, action, n] of denied) c('weir_denied_packets_total').labels({ direction, action }).inc(n);
  c('weir_host_firewall_policies').set(0);
  c('weir_host_network_pods_isolated').labels({ direction: 'ingress' }).set(0);
  c('weir_host_network_pods_isolated').labels({ direction: 'egress' }).set(0);
  c('weir_nflog_dropped_batches').set(3);
  for (const [i, kind] of CACHE.kinds.entries()) {
    c('weir_api_errors_total')
      .labels({ kind })
      .inc(i + 1);
    c('weir_api_watch_up').labels({ kind }).set(1);
  }
}

/** The fallbacks of incremental syncs, the kernel checks and their repairs. */
function fillKernelChecks(c: Lookup): void {
  for (const [reason, n] of [
    ['ENOENT', 4],
    ['EEXIST', 2],
    ['EBUSY', 1],
    ['ENOBUFS', 1],
  ] as const)
    c('weir_sync_fallbacks_total').labels({ reason }).inc(n);
  for (const check of ['full', 'cheap'])
    for (const [result, n] of [
      ['clean', 1_420],
      ['drift', 3],
      ['error', 1],
    ] as const)
      c('weir_kernel_checks_total').labels({ check, result }).inc(n);
  // A day that has seen every kind of drift once.
  for (const reason of DRIFT_REASONS) c('weir_kernel_repairs_total').labels({ reason }).inc();
  c('weir_kernel_check_seconds').set(0.842);
  c('weir_ipam_released_total').inc(12);
}

function fillDns(c: Lookup): void {
  // dns.ts: one answers_total and one hold observation per DNS answer.
  const answers = 200_000;
  const hold = durations(3, 0.0003);
  const results = ['learned', 'none', 'none', 'none', 'unread'];
  for (let i = 0; i < answers; i++) {
    c('weir_dns_answers_total')
      .labels({ result: results[i % results.length] as string })
      .inc();
    c('weir_dns_hold_seconds').observe(hold());
  }
  c('weir_dns_addresses_learned_total').inc(18_400);
  c('weir_dns_learned_addresses').set(2_150);
  c('weir_dns_cap_overflows_total').labels({ cap: 'name' }).inc(40);
  c('weir_dns_cap_overflows_total').labels({ cap: 'node' }).inc(3);
  c('weir_dns_answers_released_late_total').inc(7);
  c('weir_dns_write_errors_total').inc(1);
}
