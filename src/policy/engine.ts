// The policy engine: compiles a cluster snapshot for this node and brings the
// kernel to it in one nftables transaction per sync: the whole table,
// replaced atomically, when the engine holds no applied state, otherwise only
// the difference from the state last applied (when each happens:
// src/agent/resync.ts). Effects go through the Nft interface, so the same
// engine runs on libnftables or on FakeNft in tests.

import { CniCode, WeirError } from '../errors.ts';
import type { Nft } from '../nft/backend.ts';
import type { ElementChange, ElementWriter } from '../nft/element-writer.ts';
import type { Transaction } from '../nft/transaction.ts';
import type { ClusterIndexer } from './cluster-index.ts';
import { type CompileOptions, type CompileResult, compilePolicies, indexerFor } from './compile.ts';
import { type DiffStats, diffTransaction, fullTransaction, type Ruleset } from './ruleset.ts';
import type { ClusterState } from './types.ts';

/**
 * The incremental path failed and the engine replaced the table whole
 * instead; `strict` engines (tests) throw this instead of falling back.
 */
export class IncrementalSyncError extends WeirError {
  readonly code = 'WEIR_INCREMENTAL_SYNC';
  readonly cniCode = CniCode.Internal;
}

export interface EngineOptions {
  /**
   * Throw IncrementalSyncError instead of falling back to a full replacement
   * when the incremental path fails: for tests, where a fallback means the
   * diff or the element writer is wrong, not that someone edited the table.
   */
  strict?: boolean;
}

export interface SyncReport {
  /** Whether the table was replaced whole (first sync, or recovery). */
  full: boolean;
  /** Why the incremental path failed, when the table was replaced whole instead (the error it threw). */
  fallback?: Error;
  /** Operations in the transaction (0: nothing to change). */
  operations: number;
  /** The transaction held only element changes and went straight to nf_tables over netlink (ElementWriter). */
  elementsOnly: boolean;
  compileMs: number;
  applyMs: number;
  stats?: DiffStats;
  result: CompileResult;
}

export class PolicyEngine {
  readonly #nft: Nft;
  readonly #elements: ElementWriter | undefined;
  readonly #opts: CompileOptions;
  readonly #strict: boolean;
  #applied: Ruleset | undefined;
  /** The cluster as last compiled, so that the next compile does only what changed. */
  #indexer: ClusterIndexer | undefined;

  /**
   * `elements`, when given, applies transactions that only add and delete
   * elements of sets it can write (a pod coming, going or relabelled):
   * libnftables 1.0.6 reads every set of the table into its cache before
   * any change, ~8 ms at 1k policies, while the element batch itself takes
   * well under a millisecond. Anything else goes through `nft`.
   */
  constructor(nft: Nft, opts: CompileOptions, elements?: ElementWriter, engine: EngineOptions = {}) {
    this.#nft = nft;
    this.#elements = elements;
    this.#opts = opts;
    this.#strict = engine.strict === true;
  }

  /** The ruleset last applied to the kernel, if any. */
  get applied(): Ruleset | undefined {
    return this.#applied;
  }

  /** Forgets the applied state, so the next sync replaces the table whole. */
  invalidate(): void {
    this.#applied = undefined;
  }

  /**
   * Compiles `state` and applies it. `options` override the engine's compile
   * options for this sync (e.g. the node's pod CIDRs once known); `decorate`
   * adds the table's other parts (masquerade) before it is applied.
   */
  sync(state: ClusterState, extra: { options?: Partial<CompileOptions>; decorate?: (rs: Ruleset) => void } = {}): SyncReport {
    const t0 = performance.now();
    const opts = { ...this.#opts, ...extra.options };
    const indexer = indexerFor(state, opts, this.#indexer);
    this.#indexer = indexer;
    const result = compilePolicies(state, opts, indexer);
    extra.decorate?.(result.ruleset);
    const t1 = performance.now();
    const previous = this.#applied;
    let full = previous === undefined;
    let stats: DiffStats | undefined;
    let operations: number;
    let elementsOnly = false;
    let fallback: Error | undefined;
    if (previous) {
      const diff = diffTransaction(previous, result.ruleset);
      stats = diff.stats;
      operations = diff.tx.size;
      try {
        if (operations > 0) {
          const changes = this.#elements && elementChanges(diff.tx, previous, result.ruleset, this.#elements);
          if (changes) (this.#elements as ElementWriter).apply(changes);
          else this.#nft.run(diff.tx);
          elementsOnly = changes !== undefined;
        }
      } catch (e) {
        // The kernel no longer holds what we applied: replace it whole,
        // still atomically (see src/agent/resync.ts). The report says why,
        // for the agent's log and metric; a strict engine (tests) refuses.
        fallback = e instanceof Error ? e : new Error(String(e));
        if (this.#strict) throw new IncrementalSyncError(`incremental sync failed: ${fallback.message}`, { cause: e });
        full = true;
      }
    } else operations = 0;
    if (full) {
      elementsOnly = false;
      const tx = fullTransaction(result.ruleset);
      operations = tx.size;
      this.#applied = undefined;
      this.#nft.run(tx);
    }
    this.#applied = result.ruleset;
    indexer.sets.commit();
    return {
      full,
      operations,
      elementsOnly,
      compileMs: t1 - t0,
      applyMs: performance.now() - t1,
      ...(stats ? { stats } : {}),
      ...(fallback ? { fallback } : {}),
      result,
    };
  }
}

/** The transaction as element changes, when it is only that and the writer can write every set it touches. */
function elementChanges(tx: Transaction, from: Ruleset, to: Ruleset, writer: ElementWriter): ElementChange[] | undefined {
  const out: ElementChange[] = [];
  for (const { verb, obj } of tx.operations) {
    if (obj.kind !== 'element' || (verb !== 'add' && verb !== 'delete')) return undefined;
    const name = obj.set ?? obj.map ?? '';
    const def = to.sets.get(name)?.def ?? from.sets.get(name)?.def;
    if (!def || !writer.canWrite(def)) return undefined;
    out.push({ verb, set: def, key: obj.key, ...(obj.value !== undefined ? { value: obj.value } : {}) });
  }
  return out;
}
