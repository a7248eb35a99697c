// The agent's DNS path for ClusterNetworkPolicy `domainNames` peers: DNS
// answers to the pods such a policy selects wait in a queue (dns-kernel.ts
// sends them there) until the addresses they carry for a policy's names are
// in the policy table's domain sets, with the record's TTL as the element's
// timeout; then they go on. So the first connection after a lookup finds
// its address allowed.
//
// Never a single point of failure for DNS:
// - no agent listening: the queue rules' `bypass` lets answers through
//   (unread: their addresses stay refused until a later answer is read);
// - the agent busy: the queue's reader thread accepts an answer not judged
//   within its deadline (netlink/nfqueue-handle.ts), and the queue's
//   FAIL_OPEN accepts answers past its length;
// - an answer weir cannot read (malformed, a TCP message split over
//   segments) passes unread.
// Fail open for the answer, closed for the connection: what was not
// learned is not allowed.
import type { Logger } from 'pino';
import { exponentialBuckets, type Registry } from 'prom-client';
import { DEFAULT_LIMITS, LearnedDomains, type LearnLimits } from '../dns/learned.ts';
import { DnsParseError, parseResponse, type Resolution, resolutions } from '../dns/message.ts';
import { dnsOfPacket } from '../dns/packet.ts';
import { isNotFound } from '../errors.ts';
import { tryParseIp } from '../ip.ts';
import { NF_ACCEPT } from '../netlink/nfqueue.ts';
import { type QueueWatch, watchQueue } from '../netlink/nfqueue-handle.ts';
import { type DnsPlan, setsForName } from '../policy/cnp-dns.ts';
import { DNS_QUEUE, type DnsKernelOps, type TimedAddress } from './dns-kernel.ts';
import { metricsOn } from './metrics.ts';

export interface DnsPathOptions {
  readonly limits?: LearnLimits;
  /** How long the reader thread lets an answer wait for the agent; see nfqueue-handle.ts. */
  readonly deadlineMs?: number;
}

/** Wall clock with sub-millisecond resolution, the same in the reader thread. */
const wallNow = (): number => performance.timeOrigin + performance.now();

function dnsMetrics(registry: Registry) {
  const m = metricsOn(registry);
  return {
    answers: m.counter<'result'>({
      name: 'weir_dns_answers_total',
      help: 'DNS answers to pods with domainNames policies that the agent read, by result: learned (addresses added), none (no name a policy names), unread (not a whole DNS response).',
      labelNames: ['result'],
    }),
    hold: m.histogram({
      name: 'weir_dns_hold_seconds',
      help: 'How long a DNS answer waited for the agent: from the reader thread receiving it to its verdict (addresses in the kernel by then).',
      buckets: exponentialBuckets(0.000025, 2, 17),
    }),
    learned: m.counter({
      name: 'weir_dns_addresses_learned_total',
      help: 'Addresses learned from DNS answers for domainNames peers (new for their name; refreshes not counted).',
    }),
    kept: m.gauge({ name: 'weir_dns_learned_addresses', help: 'Addresses currently learned (per name and address).' }),
    overflows: m.counter<'cap'>({
      name: 'weir_dns_cap_overflows_total',
      help: 'Addresses not learned because a cap was full (per name or per node); their connections are refused.',
      labelNames: ['cap'],
    }),
    late: m.counter({
      name: 'weir_dns_answers_released_late_total',
      help: 'DNS answers the queue reader let through before the agent judged them (the agent was busy past the deadline).',
    }),
    writeErrors: m.counter({
      name: 'weir_dns_write_errors_total',
      help: 'Batches of learned addresses the kernel refused (a set removed by a concurrent sync).',
    }),
  };
}

export class DnsPath {
  readonly store: LearnedDomains;
  readonly #kernel: DnsKernelOps;
  readonly #log: Logger;
  readonly #m: ReturnType<typeof dnsMetrics>;
  readonly #deadlineMs: number | undefined;
  #plan: DnsPlan = { subjects: new Map(), sets: [] };
  #setsKey = '';
  /** Expiry written to the kernel per `set address`: a new answer only ever extends it (the kernel sets what it is given). */
  #written = new Map<string, number>();
  #queue: QueueWatch | undefined;
  #late = 0;
  #timer: NodeJS.Timeout | undefined;
  #overflowLogged = 0;
  /** An earlier agent's learned addresses, read at start and written again after the first sync. */
  #carried: { at: number; list: readonly TimedAddress[] } | undefined;
  /** Whether the queue tables are in the kernel (undefined: not needed yet; false: the kernel refused them). */
  #installed: boolean | undefined;

  constructor(kernel: DnsKernelOps, registry: Registry, log: Logger, opts: DnsPathOptions = {}) {
    this.#kernel = kernel;
    this.#log = log;
    this.#m = dnsMetrics(registry);
    this.store = new LearnedDomains(opts.limits ?? DEFAULT_LIMITS);
    this.#deadlineMs = opts.deadlineMs;
  }

  /** Starts reading the queue (the tables that fill it come with the first pod to hold answers for). Throws when it cannot bind. */
  start(): void {
    try {
      const list = this.#kernel.readLearned();
      this.carryOver(list);
      if (list.length > 0) this.#log.info({ addresses: list.length }, 'addresses learned by the previous agent are kept until their TTL ends');
    } catch (e) {
      if (!isNotFound(e))
        this.#log.warn({ err: (e as Error).message }, 'cannot read what the previous agent learned; those addresses are refused until looked up again');
    }
    this.#queue = watchQueue(
      DNS_QUEUE,
      undefined,
      (p, at) => this.onAnswer(p.payload, at),
      (e) => this.#log.warn({ err: (e as Error).message }, 'DNS queue reader error'),
      this.#deadlineMs !== undefined ? { deadlineMs: this.#deadlineMs } : {},
    );
    this.#timer = setInterval(() => this.#tick(), 5000).unref();
  }

  /**
   * What an earlier agent learned (the domain sets' timed elements, read
   * before the first sync replaces the table whole), written again after
   * that sync for the sets that still exist: an agent restart or upgrade
   * does not refuse what was allowed a moment before.
   */
  carryOver(list: readonly TimedAddress[], at = Date.now()): void {
    this.#carried = { at, list };
  }

  /**
   * After each sync: the pods whose answers are held, and the domain sets
   * in force. A full sync made the sets anew (empty), and a new set may
   * match names learned before it existed: then every live address is
   * written again with what is left of its TTL (resync.ts).
   */
  afterSync(plan: DnsPlan, full: boolean): void {
    this.#plan = plan;
    const any = [...plan.subjects.values()].some((s) => s.size > 0);
    try {
      // The tables are made when first needed: a cluster without domainNames peers gets none.
      if (any && this.#installed === undefined) {
        this.#kernel.install();
        this.#installed = true;
        this.#log.info('DNS answers to pods with domainNames policies are held until their addresses are learned');
      }
      if (this.#installed) this.#kernel.setSubjects(plan.subjects);
    } catch (e) {
      if (this.#installed === undefined) {
        // Logged once: without the queue rules nothing is held or learned.
        this.#installed = false;
        this.#log.warn({ err: (e as Error).message }, 'DNS answers cannot be held: domainNames peers of ClusterNetworkPolicies allow nothing');
      } else {
        // The tables may be gone (deleted by hand): made again at the next sync.
        this.#installed = undefined;
        this.#log.warn({ err: (e as Error).message }, 'cannot update the pods whose DNS answers are held; the queue tables are made again at the next sync');
      }
    }
    const key = plan.sets.map((s) => s.name).join(',');
    const carried = this.#carried;
    this.#carried = undefined;
    if (!full && key === this.#setsKey) return;
    this.#setsKey = key;
    this.#written.clear();
    const now = Date.now();
    const adds: TimedAddress[] = [];
    for (const e of this.store.entries(now)) adds.push(...this.#writes(e.name, e.address, e.expiresAt, now));
    if (carried) adds.push(...this.#carriedWrites(carried, plan, now));
    this.#write(adds);
  }

  /** What the evaluator needs to judge connections to learned addresses (ClusterState.domainAddresses). */
  domainAddresses(): Map<string, string[]> {
    return this.store.domainAddresses(Date.now());
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#queue?.stop();
    this.#kernel.close();
  }

  /** One queued answer (the packet from its IP header), received by the reader thread at `receivedAt`: learns, then says accept. */
  onAnswer(packet: Buffer, receivedAt: number): number {
    try {
      this.#m.answers.labels({ result: this.#learn(packet) }).inc();
    } finally {
      this.#m.hold.observe(Math.max(0, wallNow() - receivedAt) / 1000);
    }
    return NF_ACCEPT;
  }

  /** Reads one answer and puts what it teaches in the kernel; the verdict follows. */
  #learn(packet: Buffer): 'learned' | 'none' | 'unread' {
    const dns = dnsOfPacket(packet);
    if (!dns) return 'unread';
    let res: Resolution[];
    try {
      res = resolutions(parseResponse(dns.message));
    } catch (e) {
      if (e instanceof DnsParseError) return 'unread';
      throw e;
    }
    const now = Date.now();
    const adds: TimedAddress[] = [];
    let matched = false;
    for (const r of res) {
      // Only names some policy names are kept: the store is not a DNS cache.
      if (setsForName(this.#plan, r.name, 4).length === 0 && setsForName(this.#plan, r.name, 6).length === 0) continue;
      matched = true;
      const before = this.store.size;
      const got = this.store.learn(r.name, r.addresses, r.ttl, now);
      this.#m.learned.inc(Math.max(0, this.store.size - before));
      if (got.overflow > 0) this.#overflow(r.name, got.overflow, got.cap ?? 'node');
      for (const k of got.kept) adds.push(...this.#writes(r.name, k.address, k.expiresAt, now));
    }
    this.#m.kept.set(this.store.size);
    this.#write(adds);
    return matched ? 'learned' : 'none';
  }

  /**
   * An earlier agent's learned addresses, for the sets that still exist,
   * with what is left of their timeouts. Kept in the kernel only: their
   * names are not known, so the evaluator (purge, trace) does not see them.
   */
  #carriedWrites(carried: { at: number; list: readonly TimedAddress[] }, plan: DnsPlan, now: number): TimedAddress[] {
    const sets = new Set(plan.sets.map((s) => s.name));
    const out: TimedAddress[] = [];
    for (const a of carried.list) {
      const expiresAt = carried.at + a.timeoutMs;
      const key = `${a.set} ${a.address}`;
      if (!sets.has(a.set) || expiresAt <= now || (this.#written.get(key) ?? 0) >= expiresAt) continue;
      this.#written.set(key, expiresAt);
      out.push({ ...a, timeoutMs: expiresAt - now });
    }
    return out;
  }

  /** The kernel writes one learned address needs: each set its name matches whose element would expire sooner. */
  #writes(name: string, address: string, expiresAt: number, now: number): TimedAddress[] {
    const ip = tryParseIp(address);
    if (!ip) return [];
    const out: TimedAddress[] = [];
    for (const s of setsForName(this.#plan, name, ip.family)) {
      const key = `${s.name} ${address}`;
      if ((this.#written.get(key) ?? 0) >= expiresAt) continue;
      this.#written.set(key, expiresAt);
      out.push({ set: s.name, family: ip.family, address, timeoutMs: expiresAt - now });
    }
    return out;
  }

  #write(adds: TimedAddress[]): void {
    if (adds.length === 0) return;
    const failed = this.#kernel.addAddresses(adds);
    for (const [set, errno] of failed) {
      this.#m.writeErrors.inc();
      for (const a of adds) if (a.set === set) this.#written.delete(`${a.set} ${a.address}`);
      this.#log.warn({ set, errno }, 'cannot add learned addresses to a domain set');
    }
  }

  #overflow(name: string, n: number, cap: 'name' | 'node'): void {
    this.#m.overflows.labels({ cap }).inc(n);
    // Logged at most once a minute: a name that overflows does so on every answer.
    if (Date.now() - this.#overflowLogged < 60_000) return;
    this.#overflowLogged = Date.now();
    const l = this.store.limits;
    this.#log.warn(
      { name, addresses: n, cap, perName: l.perName, perNode: l.perNode },
      'DNS addresses not learned: cap reached; connections to them are refused',
    );
  }

  #tick(): void {
    const now = Date.now();
    this.store.expire(now);
    for (const [k, at] of this.#written) if (at <= now) this.#written.delete(k);
    this.#m.kept.set(this.store.size);
    const late = this.#queue?.late ?? 0;
    if (late > this.#late) this.#m.late.inc(late - this.#late);
    this.#late = late;
  }
}
