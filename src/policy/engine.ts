// The policy engine: compiles a cluster snapshot for this node and brings the
// kernel to it in one nftables transaction per sync. The first sync replaces
// the whole table atomically; later ones apply only the difference from the
// state last applied. Effects go through the Nft interface, so the same
// engine runs on libnftables or on FakeNft in tests.
import type { Nft } from '../nft/libnftables.ts';
import type { ClusterIndexer } from './cluster-index.ts';
import { compilePolicies, indexerFor, type CompileOptions, type CompileResult } from './compile.ts';
import { type DiffStats, type Ruleset, diffTransaction, fullTransaction } from './ruleset.ts';
import type { ClusterState } from './types.ts';

export interface SyncReport {
  /** Whether the table was replaced whole (first sync, or recovery). */
  full: boolean;
  /** Operations in the transaction (0: nothing to change). */
  operations: number;
  compileMs: number;
  applyMs: number;
  stats?: DiffStats;
  result: CompileResult;
}

export class PolicyEngine {
  readonly #nft: Nft;
  readonly #opts: CompileOptions;
  #applied: Ruleset | undefined;
  /** The cluster as last compiled, so that the next compile does only what changed. */
  #indexer: ClusterIndexer | undefined;

  constructor(nft: Nft, opts: CompileOptions) {
    this.#nft = nft;
    this.#opts = opts;
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
    if (previous) {
      const diff = diffTransaction(previous, result.ruleset);
      stats = diff.stats;
      operations = diff.tx.size;
      try {
        if (operations > 0) this.#nft.run(diff.tx);
      } catch {
        // The kernel no longer holds what we applied (someone edited the
        // table, or an earlier run half-failed outside a transaction):
        // replace it whole, still atomically.
        full = true;
      }
    } else operations = 0;
    if (full) {
      const tx = fullTransaction(result.ruleset);
      operations = tx.size;
      this.#applied = undefined;
      this.#nft.run(tx);
    }
    this.#applied = result.ruleset;
    indexer.sets.commit();
    return { full, operations, compileMs: t1 - t0, applyMs: performance.now() - t1, ...(stats ? { stats } : {}), result };
  }
}
