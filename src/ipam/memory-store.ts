// An in-memory Store for allocator tests and dry runs. It follows the same
// contract as DiskStore, including "lock first", so tests catch an allocator
// that forgets the lock. `implements Store` keeps it in step with the interface.
import { InternalError } from '../errors.ts';
import type { Family } from './range.ts';
import { type AllocationRecord, attachmentKey, type RepairReport, type Store, sameAttachment } from './store.ts';

const clone = (r: AllocationRecord): AllocationRecord => ({ ...r, addresses: [...r.addresses] });

export class MemoryStore implements Store {
  readonly #byAddress = new Map<string, AllocationRecord>();
  readonly #last = new Map<Family, string>();
  #depth = 0;

  withLock<T>(fn: () => T): T {
    this.#depth++;
    try {
      return fn();
    } finally {
      this.#depth--;
    }
  }

  get locked(): boolean {
    return this.#depth > 0;
  }

  #held(): void {
    if (this.#depth === 0) throw new InternalError('IPAM store used without holding its lock');
  }

  reserve(record: AllocationRecord): boolean {
    this.#held();
    if (record.addresses.some((a) => this.#byAddress.has(a))) return false;
    const stored = clone(record);
    for (const a of record.addresses) this.#byAddress.set(a, stored);
    return true;
  }

  findByAttachment(containerID: string, ifname: string): AllocationRecord | undefined {
    this.#held();
    for (const r of this.#byAddress.values()) if (sameAttachment(r, containerID, ifname)) return clone(r);
    return undefined;
  }

  heldAddresses(containerID: string, ifname: string): string[] {
    this.#held();
    return [...this.#byAddress].filter(([, r]) => sameAttachment(r, containerID, ifname)).map(([a]) => a);
  }

  releaseByAttachment(containerID: string, ifname: string): AllocationRecord | undefined {
    this.#held();
    let found: AllocationRecord | undefined;
    for (const [a, r] of this.#byAddress) {
      if (!sameAttachment(r, containerID, ifname)) continue;
      found ??= clone(r);
      this.#byAddress.delete(a);
    }
    return found;
  }

  list(): AllocationRecord[] {
    this.#held();
    const seen = new Map<string, AllocationRecord>();
    for (const r of this.#byAddress.values()) {
      const k = attachmentKey(r.containerID, r.ifname);
      if (!seen.has(k)) seen.set(k, clone(r));
    }
    return [...seen.values()];
  }

  lastReserved(family: Family): string | undefined {
    this.#held();
    return this.#last.get(family);
  }

  setLastReserved(family: Family, ip: string): void {
    this.#held();
    this.#last.set(family, ip);
  }

  repair(): RepairReport {
    this.#held();
    return { tempFilesRemoved: [], incompleteRemoved: [], unreadable: [] };
  }
}
