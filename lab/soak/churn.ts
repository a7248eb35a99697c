// The churn: the scenario's actions applied with kubectl, one at a time, at
// a Poisson rate. An action is retried while the API is away (a fault
// stops it for seconds); a retry of a create that had in fact gone through
// finds the object there, which counts as done. Each action is matched to
// the first watch event of its object after it was issued: that version's
// enforcement time is the action's change → enforced latency.
import { kubectl, sleep } from '../commands/common.ts';
import type { LabState } from '../state.ts';
import { describeAction, kubectlFor } from './manifests.ts';
import type { Rng } from './rng.ts';
import { type Action, actionObject, type Scenario } from './scenario.ts';
import type { Kind, Version } from './timeline.ts';

export interface AppliedAction {
  action: Action;
  issuedAt: number;
  doneAt: number;
  ok: boolean;
  error?: string;
  /** The first version of the object's kind this action made (matched from the watch). */
  version?: Version;
}

/** How long an action is retried (an API server outage is up to ~12 s, a restart up to a minute). */
const APPLY_DEADLINE_MS = 150_000;

export class Churn {
  readonly applied: AppliedAction[] = [];
  #pending: { kind: Kind; key: string; rec: AppliedAction }[] = [];
  #chain: Promise<unknown> = Promise.resolve();
  readonly #state: LabState;
  readonly #log: (line: string) => void;

  constructor(state: LabState, log: (line: string) => void) {
    this.#state = state;
    this.#log = log;
  }

  /** Applies an action after those already queued (faults queue theirs here too, so the order is the model's). */
  apply(a: Action): Promise<AppliedAction> {
    const p = this.#chain.then(() => this.#applyNow(a));
    this.#chain = p.catch(() => undefined);
    return p;
  }

  async #applyNow(a: Action): Promise<AppliedAction> {
    const call = kubectlFor(a);
    const { kind, key } = actionObject(a);
    const rec: AppliedAction = { action: a, issuedAt: Date.now(), doneAt: 0, ok: false };
    this.#pending.push({ kind, key, rec });
    const deadline = rec.issuedAt + APPLY_DEADLINE_MS;
    for (;;) {
      const r = await kubectl(this.#state, call.args, { ...(call.input ? { input: call.input } : {}), timeoutMs: 30_000 });
      const already = r.code !== 0 && a.op.endsWith('-create') && /AlreadyExists|already exists/.test(r.stderr);
      if (r.code === 0 || already) {
        rec.ok = true;
        break;
      }
      if (Date.now() > deadline) {
        rec.error = r.stderr.trim().slice(0, 300) || `exit ${r.code}`;
        this.#log(`churn: gave up on ${describeAction(a)}: ${rec.error}`);
        break;
      }
      await sleep(1000);
    }
    rec.doneAt = Date.now();
    this.applied.push(rec);
    return rec;
  }

  /** Called with every new version: the first event of an action's object after it was issued is the action's change. */
  observe(kind: Kind, v: Version): void {
    const m = /^(ADDED|MODIFIED|DELETED) (.+)$/.exec(v.change);
    if (!m || this.#pending.length === 0) return;
    const i = this.#pending.findIndex((p) => p.kind === kind && p.key === m[2] && p.rec.issuedAt <= v.at);
    if (i < 0) return;
    (this.#pending[i] as { rec: AppliedAction }).rec.version = v;
    this.#pending.splice(i, 1);
  }

  /** Drops the wait for events of actions that never made one (a relist carried it instead). */
  forget(olderThan: number): void {
    this.#pending = this.#pending.filter((p) => p.rec.issuedAt >= olderThan);
  }

  /** Draws and applies actions while `keepGoing()`: one every `meanMs` on average. */
  async run(scenario: Scenario, rng: Rng, meanMs: number, keepGoing: () => boolean, verbose: boolean): Promise<void> {
    while (keepGoing()) {
      await sleep(rng.exp(meanMs));
      if (!keepGoing()) break;
      const a = scenario.next();
      const rec = await this.apply(a);
      if (verbose) this.#log(`churn: ${describeAction(a)}${rec.ok ? '' : ' (FAILED)'}`);
    }
    await this.#chain;
  }
}
