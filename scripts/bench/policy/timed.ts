// The engine's two ways to the kernel, wrapped to time each apply for the
// sync part: the nft transaction (its render and libnftables) with its size,
// and the element-only diffs that go to nf_tables over netlink.
import type { Nft } from '../../../src/nft/backend.ts';
import type { ElementChange, ElementWriter } from '../../../src/nft/element-writer.ts';
import type { LibNftables } from '../../../src/nft/libnftables.ts';
import type { NetlinkElementWriter } from '../../../src/nft/netlink-elements.ts';
import type { Transaction } from '../../../src/nft/transaction.ts';

/** An Nft that times each run: the nft transaction alone (its render and libnftables), and its size. */
export class TimedNft implements Nft {
  readonly inner: LibNftables;
  /** runMs: inner.run alone; renderMs: one extra render, made to know the size; overheadMs: all the wrapper adds to the engine's applyMs. */
  last = { runMs: NaN, renderMs: NaN, overheadMs: 0, bytes: 0, ops: 0 };
  constructor(inner: LibNftables) {
    this.inner = inner;
  }
  run(tx: Transaction): void {
    // Rendered once more, to know its size and what rendering costs (inner.run
    // renders again, as always); that extra render is subtracted from the engine's times.
    const r0 = performance.now();
    const bytes = tx.render().length;
    const r1 = performance.now();
    this.inner.run(tx);
    const r2 = performance.now();
    this.last = { runMs: r2 - r1, renderMs: r1 - r0, overheadMs: r1 - r0, bytes, ops: tx.size };
  }
  check(tx: Transaction): void {
    this.inner.check(tx);
  }
  list(family: Parameters<Nft['list']>[0], table: string): string {
    return this.inner.list(family, table);
  }
  close(): void {
    this.inner.close();
  }
}

/** The agent's element writer, timed: element-only diffs go to nf_tables over netlink. */
export class TimedElements implements ElementWriter {
  readonly inner: NetlinkElementWriter;
  last = { runMs: NaN, changes: 0 };
  constructor(inner: NetlinkElementWriter) {
    this.inner = inner;
  }
  canWrite(def: Parameters<ElementWriter['canWrite']>[0]): boolean {
    return this.inner.canWrite(def);
  }
  apply(changes: readonly ElementChange[]): void {
    const t0 = performance.now();
    this.inner.apply(changes);
    this.last = { runMs: performance.now() - t0, changes: changes.length };
  }
  close(): void {
    this.inner.close();
  }
}
