// Kernel = applied, checked by the agent itself: the `inet weir` table is
// read back and compared with the ruleset the engine last applied
// (kernel-drift.ts); on any difference the table is replaced whole in one
// transaction (the engine forgets its applied state and the reconciler syncs
// at once), the repair is counted with its reasons and logged. The cheap
// check reads nf_tables' ruleset generation (NFT_MSG_GETGEN), which every
// committed batch moves, and the table's handle and use count
// (NFT_MSG_GETTABLE); the full check lists the table through libnftables,
// which is synchronous and so runs on the agent's event loop. When each
// runs, and why: see resync.ts; what a full check costs: the README.

import type { TableInfo } from '../netlink/nftables.ts';
import { parseTableListing } from '../nft/listing.ts';
import type { Ruleset } from '../policy/ruleset.ts';
import { type DriftReason, type DriftReport, tableDrift } from './kernel-drift.ts';
import { VERIFY_COST_FACTOR, VERIFY_FULL_MAX_MS, VERIFY_FULL_MIN_MS, VERIFY_TICK_MS } from './resync.ts';

/** The kernel side of the check; the agent's is libnftables and the element writer's netlink socket. */
export interface KernelTableSource {
  /** `nft list table` text (stateless), or undefined when the table does not exist. */
  list(): string | undefined;
  /** nf_tables' ruleset generation (NFT_MSG_GETGEN). */
  generation(): number;
  /** The table's handle and use count, or undefined when it does not exist. */
  tableInfo(): TableInfo | undefined;
}

export interface CheckResult {
  at: string;
  /** Wall time of the read and comparison. */
  ms: number;
  /** `cheap`: only the generation/table identity (no listing). */
  kind: 'full' | 'cheap';
  clean: boolean;
  /** Differences found (empty when clean). */
  drift: DriftReport;
  /** Whether a repair (full replacement) followed, and whether the table was then clean. */
  repaired?: boolean;
  afterRepair?: { clean: boolean; drift: DriftReport };
  error?: string;
}

export interface VerifierOptions {
  tickMs?: number;
  minFullMs?: number;
  maxFullMs?: number;
  costFactor?: number;
  now?: () => number;
}

export interface VerifierDeps {
  source: KernelTableSource;
  /** The ruleset last applied (undefined before the first sync, or after a failed full one). */
  applied(): Ruleset | undefined;
  /** Replaces the table whole with the desired state; true once applied. */
  repair(): boolean;
  /** After every full check, and every cheap one that found something (metrics, log). */
  onResult?(r: CheckResult): void;
}

const cleanReport = (): DriftReport => ({ counts: {}, examples: [] });
const signature = (d: DriftReport): string => JSON.stringify(d.examples);
const isClean = (d: DriftReport): boolean => Object.keys(d.counts).length === 0;

export class KernelVerifier {
  readonly #d: VerifierDeps;
  readonly #tickMs: number;
  readonly #minFullMs: number;
  readonly #maxFullMs: number;
  readonly #costFactor: number;
  readonly #now: () => number;
  /** The generation at which the kernel was last known to hold the applied ruleset. */
  #trusted: number | undefined;
  /** The table's handle as last applied or checked. */
  #handle: bigint | undefined;
  #lastFullAt = Number.NEGATIVE_INFINITY;
  #lastCostMs = 0;
  #last: CheckResult | undefined;
  #repairs = 0;
  /** The drift a repair left as it was (see check()). */
  #unrepairable: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(deps: VerifierDeps, opts: VerifierOptions = {}) {
    this.#d = deps;
    this.#tickMs = opts.tickMs ?? VERIFY_TICK_MS;
    this.#minFullMs = opts.minFullMs ?? VERIFY_FULL_MIN_MS;
    this.#maxFullMs = opts.maxFullMs ?? VERIFY_FULL_MAX_MS;
    this.#costFactor = opts.costFactor ?? VERIFY_COST_FACTOR;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** The last check that found something or read the table. */
  get last(): CheckResult | undefined {
    return this.#last;
  }
  get repairs(): number {
    return this.#repairs;
  }
  /** How long full checks are spaced now, from the last one's cost. */
  get fullSpacingMs(): number {
    return Math.min(this.#maxFullMs, Math.max(this.#minFullMs, this.#costFactor * this.#lastCostMs));
  }

  start(): void {
    this.#timer ??= setInterval(() => this.tick(), this.#tickMs).unref();
  }
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * After each sync of the agent's: a commit of its own keeps the kernel
   * trusted when it is the only one since the trusted generation; a full
   * replacement also gives the table a new handle.
   */
  afterSync(operations: number, full: boolean): void {
    if (operations === 0) return;
    try {
      const gen = this.#d.source.generation();
      this.#trusted = this.#trusted !== undefined && gen === this.#trusted + 1 ? gen : undefined;
      if (full) this.#handle = this.#d.source.tableInfo()?.handle;
    } catch {
      this.#trusted = undefined;
    }
  }

  /** The periodic step: the cheap check every time, a full one when due. */
  tick(): CheckResult | undefined {
    if (!this.#d.applied()) return undefined;
    let gen: number;
    try {
      gen = this.#d.source.generation();
    } catch (e) {
      return this.#record({ ...this.#result('cheap', 0, cleanReport()), clean: false, error: (e as Error).message });
    }
    if (gen === this.#trusted) return undefined;
    const cheap = this.#cheapCheck();
    if (cheap) return this.#repairIfNeeded(cheap);
    const since = this.#now() - this.#lastFullAt;
    if (since < this.fullSpacingMs) return undefined;
    return this.check({ repair: true });
  }

  /** A full check now (on demand, or when due); with `repair`, drift is repaired at once. */
  check(opts: { repair: boolean }): CheckResult {
    const applied = this.#d.applied();
    if (!applied) return this.#record({ ...this.#result('full', 0, cleanReport()), clean: false, error: 'nothing applied yet' });
    const t0 = this.#now();
    let result: CheckResult;
    try {
      const gen = this.#d.source.generation();
      const drift = this.#compare(applied);
      const ms = this.#now() - t0;
      this.#lastFullAt = this.#now();
      this.#lastCostMs = ms;
      result = this.#result('full', ms, drift);
      // Listing and generation agree when no commit came in between.
      if (result.clean && this.#d.source.generation() === gen) this.#trusted = gen;
    } catch (e) {
      result = { ...this.#result('full', this.#now() - t0, cleanReport()), clean: false, error: (e as Error).message };
    }
    // A difference a replacement did not remove (nft printing something weir
    // wrote its own way, say) is reported, not "repaired" again every check.
    if (!result.clean && !result.error && opts.repair && signature(result.drift) !== this.#unrepairable) return this.#repairIfNeeded(result);
    return this.#record(result);
  }

  /** Table gone, replaced, or missing chains or sets: seen without listing it. */
  #cheapCheck(): CheckResult | undefined {
    const applied = this.#d.applied() as Ruleset;
    const info = this.#d.source.tableInfo();
    const name = `${applied.table.family} ${applied.table.name}`;
    const drift = cleanReport();
    const add = (reason: DriftReason, detail: string): void => {
      drift.counts[reason] = 1;
      drift.examples.push({ reason, object: name, detail });
    };
    if (!info) add('table-missing', 'the table is gone');
    else if (this.#handle !== undefined && info.handle !== this.#handle)
      add('table-replaced', `the table was deleted and made again (handle ${this.#handle} → ${info.handle})`);
    else if (info.use !== applied.chains.size + applied.sets.size)
      add('objects-changed', `the kernel's table holds ${info.use} chains and sets, ${applied.chains.size + applied.sets.size} were applied`);
    return isClean(drift) ? undefined : this.#result('cheap', 0, drift);
  }

  #repairIfNeeded(found: CheckResult): CheckResult {
    let repaired = false;
    try {
      repaired = this.#d.repair();
    } catch (e) {
      found.error = `repair failed: ${(e as Error).message}`;
    }
    this.#repairs += repaired ? 1 : 0;
    const result: CheckResult = { ...found, repaired };
    if (repaired) {
      // Confirm: a replacement that does not list as applied is a bug in weir
      // (or someone racing it), and must not pass for a repair.
      const after = this.#d.applied();
      const drift = after ? this.#compare(after) : cleanReport();
      result.afterRepair = { clean: isClean(drift), drift };
      this.#handle = this.#d.source.tableInfo()?.handle;
      this.#unrepairable = result.afterRepair.clean ? undefined : signature(drift);
      // Trusted either way: what is left is what the table looks like as applied.
      this.#trusted = this.#d.source.generation();
    }
    return this.#record(result);
  }

  #compare(applied: Ruleset): DriftReport {
    const text = this.#d.source.list();
    return tableDrift(applied, text === undefined ? undefined : parseTableListing(text));
  }

  #result(kind: CheckResult['kind'], ms: number, drift: DriftReport): CheckResult {
    return { at: new Date().toISOString(), ms, kind, clean: isClean(drift), drift };
  }

  #record(r: CheckResult): CheckResult {
    this.#last = r;
    this.#d.onResult?.(r);
    return r;
  }
}
