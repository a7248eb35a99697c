// weir's table as desired state (plain data), and the two ways to reach it
// from what the kernel holds: a full replacement in one transaction, or the
// difference from the last state applied. Pure: it builds Transactions and
// never runs them.

import { Transaction } from '../nft/transaction.ts';
import type { Chain, Element, NftMap, NftSet, Rule, Table, TableRef } from '../nft/types.ts';

export interface DesiredSet {
  readonly def: NftSet | NftMap;
  /** By element key text; a map element's value is part of the element. */
  readonly elements: ReadonlyMap<string, Element>;
  /**
   * Contents kept across compiles (pod-sets.ts): `elements` is then the same
   * Map in every ruleset, and this journal holds the keys changed since the
   * last commit with the element before (undefined: absent). A diff between
   * two rulesets sharing the Map reads the journal instead of both contents.
   */
  readonly changed?: ReadonlyMap<string, Element | undefined>;
}

export interface DesiredChain {
  readonly def: Chain;
  readonly rules: Rule[];
}

export interface Ruleset {
  readonly table: Table;
  readonly sets: Map<string, DesiredSet>;
  readonly chains: Map<string, DesiredChain>;
}

export const elementKey = (key: readonly string[]): string => key.join(' . ');

export function emptyRuleset(table: Table): Ruleset {
  return { table, sets: new Map(), chains: new Map() };
}

// Definitions compared field by field (they are plain data of known shape;
// this runs for every set and chain on every sync).
const sameTable = (a: TableRef & { comment?: string }, b: TableRef & { comment?: string }): boolean =>
  a === b || (a.family === b.family && a.name === b.name && a.comment === b.comment);
const sameFlags = (a: readonly string[] | undefined, b: readonly string[] | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]));
const sameSetDef = (a: NftSet | NftMap, b: NftSet | NftMap): boolean =>
  a.kind === b.kind &&
  a.name === b.name &&
  a.type === b.type &&
  a.comment === b.comment &&
  sameFlags(a.flags, b.flags) &&
  (a as NftSet).autoMerge === (b as NftSet).autoMerge &&
  sameTable(a.table, b.table);
const sameChainDef = (a: Chain, b: Chain): boolean =>
  a.name === b.name &&
  a.type === b.type &&
  a.hook === b.hook &&
  a.priority === b.priority &&
  a.policy === b.policy &&
  a.device === b.device &&
  a.comment === b.comment &&
  sameTable(a.table, b.table);
const sameRules = (a: readonly Rule[], b: readonly Rule[]): boolean =>
  a === b || (a.length === b.length && a.every((r, i) => r.rule === b[i]?.rule && r.comment === b[i]?.comment));
const sorted = <T>(m: ReadonlyMap<string, T>): T[] => [...m.keys()].sort().map((k) => m.get(k) as T);
/** The named sets and maps a rule refers to (`@name`). */
const setRefs = (r: Rule): string[] =>
  r.rule
    .split(/\s+/)
    .filter((t) => t.startsWith('@'))
    .map((t) => t.slice(1));

/**
 * Objects in an order nft accepts: every set, map and chain first, then the
 * elements (a verdict-map element names the chain it jumps to), then the
 * rules (which name sets and chains).
 */
function addAll(tx: Transaction, rs: Ruleset, only?: { sets: Set<string>; chains: Set<string> }): void {
  const pick = <T>(m: ReadonlyMap<string, T>, names: Set<string> | undefined): T[] =>
    names ? [...names].sort().flatMap((n) => (m.has(n) ? [m.get(n) as T] : [])) : sorted(m);
  const sets = pick(rs.sets, only?.sets);
  const chains = pick(rs.chains, only?.chains);
  for (const s of sets) tx.add(s.def);
  for (const c of chains) tx.add(c.def);
  for (const s of sets) for (const e of sorted(s.elements)) tx.add(e);
  for (const c of chains) for (const r of c.rules) tx.add(r);
}

/**
 * Replaces the whole table in one transaction: `add` (so that `delete` cannot
 * fail on a first start), `delete`, then the new table. The kernel commits the
 * batch atomically, so there is never a moment without enforcement.
 */
export function fullTransaction(rs: Ruleset): Transaction {
  const tx = new Transaction();
  tx.add(rs.table);
  tx.delete(rs.table);
  tx.add(rs.table);
  addAll(tx, rs);
  return tx;
}

export interface DiffStats {
  setsAdded: number;
  setsRemoved: number;
  chainsAdded: number;
  chainsRewritten: number;
  chainsRemoved: number;
  elementsAdded: number;
  elementsRemoved: number;
}

/** The sets and maps that go (or are recreated) and those added (new or recreated). */
interface SetChanges {
  readonly newSets: Set<string>;
  readonly goneSets: DesiredSet[];
  /** Names of sets both gone and added: same name, another type or flags. */
  readonly recreated: Set<string>;
}

/** The chains added (new, or recreated with another definition), rewritten in place (flushed, rules re-added) and gone. */
interface ChainChanges {
  readonly newChains: Set<string>;
  readonly rewritten: DesiredChain[];
  readonly goneChains: DesiredChain[];
}

/**
 * The transaction taking the kernel from `from` (the state last applied) to
 * `to`. A pod coming or going is a few element updates; a changed policy
 * rewrites its own chains (flush and re-add) and nothing else.
 */
export function diffTransaction(from: Ruleset, to: Ruleset): { tx: Transaction; stats: DiffStats } {
  const tx = new Transaction();
  const stats: DiffStats = { setsAdded: 0, setsRemoved: 0, chainsAdded: 0, chainsRewritten: 0, chainsRemoved: 0, elementsAdded: 0, elementsRemoved: 0 };
  const { newSets, goneSets, recreated } = setChanges(from, to);
  const { newChains, rewritten, goneChains } = chainChanges(from, to, recreated);
  const { removed, added } = elementChanges(from, to, newSets);

  // 1. Elements leave first (map elements may point at chains about to go).
  for (const e of removed) tx.delete(e);
  stats.elementsRemoved = removed.length;
  // 2. Old chains lose their rules (so nothing references what goes), and
  //    rewritten chains are emptied before their new rules arrive. Sets and
  //    maps go before chains: a verdict map that goes away whole (the host
  //    firewall's port map when the mode is turned off) still holds elements
  //    that jump to chains going away too, and a chain in use cannot be deleted.
  for (const c of [...goneChains, ...rewritten]) tx.flush(c.def);
  for (const s of goneSets) tx.delete(s.def);
  for (const c of goneChains) tx.delete(c.def);
  stats.setsRemoved = goneSets.length;
  stats.chainsRemoved = goneChains.length;

  // 3. New sets and chains, with their elements and rules.
  addAll(tx, to, { sets: newSets, chains: newChains });
  stats.setsAdded = newSets.size;
  stats.chainsAdded = newChains.size;
  for (const n of newSets) stats.elementsAdded += to.sets.get(n)?.elements.size ?? 0;

  // 4. Rewritten chains get their rules; staying sets get their new elements.
  for (const c of rewritten) for (const r of c.rules) tx.add(r);
  stats.chainsRewritten = rewritten.length;
  for (const e of added) tx.add(e);
  stats.elementsAdded += added.length;
  return { tx, stats };
}

/**
 * A set whose type or flags changed cannot be altered in place: it is
 * deleted (after the rules that use it are flushed) and added anew.
 */
function setChanges(from: Ruleset, to: Ruleset): SetChanges {
  const newSets = new Set<string>();
  const goneSets: DesiredSet[] = [];
  for (const s of from.sets.values()) {
    const name = s.def.name;
    const next = to.sets.get(name);
    const same = next !== undefined && sameSetDef(s.def, next.def);
    if (!same) goneSets.push(s);
    if (next && !same) newSets.add(name);
  }
  for (const name of to.sets.keys()) if (!from.sets.has(name)) newSets.add(name);
  const recreated = new Set([...newSets].filter((n) => from.sets.has(n)));
  return { newSets, goneSets, recreated };
}

/** How the chains change; `recreated` names the sets deleted and added anew. */
function chainChanges(from: Ruleset, to: Ruleset, recreated: ReadonlySet<string>): ChainChanges {
  const newChains = new Set<string>();
  const rewritten: DesiredChain[] = [];
  const goneChains: DesiredChain[] = [];
  for (const c of to.chains.values()) {
    const name = c.def.name;
    const prev = from.chains.get(name);
    if (!prev) newChains.add(name);
    else if (!sameChainDef(prev.def, c.def)) {
      goneChains.push(prev);
      newChains.add(name);
    } else if (!sameRules(prev.rules, c.rules) || (recreated.size > 0 && prev.rules.some((r) => setRefs(r).some((n) => recreated.has(n))))) {
      // Also rewritten: a chain whose rules use a set being recreated, since
      // a set cannot be deleted while a rule refers to it.
      rewritten.push(c);
    }
  }
  for (const c of from.chains.values()) if (!to.chains.has(c.def.name)) goneChains.push(c);
  return { newChains, rewritten, goneChains };
}

/** Element changes of sets and maps staying in place (not in `newSets`). */
function elementChanges(from: Ruleset, to: Ruleset, newSets: ReadonlySet<string>): { removed: Element[]; added: Element[] } {
  const removed: Element[] = [];
  const added: Element[] = [];
  for (const next of to.sets.values()) {
    const name = next.def.name;
    const prev = from.sets.get(name);
    if (!prev || newSets.has(name)) continue;
    if (prev.elements === next.elements) {
      for (const [k, before] of next.changed ?? []) {
        const now = next.elements.get(k);
        if (before && (!now || now.value !== before.value)) removed.push(before);
        if (now && (!before || now.value !== before.value)) added.push(now);
      }
      continue;
    }
    for (const [k, e] of prev.elements) {
      const n = next.elements.get(k);
      if (!n || n.value !== e.value) removed.push(e);
    }
    for (const [k, e] of next.elements) {
      const p = prev.elements.get(k);
      if (!p || p.value !== e.value) added.push(e);
    }
  }
  return { removed, added };
}

/** Builds a Ruleset by name; compile.ts and node-rules.ts add to one. */
export class RulesetBuilder {
  readonly table: Table;
  readonly ruleset: Ruleset;

  constructor(table: Table, ruleset?: Ruleset) {
    this.table = table;
    this.ruleset = ruleset ?? { table, sets: new Map(), chains: new Map() };
  }

  set(name: string, type: string, flags: NftSet['flags'], comment: string): string {
    const def: NftSet = { kind: 'set', table: this.table, name, type, ...(flags ? { flags } : {}), comment };
    this.ruleset.sets.set(name, { def, elements: new Map() });
    return name;
  }

  /** A set whose contents are kept across compiles (pod-sets.ts); its elements are not added here. */
  live(def: NftSet, contents: { elements: ReadonlyMap<string, Element>; changed: ReadonlyMap<string, Element | undefined> }): void {
    this.ruleset.sets.set(def.name, { def, elements: contents.elements, changed: contents.changed });
  }

  map(name: string, type: string, comment: string): void {
    const def: NftMap = { kind: 'map', table: this.table, name, type, comment };
    this.ruleset.sets.set(name, { def, elements: new Map() });
  }

  element(setName: string, key: string[], value?: string): void {
    const s = this.ruleset.sets.get(setName);
    if (!s) throw new Error(`internal: no set ${setName}`);
    const e: Element =
      s.def.kind === 'map'
        ? { kind: 'element', table: this.table, map: setName, key, ...(value ? { value } : {}) }
        : { kind: 'element', table: this.table, set: setName, key };
    // Sets made here hold a plain Map (live sets are added whole by live()).
    (s.elements as Map<string, Element>).set(elementKey(key), e);
  }

  chain(name: string, base?: Pick<Chain, 'type' | 'hook' | 'priority' | 'policy'>, comment?: string): string {
    const def: Chain = { kind: 'chain', table: this.table, name, ...(base ?? {}), ...(comment ? { comment } : {}) };
    this.ruleset.chains.set(name, { def, rules: [] });
    return name;
  }

  rule(chain: string, rule: string, comment?: string): void {
    const c = this.ruleset.chains.get(chain);
    if (!c) throw new Error(`internal: no chain ${chain}`);
    c.rules.push({ kind: 'rule', table: this.table, chain, rule, ...(comment ? { comment } : {}) });
  }
}
