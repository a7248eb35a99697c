// FakeNft: an in-memory nftables for fast unit tests of code that builds
// transactions (the policy compiler). It applies the same primitive steps the
// real backend renders (Transaction.steps(), destroy already expanded), all or
// nothing, and fails the common cases the way the kernel does, with the same
// errno on an NftError that names the failing script line:
//
//   ENOENT  table, chain, set, map, element or rule handle missing; a rule's
//           `@set` or `jump`/`goto` target missing; a verdict's target chain missing
//   EEXIST  `create` of something that exists; `add` of a set/map whose type or
//           flags differ; `add` of a map element whose value differs; `add` of
//           a base chain over a regular chain
//   EBUSY   delete of a chain still targeted by jump/goto (rules or verdict map
//           elements), or of a set/map a rule still uses (`@name`)
//   EOPNOTSUPP  `add` of a base chain whose type, hook, priority or device differ
//   EBUSY   also: adding, deleting or flushing elements of a `constant` set
//           that a rule uses
//   EINVAL  element key of the wrong arity, element of a set given to a map or
//           the other way round
//
// What it does not model: rule text is not parsed beyond `@name` and
// `jump`/`goto` references (a rule that nft would refuse is accepted here);
// element keys are compared as text (the kernel would treat `10.0.0.1/32` and
// `10.0.0.1` as one, and auto-merge intervals); counters; netns.
//
// dump() prints the whole ruleset as a replayable `nft -f` script in a sorted,
// deterministic order: tables, then per table its chains, sets and maps (by
// name), elements (by key), and rules (chains by name, rules in chain order).
import { CniCode, Errno, WeirError } from '../errors.ts';
import type { Nft } from './backend.ts';
import { NftError } from './errors.ts';
import { type Compiled, canonicalFlags, renderElements, renderObject, type Step, type Transaction } from './transaction.ts';
import type { Chain, ChainHook, ChainPolicy, ChainType, Element, Family, Map as NftMap, Set as NftSet, Rule, SetFlag, TableRef } from './types.ts';
import * as v from './validate.ts';

interface FRule {
  handle: number;
  rule: string;
  comment: string | undefined;
}
interface FChain {
  name: string;
  handle: number;
  type: ChainType | undefined;
  hook: ChainHook | undefined;
  priority: number | undefined;
  policy: ChainPolicy | undefined;
  device: string | undefined;
  comment: string | undefined;
  rules: FRule[];
}
interface FElem {
  key: string[];
  value: string | undefined;
  comment: string | undefined;
}
interface FSet {
  name: string;
  handle: number;
  isMap: boolean;
  type: string;
  keyParts: number;
  verdict: boolean;
  flags: string[];
  autoMerge: boolean;
  comment: string | undefined;
  elements: Map<string, FElem>;
}
interface FTable {
  family: Family;
  name: string;
  handle: number;
  comment: string | undefined;
  /** The kernel numbers chains, sets and rules of a table from one counter. */
  nextHandle: number;
  chains: Map<string, FChain>;
  sets: Map<string, FSet>;
}
interface State {
  nextTableHandle: number;
  tables: Map<string, FTable>;
}

/** A rule or element as the fake holds it, with its handle. */
export interface FakeRule {
  readonly handle: number;
  readonly rule: string;
  readonly comment?: string;
}
export interface FakeElement {
  readonly key: readonly string[];
  readonly value?: string;
  readonly comment?: string;
}

/** One step of a transaction the fake refuses, with the errno the kernel would give. */
class StepError extends WeirError {
  readonly code = 'WEIR_NFT_STEP';
  readonly cniCode = CniCode.Internal;
  readonly errno: number;
  constructor(errno: number, message: string) {
    super(message);
    this.errno = errno;
  }
}

const STRERROR: Record<number, string> = {
  [Errno.ENOENT]: 'No such file or directory',
  [Errno.EEXIST]: 'File exists',
  [Errno.EBUSY]: 'Device or resource busy',
  [Errno.EOPNOTSUPP]: 'Operation not supported',
  [Errno.EINVAL]: 'Invalid argument',
};

const tkey = (family: string, name: string): string => `${family} ${name}`;
const ekey = (key: readonly string[]): string => key.join(' . ');
const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byName = <T extends { name: string }>(m: Map<string, T>): T[] => [...m.values()].sort((a, b) => cmp(a.name, b.name));

const REF_SET_RE = /@([A-Za-z_][A-Za-z0-9_]*)/g;
const REF_CHAIN_RE = /\b(?:jump|goto)\s+([A-Za-z_][A-Za-z0-9_]*)/g;
const setRefs = (text: string): string[] => [...text.matchAll(REF_SET_RE)].map((m) => m[1] as string);
const chainRefs = (text: string): string[] => [...text.matchAll(REF_CHAIN_RE)].map((m) => m[1] as string);

export class FakeNft implements Nft {
  private state: State = { nextTableHandle: 1, tables: new Map() };
  /** Transactions applied or checked (like LibNftables.calls: one per run/check). */
  calls = 0;

  run(tx: Transaction): void {
    const compiled = tx.compile();
    if (compiled.lines.length === 0) return;
    this.calls++;
    this.state = this.applyTo(structuredClone(this.state), compiled, 'run');
  }

  check(tx: Transaction): void {
    const compiled = tx.compile();
    if (compiled.lines.length === 0) return;
    this.calls++;
    this.applyTo(structuredClone(this.state), compiled, 'check');
  }

  list(family: Family, table: string): string {
    const reason = v.checkName('table', table);
    if (reason) throw new NftError(`cannot list: ${reason}`, { errno: Errno.EINVAL });
    const t = this.state.tables.get(tkey(family, table));
    if (!t) throw new NftError(`nft list table ${family} ${table}: No such file or directory`, { errno: Errno.ENOENT });
    return `${dumpTable(t).join('\n')}\n`;
  }

  /** The whole ruleset as a sorted, replayable `nft -f` script ('' when empty). */
  dump(): string {
    const tables = [...this.state.tables.values()].sort((a, b) => cmp(a.family, b.family) || cmp(a.name, b.name));
    return tables
      .flatMap(dumpTable)
      .map((l) => `${l}\n`)
      .join('');
  }

  /** Nothing to release; the ruleset stays. */
  close(): void {}

  /** Drops everything (between tests). */
  reset(): void {
    this.state = { nextTableHandle: 1, tables: new Map() };
  }

  hasTable(family: Family, table: string): boolean {
    return this.state.tables.has(tkey(family, table));
  }

  /** Rules of a chain in order, with the handles replace/delete need; undefined if the chain is missing. */
  rules(t: TableRef, chain: string): FakeRule[] | undefined {
    const c = this.state.tables.get(tkey(t.family, t.name))?.chains.get(chain);
    return c?.rules.map((r) => ({ handle: r.handle, rule: r.rule, ...(r.comment === undefined ? {} : { comment: r.comment }) }));
  }

  /** Elements of a set or map sorted by key; undefined if it is missing. */
  elements(t: TableRef, setOrMap: string): FakeElement[] | undefined {
    const s = this.state.tables.get(tkey(t.family, t.name))?.sets.get(setOrMap);
    if (!s) return undefined;
    return [...s.elements.entries()]
      .sort(([a], [b]) => cmp(a, b))
      .map(([, e]) => ({ key: [...e.key], ...(e.value === undefined ? {} : { value: e.value }), ...(e.comment === undefined ? {} : { comment: e.comment }) }));
  }

  private applyTo(state: State, compiled: Compiled, what: 'run' | 'check'): State {
    compiled.steps.forEach((step, i) => {
      try {
        applyStep(state, step);
      } catch (e) {
        if (!(e instanceof StepError)) throw e;
        const lineIndex = compiled.stepLine[i] ?? 0;
        const line = compiled.lines[lineIndex];
        const command = line?.text;
        const msg = `Could not process rule: ${STRERROR[e.errno] ?? `errno ${e.errno}`}: ${e.message}`;
        const shown = command !== undefined && command.length > 200 ? `${command.slice(0, 200)}...` : command;
        const verb = what === 'check' ? 'nft check failed' : 'nft transaction failed, nothing applied';
        throw new NftError(`${verb}: ${msg} (line ${lineIndex + 1}: ${shown})`, {
          errno: e.errno,
          line: lineIndex + 1,
          command,
          op: step.op,
          details: `fake nft: ${e.message}`,
        });
      }
    });
    return state;
  }
}

function fail(errno: number, message: string): never {
  throw new StepError(errno, message);
}

function getTable(state: State, t: TableRef): FTable {
  return state.tables.get(tkey(t.family, t.name)) ?? fail(Errno.ENOENT, `table ${t.family} ${t.name} does not exist`);
}

function getChain(table: FTable, name: string): FChain {
  return table.chains.get(name) ?? fail(Errno.ENOENT, `chain ${name} does not exist in table ${table.family} ${table.name}`);
}

function applyStep(state: State, step: Step): void {
  const { verb, obj } = step;
  switch (obj.kind) {
    case 'table': {
      const key = tkey(obj.family, obj.name);
      const t = state.tables.get(key);
      if (verb === 'add' || verb === 'create') {
        if (t) {
          if (verb === 'create') fail(Errno.EEXIST, `table ${key} exists`);
          return;
        }
        const comment = step.minimal ? undefined : obj.comment;
        state.tables.set(key, {
          family: obj.family,
          name: obj.name,
          handle: state.nextTableHandle++,
          comment,
          nextHandle: 1,
          chains: new Map(),
          sets: new Map(),
        });
        return;
      }
      if (!t) fail(Errno.ENOENT, `table ${key} does not exist`);
      if (verb === 'delete') state.tables.delete(key);
      else for (const c of t.chains.values()) c.rules = [];
      return;
    }
    case 'chain':
      applyChain(getTable(state, obj.table), step, obj);
      return;
    case 'rule':
      applyRule(getTable(state, obj.table), step, obj);
      return;
    case 'set':
    case 'map':
      applySet(getTable(state, obj.table), step, obj);
      return;
    case 'element':
      applyElement(getTable(state, obj.table), step, obj);
      return;
  }
}

function applyChain(table: FTable, step: Step, c: Chain): void {
  const existing = table.chains.get(c.name);
  const wantsBase = !step.minimal && c.hook !== undefined;
  const priority = c.priority === undefined ? undefined : v.resolvePriority(table.family, c.priority);
  switch (step.verb) {
    case 'add':
    case 'create': {
      if (existing) {
        if (step.verb === 'create') fail(Errno.EEXIST, `chain ${c.name} exists`);
        if (!wantsBase) return;
        if (existing.hook === undefined) fail(Errno.EEXIST, `chain ${c.name} exists as a regular chain`);
        if (existing.type !== c.type || existing.hook !== c.hook || existing.priority !== priority || existing.device !== c.device) {
          fail(Errno.EOPNOTSUPP, `base chain ${c.name} exists with another type, hook, priority or device`);
        }
        if (c.policy !== undefined) existing.policy = c.policy;
        return;
      }
      table.chains.set(c.name, {
        name: c.name,
        handle: table.nextHandle++,
        type: wantsBase ? c.type : undefined,
        hook: wantsBase ? c.hook : undefined,
        priority: wantsBase && typeof priority === 'number' ? priority : undefined,
        policy: wantsBase ? c.policy : undefined,
        device: wantsBase ? c.device : undefined,
        comment: step.minimal ? undefined : c.comment,
        rules: [],
      });
      return;
    }
    case 'delete': {
      const chain = getChain(table, c.name);
      const users = chainUsers(table, chain.name);
      if (users.length > 0) fail(Errno.EBUSY, `chain ${c.name} is still the target of ${users.join(', ')}`);
      table.chains.delete(c.name);
      return;
    }
    case 'flush':
      getChain(table, c.name).rules = [];
      return;
    default:
      fail(Errno.EINVAL, `${step.verb} chain`);
  }
}

/** Who jumps to or goes to `chain`: rules of other chains and verdict map elements. */
function chainUsers(table: FTable, chain: string): string[] {
  const users: string[] = [];
  for (const c of table.chains.values()) {
    if (c.name === chain) continue;
    for (const r of c.rules) if (chainRefs(r.rule).includes(chain)) users.push(`rule handle ${r.handle} in chain ${c.name}`);
  }
  for (const s of table.sets.values()) {
    for (const e of s.elements.values()) if (e.value !== undefined && chainRefs(e.value).includes(chain)) users.push(`element ${ekey(e.key)} of map ${s.name}`);
  }
  return users;
}

function checkRuleRefs(table: FTable, text: string): void {
  for (const name of setRefs(text)) if (!table.sets.has(name)) fail(Errno.ENOENT, `set or map @${name} does not exist in table ${table.family} ${table.name}`);
  for (const name of chainRefs(text))
    if (!table.chains.has(name)) fail(Errno.ENOENT, `jump/goto target chain ${name} does not exist in table ${table.family} ${table.name}`);
}

function applyRule(table: FTable, step: Step, r: Rule): void {
  const chain = getChain(table, r.chain);
  const at = (): number => {
    const i = chain.rules.findIndex((x) => x.handle === r.handle);
    return i >= 0 ? i : fail(Errno.ENOENT, `no rule with handle ${String(r.handle)} in chain ${chain.name}`);
  };
  const comment = r.comment;
  switch (step.verb) {
    case 'add':
    case 'insert': {
      checkRuleRefs(table, r.rule);
      const rule: FRule = { handle: 0, rule: r.rule.trim(), comment };
      const index = r.handle === undefined ? (step.verb === 'add' ? chain.rules.length : 0) : at() + (step.verb === 'add' ? 1 : 0);
      rule.handle = table.nextHandle++;
      chain.rules.splice(index, 0, rule);
      return;
    }
    case 'replace': {
      const i = at();
      checkRuleRefs(table, r.rule);
      chain.rules[i] = { handle: r.handle as number, rule: r.rule.trim(), comment };
      return;
    }
    case 'delete':
      chain.rules.splice(at(), 1);
      return;
    default:
      fail(Errno.EINVAL, `${step.verb} rule`);
  }
}

function applySet(table: FTable, step: Step, s: NftSet | NftMap): void {
  const existing = table.sets.get(s.name);
  const isMap = s.kind === 'map';
  switch (step.verb) {
    case 'add':
    case 'create': {
      const info = isMap ? v.parseMapType(s.type) : v.parseSetType(s.type);
      if (typeof info === 'string') fail(Errno.EINVAL, info);
      const type = v.canonicalType(info);
      const flags = canonicalFlags(s.flags);
      if (existing) {
        if (step.verb === 'create') fail(Errno.EEXIST, `${existing.isMap ? 'map' : 'set'} ${s.name} exists`);
        if (existing.isMap !== isMap || existing.type !== type || existing.flags.join() !== flags.join()) {
          fail(Errno.EEXIST, `${existing.isMap ? 'map' : 'set'} ${s.name} exists as { type ${existing.type} ; flags ${existing.flags.join(',') || '-'} }`);
        }
        return;
      }
      const set: FSet = {
        name: s.name,
        handle: table.nextHandle++,
        isMap,
        type,
        keyParts: info.keyParts.length,
        verdict: v.isVerdictMap(info),
        flags,
        autoMerge: !step.minimal && s.kind === 'set' && s.autoMerge === true,
        comment: step.minimal ? undefined : s.comment,
        elements: new Map(),
      };
      table.sets.set(s.name, set);
      return;
    }
    case 'delete': {
      if (!existing || existing.isMap !== isMap) fail(Errno.ENOENT, `${s.kind} ${s.name} does not exist in table ${table.family} ${table.name}`);
      const users = setUsers(table, s.name);
      if (users.length > 0) fail(Errno.EBUSY, `${s.kind} ${s.name} is still used by ${users.join(', ')}`);
      table.sets.delete(s.name);
      return;
    }
    case 'flush':
      if (!existing || existing.isMap !== isMap) fail(Errno.ENOENT, `${s.kind} ${s.name} does not exist in table ${table.family} ${table.name}`);
      checkNotFrozen(table, existing);
      existing.elements.clear();
      return;
    default:
      fail(Errno.EINVAL, `${step.verb} ${s.kind}`);
  }
}

/** Rules that use `@name`. */
function setUsers(table: FTable, name: string): string[] {
  const users: string[] = [];
  for (const c of table.chains.values()) for (const r of c.rules) if (setRefs(r.rule).includes(name)) users.push(`rule handle ${r.handle} in chain ${c.name}`);
  return users;
}

/** The elements of a constant set are frozen once a rule uses it. */
function checkNotFrozen(table: FTable, s: FSet): void {
  if (!s.flags.includes('constant')) return;
  const users = setUsers(table, s.name);
  if (users.length > 0) fail(Errno.EBUSY, `set ${s.name} is constant and used by ${users.join(', ')}`);
}

function applyElement(table: FTable, step: Step, e: Element): void {
  const isMap = e.map !== undefined;
  const name = (e.map ?? e.set) as string;
  const s = table.sets.get(name) ?? fail(Errno.ENOENT, `${isMap ? 'map' : 'set'} ${name} does not exist in table ${table.family} ${table.name}`);
  if (s.isMap !== isMap) fail(Errno.EINVAL, `${name} is a ${s.isMap ? 'map' : 'set'}, not a ${isMap ? 'map' : 'set'}`);
  if (e.key.length !== s.keyParts) fail(Errno.EINVAL, `element key ${ekey(e.key)} has ${e.key.length} part(s), ${name} is of type ${s.type}`);
  const key = ekey(e.key);
  const found = s.elements.get(key);
  checkNotFrozen(table, s);
  switch (step.verb) {
    case 'add':
    case 'create': {
      if (isMap && s.verdict && e.value !== undefined) {
        for (const c of chainRefs(e.value)) if (!table.chains.has(c)) fail(Errno.ENOENT, `verdict target chain ${c} does not exist`);
      }
      if (found) {
        if (step.verb === 'create') fail(Errno.EEXIST, `element ${key} exists in ${name}`);
        if (isMap && found.value !== e.value) fail(Errno.EEXIST, `element ${key} exists in ${name} with value ${String(found.value)}`);
        return;
      }
      s.elements.set(key, { key: [...e.key], value: isMap ? e.value : undefined, comment: step.minimal ? undefined : e.comment });
      return;
    }
    case 'delete':
      if (!found) fail(Errno.ENOENT, `element ${key} does not exist in ${name}`);
      s.elements.delete(key);
      return;
    default:
      fail(Errno.EINVAL, `${step.verb} element`);
  }
}

function dumpTable(t: FTable): string[] {
  const ref: TableRef = { family: t.family, name: t.name };
  const out = [renderObject('add', { kind: 'table', family: t.family, name: t.name, ...(t.comment === undefined ? {} : { comment: t.comment }) })];
  const chains = byName(t.chains);
  for (const c of chains) {
    const chain: Chain = {
      kind: 'chain',
      table: ref,
      name: c.name,
      ...(c.hook === undefined
        ? {}
        : { ...(c.type === undefined ? {} : { type: c.type }), hook: c.hook, ...(c.priority === undefined ? {} : { priority: c.priority }) }),
      ...(c.policy === undefined ? {} : { policy: c.policy }),
      ...(c.device === undefined ? {} : { device: c.device }),
      ...(c.comment === undefined ? {} : { comment: c.comment }),
    };
    out.push(renderObject('add', chain));
  }
  const sets = byName(t.sets);
  for (const s of sets) {
    const base = {
      table: ref,
      name: s.name,
      type: s.type,
      ...(s.flags.length ? { flags: s.flags as readonly SetFlag[] } : {}),
      ...(s.comment === undefined ? {} : { comment: s.comment }),
    };
    out.push(renderObject('add', s.isMap ? { kind: 'map', ...base } : { kind: 'set', ...base, ...(s.autoMerge ? { autoMerge: true } : {}) }));
  }
  for (const s of sets) {
    for (const [, e] of [...s.elements.entries()].sort(([a], [b]) => cmp(a, b))) {
      const elem: Element = {
        kind: 'element',
        table: ref,
        ...(s.isMap ? { map: s.name, ...(e.value === undefined ? {} : { value: e.value }) } : { set: s.name }),
        key: e.key,
        ...(e.comment === undefined ? {} : { comment: e.comment }),
      };
      out.push(renderElements('add', [elem]));
    }
  }
  for (const c of chains) {
    for (const r of c.rules)
      out.push(renderObject('add', { kind: 'rule', table: ref, chain: c.name, rule: r.rule, ...(r.comment === undefined ? {} : { comment: r.comment }) }));
  }
  return out;
}
