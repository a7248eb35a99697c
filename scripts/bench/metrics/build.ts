// The metric set scripts/bench-metrics measures, built as the agent builds it:
// AgentMetrics' constructor (its registry with the process metrics, the
// cache gauges reading the workload's cache), plus the DNS path's families
// registered on the same registry by the same calls dns.ts makes (DnsPath
// itself is not built: its module brings the DNS parser and the queue
// reader, which would count against the metrics).
import { AgentMetrics } from '../../../src/agent/agent-metrics.ts';
import type { ClusterCache } from '../../../src/agent/cache.ts';
import { metricsOn } from '../../../src/agent/metrics.ts';
import { CACHE, HYPOTHETICAL, type Lookup, type Spec } from './fill.ts';

export function build(spec: Spec): { render: () => Promise<string>; get: Lookup; families: number } {
  const agent = new AgentMetrics();
  agent.watchCache(CACHE as unknown as ClusterCache);
  const m = metricsOn(agent.registry);
  for (const f of spec.dns) {
    const opts = { name: f.name, help: f.help, labelNames: f.labelNames };
    if (f.type === 'counter') m.counter(opts);
    else if (f.type === 'gauge') m.gauge(opts);
    else m.histogram({ ...opts, ...(f.buckets ? { buckets: f.buckets } : {}) });
  }
  if (spec.podSeries > 0)
    m.counter({
      name: HYPOTHETICAL,
      help: 'Hypothetical per-pod counter (scripts/bench-metrics --pod-series): not an agent metric.',
      labelNames: ['namespace', 'pod'],
    });
  return {
    render: () => agent.registry.metrics(),
    get: (name) => {
      const c = agent.registry.getSingleMetric(name);
      if (!c) throw new Error(`bench-metrics: no metric ${name}`);
      return c as unknown as ReturnType<Lookup>;
    },
    families: agent.registry.getMetricsAsArray().length,
  };
}
