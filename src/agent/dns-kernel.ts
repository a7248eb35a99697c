// The kernel side of the DNS path: the `ip weir_dns` and `ip6 weir_dns`
// tables that send DNS
// answers for the pods some ClusterNetworkPolicy with domainNames peers
// selects to a queue, and the timed elements the agent adds to the policy
// table's domain sets (`s<hash>_dns4/6` in `inet weir`, compiled with
// `flags timeout`).
//
// Tables of their own because its rules are not nft text: the queue is
// xtables' NFQUEUE through nft_compat (netlink/nfqueue-rule.ts says why),
// which libnftables cannot write and weir's engine, which replaces
// `inet weir` whole when it must, would not know. One per IP family, not
// one `inet` table: nft lists a compat target in an inet table with a
// warning per rule (libxtables has no inet family). These tables are the
// DNS module's alone: made at start (replacing any left by an earlier
// agent), their subject sets kept by element changes, and left behind at
// exit on purpose: with `bypass`, answers pass while no agent listens.
import { Errno } from '../errors.ts';
import { NETLINK_NETFILTER } from '../netlink/conntrack.ts';
import { NETLINK_CAP_ACK, NLM_F_DUMP } from '../netlink/constants.ts';
import { attr, attrNested, attrString, attrToString, parseAttrs } from '../netlink/message.ts';
import { encodeQueueRule } from '../netlink/nfqueue-rule.ts';
import {
  elementLayout,
  encodeBatch,
  encodeKey,
  encodeSetElem,
  NFNL_SUBSYS_NFTABLES,
  NFPROTO,
  NFTA_DATA_VALUE,
  NFTA_LIST_ELEM,
  NFTA_SET_ELEM_KEY,
} from '../netlink/nftables.ts';
import { NetlinkSocket } from '../netlink/socket.ts';
import type { ElementChange } from '../nft/element-writer.ts';
import { NftError } from '../nft/errors.ts';
import { type LibNftables, NFT_CTX_OUTPUT_JSON } from '../nft/libnftables.ts';
import { NetlinkElementWriter } from '../nft/netlink-elements.ts';
import type { NftSet } from '../nft/types.ts';
import * as libc from '../sys/libc.ts';

export const DNS_TABLE = 'weir_dns';
/** The queue number DNS answers wait in (per network namespace). */
export const DNS_QUEUE = 1053;
const NFTA_SET_ELEM_TIMEOUT = 4;
const NFT_MSG_GETSET = 10;
const NFTA_SET_TABLE = 1;
const NFTA_SET_NAME = 2;
const FAMILIES = [4, 6] as const;
const nftFamily = (f: 4 | 6): 'ip' | 'ip6' => (f === 4 ? 'ip' : 'ip6');
const subjectSet = (f: 4 | 6): NftSet => ({
  kind: 'set',
  table: { family: nftFamily(f), name: DNS_TABLE },
  name: 'subjects',
  type: f === 4 ? 'ipv4_addr' : 'ipv6_addr',
});

/** The tables' nft text (one transaction: an earlier agent's tables are replaced). */
export function dnsTableScript(): string {
  return FAMILIES.flatMap((f) => {
    const t = `${nftFamily(f)} ${DNS_TABLE}`;
    return [
      `add table ${t}`,
      `delete table ${t}`,
      `add table ${t} { comment "weir: DNS answers to pods with domainNames policies wait for the agent (queue ${DNS_QUEUE}, bypass)"; }`,
      `add set ${t} subjects { type ipv${f}_addr; comment "pods an Admin ClusterNetworkPolicy with domainNames peers selects"; }`,
      // Forward: answers from a resolver in a pod or beyond the node; output: from a resolver on the node itself.
      `add chain ${t} answers { type filter hook forward priority -5; policy accept; comment "DNS answers to policed pods, before weir's own chains"; }`,
      `add chain ${t} local_answers { type filter hook output priority -5; policy accept; comment "DNS answers from this node's own resolver"; }`,
    ];
  }).join('\n');
}

/** The tables' deletion (nothing is held any more: answers pass unread). */
export const dnsTableDeleteScript = (): string =>
  FAMILIES.flatMap((f) => [`add table ${nftFamily(f)} ${DNS_TABLE}`, `delete table ${nftFamily(f)} ${DNS_TABLE}`]).join('\n');

export interface TimedAddress {
  /** A domain set of `inet weir`. */
  readonly set: string;
  readonly family: 4 | 6;
  readonly address: string;
  /** The element's timeout (the kernel removes it after that). */
  readonly timeoutMs: number;
}

/** One NFTA_LIST_ELEM with a timeout: the kernel expires it on its own, agent or not. */
export function timedElement(family: 4 | 6, address: string, timeoutMs: number): Buffer {
  const layout = elementLayout(family === 4 ? 'ipv4_addr' : 'ipv6_addr', false);
  if (!layout) throw new RangeError('no layout');
  const t = Buffer.alloc(8);
  t.writeBigUInt64BE(BigInt(Math.max(1, Math.round(timeoutMs))));
  return attrNested(NFTA_LIST_ELEM, attrNested(NFTA_SET_ELEM_KEY, attr(NFTA_DATA_VALUE, encodeKey(layout, [address]))), attr(NFTA_SET_ELEM_TIMEOUT, t));
}

/** What the DNS path asks of the kernel; DnsKernel is the real one, tests pass a fake. */
export interface DnsKernelOps {
  install(): void;
  setSubjects(want: ReadonlyMap<4 | 6, ReadonlySet<string>>): number;
  addAddresses(adds: readonly TimedAddress[]): Map<string, number>;
  /** The timed addresses the policy table's domain sets hold now (an earlier agent's), with what is left of each timeout; throws when they cannot be read (ENOENT: no table). */
  readLearned(): TimedAddress[];
  close(): void;
}

/** A domain set's name, as rule-compile.ts makes it. */
const DOMAIN_SET = /^s[0-9a-f]+_dns([46])$/;

/**
 * The timed elements of the domain sets in `nft -j list sets` output; an
 * element without a timeout (none the DNS path writes) is left out.
 */
export function learnedFromListing(json: unknown): TimedAddress[] {
  const out: TimedAddress[] = [];
  const items = (json as { nftables?: unknown })?.nftables;
  for (const item of Array.isArray(items) ? items : []) {
    const set = (item as { set?: { name?: unknown; elem?: unknown } })?.set;
    const m = typeof set?.name === 'string' ? DOMAIN_SET.exec(set.name) : null;
    if (!m || !Array.isArray(set?.elem)) continue;
    for (const e of set.elem) {
      const el = (e as { elem?: { val?: unknown; expires?: unknown } })?.elem;
      if (typeof el?.val !== 'string' || typeof el.expires !== 'number' || el.expires <= 0) continue;
      out.push({ set: set.name as string, family: m[1] === '4' ? 4 : 6, address: el.val, timeoutMs: el.expires * 1000 });
    }
  }
  return out;
}

export class DnsKernel implements DnsKernelOps {
  readonly #nft: LibNftables;
  readonly #elements: NetlinkElementWriter;
  #sock: NetlinkSocket | undefined;
  #subjects = new Map<4 | 6, Set<string>>(FAMILIES.map((f) => [f, new Set()]));

  constructor(nft: LibNftables) {
    this.#nft = nft;
    this.#elements = NetlinkElementWriter.open(nft.netns);
  }

  /** Makes the tables (replacing old ones) with their queue rules; the subject sets start empty. */
  install(): void {
    this.#nft.runScript(dnsTableScript());
    this.#subjects = new Map(FAMILIES.map((f) => [f, new Set()]));
    const rules = (['answers', 'local_answers'] as const).flatMap((chain) =>
      FAMILIES.flatMap((f) =>
        (['udp', 'tcp'] as const).map((protocol) =>
          encodeQueueRule({
            family: nftFamily(f),
            table: DNS_TABLE,
            chain,
            ipFamily: f,
            protocol,
            set: 'subjects',
            queue: DNS_QUEUE,
            bypass: true,
            comment: `DNS answers over ${protocol} to policed pods`,
          }),
        ),
      ),
    );
    const failure = this.#socket().sendBatch('nft add dns queue rules', (seq) => encodeBatch(rules, seq));
    if (failure)
      throw new NftError(
        `cannot add the DNS queue rules (is nft_compat with xt_NFQUEUE available?): errno ${failure.errno}${failure.message ? `: ${failure.message}` : ''}`,
        { errno: failure.errno },
      );
  }

  /** Makes the subject sets hold exactly these pod addresses. */
  setSubjects(want: ReadonlyMap<4 | 6, ReadonlySet<string>>): number {
    const changes: ElementChange[] = [];
    for (const f of FAMILIES) {
      const have = this.#subjects.get(f) ?? new Set<string>();
      const next = want.get(f) ?? new Set<string>();
      for (const ip of next) if (!have.has(ip)) changes.push({ verb: 'add', set: subjectSet(f), key: [ip] });
      for (const ip of have) if (!next.has(ip)) changes.push({ verb: 'delete', set: subjectSet(f), key: [ip] });
    }
    if (changes.length === 0) return 0;
    this.#elements.apply(changes);
    this.#subjects = new Map(FAMILIES.map((f) => [f, new Set(want.get(f) ?? [])]));
    return changes.length;
  }

  /**
   * Adds (or refreshes) timed addresses in the policy table's domain sets,
   * one batch per set so a set a concurrent sync removed fails alone.
   * Returns the sets that could not be written, with the errno.
   */
  addAddresses(adds: readonly TimedAddress[], table = 'weir'): Map<string, number> {
    const bySet = new Map<string, Buffer[]>();
    for (const a of adds) {
      const list = bySet.get(a.set) ?? [];
      list.push(timedElement(a.family, a.address, a.timeoutMs));
      bySet.set(a.set, list);
    }
    const failed = new Map<string, number>();
    for (const [set, elements] of bySet) {
      const req = encodeSetElem({ verb: 'add', family: 'inet', table, set, elements });
      try {
        const failure = this.#socket().sendBatch('nft add dns addresses', (seq) => encodeBatch([req], seq));
        if (failure) failed.set(set, failure.errno);
      } catch (e) {
        this.#drop();
        failed.set(set, typeof (e as { errno?: unknown }).errno === 'number' ? (e as { errno: number }).errno : Errno.EIO);
      }
    }
    return failed;
  }

  readLearned(table = 'weir'): TimedAddress[] {
    // Set names from a netlink dump (no elements), then only the domain sets listed:
    // listing every set of a big table with its elements costs seconds.
    const names = this.#socket()
      .request(
        'nft getset',
        (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSET,
        NLM_F_DUMP,
        Buffer.concat([Buffer.of(NFPROTO.inet ?? 1, 0, 0, 0), attrString(NFTA_SET_TABLE, table)]),
      )
      .map((r) => attrToString(parseAttrs(r.payload.subarray(4)).get(NFTA_SET_NAME)) ?? '')
      .filter((n) => DOMAIN_SET.test(n));
    // One set per call: nft 1.0.6 fills its cache for the last `list set` of a script only.
    return names.flatMap((n) => learnedFromListing(JSON.parse(this.#nft.runScript(`list set inet ${table} ${n}`, { outputFlags: NFT_CTX_OUTPUT_JSON }))));
  }

  /** Removes the tables: DNS answers are no longer held (domainNames rules then learn nothing). */
  uninstall(): void {
    this.#nft.runScript(dnsTableDeleteScript());
  }

  close(): void {
    this.#drop();
    this.#elements.close();
  }

  #drop(): void {
    this.#sock?.close();
    this.#sock = undefined;
  }

  #socket(): NetlinkSocket {
    if (this.#sock) return this.#sock;
    const sock = new NetlinkSocket(NETLINK_NETFILTER, this.#nft.netns);
    libc.setsockoptInt(sock.fd, libc.SOL_NETLINK, NETLINK_CAP_ACK, 1);
    this.#sock = sock;
    return sock;
  }
}
