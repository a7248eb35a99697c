// Allocation policy over a Store: which address a pod gets, freeing it, and
// garbage collection. Each entry point takes the store's lock itself (the lock
// is re-entrant), so a caller cannot forget it; a caller may still wrap several
// calls in one store.withLock to make them a single critical section.
import { InternalError, InvalidConfigError, RangeExhaustedError } from '../errors.ts';
import { canonicalIp, type Family, type PodRange } from './range.ts';
import { type AllocationRecord, attachmentKey, type Store } from './store.ts';

export interface Attachment {
  containerID: string;
  ifname: string;
  network: string;
  podNamespace?: string;
  podName?: string;
  podUid?: string;
}

export interface AttachmentId {
  containerID: string;
  ifname: string;
}

export interface AssignedAddress {
  family: Family;
  /** Bare address, e.g. `10.244.1.5`. */
  address: string;
  /** With the range's prefix, e.g. `10.244.1.5/24`, as CNI results carry it. */
  prefixed: string;
  /** Undefined when the address lies in no configured range (config changed). */
  range: PodRange | undefined;
}

export interface RangeUsage {
  range: string;
  size: bigint;
  used: number;
  free: bigint;
}

// reserve() only fails when list() missed a taken address (an unreadable file
// holds it); each retry marks the candidates used, so this bound is never
// reached by a sane store.
const MAX_RESERVE_ATTEMPTS = 64;

/**
 * Gives the attachment one address from each range (two ranges: dual-stack).
 * Idempotent: a repeated ADD for the same containerID+ifname returns the
 * existing record unchanged.
 */
export function allocate(store: Store, ranges: readonly PodRange[], attachment: Attachment, now: () => Date = () => new Date()): AllocationRecord {
  checkRanges(ranges);
  return store.withLock(() => {
    // First clear crash leftovers, so a half-written record from a killed ADD
    // is neither returned as ours nor blocks its addresses.
    store.repair();
    const existing = store.findByAttachment(attachment.containerID, attachment.ifname);
    if (existing) return existing;

    const used = new Set<string>();
    for (const r of store.list()) for (const a of r.addresses) used.add(canonicalIp(a) ?? a);

    for (let attempt = 0; attempt < MAX_RESERVE_ATTEMPTS; attempt++) {
      const addresses = ranges.map((range) => pick(range, used, store.lastReserved(range.family)));
      const record = makeRecord(attachment, addresses, now());
      if (store.reserve(record)) {
        // After reserve, so a crash in between only costs the round-robin hint.
        for (const a of addresses) store.setLastReserved(a.includes(':') ? 6 : 4, a);
        return record;
      }
      for (const a of addresses) used.add(a);
    }
    throw new InternalError(`IPAM store keeps refusing free addresses after ${MAX_RESERVE_ATTEMPTS} attempts`);
  });
}

/** Frees the attachment's addresses. Idempotent: unknown attachments return undefined. */
export function release(store: Store, containerID: string, ifname: string): AllocationRecord | undefined {
  return store.withLock(() => {
    const released = store.releaseByAttachment(containerID, ifname);
    store.repair();
    return released;
  });
}

/** Frees every reservation whose attachment is not in `valid` (CNI GC). */
export function gc(store: Store, valid: readonly AttachmentId[]): AllocationRecord[] {
  const keep = new Set(valid.map((v) => attachmentKey(v.containerID, v.ifname)));
  return store.withLock(() => {
    const released: AllocationRecord[] = [];
    for (const r of store.list()) {
      if (keep.has(attachmentKey(r.containerID, r.ifname))) continue;
      const freed = store.releaseByAttachment(r.containerID, r.ifname);
      if (freed) released.push(freed);
    }
    store.repair();
    return released;
  });
}

/** Used and free addresses per range, for STATUS and the debugging CLI. */
export function usage(store: Store, ranges: readonly PodRange[]): RangeUsage[] {
  const records = store.withLock(() => store.list());
  const used = new Set<string>();
  for (const r of records) for (const a of r.addresses) used.add(canonicalIp(a) ?? a);
  return ranges.map((range) => {
    const n = [...used].filter((a) => range.contains(a)).length;
    return { range: range.cidr, size: range.size, used: n, free: range.size - BigInt(n) };
  });
}

/** The record's addresses with the prefix of the range each belongs to. */
export function assignedAddresses(record: AllocationRecord, ranges: readonly PodRange[]): AssignedAddress[] {
  return record.addresses.map((a) => {
    const address = canonicalIp(a) ?? a;
    const family: Family = address.includes(':') ? 6 : 4;
    const range = ranges.find((r) => r.contains(address));
    return { family, address, prefixed: range ? range.withPrefix(address) : `${address}/${family === 4 ? 32 : 128}`, range };
  });
}

function checkRanges(ranges: readonly PodRange[]): void {
  if (ranges.length === 0) throw new InvalidConfigError('IPAM needs at least one pod range');
  const families = new Set(ranges.map((r) => r.family));
  // One address per family per pod: the round-robin hint is kept per family.
  if (families.size !== ranges.length) {
    throw new InvalidConfigError(`IPAM allows one pod range per IP family, got ${ranges.join(', ')}`);
  }
}

/**
 * Round-robin: start after the last address handed out, so a just-freed
 * address is not reused at once while stale conntrack entries or ARP/ND
 * caches elsewhere may still point at the old pod.
 */
function pick(range: PodRange, used: ReadonlySet<string>, last: string | undefined): string {
  const inRange = [...used].filter((a) => range.contains(a)).length;
  // Among k+1 distinct addresses at most k are used, so k+1 steps find a free
  // one; if the range has no more than k addresses it is full.
  const steps = range.size < BigInt(inRange + 1) ? range.size : BigInt(inRange + 1);
  let candidate = range.next(last !== undefined && range.contains(last) ? last : range.lastAddress);
  for (let i = 0n; i < steps; i++) {
    if (!used.has(candidate)) return candidate;
    candidate = range.next(candidate);
  }
  throw new RangeExhaustedError(`no free address in pod range ${range.cidr}: all ${range.size} are allocated`);
}

function makeRecord(a: Attachment, addresses: string[], created: Date): AllocationRecord {
  const opt = (key: 'podNamespace' | 'podName' | 'podUid') => (a[key] !== undefined ? { [key]: a[key] } : {});
  return {
    containerID: a.containerID,
    ifname: a.ifname,
    network: a.network,
    ...opt('podNamespace'),
    ...opt('podName'),
    ...opt('podUid'),
    addresses,
    created: created.toISOString(),
  };
}
