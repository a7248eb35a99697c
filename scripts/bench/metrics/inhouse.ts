// The in-house side of scripts/bench-metrics: the agent's metric set as the
// agent builds it (AgentMetrics' constructor, with its cache gauges and
// process collectors), plus the DNS path's families registered on the same
// registry by the same calls dns.ts makes (DnsPath itself is not built: its
// module brings the DNS parser and the queue reader, which would count
// against the library).
import { AgentMetrics } from '../../../src/agent/agent-metrics.ts';
import type { ClusterCache } from '../../../src/agent/cache.ts';
import { CACHE, type Lookup, type Spec } from './fill.ts';

export function build(spec: Spec): { render: () => string; get: Lookup } {
  const m = new AgentMetrics();
  m.watchCache(CACHE as unknown as ClusterCache);
  for (const f of spec.families) {
    if (f.source !== 'dns' && f.source !== 'hypothetical') continue;
    const opts = { name: f.name, help: f.help, labelNames: f.labelNames };
    if (f.type === 'counter') m.registry.counter(opts);
    else if (f.type === 'gauge') m.registry.gauge(opts);
    else m.registry.histogram({ ...opts, ...(f.buckets ? { buckets: f.buckets } : {}) });
  }
  return {
    render: () => m.registry.render(),
    get: (name) => {
      const c = m.registry.get(name);
      if (!c) throw new Error(`in-house: no metric ${name}`);
      return c as unknown as ReturnType<Lookup>;
    },
  };
}
