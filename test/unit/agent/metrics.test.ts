import { describe, expect, it } from 'vitest';
import {
  Counter,
  escapeHelp,
  escapeLabelValue,
  exponentialBuckets,
  formatValue,
  Gauge,
  Histogram,
  linearBuckets,
  PROMETHEUS_CONTENT_TYPE,
  Registry,
  startTimer,
} from '../../../src/agent/metrics.ts';
import { InternalError } from '../../../src/errors.ts';

const bare = (): Registry => new Registry({ processMetrics: false });

describe('counter', () => {
  it('renders an unlabelled counter at zero, then its increments', () => {
    const r = bare();
    const c = r.counter({ name: 'weir_cni_adds_total', help: 'CNI ADDs handled.' });
    expect(r.render()).toBe('# HELP weir_cni_adds_total CNI ADDs handled.\n# TYPE weir_cni_adds_total counter\nweir_cni_adds_total 0\n');
    c.inc();
    c.inc(2.5);
    expect(c.get()).toBe(3.5);
    expect(r.render()).toBe('# HELP weir_cni_adds_total CNI ADDs handled.\n# TYPE weir_cni_adds_total counter\nweir_cni_adds_total 3.5\n');
  });

  it('renders labelled children sorted by label values, labels in declaration order, with escaping', () => {
    const r = bare();
    const c = r.counter({ name: 'weir_requests_total', help: 'Requests.', labelNames: ['route', 'code'] });
    c.labels({ route: '/x', code: 500 }).inc();
    c.labels('/a', '200').inc(3);
    c.labels({ code: '200', route: 'q"uo\\te\nnl' }).inc();
    c.labels('/a', '200').inc();
    expect(r.render()).toBe(
      [
        '# HELP weir_requests_total Requests.',
        '# TYPE weir_requests_total counter',
        'weir_requests_total{route="/a",code="200"} 4',
        'weir_requests_total{route="/x",code="500"} 1',
        'weir_requests_total{route="q\\"uo\\\\te\\nnl",code="200"} 1',
        '',
      ].join('\n'),
    );
  });

  it('prints HELP and TYPE for a labelled counter with no children yet', () => {
    const r = bare();
    r.counter({ name: 'x_total', help: 'h', labelNames: ['a'] });
    expect(r.render()).toBe('# HELP x_total h\n# TYPE x_total counter\n');
  });

  it('refuses to go down or to be used without its labels', () => {
    const c = new Counter({ name: 'c_total', help: 'h' });
    expect(() => c.inc(-1)).toThrow(InternalError);
    expect(() => c.inc(Number.NaN)).toThrow(InternalError);
    const l = new Counter({ name: 'l_total', help: 'h', labelNames: ['a', 'b'] });
    expect(() => l.inc()).toThrow(/use labels/);
    expect(() => l.labels('only-one')).toThrow(/expected 2 label values/);
    expect(() => l.labels({ a: 'x' } as never)).toThrow(/label "b"/);
    expect(() => l.labels({ a: 'x', b: 'y', c: 'z' } as never)).toThrow(/unknown label "c"/);
  });

  it('remove() and reset() forget children', () => {
    const r = bare();
    const c = r.counter({ name: 'p_total', help: 'h', labelNames: ['pod'] });
    c.labels('a').inc();
    c.labels('b').inc();
    c.remove('a');
    expect(r.render()).toBe('# HELP p_total h\n# TYPE p_total counter\np_total{pod="b"} 1\n');
    c.reset();
    expect(r.render()).toBe('# HELP p_total h\n# TYPE p_total counter\n');
    const u = r.counter({ name: 'u_total', help: 'h' });
    u.inc(5);
    u.reset();
    expect(u.get()).toBe(0);
  });
});

describe('gauge', () => {
  it('sets, increments and decrements, labelled and not', () => {
    const r = bare();
    const g = r.gauge({ name: 'weir_endpoints', help: 'Local endpoints.' });
    g.set(10);
    g.inc();
    g.dec(3);
    const f = r.gauge({ name: 'weir_family_addrs', help: 'Addresses by family.', labelNames: ['family'] });
    f.labels('6').set(-2.5);
    f.labels({ family: 4 }).set(Infinity);
    expect(r.render()).toBe(
      [
        '# HELP weir_endpoints Local endpoints.',
        '# TYPE weir_endpoints gauge',
        'weir_endpoints 8',
        '# HELP weir_family_addrs Addresses by family.',
        '# TYPE weir_family_addrs gauge',
        'weir_family_addrs{family="4"} +Inf',
        'weir_family_addrs{family="6"} -2.5',
        '',
      ].join('\n'),
    );
  });

  it('runs its collect callback at every render', () => {
    const r = bare();
    let n = 0;
    r.gauge({ name: 'live', help: 'h', collect: (g) => g.set(++n) });
    expect(r.render()).toContain('\nlive 1\n');
    expect(r.render()).toContain('\nlive 2\n');
  });
});

describe('histogram', () => {
  it('renders cumulative buckets, +Inf, sum and count', () => {
    const r = bare();
    const h = r.histogram({ name: 'weir_add_seconds', help: 'ADD latency.', buckets: [0.1, 0.5, 1] });
    for (const v of [0.05, 0.1, 0.3, 0.7, 2]) h.observe(v);
    expect(r.render()).toBe(
      [
        '# HELP weir_add_seconds ADD latency.',
        '# TYPE weir_add_seconds histogram',
        'weir_add_seconds_bucket{le="0.1"} 2',
        'weir_add_seconds_bucket{le="0.5"} 3',
        'weir_add_seconds_bucket{le="1"} 4',
        'weir_add_seconds_bucket{le="+Inf"} 5',
        'weir_add_seconds_sum 3.15',
        'weir_add_seconds_count 5',
        '',
      ].join('\n'),
    );
  });

  it('puts le after the other labels and groups each child', () => {
    const r = bare();
    const h = r.histogram({ name: 'rt_seconds', help: 'Round trips\\ with "quotes"\nand lines.', labelNames: ['op'], buckets: [1, 2, Infinity] });
    h.labels('sync').observe(1.5);
    h.labels('add"x').observe(3);
    h.labels('add"x').observe(1);
    expect(r.render()).toBe(
      [
        '# HELP rt_seconds Round trips\\\\ with "quotes"\\nand lines.',
        '# TYPE rt_seconds histogram',
        'rt_seconds_bucket{op="add\\"x",le="1"} 1',
        'rt_seconds_bucket{op="add\\"x",le="2"} 1',
        'rt_seconds_bucket{op="add\\"x",le="+Inf"} 2',
        'rt_seconds_sum{op="add\\"x"} 4',
        'rt_seconds_count{op="add\\"x"} 2',
        'rt_seconds_bucket{op="sync",le="1"} 0',
        'rt_seconds_bucket{op="sync",le="2"} 1',
        'rt_seconds_bucket{op="sync",le="+Inf"} 1',
        'rt_seconds_sum{op="sync"} 1.5',
        'rt_seconds_count{op="sync"} 1',
        '',
      ].join('\n'),
    );
  });

  it('uses the default buckets and starts an unlabelled histogram at zero', () => {
    const h = new Histogram({ name: 'd', help: 'h' });
    expect(h.buckets).toEqual([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
    const text = bare().register(h).collect();
    expect(text.samples).toHaveLength(11 + 1 + 2);
    expect(text.samples.every((s) => s.value === 0)).toBe(true);
  });

  it('validates buckets, le and NaN', () => {
    expect(() => new Histogram({ name: 'h', help: 'h', buckets: [1, 1] })).toThrow(/strictly increasing/);
    expect(() => new Histogram({ name: 'h', help: 'h', buckets: [2, 1] })).toThrow(/strictly increasing/);
    expect(() => new Histogram({ name: 'h', help: 'h', buckets: [Number.NaN] })).toThrow(/not finite/);
    expect(() => new Histogram({ name: 'h', help: 'h', labelNames: ['le'] })).toThrow(/reserved/);
    expect(() => new Histogram({ name: 'h', help: 'h' }).observe(Number.NaN)).toThrow(InternalError);
  });

  it('times with startTimer', async () => {
    const h = new Histogram({ name: 't', help: 'h', buckets: [10] });
    const end = h.startTimer();
    await new Promise((r) => setTimeout(r, 20));
    const s = end();
    expect(s).toBeGreaterThan(0.01);
    expect(s).toBeLessThan(10);
    expect(h.get().count).toBe(1);
    expect(h.get().buckets).toEqual([
      { le: 10, count: 1 },
      { le: Infinity, count: 1 },
    ]);
  });
});

describe('registry', () => {
  it('sorts families by name regardless of registration order', () => {
    const r = bare();
    r.gauge({ name: 'b', help: 'B' });
    r.counter({ name: 'a_total', help: 'A' });
    r.gauge({ name: 'C', help: 'C' });
    expect(r.render()).toBe('# HELP C C\n# TYPE C gauge\nC 0\n# HELP a_total A\n# TYPE a_total counter\na_total 0\n# HELP b B\n# TYPE b gauge\nb 0\n');
  });

  it('validates metric and label names and rejects duplicates', () => {
    const r = bare();
    for (const name of ['', '1abc', 'a-b', 'a b', 'é']) expect(() => r.counter({ name, help: 'h' })).toThrow(/invalid metric name/);
    for (const l of ['', '1a', 'a:b', '__reserved', 'a-b']) {
      expect(() => r.counter({ name: 'ok', help: 'h', labelNames: [l] })).toThrow(/invalid label name/);
    }
    expect(() => r.counter({ name: 'ok', help: 'h', labelNames: ['a', 'a'] })).toThrow(/duplicate label/);
    r.counter({ name: 'ns:sub_total', help: 'colons are fine' });
    expect(() => r.gauge({ name: 'ns:sub_total', help: 'h' })).toThrow(/already registered/);
    expect(r.unregister('ns:sub_total')).toBe(true);
    r.gauge({ name: 'ns:sub_total', help: 'h' });
  });

  it('includes the process collectors by default, computed at render time', () => {
    const r = new Registry();
    const text = r.render();
    const value = (name: string): number => {
      const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
      expect(m, name).not.toBeNull();
      return Number(m?.[1]);
    };
    expect(text).toContain('# TYPE process_cpu_seconds_total counter\n');
    expect(text).toContain('# TYPE process_resident_memory_bytes gauge\n');
    expect(text).toContain('# TYPE process_start_time_seconds gauge\n');
    expect(value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(value('process_resident_memory_bytes')).toBeGreaterThan(1 << 20);
    const start = value('process_start_time_seconds');
    expect(start).toBeLessThanOrEqual(Date.now() / 1000);
    expect(start).toBeGreaterThan(Date.now() / 1000 - 24 * 3600);
    // computed at render, so CPU time moves
    const t0 = value('process_cpu_seconds_total');
    const until = Date.now() + 30;
    while (Date.now() < until) {
      // burn CPU
    }
    const again = /^process_cpu_seconds_total (\S+)$/m.exec(r.render());
    expect(Number(again?.[1])).toBeGreaterThan(t0);
  });
});

describe('helpers', () => {
  it('formats values and escapes', () => {
    expect(formatValue(1)).toBe('1');
    expect(formatValue(0.25)).toBe('0.25');
    expect(formatValue(-0)).toBe('0');
    expect(formatValue(Number.NaN)).toBe('NaN');
    expect(formatValue(-Infinity)).toBe('-Inf');
    expect(formatValue(1e21)).toBe('1e+21');
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    expect(escapeHelp('a\\b"c\nd')).toBe('a\\\\b"c\\nd');
    expect(PROMETHEUS_CONTENT_TYPE).toBe('text/plain; version=0.0.4; charset=utf-8');
  });

  it('builds bucket series', () => {
    expect(linearBuckets(1, 2, 3)).toEqual([1, 3, 5]);
    const exp = exponentialBuckets(0.001, 10, 4);
    expect(exp).toHaveLength(4);
    for (const [i, want] of [0.001, 0.01, 0.1, 1].entries()) expect(exp[i]).toBeCloseTo(want, 12);
    expect(() => linearBuckets(0, 0, 3)).toThrow(InternalError);
    expect(() => exponentialBuckets(1, 1, 3)).toThrow(InternalError);
  });

  it('startTimer measures seconds', async () => {
    const t = startTimer();
    await new Promise((r) => setTimeout(r, 15));
    expect(t()).toBeGreaterThan(0.01);
  });

  it('Gauge and Counter work standalone', () => {
    const g = new Gauge({ name: 'g', help: 'h', labelNames: ['x'] });
    g.labels('1').inc(2);
    expect(g.labels({ x: 1 }).get()).toBe(2);
  });
});
