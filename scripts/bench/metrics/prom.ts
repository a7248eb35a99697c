// The prom-client side of scripts/bench-metrics: the same families (names,
// help, types, label names, buckets) on a prom-client Registry of its own,
// with what a port of agent-metrics.ts would write for the families read at
// render time: the cache gauges' `collect`, and the three process metrics the
// in-house registry adds (prom-client's collectDefaultMetrics() has them, but
// only among ~20 others, with event-loop and GC observers: not the same set).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { CACHE, type FamilySpec, type Lookup, type Spec } from './fill.ts';

type Kind = (typeof CACHE.kinds)[number];
let processStart: number | undefined;

function collector(f: FamilySpec): (() => void) | undefined {
  switch (f.collect) {
    case 'cache-count':
      return function (this: Gauge) {
        for (const k of CACHE.kinds) this.labels({ kind: k }).set(CACHE.digests[k as Kind].count);
      };
    case 'cache-digest':
      return function (this: Gauge) {
        for (const k of CACHE.kinds) this.labels({ kind: k }).set(CACHE.digests[k as Kind].metricValue);
      };
    case 'process-cpu':
      return function (this: Counter) {
        const u = process.cpuUsage();
        this.reset();
        this.inc((u.user + u.system) / 1e6);
      };
    case 'process-rss':
      return function (this: Gauge) {
        this.set(process.memoryUsage.rss());
      };
    case 'process-start':
      return function (this: Gauge) {
        processStart ??= Math.round((Date.now() / 1000 - process.uptime()) * 1000) / 1000;
        this.set(processStart);
      };
    default:
      return undefined;
  }
}

export function build(spec: Spec): { render: () => Promise<string>; get: Lookup } {
  const registry = new Registry();
  for (const f of spec.families) {
    const collect = collector(f);
    const opts = { name: f.name, help: f.help, labelNames: f.labelNames, registers: [registry], ...(collect ? { collect } : {}) };
    if (f.type === 'counter') new Counter(opts);
    else if (f.type === 'gauge') new Gauge(opts);
    else new Histogram({ ...opts, ...(f.buckets ? { buckets: f.buckets } : {}) });
  }
  return {
    render: () => registry.metrics(),
    get: (name) => {
      const m = registry.getSingleMetric(name);
      if (!m) throw new Error(`prom-client: no metric ${name}`);
      return m as unknown as ReturnType<Lookup>;
    },
  };
}
