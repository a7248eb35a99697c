// The probe book: every probe's outcome, judged once what the kernel may
// have been enforcing at its instant is known (judge.ts), counted, and each
// forbidden connection described with the faults around it. It also prunes
// the timelines of versions no pending probe can need.

import type { NodeInfo } from '../../src/policy/types.ts';
import type { FaultRecord } from './faults.ts';
import { probeKey } from './forensics.ts';
import { EvaluatorCache, judge, type Outcome, type ProbeResult } from './judge.ts';
import { KINDS, type Kind, type KindTimeline, type SettleRules } from './timeline.ts';

/** How long one judgeReady call may work before it leaves the rest for the next. */
export const JUDGE_BUDGET_MS = 400;

export class ProbeBook {
  readonly counts: Record<Outcome, number> & { total: number } = {
    total: 0,
    'allowed-ok': 0,
    'blocked-ok': 0,
    forbidden: 0,
    'allowed-failed': 0,
    unsettled: 0,
    unjudged: 0,
  };
  readonly forbidden: string[] = [];
  /** The forbidden probes (forensics.ts probeKey). */
  readonly forbiddenKeys = new Set<string>();
  readonly unjudgedExamples: string[] = [];
  #pending: ProbeResult[] = [];
  readonly #timelines: Record<Kind, KindTimeline>;
  readonly #evaluators: EvaluatorCache;
  readonly #rules: SettleRules;
  readonly #t0: number;
  /** The faults so far (a forbidden connection names those around it). */
  faults: readonly FaultRecord[] = [];
  /** Told of each forbidden connection as it is found (the log). */
  onForbidden: (line: string) => void = () => {};
  /** Where the kernels' state at a probe's instant was captured, if it was (forensics.ts). */
  captureOf: (p: ProbeResult) => string | undefined = () => undefined;

  constructor(timelines: Record<Kind, KindTimeline>, nodes: readonly NodeInfo[], rules: SettleRules, t0: number) {
    this.#timelines = timelines;
    this.#evaluators = new EvaluatorCache(nodes);
    this.#rules = rules;
    this.#t0 = t0;
  }

  add(r: ProbeResult): void {
    this.#pending.push(r);
  }

  get pending(): number {
    return this.#pending.length;
  }

  /**
   * Judges every pending probe that can be: those that ended before
   * `knownUntil` (the soak's watch holds every change up to then) whose
   * candidate states are settled. `now` far ahead and knownUntil infinite
   * judge all (the run is over, every cap passed).
   */
  judgeReady(now: number, knownUntil: number): void {
    const left: ProbeResult[] = [];
    // A bounded slice of work per call: the soak's timers (the enforcement tracker, the churn, the faults) must keep running.
    const deadline = Date.now() + JUDGE_BUDGET_MS;
    for (const p of this.#pending) {
      if (Date.now() > deadline && knownUntil !== Number.POSITIVE_INFINITY) {
        left.push(p);
        continue;
      }
      const j = p.start + p.ms <= knownUntil ? judge(p, this.#timelines, this.#evaluators, now, this.#rules) : undefined;
      if (!j) {
        left.push(p);
        continue;
      }
      this.counts.total++;
      this.counts[j.outcome]++;
      if (j.outcome === 'forbidden') {
        this.forbiddenKeys.add(probeKey(p));
        this.forbidden.push(this.#describe(p, j.detail ?? ''));
        this.onForbidden(this.forbidden.at(-1) as string);
      }
      if (j.outcome === 'unjudged' && this.unjudgedExamples.length < 5) this.unjudgedExamples.push(`${p.from} → ${p.ip}:${p.port}: ${j.detail ?? ''}`);
    }
    this.#pending = left;
    const oldest = left.reduce((m, p) => Math.min(m, p.start), now);
    for (const k of KINDS) this.#timelines[k].prune(oldest, this.#rules);
  }

  #describe(p: ProbeResult, why: string): string {
    const rel = (t: number): string => `+${((t - this.#t0) / 1000).toFixed(1)} s`;
    const near = this.faults
      .filter((f) => f.start - 60_000 <= p.start && p.start <= f.end + 60_000)
      .map((f) => `${f.kind} on ${f.node} ${rel(f.start)}…${rel(f.end)}`);
    return `${rel(p.start)} ${p.from} → ${p.ip}:${p.port} connected in ${p.ms} ms${p.who ? ` (answered by ${p.who})` : ''}; ${why}; faults within 60 s: ${near.join(', ') || 'none'}; kernel capture: ${this.captureOf(p) ?? 'none'}`;
  }
}
