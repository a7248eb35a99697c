// The agent's Prometheus metrics, in one place so /metrics and the docs agree.
// prom-client takes a label set with a label missing (the series just lacks
// it) where the call sites here mean every label to be given; the unit test of
// this file holds each call path's exposition to the one it must give.
import { exponentialBuckets, type Gauge } from 'prom-client';
import { errnoName } from '../errors.ts';
import type { Ruleset } from '../policy/ruleset.ts';
import type { ClusterCache } from './cache.ts';
import type { CheckResult } from './kernel-verifier.ts';
import { agentRegistry, metricsOn } from './metrics.ts';
import type { SyncSummary } from './reconciler.ts';

/** A short label for why the incremental path failed: the kernel's errno name, else the error's class. */
export function fallbackReason(e: Error): string {
  const errno = (e as { errno?: unknown }).errno;
  if (typeof errno === 'number') return errnoName(errno);
  return e.name || 'Error';
}

export class AgentMetrics {
  readonly registry = agentRegistry();
  readonly #m = metricsOn(this.registry);
  readonly syncs = this.#m.counter<'kind'>({
    name: 'weir_syncs_total',
    help: 'Syncs applied, by kind (full table replacement or incremental).',
    labelNames: ['kind'],
  });
  readonly syncErrors = this.#m.counter({ name: 'weir_sync_errors_total', help: 'Syncs that failed; the previous rules stayed in force.' });
  readonly syncDuration = this.#m.histogram({
    name: 'weir_sync_duration_seconds',
    help: 'Wall time of one sync (compile, routes, nftables transaction).',
    buckets: exponentialBuckets(0.0005, 2, 14),
  });
  readonly eventToApplied = this.#m.histogram({
    name: 'weir_event_to_applied_seconds',
    help: 'Time from the first API event (or CNI hand-off) of a burst to its rules applied in the kernel.',
    buckets: exponentialBuckets(0.001, 2, 14),
  });
  readonly transactionOps = this.#m.gauge({ name: 'weir_last_transaction_operations', help: 'Operations in the last nftables transaction.' });
  readonly sets = this.#m.gauge({ name: 'weir_nft_sets', help: 'Sets and maps in the weir table.' });
  readonly chains = this.#m.gauge({ name: 'weir_nft_chains', help: 'Chains in the weir table.' });
  readonly rules = this.#m.gauge({ name: 'weir_nft_rules', help: 'Rules in the weir table.' });
  readonly elements = this.#m.gauge({ name: 'weir_nft_elements', help: 'Set and map elements in the weir table.' });
  readonly localPods = this.#m.gauge({ name: 'weir_local_pods', help: 'Pods of this node that policy applies to.' });
  readonly isolatedPods = this.#m.gauge<'direction'>({
    name: 'weir_isolated_pods',
    help: 'Pods of this node isolated by at least one policy, by direction.',
    labelNames: ['direction'],
  });
  readonly policyErrors = this.#m.gauge({
    name: 'weir_policy_errors',
    help: 'NetworkPolicies weir cannot express, enforced as deny-all for the pods they select.',
  });
  readonly routeErrors = this.#m.gauge({ name: 'weir_route_errors', help: 'Routes to other nodes that could not be programmed at the last sync.' });
  readonly purged = this.#m.counter({
    name: 'weir_conntrack_purged_total',
    help: 'Tracked connections deleted because a policy change no longer allows them.',
  });
  readonly denied = this.#m.counter<'direction' | 'action'>({
    name: 'weir_denied_packets_total',
    help: 'Packets denied by policy (action "drop") or that would have been (action "audit"), as logged to the nflog group (rate-limited).',
    labelNames: ['direction', 'action'],
  });
  readonly hostPolicies = this.#m.gauge({
    name: 'weir_host_firewall_policies',
    help: 'HostFirewallPolicies selecting this node (host-firewall mode; 0 when off).',
  });
  readonly hostNetworkPods = this.#m.gauge<'direction'>({
    name: 'weir_host_network_pods_isolated',
    help: 'hostNetwork pods of this node isolated by NetworkPolicy (host-firewall mode), by direction; egress counts only pods whose egress is enforced.',
    labelNames: ['direction'],
  });
  readonly nflogOverruns = this.#m.gauge({
    name: 'weir_nflog_dropped_batches',
    help: 'nflog batches the kernel could not deliver to the agent (socket buffer full).',
  });
  readonly apiErrors = this.#m.counter<'kind'>({
    name: 'weir_api_errors_total',
    help: 'Failed list/watch attempts against the API server (each is retried), by kind.',
    labelNames: ['kind'],
  });
  readonly apiConnected = this.#m.gauge<'kind'>({
    name: 'weir_api_watch_up',
    help: '1 while the watch of this kind is established, 0 after a failure until the next list.',
    labelNames: ['kind'],
  });
  readonly fallbacks = this.#m.counter<'reason'>({
    name: 'weir_sync_fallbacks_total',
    help: 'Incremental syncs that failed and were replaced by a full table replacement, by the error (errno name): the table was not what was last applied.',
    labelNames: ['reason'],
  });
  readonly kernelChecks = this.#m.counter<'check' | 'result'>({
    name: 'weir_kernel_checks_total',
    help: 'Comparisons of the kernel\'s inet weir table with the ruleset last applied: check "full" (listed) or "cheap" (generation, handle and use count only, counted when they found something); result clean, drift or error.',
    labelNames: ['check', 'result'],
  });
  readonly kernelRepairs = this.#m.counter<'reason'>({
    name: 'weir_kernel_repairs_total',
    help: "Full table replacements after the kernel's table drifted from the applied ruleset, by what differed (one repair counts once per reason it found).",
    labelNames: ['reason'],
  });
  readonly kernelCheckSeconds = this.#m.gauge({
    name: 'weir_kernel_check_seconds',
    help: "Wall time of the last full comparison of the kernel's table with the applied ruleset (listing included).",
  });
  readonly ipamReleased = this.#m.counter({
    name: 'weir_ipam_released_total',
    help: "IPAM records the agent's sweep released: no pod in the API, no host veth, older than the grace period.",
  });
  #cache: ClusterCache | undefined;
  readonly cacheObjects: Gauge<'kind'> = this.#m.gauge<'kind'>({
    name: 'weir_cache_objects',
    help: "Objects of each kind in the agent's cache (compare with the API).",
    labelNames: ['kind'],
    collect: () => {
      for (const k of this.#cache?.kinds ?? []) this.cacheObjects.labels({ kind: k }).set(this.#cache?.digests[k].count ?? 0);
    },
  });
  readonly cacheDigest: Gauge<'kind'> = this.#m.gauge<'kind'>({
    name: 'weir_cache_digest',
    help: 'Low 52 bits of the hash over uid/resourceVersion of each kind in the cache (see /status cache); every agent that agrees with the API shows the same value.',
    labelNames: ['kind'],
    collect: () => {
      for (const k of this.#cache?.kinds ?? []) this.cacheDigest.labels({ kind: k }).set(this.#cache?.digests[k].metricValue ?? 0);
    },
  });

  /** The cache whose digests /metrics shows. */
  watchCache(cache: ClusterCache): void {
    this.#cache = cache;
  }

  observeCheck(r: CheckResult): void {
    this.kernelChecks.labels({ check: r.kind, result: r.error ? 'error' : r.clean ? 'clean' : 'drift' }).inc();
    if (r.kind === 'full' && !r.error) this.kernelCheckSeconds.set(r.ms / 1000);
    if (r.repaired) for (const reason of Object.keys(r.drift.counts)) this.kernelRepairs.labels({ reason }).inc();
  }

  observeSync(s: SyncSummary, applied: Ruleset | undefined): void {
    this.syncs.labels({ kind: s.full ? 'full' : 'incremental' }).inc();
    if (s.report.fallback) this.fallbacks.labels({ reason: fallbackReason(s.report.fallback) }).inc();
    this.syncDuration.observe(s.durationMs / 1000);
    if (s.eventToAppliedMs !== undefined) this.eventToApplied.observe(s.eventToAppliedMs / 1000);
    this.transactionOps.set(s.operations);
    this.policyErrors.set(s.policyErrors.length);
    this.routeErrors.set(s.routeErrors.length);
    const eps = s.report.result.endpoints;
    this.localPods.set(eps.length);
    this.isolatedPods.labels({ direction: 'ingress' }).set(eps.filter((e) => e.ingress).length);
    this.isolatedPods.labels({ direction: 'egress' }).set(eps.filter((e) => e.egress).length);
    const host = s.report.result.host;
    this.hostPolicies.set(host?.policies.length ?? 0);
    this.hostNetworkPods.labels({ direction: 'ingress' }).set(host?.hostNetworkPods.filter((p) => p.ingress).length ?? 0);
    this.hostNetworkPods.labels({ direction: 'egress' }).set(host?.hostNetworkPods.filter((p) => p.egress?.enforced).length ?? 0);
    if (applied) {
      const t = rulesetCounts(applied);
      this.sets.set(t.sets);
      this.chains.set(t.chains);
      this.rules.set(t.rules);
      this.elements.set(t.elements);
    }
  }
}

export function rulesetCounts(rs: Ruleset): { sets: number; chains: number; rules: number; elements: number } {
  let rules = 0;
  let elements = 0;
  for (const c of rs.chains.values()) rules += c.rules.length;
  for (const s of rs.sets.values()) elements += s.elements.size;
  return { sets: rs.sets.size, chains: rs.chains.size, rules, elements };
}
