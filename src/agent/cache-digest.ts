// Cache = API: a digest of what the agent's cache holds of each kind, kept
// up to date on every event (not recomputed over 10k pods per sync), and the
// comparison with a fresh list from the API that names what differs.
//
// The digest of a kind is its object count and a hash: the sum, modulo 2^64,
// of the first 8 bytes (big-endian) of sha256(`uid/resourceVersion`) of each
// object. A sum is order-independent and takes one addition per ADDED and
// one subtraction per DELETED; the entry each key holds is kept, since a
// DELETED event carries the object's last version, not the one stored.
// digestOf() computes the same from any list (kubectl's, the API's), so that
// two digests that differ say at once that something does, and the entries
// (GET /cache) say what.
import { hash as cryptoHash } from 'node:crypto';
import { type Kind, objectKey } from './cache.ts';

export interface DigestJson {
  count: number;
  /** 16 hex digits. */
  hash: string;
}

/** One object as the cache holds it: its key (`namespace/name` or `name`), uid and resourceVersion. */
export type DigestEntry = readonly [key: string, uid: string, resourceVersion: string];

const MASK = (1n << 64n) - 1n;

/** The 64-bit term one object adds to its kind's hash. */
export function entryTerm(uid: string, rv: string): bigint {
  return cryptoHash('sha256', `${uid}/${rv}`, 'buffer').readBigUInt64BE(0);
}

const hex = (v: bigint): string => v.toString(16).padStart(16, '0');

export class KindDigest {
  readonly #entries = new Map<string, { uid: string; rv: string; term: bigint }>();
  #sum = 0n;

  put(key: string, uid: string, rv: string): void {
    this.delete(key);
    const term = entryTerm(uid, rv);
    this.#entries.set(key, { uid, rv, term });
    this.#sum = (this.#sum + term) & MASK;
  }

  delete(key: string): void {
    const old = this.#entries.get(key);
    if (!old) return;
    this.#entries.delete(key);
    this.#sum = (this.#sum - old.term) & MASK;
  }

  clear(): void {
    this.#entries.clear();
    this.#sum = 0n;
  }

  get count(): number {
    return this.#entries.size;
  }
  get hash(): string {
    return hex(this.#sum);
  }
  /** The low 52 bits of the hash as a number: exact in a Prometheus sample, equal on every agent that agrees. */
  get metricValue(): number {
    return Number(this.#sum & ((1n << 52n) - 1n));
  }
  json(): DigestJson {
    return { count: this.count, hash: this.hash };
  }
  entries(): DigestEntry[] {
    return [...this.#entries].map(([k, e]) => [k, e.uid, e.rv] as const);
  }
}

/** The cache's key of an API object (cache.ts objectKey), its uid and resourceVersion. */
export function entryOf(kind: Kind, o: unknown): DigestEntry {
  const m = (o as { metadata?: { uid?: string; resourceVersion?: string } } | undefined)?.metadata ?? {};
  return [objectKey(kind, o), m.uid ?? '', m.resourceVersion ?? ''];
}

/** The digest of a list of API objects of one kind. */
export function digestOf(kind: Kind, items: readonly unknown[]): DigestJson {
  const d = new KindDigest();
  for (const o of items) d.put(...entryOf(kind, o));
  return d.json();
}

// ---- the comparison ----

/** The API's kind names (`kind` of each object in a kubectl List) and resource names (for `kubectl get`). */
export const API_KINDS: Readonly<Record<Kind, { kind: string; resource: string }>> = {
  pods: { kind: 'Pod', resource: 'pods' },
  namespaces: { kind: 'Namespace', resource: 'namespaces' },
  policies: { kind: 'NetworkPolicy', resource: 'networkpolicies.networking.k8s.io' },
  nodes: { kind: 'Node', resource: 'nodes' },
  clusterpolicies: { kind: 'ClusterNetworkPolicy', resource: 'clusternetworkpolicies.policy.networking.k8s.io' },
  hostpolicies: { kind: 'HostFirewallPolicy', resource: 'hostfirewallpolicies.weir.dev' },
};

/** What the agent reports of one kind: /status gives the digest, GET /cache adds the entries. */
export interface AgentKindView extends DigestJson {
  entries?: readonly DigestEntry[];
}
export type AgentCacheView = Partial<Record<Kind, AgentKindView>>;

/**
 * The API's side: lists by kind, or one kubectl List of several kinds
 * (`kubectl get pods,namespaces,... -A -o json`, each item with its `kind`).
 * With a List, every kind the agent reports is compared, and a kind the
 * List has no item of counts as empty: list every kind the agent mirrors.
 */
export type ApiLists = Partial<Record<Kind, readonly unknown[]>> | { items: readonly unknown[] };

export interface KindDifference {
  kind: Kind;
  cache: DigestJson;
  api: DigestJson;
  /** In the API, not in the cache. */
  missing: string[];
  /** In the cache, gone from the API. */
  extra: string[];
  /** In both at different versions (or as another object of the same name: `uid` differs). */
  stale: Array<{ key: string; cache: string; api: string; uidChanged: boolean }>;
  /** The agent gave only its digest: the counts and hashes differ, the objects are not named. */
  digestOnly?: true;
}

export interface CacheComparison {
  ok: boolean;
  /** Kinds compared. */
  kinds: Kind[];
  differences: KindDifference[];
}

function byKind(api: ApiLists, kinds: readonly Kind[]): Partial<Record<Kind, readonly unknown[]>> {
  if (!('items' in api) || !Array.isArray(api.items)) return api as Partial<Record<Kind, readonly unknown[]>>;
  const out: Partial<Record<Kind, unknown[]>> = {};
  for (const k of kinds) out[k] = [];
  for (const o of api.items) {
    const k = kinds.find((x) => API_KINDS[x].kind === (o as { kind?: string }).kind);
    if (k) out[k]?.push(o);
  }
  return out;
}

/**
 * Compares the agent's cache (its /status `cache`, or GET /cache for named
 * differences) with lists from the API. A kind missing on either side is
 * not compared. Transient differences are normal while events are in
 * flight: callers compare once things are quiet, or retry.
 */
export function cacheMatchesApi(agent: AgentCacheView, api: ApiLists): CacheComparison {
  const agentKinds = Object.keys(agent) as Kind[];
  const lists = byKind(api, agentKinds);
  const kinds = agentKinds.filter((k) => lists[k] !== undefined);
  const differences: KindDifference[] = [];
  for (const kind of kinds) {
    const view = agent[kind] as AgentKindView;
    const items = lists[kind] as readonly unknown[];
    const apiDigest = digestOf(kind, items);
    if (apiDigest.count === view.count && apiDigest.hash === view.hash) continue;
    const diff: KindDifference = { kind, cache: { count: view.count, hash: view.hash }, api: apiDigest, missing: [], extra: [], stale: [] };
    if (!view.entries) diff.digestOnly = true;
    else nameDifferences(kind, view.entries, items, diff);
    differences.push(diff);
  }
  return { ok: differences.length === 0, kinds, differences };
}

function nameDifferences(kind: Kind, entries: readonly DigestEntry[], items: readonly unknown[], diff: KindDifference): void {
  const cache = new Map(entries.map(([k, uid, rv]) => [k, { uid, rv }]));
  const seen = new Set<string>();
  for (const o of items) {
    const [key, uid, rv] = entryOf(kind, o);
    seen.add(key);
    const c = cache.get(key);
    if (!c) diff.missing.push(key);
    else if (c.uid !== uid || c.rv !== rv) diff.stale.push({ key, cache: c.rv, api: rv, uidChanged: c.uid !== uid });
  }
  for (const key of cache.keys()) if (!seen.has(key)) diff.extra.push(key);
  diff.missing.sort();
  diff.extra.sort();
  diff.stale.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** One line per kind that differs, naming up to `max` objects of each sort. */
export function describeDifferences(c: CacheComparison, max = 5): string[] {
  const list = (xs: readonly string[]): string => `${xs.slice(0, max).join(', ')}${xs.length > max ? ` (+${xs.length - max})` : ''}`;
  return c.differences.map((d) => {
    const parts: string[] = [];
    if (d.missing.length) parts.push(`missing ${list(d.missing)}`);
    if (d.extra.length) parts.push(`extra (deleted from the API) ${list(d.extra)}`);
    if (d.stale.length) parts.push(`stale ${list(d.stale.map((s) => `${s.key} (cache ${s.cache}${s.uidChanged ? ', another uid' : ''}, API ${s.api})`))}`);
    if (d.digestOnly) parts.push(`digest ${d.cache.hash} (${d.cache.count}) vs API ${d.api.hash} (${d.api.count}); GET /cache names the objects`);
    return `${d.kind}: ${parts.join('; ')}`;
  });
}
