// nftables objects as plain data (pure: no I/O). A Transaction (transaction.ts)
// takes these and renders an `nft -f` script; FakeNft (fake.ts) keeps them as
// its in-memory ruleset. Every object carries a `kind` tag, so that one verb
// (`tx.add(obj)`) takes any of them and the union narrows on it.
//
// Names are checked when a transaction is rendered, not here (see validate.ts):
// `^[A-Za-z_][A-Za-z0-9_]*$`, at most 255 bytes, and not an nft keyword.

/** nftables address families weir uses (the `arp` family is left out on purpose). */
export type Family = 'inet' | 'ip' | 'ip6' | 'netdev' | 'bridge';
export const FAMILIES: readonly Family[] = ['inet', 'ip', 'ip6', 'netdev', 'bridge'];

/** What every table-scoped object points at. A `Table` value is also a TableRef. */
export interface TableRef {
  readonly family: Family;
  readonly name: string;
}

export interface Table extends TableRef {
  readonly kind: 'table';
  readonly comment?: string;
}

export type ChainType = 'filter' | 'nat' | 'route';
export type ChainHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress' | 'egress';
export type ChainPolicy = 'accept' | 'drop';

/**
 * A chain. A base chain has `type`, `hook` and `priority` (all three); a
 * regular chain (a jump/goto target) has none of them and no `policy`.
 * `priority` is a number or a named priority such as `filter`, `dstnat - 10`;
 * names are rendered as numbers (per family), as nft documents them.
 */
export interface Chain {
  readonly kind: 'chain';
  readonly table: TableRef;
  readonly name: string;
  readonly type?: ChainType;
  readonly hook?: ChainHook;
  readonly priority?: number | string;
  readonly policy?: ChainPolicy;
  /** netdev ingress/egress base chains only. */
  readonly device?: string;
  readonly comment?: string;
}

/**
 * A rule: `rule` is nft rule text, e.g. `ip saddr @peers tcp dport 80 counter accept`,
 * without a trailing comment (use `comment`). `handle` positions `add` (after it)
 * and `insert` (before it), and names the rule for `replace` and `delete`.
 */
export interface Rule {
  readonly kind: 'rule';
  readonly table: TableRef;
  readonly chain: string;
  readonly rule: string;
  readonly comment?: string;
  readonly handle?: number;
}

export type SetFlag = 'interval' | 'constant' | 'timeout';

/**
 * A named set. `type` is an nft data type or a concatenation of them, e.g.
 * `ipv4_addr` or `ipv4_addr . inet_proto . inet_service`.
 */
export interface Set {
  readonly kind: 'set';
  readonly table: TableRef;
  readonly name: string;
  readonly type: string;
  readonly flags?: readonly SetFlag[];
  readonly comment?: string;
  /** `auto-merge`: adjacent and overlapping intervals are merged (interval sets only). */
  readonly autoMerge?: boolean;
}

/** A named map; `type` is `KEY : VALUE`, e.g. `ipv4_addr : verdict`. */
export interface Map {
  readonly kind: 'map';
  readonly table: TableRef;
  readonly name: string;
  readonly type: string;
  readonly flags?: readonly SetFlag[];
  readonly comment?: string;
}

/**
 * An element of a set (`set`) or a map (`map`); exactly one of the two.
 * `key` holds one string per part of the concatenation, e.g.
 * `['10.0.0.0/8']` or `['10.1.2.3', 'tcp', '80-90']`. `value` is for maps,
 * e.g. `goto pol_x` or `accept`.
 */
export interface Element {
  readonly kind: 'element';
  readonly table: TableRef;
  readonly set?: string;
  readonly map?: string;
  readonly key: readonly string[];
  readonly value?: string;
  readonly comment?: string;
}

export type NftObject = Table | Chain | Rule | Set | Map | Element;
export type NftObjectKind = NftObject['kind'];

/**
 * Transaction verbs. `destroy` (delete if it exists) is emulated as `add`
 * followed by `delete`, because nft 1.0.6 has no `destroy` command (1.0.8+).
 */
export type Verb = 'add' | 'create' | 'insert' | 'replace' | 'delete' | 'destroy' | 'flush';

/** One queued operation of a transaction. */
export interface Operation {
  readonly verb: Verb;
  readonly obj: NftObject;
}

/** `family name` of a table, as nft prints it. */
export const tableId = (t: TableRef): string => `${t.family} ${t.name}`;

/** Aliases that do not shadow the global `Set` and `Map` where both are used. */
export type NftSet = Set;
export type NftMap = Map;
