// A recording ElementWriter for unit tests: it keeps every batch the engine
// hands it and applies each to a FakeNft as one transaction (all or nothing,
// as the kernel commits a netlink batch), so that the engine's element path
// runs without a kernel. It writes the sets the real writer can
// (canWriteElements), and `failNext` makes the next batch fail the way the
// kernel refuses one.
import { Errno } from '../errors.ts';
import type { ElementChange, ElementWriter } from './element-writer.ts';
import { NftError } from './errors.ts';
import type { FakeNft } from './fake.ts';
import { canWriteElements } from './netlink-elements.ts';
import { Transaction } from './transaction.ts';
import type { Element, NftMap, NftSet } from './types.ts';

export class RecordingElementWriter implements ElementWriter {
  /** Every batch apply() was given, in order, failed ones included. */
  readonly batches: ElementChange[][] = [];
  #failure: NftError | undefined;

  readonly target: FakeNft;

  constructor(target: FakeNft) {
    this.target = target;
  }

  canWrite(def: NftSet | NftMap): boolean {
    return canWriteElements(def);
  }

  /** The next apply() throws this (nothing applied), as a refused batch does. */
  failNext(e: NftError = new NftError('element batch refused', { errno: Errno.ENOENT })): void {
    this.#failure = e;
  }

  apply(changes: readonly ElementChange[]): void {
    this.batches.push([...changes]);
    const failure = this.#failure;
    if (failure) {
      this.#failure = undefined;
      throw failure;
    }
    const tx = new Transaction();
    for (const c of changes) {
      const el: Element = {
        kind: 'element',
        table: c.set.table,
        ...(c.set.kind === 'map' ? { map: c.set.name } : { set: c.set.name }),
        key: c.key,
        ...(c.value !== undefined ? { value: c.value } : {}),
      };
      if (c.verb === 'add') tx.add(el);
      else tx.delete(el);
    }
    this.target.run(tx);
  }

  close(): void {}
}
