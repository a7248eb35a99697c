// The persistence seam between the allocator (pure policy) and a backend
// (DiskStore on nodes, MemoryStore in tests). Every method except withLock
// must be called while the lock is held; backends enforce that, so a caller
// that forgets the lock fails loudly instead of racing another CNI process.
import type { Family } from './range.ts';

export interface AllocationRecord {
  containerID: string;
  ifname: string;
  network?: string;
  podNamespace?: string;
  podName?: string;
  podUid?: string;
  /** Bare canonical IPs, one per range (two for dual-stack). */
  addresses: string[];
  /** ISO 8601 time of the reservation. */
  created: string;
}

export interface RepairReport {
  /** Temp files left by a crash between write and link. */
  tempFilesRemoved: string[];
  /** Partial reservations (some address files missing) left by a crash. */
  incompleteRemoved: AllocationRecord[];
  /** Files that are not valid records; left in place, their addresses stay taken. */
  unreadable: string[];
}

export interface Store {
  /** Runs `fn` holding the store's exclusive lock. Re-entrant within one process. */
  withLock<T>(fn: () => T): T;
  /** Reserves all of the record's addresses, or none; false if any is taken. */
  reserve(record: AllocationRecord): boolean;
  findByAttachment(containerID: string, ifname: string): AllocationRecord | undefined;
  /**
   * The addresses actually held for the attachment (one entry per stored
   * address). After a crash this can be fewer than its record lists; CHECK
   * compares the two.
   */
  heldAddresses(containerID: string, ifname: string): string[];
  /** Frees every address of the attachment; returns what was freed, if anything. */
  releaseByAttachment(containerID: string, ifname: string): AllocationRecord | undefined;
  /** One entry per attachment. */
  list(): AllocationRecord[];
  lastReserved(family: Family): string | undefined;
  setLastReserved(family: Family, ip: string): void;
  /** Removes crash leftovers. Safe only under the lock, where nothing is in flight. */
  repair(): RepairReport;
}

export const sameAttachment = (r: AllocationRecord, containerID: string, ifname: string): boolean => r.containerID === containerID && r.ifname === ifname;

const optionalKeys = ['network', 'podNamespace', 'podName', 'podUid'] as const;

/** Validates decoded JSON as a record; undefined when it is not one. */
export function toRecord(value: unknown): AllocationRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  const { containerID, ifname, addresses, created } = o;
  if (typeof containerID !== 'string' || containerID === '') return undefined;
  if (typeof ifname !== 'string' || ifname === '') return undefined;
  if (typeof created !== 'string') return undefined;
  if (!Array.isArray(addresses) || addresses.length === 0) return undefined;
  if (!addresses.every((a): a is string => typeof a === 'string')) return undefined;
  const record: AllocationRecord = { containerID, ifname, addresses: [...addresses], created };
  for (const k of optionalKeys) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== 'string') return undefined;
    record[k] = v;
  }
  return record;
}

/** Key for "one attachment": containerID and ifname cannot contain NUL. */
export const attachmentKey = (containerID: string, ifname: string): string => `${containerID}\0${ifname}`;
