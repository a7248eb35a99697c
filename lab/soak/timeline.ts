// What the API held, and when: one timeline per kind (pods, namespaces,
// networkpolicies), each a list of versions (the whole set of objects of
// that kind after each change the soak's watch received, with the time it
// arrived). Pure: the watch (recorder.ts) feeds it, the enforcement tracker
// (enforcement.ts) marks when every node's agent had applied a version, and
// the judge (judge.ts) asks which versions the kernel may still be
// enforcing at a given instant.
//
// Why one timeline per kind and not one for the cluster: an agent watches
// each kind separately, so it can hold a newer version of one kind and an
// older one of another; the states the kernel may be in are every
// combination of the candidates of each kind (judge.ts).
import { rvAtLeast } from '../commands/wait.ts';

export type Kind = 'pods' | 'namespaces' | 'networkpolicies';
export const KINDS: readonly Kind[] = ['pods', 'namespaces', 'networkpolicies'];

export interface KObject {
  kind?: string;
  /** As slim() copies it from the API's object: a member the object lacks is present as undefined. */
  metadata?: {
    name?: string | undefined;
    namespace?: string | undefined;
    uid?: string | undefined;
    resourceVersion?: string | undefined;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec?: unknown;
  status?: unknown;
}

export const objectKey = (o: KObject): string => (o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name ?? ''}` : (o.metadata?.name ?? ''));

export interface Version {
  /** Position in the kind's timeline (never reused, survives pruning). */
  seq: number;
  /** When the soak received the change (ms since the epoch). */
  at: number;
  /** The API's resourceVersion of the change (the object's, or the list's after a relist). */
  rv: string;
  objects: ReadonlyMap<string, KObject>;
  /** The change that made this version: `ADDED ns/name`, `relist`, `initial`. */
  change: string;
  /**
   * The earliest instant the change may have been made, when that is
   * before `at`: a change made while the soak's watch was down reaches it
   * late (in the relist, or replayed by the next watch), and the agents,
   * whose watches resume on their own, may have applied it before.
   */
  earliest?: number;
  /** When every node's agent was first seen to have applied it (or a later one). */
  enforcedAt?: number;
}

export interface SettleRules {
  /** Added to the enforcement time: the tracker polls, and the kernel needs the transaction in. */
  graceMs: number;
  /** A change is given at most this long to be enforced; after it, the previous version no longer excuses a connection. */
  maxSettleMs: number;
}

export class KindTimeline {
  readonly kind: Kind;
  #versions: Version[] = [];
  #next = 0;

  constructor(kind: Kind) {
    this.kind = kind;
  }

  get versions(): readonly Version[] {
    return this.#versions;
  }

  get latest(): Version | undefined {
    return this.#versions[this.#versions.length - 1];
  }

  /** The first version: what a list returned; enforced from the start (the soak waits for the lab to settle before probing). */
  initial(at: number, objects: readonly KObject[], rv: string): Version {
    const v: Version = { seq: this.#next++, at, rv, objects: new Map(objects.map((o) => [objectKey(o), o])), change: 'initial', enforcedAt: at };
    this.#versions.push(v);
    return v;
  }

  /** One watch event; a new version unless it changes nothing (a repeated event after a reconnect). */
  event(at: number, type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: KObject, earliest?: number): Version | undefined {
    const prev = this.latest?.objects ?? new Map<string, KObject>();
    const k = objectKey(obj);
    const rv = obj.metadata?.resourceVersion ?? '';
    const old = prev.get(k);
    if (type === 'DELETED' ? !old : old?.metadata?.resourceVersion === rv) return undefined;
    const objects = new Map(prev);
    if (type === 'DELETED') objects.delete(k);
    else objects.set(k, obj);
    return this.#push({ at, rv, objects, change: `${type} ${k}`, ...(earliest !== undefined && earliest < at ? { earliest } : {}) });
  }

  /** A relist (after a 410 or a broken watch): a new version when the list differs from the latest. */
  relist(at: number, objects: readonly KObject[], rv: string, earliest?: number): Version | undefined {
    const prev = this.latest?.objects ?? new Map<string, KObject>();
    const next = new Map(objects.map((o) => [objectKey(o), o]));
    const same = next.size === prev.size && [...next].every(([k, o]) => prev.get(k)?.metadata?.resourceVersion === o.metadata?.resourceVersion);
    if (same) return undefined;
    return this.#push({ at, rv, objects: next, change: 'relist', ...(earliest !== undefined && earliest < at ? { earliest } : {}) });
  }

  #push(v: Omit<Version, 'seq'>): Version {
    const out = { ...v, seq: this.#next++ };
    this.#versions.push(out);
    return out;
  }

  /** Marks every version not yet enforced whose rv the agents' applied version reaches. */
  markEnforced(appliedRv: string, at: number): Version[] {
    const done: Version[] = [];
    for (const v of this.#versions) {
      if (v.enforcedAt === undefined && rvAtLeast(appliedRv, v.rv)) {
        v.enforcedAt = at;
        done.push(v);
      }
    }
    return done;
  }

  /** Index of the version in force at `t` (the last one received at or before it); -1 before the first. */
  indexAt(t: number): number {
    let lo = 0;
    let hi = this.#versions.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((this.#versions[mid] as Version).at <= t) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }

  /**
   * The versions the kernel may be enforcing at `t`: the one in force, and
   * each earlier one while the change after it was not yet settled at `t`.
   * undefined while that is not known yet (a change neither enforced nor
   * past its maximum settle time at `now`).
   */
  candidatesAt(t: number, now: number, rules: SettleRules): Version[] | undefined {
    let j = this.indexAt(t);
    if (j < 0) return [];
    const out: Version[] = [this.#versions[j] as Version];
    while (j > 0) {
      const v = this.#versions[j] as Version;
      const end = settleEnd(v, rules, now);
      if (end === undefined) return undefined;
      if (t >= end) break;
      j--;
      out.push(this.#versions[j] as Version);
    }
    return out;
  }

  /**
   * The versions the kernel may be enforcing at some instant of [t0, t1]
   * (a connect is a SYN sent at its start and, unanswered, again about a
   * second later: either may be the one that gets through): those of
   * candidatesAt(t0), and every later version that may have been made by
   * t1 (received by then, or received later with an earliest instant
   * before it). Newest first, like candidatesAt. undefined while not known.
   */
  candidatesIn(t0: number, t1: number, now: number, rules: SettleRules): Version[] | undefined {
    const atStart = this.candidatesAt(t0, now, rules);
    if (atStart === undefined) return undefined;
    const from = this.indexAt(t0) + 1;
    let to = from;
    for (let j = from; j < this.#versions.length; j++) if (((this.#versions[j] as Version).earliest ?? (this.#versions[j] as Version).at) <= t1) to = j + 1;
    return [...this.#versions.slice(from, to).reverse(), ...atStart];
  }

  /** Drops versions no probe from `t` on can need: those before the one in force at t - maxSettle. */
  prune(t: number, rules: SettleRules): void {
    const keepFrom = this.indexAt(t - rules.maxSettleMs);
    if (keepFrom > 0) this.#versions = this.#versions.slice(keepFrom);
  }
}

/**
 * When a change stops excusing the previous version: enforced + grace, at
 * most at + maxSettle; undefined while neither is known at `now`.
 */
export function settleEnd(v: Version, rules: SettleRules, now: number): number | undefined {
  const cap = v.at + rules.maxSettleMs;
  if (v.enforcedAt !== undefined) return Math.min(v.enforcedAt + rules.graceMs, cap);
  return now >= cap ? cap : undefined;
}
