// The contents of the sets that depend on pods (peer pod addresses, named
// ports resolved per pod), kept up to date across compiles instead of being
// rebuilt: at 10k pods and 1k policies a full rebuild is ~100k elements and
// hundreds of milliseconds per API event, while one pod changing touches a
// handful of elements.
//
// A set is defined by a membership function from one pod (and its
// namespace's labels) to the elements that pod contributes. A new set is
// filled by asking every pod; afterwards a pod or namespace change asks only
// that pod (or that namespace's pods) again, before and after, and applies
// the difference. Each set journals the elements it changed since the last
// commit (their state before), which is what the next transaction carries
// (ruleset.ts, diffTransaction). Pure: no I/O.
import type { Element, NftSet, TableRef } from '../nft/types.ts';
import type { PodFacts } from './cluster-index.ts';
import { elementKey } from './ruleset.ts';
import type { Labels } from './types.ts';

/** The elements (key parts) one pod puts in a set, given its namespace's labels. */
export type Member = (pod: PodFacts, nsLabels: Labels) => readonly (readonly string[])[];

export interface SetMembership {
  readonly member: Member;
  /** Only pods of this namespace can be members (their set is then filled and updated from it alone). */
  readonly namespace?: string;
  /** Membership reads namespace labels (a namespace relabel must re-ask its pods). */
  readonly nsDependent: boolean;
  /** Pods of a namespace whose labels fail this are never members (a fast skip of whole namespaces). */
  readonly nsMatch?: (nsLabels: Labels) => boolean;
}

/** Where a set's live contents and journal are read from. */
export interface LiveContents {
  /** Element key text (`a . b`) to element; the same object across compiles. */
  readonly elements: LiveElements;
  /** Keys changed since the last commit, with the element before the first change (undefined: absent then). */
  readonly changed: Map<string, Element | undefined>;
}

/**
 * A live set's elements, read as a Map of key text to Element but stored as
 * the key texts alone: at 10k pods and 1k policies the pod sets hold ~100k
 * elements, and an Element object with its key array per element was ~13 MiB
 * of the agent's heap. Elements are made when read (a transaction, a test),
 * which is rare next to holding them.
 */
export class LiveElements implements ReadonlyMap<string, Element> {
  readonly #texts = new Set<string>();
  readonly #table: TableRef;
  readonly #set: string;

  constructor(table: TableRef, set: string) {
    this.#table = table;
    this.#set = set;
  }

  get size(): number {
    return this.#texts.size;
  }
  has(text: string): boolean {
    return this.#texts.has(text);
  }
  get(text: string): Element | undefined {
    return this.#texts.has(text) ? this.#element(text) : undefined;
  }
  /** For the pod sets only. */
  add(text: string): void {
    this.#texts.add(text);
  }
  /** For the pod sets only. */
  delete(text: string): void {
    this.#texts.delete(text);
  }
  keys(): MapIterator<string> {
    return this.#texts.keys();
  }
  *values(): MapIterator<Element> {
    for (const t of this.#texts) yield this.#element(t);
  }
  *entries(): MapIterator<[string, Element]> {
    for (const t of this.#texts) yield [t, this.#element(t)];
  }
  [Symbol.iterator](): MapIterator<[string, Element]> {
    return this.entries();
  }
  forEach(fn: (value: Element, key: string, map: ReadonlyMap<string, Element>) => void): void {
    for (const t of this.#texts) fn(this.#element(t), t, this);
  }
  #element(text: string): Element {
    return { kind: 'element', table: this.#table, set: this.#set, key: text.split(' . ') };
  }
}

interface LiveSet extends LiveContents, SetMembership {
  readonly def: NftSet;
  /** Elements contributed by more than one pod (an address briefly held by two pod objects): extra count. */
  readonly extra: Map<string, number>;
  used: boolean;
}

/** The pods and namespace labels a set is filled from. */
export interface PodUniverse {
  /** The namespaces that have pods. */
  namespaces(): Iterable<string>;
  pods(namespace: string): Iterable<PodFacts>;
  labelsOfNs(ns: string): Labels;
}

const NONE: readonly (readonly string[])[] = [];

/** An element's key text (ruleset.ts's elementKey), without a new string for the common one-part key. */
const textOf = (key: readonly string[]): string => (key.length === 1 ? (key[0] as string) : elementKey(key));

export class PodSets {
  readonly #table: TableRef;
  readonly #universe: PodUniverse;
  readonly #sets = new Map<string, LiveSet>();
  /** Sets by the namespace their members are confined to ('' for any). */
  readonly #byNs = new Map<string, Set<LiveSet>>();

  constructor(table: TableRef, universe: PodUniverse) {
    this.#table = table;
    this.#universe = universe;
  }

  get size(): number {
    return this.#sets.size;
  }

  /**
   * The live contents of set `def.name`, made and filled from every pod the
   * first time; marks it used by the compile in progress. A name stands for
   * one definition (rule-compile.ts names sets by what defines them), so a
   * set already known keeps its first membership function.
   */
  declare(def: NftSet, m: SetMembership): LiveContents {
    let s = this.#sets.get(def.name);
    if (!s) {
      s = { def, ...m, elements: new LiveElements(this.#table, def.name), changed: new Map(), extra: new Map(), used: true };
      this.#sets.set(def.name, s);
      const scope = m.namespace ?? '';
      let group = this.#byNs.get(scope);
      if (!group) {
        group = new Set();
        this.#byNs.set(scope, group);
      }
      group.add(s);
      for (const ns of m.namespace !== undefined ? [m.namespace] : this.#universe.namespaces()) {
        const labels = this.#universe.labelsOfNs(ns);
        if (m.nsMatch && !m.nsMatch(labels)) continue;
        for (const pod of this.#universe.pods(ns)) for (const key of s.member(pod, labels)) this.#add(s, textOf(key));
      }
      s.changed.clear(); // a new set is added whole, not by its journal
    }
    s.used = true;
    return s;
  }

  /** Starts a compile: sets not declared again before sweep() are dropped. */
  beginCompile(): void {
    for (const s of this.#sets.values()) s.used = false;
  }

  /** Drops the sets the last compile did not declare. */
  sweep(): void {
    for (const s of this.#sets.values()) {
      if (s.used) continue;
      this.#sets.delete(s.def.name);
      this.#byNs.get(s.namespace ?? '')?.delete(s);
    }
  }

  /** The last journals are in the kernel: start new ones. */
  commit(): void {
    for (const s of this.#sets.values()) if (s.changed.size > 0) s.changed.clear();
  }

  /** A pod came, went or changed (labels, addresses, ports): its elements move. */
  podChanged(before: PodFacts | undefined, after: PodFacts | undefined): void {
    const ns = (after ?? before)?.namespace;
    if (ns === undefined) return;
    const labels = this.#universe.labelsOfNs(ns);
    for (const group of [this.#byNs.get(ns), this.#byNs.get('')]) {
      if (!group) continue;
      for (const s of group) {
        if (s.nsMatch && !s.nsMatch(labels)) continue;
        this.#move(s, before ? s.member(before, labels) : NONE, after ? s.member(after, labels) : NONE);
      }
    }
  }

  /** A namespace's labels changed: its pods are asked again by the sets that read namespace labels. */
  namespaceChanged(pods: readonly PodFacts[], before: Labels, after: Labels): void {
    const sets = [...(this.#byNs.get('') ?? [])].filter((s) => s.nsDependent);
    if (sets.length === 0) return;
    for (const s of sets) {
      const was = !s.nsMatch || s.nsMatch(before);
      const is = !s.nsMatch || s.nsMatch(after);
      if (!was && !is) continue;
      for (const pod of pods) this.#move(s, was ? s.member(pod, before) : NONE, is ? s.member(pod, after) : NONE);
    }
  }

  /**
   * One pod's elements in `s` go from `out` to `into`. Both lists are short
   * (one address, or a few named ports), and this runs for every set a pod
   * change concerns: plain arrays, no per-call Sets.
   */
  #move(s: LiveSet, out: readonly (readonly string[])[], into: readonly (readonly string[])[]): void {
    if (out.length === 0 && into.length === 0) return;
    const before = out.map(textOf);
    const after = into.map(textOf);
    for (const t of before) if (!after.includes(t)) this.#remove(s, t);
    for (const t of after) if (!before.includes(t)) this.#add(s, t);
  }

  #add(s: LiveSet, text: string): void {
    if (s.elements.has(text)) {
      s.extra.set(text, (s.extra.get(text) ?? 0) + 1);
      return;
    }
    if (!s.changed.has(text)) s.changed.set(text, undefined);
    s.elements.add(text);
  }

  #remove(s: LiveSet, text: string): void {
    const extra = s.extra.get(text);
    if (extra !== undefined) {
      if (extra <= 1) s.extra.delete(text);
      else s.extra.set(text, extra - 1);
      return;
    }
    const e = s.elements.get(text);
    if (!e) return;
    if (!s.changed.has(text)) s.changed.set(text, e);
    s.elements.delete(text);
  }
}
