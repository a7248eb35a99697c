// A small Prometheus registry: counters, gauges and histograms with optional
// labels, rendered in the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). Written
// here rather than pulled from prom-client: the agent needs three metric
// types, one output format and no globals.
//
// Output is stable: families sort by name, children by their label values
// (code-point order), labels appear in declaration order with `le` last.
// Every family prints its HELP and TYPE lines even before it has a sample.
// An unlabelled metric starts with one sample at 0; a labelled one has a
// sample per label set it has seen.
//
// Misuse (a bad name, a wrong label set, a negative counter increment, a
// duplicate registration) is a bug in weir and throws InternalError.
import { InternalError } from '../errors.ts';

/** The Content-Type of `Registry.render()`'s output. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** client_golang's DefBuckets, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** One line of output: a full sample name (e.g. `x_bucket`), its labels in order, its value. */
export interface Sample {
  readonly name: string;
  readonly labels: readonly (readonly [name: string, value: string])[];
  readonly value: number;
}

/** Everything one `# HELP`/`# TYPE` block prints. */
export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly Sample[];
}

/** Anything the registry can render; `collect()` runs at every render. */
export interface Collector {
  readonly name: string;
  collect(): MetricFamily;
}

/** Label values by name; numbers are printed with `String()`. */
export type LabelValues<L extends string> = Readonly<Record<L, string | number>>;

export interface MetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

export interface GaugeOptions<L extends string> extends MetricOptions<L> {
  /** Called at every render, before the samples are read: set the gauge from live state here. */
  collect?: (gauge: Gauge<L>) => void;
}

export interface HistogramOptions<L extends string> extends MetricOptions<L> {
  /** Upper bounds, strictly increasing and finite; `+Inf` is implicit (and dropped if given). */
  buckets?: readonly number[];
}

export function isValidMetricName(name: string): boolean {
  return METRIC_NAME.test(name);
}

export function isValidLabelName(name: string): boolean {
  return LABEL_NAME.test(name) && !name.startsWith('__');
}

/** Starts a monotonic stopwatch; the returned function gives the seconds elapsed so far. */
export function startTimer(): () => number {
  const t0 = process.hrtime.bigint();
  return () => Number(process.hrtime.bigint() - t0) / 1e9;
}

/** `count` buckets: start, start+width, ... */
export function linearBuckets(start: number, width: number, count: number): number[] {
  if (!(width > 0) || !Number.isInteger(count) || count < 1) throw new InternalError(`linearBuckets: bad width ${width} or count ${count}`);
  return Array.from({ length: count }, (_, i) => start + i * width);
}

/** `count` buckets: start, start*factor, ... */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  if (!(start > 0) || !(factor > 1) || !Number.isInteger(count) || count < 1) {
    throw new InternalError(`exponentialBuckets: bad start ${start}, factor ${factor} or count ${count}`);
  }
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

// ---------------------------------------------------------------------------
// Rendering

/** A sample value as Prometheus spells it (Go's ParseFloat reads JS's exponent form). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v); // -0 prints as 0
}

/** Label values escape backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return v.replace(/[\\"\n]/g, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : '\\n'));
}

/** HELP text escapes backslash and newline (quotes stay as they are). */
export function escapeHelp(v: string): string {
  return v.replace(/[\\\n]/g, (c) => (c === '\\' ? '\\\\' : '\\n'));
}

export function renderFamily(f: MetricFamily): string {
  let out = `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
  for (const s of f.samples) {
    const labels = s.labels.length === 0 ? '' : `{${s.labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
    out += `${s.name}${labels} ${formatValue(s.value)}\n`;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Metrics

interface Entry<C> {
  readonly values: readonly string[];
  readonly child: C;
}

function compareValues(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < a.length && i < b.length; i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

abstract class Metric<L extends string, C> implements Collector {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  abstract readonly type: MetricType;
  readonly #children = new Map<string, Entry<C>>();

  constructor(opts: MetricOptions<L>, reservedLabels: readonly string[] = []) {
    if (!isValidMetricName(opts.name)) throw new InternalError(`invalid metric name ${JSON.stringify(opts.name)}`);
    const labelNames = [...(opts.labelNames ?? [])];
    const seen = new Set<string>();
    for (const l of labelNames) {
      if (!isValidLabelName(l)) throw new InternalError(`${opts.name}: invalid label name ${JSON.stringify(l)}`);
      if (reservedLabels.includes(l)) throw new InternalError(`${opts.name}: label name ${JSON.stringify(l)} is reserved`);
      if (seen.has(l)) throw new InternalError(`${opts.name}: duplicate label name ${JSON.stringify(l)}`);
      seen.add(l);
    }
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = Object.freeze(labelNames);
  }

  protected abstract newChild(): C;
  protected abstract samples(values: readonly string[], child: C): Sample[];

  /** The child for one label set, by name or positionally in `labelNames` order. */
  labels(values: LabelValues<L>): C;
  labels(...values: (string | number)[]): C;
  labels(...args: unknown[]): C {
    return this.child(this.resolve(args));
  }

  /** Forgets one label set's child (e.g. for a deleted pod); absent is fine. */
  remove(values: LabelValues<L>): void;
  remove(...values: (string | number)[]): void;
  remove(...args: unknown[]): void {
    if (this.labelNames.length === 0) throw new InternalError(`${this.name}: remove() needs a labelled metric`);
    this.#children.delete(JSON.stringify(this.resolve(args)));
  }

  /** Drops every labelled child; an unlabelled metric goes back to zero. */
  reset(): void {
    this.#children.clear();
    if (this.labelNames.length === 0) this.child([]);
  }

  collect(): MetricFamily {
    const entries = [...this.#children.values()].sort((a, b) => compareValues(a.values, b.values));
    return { name: this.name, help: this.help, type: this.type, samples: entries.flatMap((e) => this.samples(e.values, e.child)) };
  }

  /** The child of an unlabelled metric (what `inc`/`set`/`observe` on the metric itself act on). */
  protected get unlabelled(): C {
    if (this.labelNames.length > 0) {
      throw new InternalError(`${this.name}: has labels [${this.labelNames.join(', ')}]; use labels(...) first`);
    }
    return this.child([]);
  }

  protected pairs(values: readonly string[]): [string, string][] {
    return values.map((v, i) => [this.labelNames[i] as string, v]);
  }

  private child(values: readonly string[]): C {
    const key = JSON.stringify(values);
    let e = this.#children.get(key);
    if (!e) {
      e = { values, child: this.newChild() };
      this.#children.set(key, e);
    }
    return e.child;
  }

  private resolve(args: readonly unknown[]): string[] {
    const names = this.labelNames;
    const first = args[0];
    if (args.length === 1 && typeof first === 'object' && first !== null) {
      const obj = first as Record<string, unknown>;
      for (const k of Object.keys(obj)) {
        if (!(names as readonly string[]).includes(k)) throw new InternalError(`${this.name}: unknown label ${JSON.stringify(k)}`);
      }
      return names.map((n) => this.labelValue(n, obj[n]));
    }
    if (args.length !== names.length) {
      throw new InternalError(`${this.name}: expected ${names.length} label values [${names.join(', ')}], got ${args.length}`);
    }
    return names.map((n, i) => this.labelValue(n, args[i]));
  }

  private labelValue(name: string, v: unknown): string {
    if (typeof v === 'string') return v;
    if (typeof v === 'number') return String(v);
    throw new InternalError(`${this.name}: label ${JSON.stringify(name)} needs a string or number value, got ${v === undefined ? 'nothing' : typeof v}`);
  }
}

export class CounterChild {
  #value = 0;
  /** Adds `by` (default 1); a counter only goes up. */
  inc(by = 1): void {
    if (!Number.isFinite(by) || by < 0) throw new InternalError(`counter increment must be finite and >= 0, got ${by}`);
    this.#value += by;
  }
  get(): number {
    return this.#value;
  }
}

export class Counter<L extends string = never> extends Metric<L, CounterChild> {
  readonly type = 'counter';
  constructor(opts: MetricOptions<L>) {
    super(opts);
    this.reset();
  }
  inc(by = 1): void {
    this.unlabelled.inc(by);
  }
  get(): number {
    return this.unlabelled.get();
  }
  protected newChild(): CounterChild {
    return new CounterChild();
  }
  protected samples(values: readonly string[], c: CounterChild): Sample[] {
    return [{ name: this.name, labels: this.pairs(values), value: c.get() }];
  }
}

export class GaugeChild {
  #value = 0;
  set(v: number): void {
    this.#value = v;
  }
  inc(by = 1): void {
    this.#value += by;
  }
  dec(by = 1): void {
    this.#value -= by;
  }
  get(): number {
    return this.#value;
  }
}

export class Gauge<L extends string = never> extends Metric<L, GaugeChild> {
  readonly type = 'gauge';
  readonly #collect: ((gauge: Gauge<L>) => void) | undefined;
  constructor(opts: GaugeOptions<L>) {
    super(opts);
    this.#collect = opts.collect;
    this.reset();
  }
  set(v: number): void {
    this.unlabelled.set(v);
  }
  inc(by = 1): void {
    this.unlabelled.inc(by);
  }
  dec(by = 1): void {
    this.unlabelled.dec(by);
  }
  get(): number {
    return this.unlabelled.get();
  }
  override collect(): MetricFamily {
    this.#collect?.(this);
    return super.collect();
  }
  protected newChild(): GaugeChild {
    return new GaugeChild();
  }
  protected samples(values: readonly string[], c: GaugeChild): Sample[] {
    return [{ name: this.name, labels: this.pairs(values), value: c.get() }];
  }
}

export class HistogramChild {
  readonly #bounds: readonly number[];
  /** Per-bucket (not cumulative) counts; the last slot is the +Inf overflow. */
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.#counts = new Array<number>(bounds.length + 1).fill(0);
  }
  observe(v: number): void {
    if (Number.isNaN(v)) throw new InternalError('histogram observation is NaN');
    let i = 0;
    while (i < this.#bounds.length && v > (this.#bounds[i] as number)) i++;
    this.#counts[i] = (this.#counts[i] as number) + 1;
    this.#sum += v;
    this.#count++;
  }
  /** Starts a stopwatch; calling the result observes and returns the seconds elapsed. */
  startTimer(): () => number {
    const elapsed = startTimer();
    return () => {
      const s = elapsed();
      this.observe(s);
      return s;
    };
  }
  /** Cumulative counts per bound, `+Inf` last, plus sum and count. */
  get(): { buckets: { le: number; count: number }[]; sum: number; count: number } {
    let acc = 0;
    const buckets = this.#counts.map((c, i) => {
      acc += c;
      return { le: i < this.#bounds.length ? (this.#bounds[i] as number) : Infinity, count: acc };
    });
    return { buckets, sum: this.#sum, count: this.#count };
  }
}

export class Histogram<L extends string = never> extends Metric<L, HistogramChild> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];
  constructor(opts: HistogramOptions<L>) {
    super(opts, ['le']);
    const b = [...(opts.buckets ?? DEFAULT_BUCKETS)];
    if (b.length > 0 && b[b.length - 1] === Infinity) b.pop();
    for (let i = 0; i < b.length; i++) {
      const x = b[i] as number;
      if (!Number.isFinite(x)) throw new InternalError(`${opts.name}: bucket bound ${x} is not finite`);
      if (i > 0 && !(x > (b[i - 1] as number))) throw new InternalError(`${opts.name}: bucket bounds must be strictly increasing`);
    }
    this.buckets = Object.freeze(b);
    this.reset();
  }
  observe(v: number): void {
    this.unlabelled.observe(v);
  }
  startTimer(): () => number {
    return this.unlabelled.startTimer();
  }
  get(): ReturnType<HistogramChild['get']> {
    return this.unlabelled.get();
  }
  protected newChild(): HistogramChild {
    return new HistogramChild(this.buckets);
  }
  protected samples(values: readonly string[], c: HistogramChild): Sample[] {
    const base = this.pairs(values);
    const { buckets, sum, count } = c.get();
    return [
      ...buckets.map((b) => ({ name: `${this.name}_bucket`, labels: [...base, ['le', formatValue(b.le)] as const], value: b.count })),
      { name: `${this.name}_sum`, labels: base, value: sum },
      { name: `${this.name}_count`, labels: base, value: count },
    ];
  }
}

// ---------------------------------------------------------------------------
// Registry

export interface RegistryOptions {
  /** Registers the process collectors (RSS, CPU seconds, start time); default true. */
  processMetrics?: boolean;
}

export class Registry {
  readonly #collectors = new Map<string, Collector>();

  constructor(opts: RegistryOptions = {}) {
    if (opts.processMetrics ?? true) for (const c of processCollectors()) this.register(c);
  }

  /** Adds a collector; its name must be valid and not yet registered. */
  register<T extends Collector>(c: T): T {
    if (!isValidMetricName(c.name)) throw new InternalError(`invalid metric name ${JSON.stringify(c.name)}`);
    if (this.#collectors.has(c.name)) throw new InternalError(`metric ${c.name} is already registered`);
    this.#collectors.set(c.name, c);
    return c;
  }

  unregister(name: string): boolean {
    return this.#collectors.delete(name);
  }

  get(name: string): Collector | undefined {
    return this.#collectors.get(name);
  }

  counter<L extends string = never>(opts: MetricOptions<L>): Counter<L> {
    return this.register(new Counter<L>(opts));
  }

  gauge<L extends string = never>(opts: GaugeOptions<L>): Gauge<L> {
    return this.register(new Gauge<L>(opts));
  }

  histogram<L extends string = never>(opts: HistogramOptions<L>): Histogram<L> {
    return this.register(new Histogram<L>(opts));
  }

  /** Every family, sorted by name, in the text format 0.0.4 (ends with a newline when not empty). */
  render(): string {
    const names = [...this.#collectors.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let out = '';
    for (const n of names) out += renderFamily((this.#collectors.get(n) as Collector).collect());
    return out;
  }
}

let processStart: number | undefined;

/** process_cpu_seconds_total, process_resident_memory_bytes and process_start_time_seconds, read at render time. */
export function processCollectors(): Collector[] {
  const family = (name: string, help: string, type: MetricType, value: () => number): Collector => ({
    name,
    collect: () => ({ name, help, type, samples: [{ name, labels: [], value: value() }] }),
  });
  return [
    family('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', 'counter', () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    }),
    family('process_resident_memory_bytes', 'Resident memory size in bytes.', 'gauge', () => process.memoryUsage.rss()),
    family('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', 'gauge', () => {
      processStart ??= Math.round((Date.now() / 1000 - process.uptime()) * 1000) / 1000;
      return processStart;
    }),
  ];
}
