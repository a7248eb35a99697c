// What the agent has learned from DNS answers: for each name, the addresses
// it resolved to and until when (the record's TTL, clamped). Pure
// bookkeeping with the caps that bound what one node keeps; the agent
// writes what it learns to the kernel (agent/dns.ts), where the elements
// carry the same expiry and vanish on their own.
//
// Why clamp the TTL:
// - at least `minTtlS`: a TTL of 0 or 1 s ("do not cache") is common for
//   load-balanced names, and a client connects right after the answer, or
//   a few seconds later after a retry; an address gone from the set before
//   the SYN (or its retransmission at 1 s, 3 s) would refuse the very
//   connection the lookup was for. An established connection no longer
//   needs the element (conntrack keeps it), so a short floor suffices.
// - at most `maxTtlS`: an answer with a TTL of days (or 2^31 s) must not
//   keep an address open long after the name moved; a client that still
//   uses it past an hour has looked the name up again meanwhile.
//
// Caps: `perName` addresses for one name (a CDN name rotates through a few
// dozen), `perNode` in all (each is a set element in the kernel, per set
// whose names match). Past a cap, new addresses are not learned (and their
// connections refused until a slot expires): counted, so the operator sees
// it. Entries already learned are never evicted early, since a connection
// may be on its way to them.

export interface LearnLimits {
  readonly minTtlS: number;
  readonly maxTtlS: number;
  readonly perName: number;
  readonly perNode: number;
}

export const DEFAULT_LIMITS: LearnLimits = { minTtlS: 5, maxTtlS: 3600, perName: 64, perNode: 16384 };

export const clampTtl = (ttlS: number, l: LearnLimits): number => Math.min(l.maxTtlS, Math.max(l.minTtlS, Number.isFinite(ttlS) ? ttlS : 0));

export interface Learned {
  /** Addresses learned or refreshed, with their expiry (ms, the clock `now` is on). */
  readonly kept: readonly { readonly address: string; readonly expiresAt: number }[];
  /** Addresses not learned because a cap was full. */
  readonly overflow: number;
  readonly cap?: 'name' | 'node';
}

export class LearnedDomains {
  readonly limits: LearnLimits;
  readonly #names = new Map<string, Map<string, number>>();
  #count = 0;

  constructor(limits: LearnLimits = DEFAULT_LIMITS) {
    this.limits = limits;
  }

  /** Addresses kept in all (one per name and address). */
  get size(): number {
    return this.#count;
  }

  /** Learns that `name` resolves to `addresses` for `ttlS` seconds from `now`; an address known already keeps the later expiry. */
  learn(name: string, addresses: readonly string[], ttlS: number, now: number): Learned {
    this.expire(now);
    const expiresAt = now + clampTtl(ttlS, this.limits) * 1000;
    let entry = this.#names.get(name);
    const kept: { address: string; expiresAt: number }[] = [];
    let overflow = 0;
    let cap: 'name' | 'node' | undefined;
    for (const address of addresses) {
      const was = entry?.get(address);
      if (was !== undefined) {
        const at = Math.max(was, expiresAt);
        entry?.set(address, at);
        kept.push({ address, expiresAt: at });
        continue;
      }
      if ((entry?.size ?? 0) >= this.limits.perName || this.#count >= this.limits.perNode) {
        cap ??= (entry?.size ?? 0) >= this.limits.perName ? 'name' : 'node';
        overflow++;
        continue;
      }
      if (!entry) {
        entry = new Map();
        this.#names.set(name, entry);
      }
      entry.set(address, expiresAt);
      this.#count++;
      kept.push({ address, expiresAt });
    }
    return cap ? { kept, overflow, cap } : { kept, overflow };
  }

  /** Forgets what expired at `now`; returns how many addresses went. */
  expire(now: number): number {
    let gone = 0;
    for (const [name, entry] of this.#names) {
      for (const [address, at] of entry) {
        if (at > now) continue;
        entry.delete(address);
        gone++;
      }
      if (entry.size === 0) this.#names.delete(name);
    }
    this.#count -= gone;
    return gone;
  }

  /** Every live entry. */
  *entries(now: number): Generator<{ name: string; address: string; expiresAt: number }> {
    for (const [name, entry] of this.#names) for (const [address, expiresAt] of entry) if (expiresAt > now) yield { name, address, expiresAt };
  }

  /** Name to addresses, as ClusterState.domainAddresses takes them (the evaluator's view). */
  domainAddresses(now: number): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const e of this.entries(now)) {
      const list = out.get(e.name) ?? [];
      list.push(e.address);
      out.set(e.name, list);
    }
    return out;
  }
}
