// Denied packets, as the policy table logs them to its nflog group: counted
// for /metrics and kept (the newest few thousand) for `weirctl drops`. Each
// record names the profile chain that denied it (from the log prefix), so a
// reader can map it to the pod and the policies that select it.

import type { DropRecord } from '../agent-api/types.ts';
import type { NflogPacket } from '../netlink/nflog.ts';
import { type PacketHeaders, parsePacketHeaders, tcpFlagNames } from '../packet/headers.ts';

export type { DropRecord };

// `weir deny in prof_…: `, `weir deny eg prof_…: `, `weir audit host …: `.
const PREFIX = /^weir (deny|audit) (in|eg|host) (\S+): $/;

export function parseDrop(p: NflogPacket, seq: number): DropRecord | undefined {
  const m = PREFIX.exec(p.prefix);
  if (!m) return undefined;
  let h: PacketHeaders | undefined;
  try {
    h = parsePacketHeaders(p.payload, p.family);
  } catch {
    h = undefined;
  }
  return {
    seq,
    time: (p.timestamp ?? new Date()).toISOString(),
    direction: m[2] === 'in' ? 'ingress' : m[2] === 'eg' ? 'egress' : 'host',
    chain: m[3],
    audit: m[1] === 'audit',
    family: h?.family ?? p.family,
    src: h?.src,
    dst: h?.dst,
    protocol: h === undefined ? undefined : typeof h.protocol === 'number' ? String(h.protocol) : h.protocol,
    sport: h?.sport,
    dport: h?.dport,
    flags: h?.tcpFlags === undefined ? undefined : tcpFlagNames(h.tcpFlags),
  };
}

/** A bounded log of recent drops with waiting readers (long poll). */
export class DropLog {
  readonly #capacity: number;
  readonly #records: DropRecord[] = [];
  #seq = 0;
  #waiters: Array<() => void> = [];

  constructor(capacity = 2000) {
    this.#capacity = capacity;
  }

  get lastSeq(): number {
    return this.#seq;
  }

  add(p: NflogPacket): DropRecord | undefined {
    const r = parseDrop(p, this.#seq + 1);
    if (!r) return undefined;
    this.#seq = r.seq;
    this.#records.push(r);
    if (this.#records.length > this.#capacity) this.#records.splice(0, this.#records.length - this.#capacity);
    const w = this.#waiters;
    this.#waiters = [];
    for (const wake of w) wake();
    return r;
  }

  /** Records after `after`, newest first, at most `limit`. */
  since(after: number, limit: number): DropRecord[] {
    const out: DropRecord[] = [];
    for (let i = this.#records.length - 1; i >= 0 && out.length < limit; i--) {
      const r = this.#records[i] as DropRecord;
      if (r.seq <= after) break;
      out.push(r);
    }
    return out;
  }

  /** Waits until a record newer than `after` exists, or `timeoutMs` passes. */
  wait(after: number, timeoutMs: number): Promise<void> {
    if (this.#seq > after) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve();
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(t);
        resolve();
      };
      this.#waiters.push(done);
    });
  }
}
