// The agent's /metrics as a scraper sees it: every family with its help,
// type, labels and buckets (held against a fixture written when the agent
// still had its own exposition library, so the switch to prom-client changed
// nothing a dashboard or weirctl reads), values filled through the agent's
// own calls, the gauges read at scrape time, and registries kept apart.
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../../src/agent/agent-metrics.ts';
import { ClusterCache } from '../../../src/agent/cache.ts';
import { DnsPath } from '../../../src/agent/dns.ts';
import type { DnsKernelOps } from '../../../src/agent/dns-kernel.ts';
import type { CheckResult } from '../../../src/agent/kernel-verifier.ts';
import type { SyncSummary } from '../../../src/agent/reconciler.ts';
import type { Ruleset } from '../../../src/policy/ruleset.ts';
import { parsePrometheus, sampleValue } from '../../../src/weirctl/metrics.ts';

const FIXTURE = path.join(import.meta.dirname, 'fixtures/agent-metrics.prom');

/** What observeSync reads of a sync: endpoints isolated per direction, the host firewall's report, errors, timings. */
function summary(full: boolean, fallback?: Error): SyncSummary {
  const endpoints = [{ ingress: {}, egress: {} }, { ingress: {} }, {}];
  const host = {
    policies: [{}, {}],
    hostNetworkPods: [
      { ingress: true, egress: { enforced: true } },
      { ingress: true, egress: { enforced: false } },
    ],
  };
  return {
    full,
    durationMs: 12.5,
    eventToAppliedMs: 40,
    operations: 17,
    policyErrors: [{}],
    routeErrors: [],
    report: { ...(fallback ? { fallback } : {}), result: { endpoints, host } },
  } as unknown as SyncSummary;
}

const RULESET = {
  chains: new Map([
    ['a', { rules: [1, 2, 3] }],
    ['b', { rules: [4] }],
  ]),
  sets: new Map([['s', { elements: new Set(['x', 'y']) }]]),
} as unknown as Ruleset;

function check(kind: 'full' | 'cheap', outcome: Partial<CheckResult>): CheckResult {
  return { at: '', ms: 250, kind, clean: true, drift: { counts: {}, examples: [] }, ...outcome };
}

/** An agent's metrics after a little of everything it counts, on the agent's own call paths. */
function busyAgent(): AgentMetrics {
  const m = new AgentMetrics();
  const cache = new ClusterCache();
  cache.replace('pods', [{ metadata: { namespace: 'x', name: 'p1', uid: 'u1', resourceVersion: '5' } }], '5');
  cache.replace('namespaces', [{ metadata: { name: 'x', uid: 'u2', resourceVersion: '3' } }], '3');
  m.watchCache(cache);
  new DnsPath({} as DnsKernelOps, m.registry, pino({ level: 'silent' }));
  m.observeSync(summary(true), RULESET);
  m.observeSync(summary(false, Object.assign(new Error('gone'), { errno: 2 })), RULESET);
  m.observeCheck(check('full', {}));
  m.observeCheck(check('cheap', { clean: false, repaired: true, drift: { counts: { 'table-replaced': 1, 'set-missing': 2 }, examples: [] } }));
  m.observeCheck(check('full', { error: 'EPERM' }));
  m.syncErrors.inc();
  m.purged.inc(3);
  m.denied.labels({ direction: 'egress', action: 'drop' }).inc();
  m.denied.labels({ direction: 'ingress', action: 'audit' }).inc(2);
  m.nflogOverruns.set(1);
  m.apiConnected.labels({ kind: 'pods' }).set(1);
  m.apiErrors.labels({ kind: 'nodes' }).inc();
  m.apiConnected.labels({ kind: 'nodes' }).set(0);
  m.ipamReleased.inc();
  return m;
}

/** The exposition as a set of lines: order and blank lines mean nothing to a scraper, process values change. */
function lines(text: string): string {
  const kept = text.split('\n').filter((l) => l !== '');
  return `${kept
    .map((l) => l.replace(/^(process_\w+) \S+$/, '$1 <value>'))
    .sort()
    .join('\n')}\n`;
}

describe('the agent /metrics', () => {
  it('serves every family, label, help text and bucket as before, with the values the agent put there', async () => {
    const text = await busyAgent().registry.metrics();
    expect(lines(text)).toBe(fs.readFileSync(FIXTURE, 'utf8'));
  });

  it('keeps each family whole (its HELP, TYPE and samples together) and every sample line readable by weirctl', async () => {
    const text = await busyAgent().registry.metrics();
    let family = '';
    const types = new Map<string, string>();
    for (const l of text.split('\n')) {
      const t = /^# TYPE (\S+) (\S+)$/.exec(l);
      if (t) {
        expect(types.has(t[1] as string), t[1]).toBe(false);
        family = t[1] as string;
        types.set(family, t[2] as string);
      } else if (l !== '' && !l.startsWith('#')) expect(l.startsWith(family), l).toBe(true);
    }
    expect(types.size).toBe(37);
    const samples = parsePrometheus(text);
    expect(samples).toHaveLength(text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length);
    expect(sampleValue(samples, 'weir_sync_fallbacks_total', { reason: 'ENOENT' })).toBe(1);
    expect(sampleValue(samples, 'weir_sync_duration_seconds_bucket', { le: '+Inf' })).toBe(2);
  });

  it('reads the cache gauges and the process metrics at every scrape', async () => {
    const m = new AgentMetrics();
    const cache = new ClusterCache();
    m.watchCache(cache);
    const scrape = async () => parsePrometheus(await m.registry.metrics());
    expect(sampleValue(await scrape(), 'weir_cache_objects', { kind: 'pods' })).toBe(0);
    cache.replace('pods', [{ metadata: { namespace: 'x', name: 'p1', uid: 'u1', resourceVersion: '5' } }], '5');
    const s = await scrape();
    expect(sampleValue(s, 'weir_cache_objects', { kind: 'pods' })).toBe(1);
    expect(sampleValue(s, 'weir_cache_digest', { kind: 'pods' })).toBe(cache.digests.pods.metricValue);
    expect(sampleValue(s, 'process_resident_memory_bytes')).toBeGreaterThan(1 << 20);
    const start = sampleValue(s, 'process_start_time_seconds') ?? 0;
    expect(start).toBeLessThanOrEqual(Date.now() / 1000);
    expect(start).toBeGreaterThan(Date.now() / 1000 - 24 * 3600);
    const cpu = sampleValue(s, 'process_cpu_seconds_total') ?? 0;
    expect(cpu).toBeGreaterThan(0);
    const until = Date.now() + 30;
    while (Date.now() < until) {
      // burn CPU: the counter is read at scrape time
    }
    expect(sampleValue(await scrape(), 'process_cpu_seconds_total')).toBeGreaterThan(cpu);
  });

  it('gives each agent a registry of its own and leaves the process-wide one empty', async () => {
    const a = busyAgent();
    const b = new AgentMetrics();
    b.syncErrors.inc(5);
    expect(sampleValue(parsePrometheus(await a.registry.metrics()), 'weir_sync_errors_total')).toBe(1);
    expect(sampleValue(parsePrometheus(await b.registry.metrics()), 'weir_sync_errors_total')).toBe(5);
    expect(await globalRegistry.metrics()).toBe('\n');
    expect(a.registry.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
  });
});
