// The soak's summary: the figures a reader needs, and a verdict that fails
// on any forbidden connection, any violation, or a run that did not do what
// it claims.
import { describe, expect, it } from 'vitest';
import { parseSummaryLine, percentile, type SoakFigures, summaryLines, verdict } from '../../../lab/soak/summary.ts';

function figures(over: Partial<SoakFigures> = {}): SoakFigures {
  return {
    seed: 42,
    minutes: 10,
    ci: false,
    wallMs: 12 * 60_000,
    ratePerMin: 40,
    events: { applied: 400, failed: 0, byOp: { 'pod-create': 100, 'pod-delete': 90 } },
    faults: { 'agent-kill': { injected: 2, missed: 0 }, 'cni-kill-add': { injected: 2, missed: 1 } },
    faultsRequired: 1,
    probes: { total: 1000, 'allowed-ok': 600, 'blocked-ok': 350, forbidden: 0, 'allowed-failed': 30, unsettled: 20, unjudged: 0 },
    forbidden: [],
    violations: [],
    enforceMs: [100, 200, 300, 400, 5000],
    notEnforced: 0,
    settle: { graceMs: 1000, maxSettleMs: 60_000 },
    notes: ['a note'],
    ...over,
  };
}

describe('percentile', () => {
  it('is the nearest rank, undefined for no values', () => {
    expect(percentile([], 50)).toBeUndefined();
    expect(percentile([5], 99)).toBe(5);
    expect(percentile([4, 1, 3, 2], 50)).toBe(2);
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        99,
      ),
    ).toBe(99);
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        100,
      ),
    ).toBe(100);
  });
});

describe('verdict', () => {
  it('passes a clean run', () => {
    expect(verdict(figures())).toEqual({ ok: true, reasons: [] });
  });

  it('fails on a forbidden connection, a violation, a fault kind short of its count, a prober that never blocked or never connected', () => {
    expect(verdict(figures({ forbidden: ['x'] })).reasons).toEqual(['1 forbidden connection(s) seen']);
    expect(verdict(figures({ violations: ['a', 'b'] })).reasons).toEqual(['2 invariant violation(s)']);
    expect(verdict(figures({ faultsRequired: 3 })).reasons).toEqual([
      'fault agent-kill injected 2 time(s), fewer than 3',
      'fault cni-kill-add injected 2 time(s), fewer than 3',
    ]);
    const probes = figures().probes;
    expect(verdict(figures({ probes: { ...probes, 'blocked-ok': 0 } })).ok).toBe(false);
    expect(verdict(figures({ probes: { ...probes, 'allowed-ok': 0 } })).ok).toBe(false);
  });
});

describe('summaryLines', () => {
  it('prints events, faults per kind, probes with allowed-but-refused, must-be-zero figures and latencies; its last line is machine-readable', () => {
    const lines = summaryLines(figures());
    const text = lines.join('\n');
    expect(text).toMatch(/events applied: 400 \(40\/min requested; 0 failed/);
    expect(text).toMatch(/faults injected: agent-kill 2, cni-kill-add 2 \(\+1 missed\)/);
    expect(text).toMatch(/allowed but refused: 30 \(information/);
    expect(text).toMatch(/forbidden connections seen: 0 \(must be 0\)\n/);
    expect(text).toMatch(/invariant violations: 0 \(must be 0\)\n/);
    expect(text).toMatch(/p50 300 ms, p99 5000 ms/);
    expect(lines.at(-2)).toBe('  PASS');
    expect(parseSummaryLine(text)).toEqual({
      ok: true,
      seed: 42,
      minutes: 10,
      wallMs: 720_000,
      events: 400,
      faults: { 'agent-kill': 2, 'cni-kill-add': 2 },
      forbidden: 0,
      violations: 0,
      probes: 1000,
      allowedRefused: 30,
      enforceP50Ms: 300,
      enforceP99Ms: 5000,
    });
  });

  it('lists what failed, and says FAIL with the reasons', () => {
    const text = summaryLines(figures({ forbidden: ['+1.0 s probe/p → 10.244.2.5:80 connected'], violations: ['n1: leaked veth weirabc'] })).join('\n');
    expect(text).toMatch(/forbidden connections seen: 1 \(must be 0\)\n {4}\+1\.0 s probe\/p/);
    expect(text).toMatch(/invariant violations: 1 \(must be 0\)\n {4}n1: leaked veth/);
    expect(text).toMatch(/FAIL: 1 forbidden connection\(s\) seen; 1 invariant violation\(s\)/);
    expect(parseSummaryLine(text)).toMatchObject({ ok: false, forbidden: 1, violations: 1 });
  });

  it('finds no summary line in output without one', () => {
    expect(parseSummaryLine('soak: crashed\n')).toBeUndefined();
  });
});
