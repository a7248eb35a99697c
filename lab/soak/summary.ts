// The soak's one summary (pure): figures in, text out. The last line is
// machine-readable: `SOAK_SUMMARY ` followed by one JSON object (the CI
// test and scripts read it); the run fails (exit 1) when either
// must-be-zero figure (forbidden connections, invariant violations) is not
// zero, or when the run could not do what it claims (a fault kind never
// injected, no probe ever blocked).
import type { Outcome } from './judge.ts';

/** Nearest-rank percentile (p in 0..100) of the values; undefined for none. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1];
}

export interface FaultCount {
  injected: number;
  /** Attempts that could not be made (e.g. no plugin process seen to kill). */
  missed: number;
}

export interface SoakFigures {
  seed: number;
  minutes: number;
  ci: boolean;
  wallMs: number;
  /** Changes requested per minute (the scenario's rate). */
  ratePerMin: number;
  events: { applied: number; failed: number; byOp: Record<string, number> };
  faults: Record<string, FaultCount>;
  /** Fault kinds the run had to inject at least this many times each. */
  faultsRequired: number;
  probes: Record<Outcome, number> & { total: number };
  forbidden: string[];
  violations: string[];
  /** Change (watch event of a soak action) → every node's agent applied it, ms. */
  enforceMs: number[];
  /** Actions whose change no agent set was seen applying within the maximum settle time. */
  notEnforced: number;
  settle: { graceMs: number; maxSettleMs: number };
  notes: string[];
}

export interface Verdict {
  ok: boolean;
  reasons: string[];
}

export function verdict(f: SoakFigures): Verdict {
  const reasons: string[] = [];
  if (f.forbidden.length > 0) reasons.push(`${f.forbidden.length} forbidden connection(s) seen`);
  if (f.violations.length > 0) reasons.push(`${f.violations.length} invariant violation(s)`);
  for (const [kind, c] of Object.entries(f.faults))
    if (c.injected < f.faultsRequired) reasons.push(`fault ${kind} injected ${c.injected} time(s), fewer than ${f.faultsRequired}`);
  if (f.probes['blocked-ok'] === 0) reasons.push('no probe was ever blocked: the prober did not test enforcement');
  if (f.probes['allowed-ok'] === 0) reasons.push('no probe ever connected: the prober did not work');
  return { ok: reasons.length === 0, reasons };
}

const ms = (v: number | undefined): string => (v === undefined ? '-' : `${Math.round(v)} ms`);

export function summaryLines(f: SoakFigures): string[] {
  const v = verdict(f);
  const p50 = percentile(f.enforceMs, 50);
  const p99 = percentile(f.enforceMs, 99);
  const faults = Object.entries(f.faults)
    .map(([k, c]) => `${k} ${c.injected}${c.missed ? ` (+${c.missed} missed)` : ''}`)
    .join(', ');
  const pr = f.probes;
  const lines = [
    `soak summary (seed ${f.seed}, ${f.minutes} min${f.ci ? ', --ci' : ''}, wall ${(f.wallMs / 60_000).toFixed(1)} min)`,
    `  events applied: ${f.events.applied} (${f.ratePerMin}/min requested; ${f.events.failed} failed after retries): ${Object.entries(f.events.byOp)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
    `  faults injected: ${faults} (each kind required ≥ ${f.faultsRequired})`,
    `  probes judged: ${pr.total} (connected as allowed ${pr['allowed-ok']}, blocked as forbidden ${pr['blocked-ok']}, refused during a change ${pr.unsettled}, not judged ${pr.unjudged})`,
    `  allowed but refused: ${pr['allowed-failed']} (information: a pod not serving yet, a fault, settle time; not a safety finding)`,
    `  forbidden connections seen: ${f.forbidden.length} (must be 0)`,
    ...f.forbidden.slice(0, 20).map((x) => `    ${x}`),
    `  invariant violations: ${f.violations.length} (must be 0)`,
    ...f.violations.slice(0, 40).map((x) => `    ${x}`),
    `  change → enforced on every node: p50 ${ms(p50)}, p99 ${ms(p99)}, max ${ms(f.enforceMs.length ? Math.max(...f.enforceMs) : undefined)} over ${f.enforceMs.length} changes; ${f.notEnforced} not seen enforced within ${f.settle.maxSettleMs / 1000} s`,
    `  settle rule: a change excuses the state before it until every agent reports it applied + ${f.settle.graceMs} ms, at most ${f.settle.maxSettleMs / 1000} s`,
    ...f.notes.map((n) => `  note: ${n}`),
    v.ok ? '  PASS' : `  FAIL: ${v.reasons.join('; ')}`,
  ];
  const machine = {
    ok: v.ok,
    seed: f.seed,
    minutes: f.minutes,
    wallMs: f.wallMs,
    events: f.events.applied,
    faults: Object.fromEntries(Object.entries(f.faults).map(([k, c]) => [k, c.injected])),
    forbidden: f.forbidden.length,
    violations: f.violations.length,
    probes: pr.total,
    allowedRefused: pr['allowed-failed'],
    enforceP50Ms: p50 === undefined ? null : Math.round(p50),
    enforceP99Ms: p99 === undefined ? null : Math.round(p99),
  };
  lines.push(`SOAK_SUMMARY ${JSON.stringify(machine)}`);
  return lines;
}

/** The machine-readable last line of a soak's output, parsed; undefined when there is none. */
export function parseSummaryLine(output: string): ReturnType<typeof JSON.parse> | undefined {
  const last = output.trimEnd().split('\n').at(-1) ?? '';
  if (!last.startsWith('SOAK_SUMMARY ')) return undefined;
  return JSON.parse(last.slice('SOAK_SUMMARY '.length));
}
