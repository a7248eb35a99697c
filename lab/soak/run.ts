// `scripts/soak`: the churn soak with faults, start to end.
//
//   1. the lab up; an earlier soak's namespaces gone; the prober pods running;
//      a first population of namespaces, pods and policies; the lab settled;
//   2. the watch (recorder.ts), the enforcement tracker and the prober start;
//   3. for N minutes: the churn (churn.ts) and the faults (faults.ts), at once;
//      the probe book judges the probes as their states settle;
//   4. the churn over: the lab settles (scripts/lab wait's check), the last
//      probes are judged, every invariant is checked on every node;
//   5. one summary (summary.ts), its last line machine-readable; the soak's
//      namespaces deleted (unless --keep).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kubectl, sleep } from '../commands/common.ts';
import { waitForLab } from '../commands/wait.ts';
import type { LabState } from '../state.ts';
import { ProbeBook } from './book.ts';
import { Churn } from './churn.ts';
import { EnforcementTracker } from './enforcement.ts';
import { type FaultRecord, runFaults } from './faults.ts';
import { Forensics, probeKey } from './forensics.ts';
import { checkInvariants } from './invariants.ts';
import { INTERVAL_MS, Prober } from './prober.ts';
import { Recorder } from './recorder.ts';
import { Rng } from './rng.ts';
import { Scenario, SOAK_LABEL } from './scenario.ts';
import { FAULT_KINDS, faultsPerKind, faultsRequired, planFaults } from './schedule.ts';
import { ensureLab, ipBlocks, nodeInfos, PROBE_NS, removeLeftovers, startProberPods } from './setup.ts';
import { type SoakFigures, summaryLines } from './summary.ts';
import type { SettleRules } from './timeline.ts';

export interface SoakOptions {
  minutes: number;
  seed: number;
  ci: boolean;
  /** Faults of each kind, when not the default for the run's length; all must be injected. */
  faultsPerKind?: number;
  ratePerMin: number;
  keep: boolean;
  verbose: boolean;
}

export const SETTLE: SettleRules = { graceMs: 1000, maxSettleMs: 60_000 };
/** The first population, applied back to back before the probes start. */
const INITIAL_ACTIONS = 40;
const LIMITS = { maxNamespaces: 4, maxPods: 18, maxPolicies: 12 };
/** How long the lab may take to settle, before and after the churn. */
const SETTLE_TIMEOUT_MS = 300_000;

type Log = (line: string) => void;

/** Processes a fault stopped are continued however the soak ends. */
function continueOnExit(stopped: ReadonlySet<number>): void {
  process.on('exit', () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      process.stderr.write(`soak: stopped by ${sig}, no summary\n`);
      process.exit(130);
    });
  }
}

/** Step 1: the scenario, the prober pods, the first population, the lab settled. */
async function prepare(state: LabState, rng: Rng, log: Log) {
  await removeLeftovers(state, log);
  const nodes = state.nodes.map((n) => n.name);
  const probers = nodes.map((n) => ({ name: `probe-${n.replace(/^.*?-/, '')}`, node: n }));
  const scenario = new Scenario({ nodes, probeNamespace: PROBE_NS, probers, ipBlocks: await ipBlocks(state), ...LIMITS }, rng);
  const proberPods = await startProberPods(state, (name) => scenario.proberLabels(name));
  log(`prober pods running: ${proberPods.map((p) => p.id).join(', ')}`);
  const churn = new Churn(state, log);
  for (let i = 0; i < INITIAL_ACTIONS; i++) await churn.apply(scenario.next());
  const settled = await waitForLab(state, { timeoutMs: SETTLE_TIMEOUT_MS });
  if (!settled.ok) throw new Error(`the lab did not settle before the churn: ${settled.summary}`);
  log(
    `first population in place (${scenario.churnNamespaces().length} namespaces, ${scenario.churnPods().length} pods, ${scenario.policies.size} policies); ${settled.summary}`,
  );
  return { nodes, scenario, proberPods, churn };
}

/** Step 2: the soak's watch feeding the churn's latency matches and the prober's targets; the tracker; the book. */
async function startObserving(state: LabState, churn: Churn, proberPods: ConstructorParameters<typeof Prober>[0], t0: number, forensicsDir: string) {
  const everIps = new Set<string>();
  let prober: Prober | undefined;
  const recorder = new Recorder(state, (kind, v) => {
    churn.observe(kind, v);
    if (kind !== 'pods') return;
    // Every address a soak pod ever had: the leak checks look for what is left of them.
    for (const obj of v.objects.values())
      for (const { ip } of (obj.status as { podIPs?: { ip: string }[] } | undefined)?.podIPs ?? [])
        if (obj.metadata?.labels?.[SOAK_LABEL] === '1') everIps.add(ip);
    prober?.update(v);
  });
  await recorder.start();
  const tracker = new EnforcementTracker(state, recorder.timelines);
  tracker.start();
  const nodes = await nodeInfos(state);
  const book = new ProbeBook(recorder.timelines, nodes, SETTLE, t0);
  const forensics = new Forensics(state, recorder.timelines, tracker, nodes, forensicsDir);
  book.captureOf = (p) => forensics.captures.get(probeKey(p));
  prober = new Prober(proberPods, (r) => {
    book.add(r);
    forensics.onProbe(r);
  });
  const latest = recorder.timelines.pods.latest;
  if (latest) prober.update(latest);
  const judgeTimer = setInterval(() => book.judgeReady(Date.now(), recorder.knownUntil()), 2000);
  return { recorder, tracker, book, prober, judgeTimer, everIps, forensics };
}

type Observing = Awaited<ReturnType<typeof startObserving>>;

export async function runSoak(o: SoakOptions): Promise<number> {
  const t0 = Date.now();
  const log: Log = (l) => void process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${l}\n`);
  log(
    `soak: seed ${o.seed} (replay: scripts/soak --seed ${o.seed}${o.ci ? ' --ci' : ''}${o.faultsPerKind ? ` --faults-per-kind ${o.faultsPerKind}` : ''} --minutes ${o.minutes}), ${o.minutes} min, ${o.ratePerMin} changes/min`,
  );
  const state = ensureLab(log);
  const stopped = new Set<number>();
  continueOnExit(stopped);
  const rng = new Rng(o.seed);
  const { nodes, scenario, proberPods, churn } = await prepare(state, rng, log);
  const forensicsDir = path.join(os.tmpdir(), `weir-soak-${o.seed}-${t0}`);
  log(`kernel captures of connections the newest state forbids: ${forensicsDir} (those not found forbidden are deleted at the end)`);
  const obs = await startObserving(state, churn, proberPods, t0, forensicsDir);
  const { faults, churnStart } = await churnWithFaults(o, { state, rng, nodes, scenario, churn, obs, log, stopped });
  const { end, dead, inv } = await settleAndCheck(state, obs, forensicsDir, log);
  const figures = soakFigures(o, t0, { churn, faults, churnStart, obs, end, dead, inv });
  if (!o.keep) await kubectl(state, ['delete', 'namespaces', '-l', `${SOAK_LABEL}=1`, '--wait=false'], { timeoutMs: 60_000 });
  const lines = summaryLines(figures);
  process.stdout.write(`${lines.join('\n')}\n`);
  return lines.at(-1)?.includes('"ok":true') ? 0 : 1;
}

interface ChurnContext {
  state: LabState;
  rng: Rng;
  nodes: string[];
  scenario: Scenario;
  churn: Churn;
  obs: Observing;
  log: Log;
  /** Processes stopped by a fault: continued on the way out, whatever happens. */
  stopped: Set<number>;
}

/** Step 3: the churn and the faults, at once; the churn goes on until the last fault is over. */
async function churnWithFaults(o: SoakOptions, c: ChurnContext): Promise<{ faults: FaultRecord[]; churnStart: number }> {
  const { state, rng, nodes, scenario, churn, log, stopped } = c;
  const { book, recorder } = c.obs;
  const churnStart = Date.now();
  const churnEnd = churnStart + o.minutes * 60_000;
  const perKind = o.faultsPerKind ?? (o.ci ? 1 : faultsPerKind(o.minutes));
  const plan = planFaults(rng, { durationMs: o.minutes * 60_000, perKind, nodes, controlPlane: nodes[0] as string, warmupMs: 15_000, cooldownMs: 20_000 });
  log(`churn for ${o.minutes} min; ${plan.length} faults planned: ${plan.map((f) => `${f.kind}@${Math.round(f.at / 1000)}s`).join(' ')}`);
  const faults: FaultRecord[] = [];
  book.faults = faults;
  book.onForbidden = (l) => log(`FORBIDDEN: ${l}`);
  const progress = setInterval(() => {
    log(
      `progress: ${churn.applied.length} changes, ${faults.length} faults, ${book.counts.total} probes judged (${book.counts.forbidden} forbidden), ${book.pending} pending`,
    );
    // The cluster is shared: a lab taken down under the soak ends it, rather than every later fault failing on a cluster that is gone.
    const gone = state.nodes.filter((n) => !fs.existsSync(n.netns)).map((n) => n.name);
    if (gone.length > 0) {
      process.stderr.write(`soak: the lab went away under the soak (no network namespace for ${gone.join(', ')}); no summary\n`);
      process.exit(1);
    }
  }, 30_000);
  let faultsDone = false;
  await Promise.all([
    churn.run(scenario, rng, 60_000 / o.ratePerMin, () => Date.now() < churnEnd || !faultsDone, o.verbose),
    runFaults({ state, churn, scenario, recorder, log, stopped }, plan, churnStart, faults).finally(() => (faultsDone = true)),
  ]);
  clearInterval(progress);
  log(`churn over: ${churn.applied.length} changes applied; waiting for the lab to settle`);
  return { faults, churnStart };
}

/** Step 4: settled; one more probe round on the settled state; then the last judgements and the invariants. */
async function settleAndCheck(state: LabState, obs: Observing, forensicsDir: string, log: Log) {
  const { recorder, tracker, book, prober, judgeTimer, everIps, forensics } = obs;
  const end = await waitForLab(state, { timeoutMs: SETTLE_TIMEOUT_MS });
  log(end.ok ? end.summary : `NOT settled: ${end.summary}`);
  const settledAt = Date.now();
  await sleep(2 * INTERVAL_MS + 1500);
  const dead = prober.dead();
  await prober.stop();
  tracker.stop();
  await tracker.poll();
  await recorder.stop();
  clearInterval(judgeTimer);
  book.judgeReady(Math.max(Date.now(), settledAt) + SETTLE.maxSettleMs + 1, Number.POSITIVE_INFINITY);
  forensics.prune(book.forbiddenKeys);
  if (forensics.captures.size === 0) fs.rmSync(forensicsDir, { recursive: true, force: true });
  log('checking the invariants on every node');
  const inv = await checkInvariants(state, everIps, log);
  return { end, dead, inv };
}

interface SoakOutcome extends Awaited<ReturnType<typeof settleAndCheck>> {
  churn: Churn;
  faults: FaultRecord[];
  churnStart: number;
  obs: Observing;
}

/** Step 5: the figures the summary is made of. */
function soakFigures(o: SoakOptions, t0: number, r: SoakOutcome): SoakFigures {
  const { churn, faults, churnStart, end, dead, inv } = r;
  const { book, recorder } = r.obs;
  const byOp: Record<string, number> = {};
  for (const a of churn.applied) if (a.ok) byOp[a.action.op] = (byOp[a.action.op] ?? 0) + 1;
  return {
    seed: o.seed,
    minutes: o.minutes,
    ci: o.ci,
    wallMs: Date.now() - t0,
    ratePerMin: o.ratePerMin,
    events: { applied: churn.applied.filter((a) => a.ok).length, failed: churn.applied.filter((a) => !a.ok).length, byOp },
    faults: Object.fromEntries(
      FAULT_KINDS.map((k) => [k, { injected: faults.filter((f) => f.kind === k && f.ok).length, missed: faults.filter((f) => f.kind === k && !f.ok).length }]),
    ),
    faultsRequired: o.faultsPerKind ?? (o.ci ? 1 : faultsRequired(o.minutes)),
    probes: book.counts,
    forbidden: book.forbidden,
    violations: [...inv.violations, ...dead, ...(end.ok ? [] : [`the lab did not settle after the churn: ${end.pending.slice(0, 5).join('; ')}`])],
    enforceMs: churn.applied.flatMap((a) => (a.version?.enforcedAt !== undefined ? [a.version.enforcedAt - a.version.at] : [])),
    notEnforced: churn.applied.filter((a) => a.version && a.version.enforcedAt === undefined).length,
    settle: SETTLE,
    notes: [
      ...inv.notes,
      `invariants clean after ${inv.passes} pass(es)`,
      `soak watches: 410s ${JSON.stringify(recorder.expired)}, relists ${JSON.stringify(recorder.relists)}`,
      ...book.unjudgedExamples.map((x) => `not judged: ${x}`),
      ...faults.map((f) => `fault ${f.kind} on ${f.node} +${Math.round((f.start - churnStart) / 1000)} s: ${f.ok ? '' : 'NOT injected: '}${f.detail}`),
    ],
  };
}
