// The agent's Prometheus registry, on prom-client: one registry per agent
// (several agents share a process in the tests, and prom-client's default
// registry is process-wide), metric constructors that always name it (one
// built without a registry would land silently in the default one), and the
// three process metrics /metrics has always had, read at every scrape.
// prom-client's collectDefaultMetrics() has those three too, but only among
// some twenty other families and with event-loop and GC observers.
import { Counter, type CounterConfiguration, Gauge, type GaugeConfiguration, Histogram, type HistogramConfiguration, Registry } from 'prom-client';

type On<C> = Omit<C, 'registers'>;

/** prom-client's Counter, Gauge and Histogram, registered on `registry`. */
export function metricsOn(registry: Registry) {
  return {
    counter: <L extends string = never>(c: On<CounterConfiguration<L>>): Counter<L> => new Counter<L>({ ...c, registers: [registry] }),
    gauge: <L extends string = never>(c: On<GaugeConfiguration<L>>): Gauge<L> => new Gauge<L>({ ...c, registers: [registry] }),
    histogram: <L extends string = never>(c: On<HistogramConfiguration<L>>): Histogram<L> => new Histogram<L>({ ...c, registers: [registry] }),
  };
}

let processStart: number | undefined;

/** A registry of its own holding process_cpu_seconds_total, process_resident_memory_bytes and process_start_time_seconds. */
export function agentRegistry(): Registry {
  const registry = new Registry();
  const m = metricsOn(registry);
  m.counter({
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    collect() {
      const u = process.cpuUsage();
      this.reset();
      this.inc((u.user + u.system) / 1e6);
    },
  });
  m.gauge({
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  m.gauge({
    name: 'process_start_time_seconds',
    help: 'Start time of the process since unix epoch in seconds.',
    collect() {
      processStart ??= Math.round((Date.now() / 1000 - process.uptime()) * 1000) / 1000;
      this.set(processStart);
    },
  });
  return registry;
}
