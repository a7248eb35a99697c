// A tiny packet interpreter over a compiled Ruleset (the desired state of
// src/policy/ruleset.ts, not FakeNft internals): it runs a packet through the
// base chains of one hook in priority order, following verdict maps, jumps,
// gotos and `@set` lookups, and gives the final verdict.
//
// It understands exactly the rule forms the compiler emits, and throws on any
// other text, so that a change in the compiler's output is noticed here
// rather than silently misread:
//   ip|ip6 saddr|daddr @set                 (address in a set or interval set)
//   ip|ip6 saddr|daddr != @set              (address not in it)
//   ip|ip6 saddr|daddr ADDRESS              (one address)
//   iif "lo"                                (from the node itself: never
//                                            a pod's packet)
//   ip|ip6 saddr|daddr vmap @map            (dispatch through a verdict map)
//   meta l4proto . th dport @set            (protocol . port, intervals)
//   ip|ip6 daddr . meta l4proto . th dport @set
//   ct state <states>
//   tcp flags & (syn | ack) != syn          (a TCP packet that is no bare SYN)
//   fib daddr type local                    (to an address of this node: true
//                                            exactly on the input hook)
//   limit rate R burst N packets log prefix "..." group G   (no verdict)
//   counter, then accept | drop | jump X | goto X
// Semantics are nftables': in the inet family `ip ...` only matches IPv4
// packets and `ip6 ...` only IPv6; accept ends the base chain (the next base
// chain of the hook still runs), drop ends everything; a jumped-to chain that
// falls through returns to the rule after the jump, a goto'ed one to the
// caller of the chain that did the goto; a base chain that falls through
// applies its policy.
import { bytesToBigint, type IpFamily, tryParseIp } from '../../../src/ip.ts';
import type { DesiredChain, Ruleset } from '../../../src/policy/ruleset.ts';

export type L4 = 'tcp' | 'udp' | 'sctp';
export type CtState = 'new' | 'established' | 'related' | 'invalid';

export type Packet = BasePacket;

export interface HookResult {
  verdict: 'accept' | 'drop';
  /** Comments of the rules that gave a verdict (one per base chain that ended on a rule). */
  trail: string[];
}

/** The statements both dialects write alike (the host one adds its own). */
export type CommonStmt =
  | { kind: 'addr'; family: IpFamily; field: 'saddr' | 'daddr'; set: string; negated?: true }
  | { kind: 'addrIs'; family: IpFamily; field: 'saddr' | 'daddr'; addr: string }
  | { kind: 'vmap'; family: IpFamily; field: 'saddr' | 'daddr'; map: string }
  | { kind: 'protoPort'; set: string }
  | { kind: 'addrProtoPort'; family: IpFamily; set: string }
  | { kind: 'ct'; states: string[] }
  | { kind: 'tcpNotSyn' }
  | { kind: 'skip' }
  | { kind: 'verdict'; verdict: 'accept' | 'drop' }
  | { kind: 'jump' | 'goto'; chain: string };

type Stmt = CommonStmt | { kind: 'fibLocal' } | { kind: 'fromLo' };

const fam = (s: string): IpFamily => (s === 'ip' ? 4 : 6);
/**
 * The forms of CommonStmt. No two of them, nor of a dialect's own forms,
 * match the same text, so a dialect appends its forms in any order; the log
 * statement is a dialect's own, the host one's prefix being stricter.
 */
export const COMMON_FORMS: ReadonlyArray<[RegExp, (m: RegExpMatchArray) => CommonStmt]> = [
  [/^(ip6?) (saddr|daddr) vmap @(\w+)/, (m) => ({ kind: 'vmap', family: fam(m[1] as string), field: m[2] as 'saddr', map: m[3] as string })],
  [/^(ip6?) daddr \. meta l4proto \. th dport @(\w+)/, (m) => ({ kind: 'addrProtoPort', family: fam(m[1] as string), set: m[2] as string })],
  [/^(ip6?) (saddr|daddr) @(\w+)/, (m) => ({ kind: 'addr', family: fam(m[1] as string), field: m[2] as 'saddr', set: m[3] as string })],
  [/^(ip6?) (saddr|daddr) != @(\w+)/, (m) => ({ kind: 'addr', family: fam(m[1] as string), field: m[2] as 'saddr', set: m[3] as string, negated: true })],
  [/^(ip6?) (saddr|daddr) ([0-9a-f.:]+)(?= |$)/, (m) => ({ kind: 'addrIs', family: fam(m[1] as string), field: m[2] as 'saddr', addr: m[3] as string })],
  [/^meta l4proto \. th dport @(\w+)/, (m) => ({ kind: 'protoPort', set: m[1] as string })],
  [/^ct state ((?:new|established|related|invalid)(?:,(?:new|established|related|invalid))*)/, (m) => ({ kind: 'ct', states: (m[1] as string).split(',') })],
  [/^tcp flags & \(syn \| ack\) != syn/, () => ({ kind: 'tcpNotSyn' })],
  [/^counter/, () => ({ kind: 'skip' })],
  [/^(accept|drop)$/, (m) => ({ kind: 'verdict', verdict: m[1] as 'accept' })],
  [/^(jump|goto) (\w+)$/, (m) => ({ kind: m[1] as 'jump', chain: m[2] as string })],
];

const FORMS: ReadonlyArray<[RegExp, (m: RegExpMatchArray) => Stmt]> = [
  ...COMMON_FORMS,
  [/^fib daddr type local/, () => ({ kind: 'fibLocal' })],
  [/^iif "lo"/, () => ({ kind: 'fromLo' })],
  [/^limit rate \d+\/(?:second|minute) burst \d+ packets log prefix "[^"]*" group \d+/, () => ({ kind: 'skip' })],
];

/**
 * Splits rule text into statements by a list of forms, each a regex anchored
 * at the start and a builder; throws on any text no form knows. Shared by
 * this interpreter and the host one (test/unit/policy-host/host-interp.ts).
 */
export function parseStatements<S>(text: string, forms: ReadonlyArray<[RegExp, (m: RegExpMatchArray) => S]>, who: string): S[] {
  const out: S[] = [];
  let rest = text.trim();
  while (rest !== '') {
    const form = forms.find(([re]) => re.test(rest));
    if (!form) throw new Error(`${who}: unknown rule text ${JSON.stringify(rest)} in ${JSON.stringify(text)}`);
    const m = rest.match(form[0]) as RegExpMatchArray;
    out.push(form[1](m));
    rest = rest.slice(m[0].length).trim();
  }
  return out;
}

const parsed = new Map<string, Stmt[]>();

/** Parses rule text into statements; throws on anything outside the known forms. */
export function parseRule(text: string): Stmt[] {
  const hit = parsed.get(text);
  if (hit) return hit;
  const out = parseStatements(text, FORMS, 'interpreter');
  const v = out.findIndex((s) => s.kind === 'verdict' || s.kind === 'jump' || s.kind === 'goto' || s.kind === 'vmap');
  if (v >= 0 && v !== out.length - 1) throw new Error(`interpreter: statements after the verdict in ${JSON.stringify(text)}`);
  parsed.set(text, out);
  return out;
}

/** An address as its family and value (for comparisons against set bounds). */
export const addrOf = (s: string): { family: IpFamily; value: bigint } => {
  const ip = tryParseIp(s);
  if (!ip) throw new Error(`interpreter: not an address: ${s}`);
  return { family: ip.family, value: bytesToBigint(ip.bytes) };
};

type PartType = 'ipv4_addr' | 'ipv6_addr' | 'inet_proto' | 'inet_service';
const PART_TYPES: readonly string[] = ['ipv4_addr', 'ipv6_addr', 'inet_proto', 'inet_service'];
/** One key part of an element as a closed range (protocols as their name, lo === hi). */
type Bound = [bigint | number | string, bigint | number | string];

/** Parses one element key part by the part's data type; ranges only in interval sets. */
function parsePart(type: PartType, key: string, interval: boolean): Bound {
  const range = key.includes('-');
  if (range && !interval) throw new Error(`interpreter: range ${key} in a set without flags interval`);
  const [lo, hi] = range ? (key.split('-') as [string, string]) : [key, key];
  switch (type) {
    case 'ipv4_addr':
    case 'ipv6_addr': {
      const a = addrOf(lo);
      const b = addrOf(hi);
      if (a.family !== (type === 'ipv4_addr' ? 4 : 6) || b.family !== a.family || a.value > b.value)
        throw new Error(`interpreter: ${key} is not of type ${type}`);
      return [a.value, b.value];
    }
    case 'inet_proto':
      if (range || !['tcp', 'udp', 'sctp'].includes(key)) throw new Error(`interpreter: unexpected inet_proto element ${key}`);
      return [key, key];
    case 'inet_service': {
      const a = /^\d+$/.test(lo) ? Number(lo) : NaN;
      const b = /^\d+$/.test(hi) ? Number(hi) : NaN;
      if (!(a >= 0 && b <= 65535 && a <= b)) throw new Error(`interpreter: bad inet_service element ${key}`);
      return [a, b];
    }
  }
}

interface LoadedSet {
  types: PartType[];
  elements: Array<{ parts: Bound[]; value: string | undefined }>;
}

/**
 * The sets and maps of a Ruleset, every element parsed by its key type up
 * front (unknown text fails even where no packet would look), looked up by
 * the rules. Shared with the host interpreter.
 */
export class SetLookup {
  readonly #rs: Ruleset;
  readonly #sets = new Map<string, LoadedSet>();
  constructor(rs: Ruleset) {
    this.#rs = rs;
    for (const name of rs.sets.keys()) this.#load(name);
  }

  #load(name: string): LoadedSet {
    const hit = this.#sets.get(name);
    if (hit) return hit;
    const s = this.#rs.sets.get(name);
    if (!s) throw new Error(`interpreter: no set @${name}`);
    const [keyType, valueType] = s.def.kind === 'map' ? s.def.type.split(' : ') : [s.def.type, undefined];
    if (s.def.kind === 'map' && valueType !== 'verdict') throw new Error(`interpreter: map ${name} is not a verdict map`);
    const types = (keyType as string).split(' . ') as PartType[];
    if (types.some((t) => !PART_TYPES.includes(t))) throw new Error(`interpreter: unknown key type ${String(keyType)} of @${name}`);
    const interval = s.def.kind === 'set' && (s.def.flags ?? []).includes('interval');
    const elements = [...s.elements.values()].map((e) => {
      if (e.key.length !== types.length) throw new Error(`interpreter: element ${e.key.join(' . ')} of @${name} has the wrong arity`);
      if ((e.value !== undefined) !== (s.def.kind === 'map')) throw new Error(`interpreter: element ${e.key.join(' . ')} of @${name}: value and kind disagree`);
      return { parts: e.key.map((k, i) => parsePart(types[i] as PartType, k, interval)), value: e.value };
    });
    const loaded = { types, elements };
    this.#sets.set(name, loaded);
    return loaded;
  }

  /** The first element of a set or map matching `values`; the rule's use must agree with the declared key type. */
  lookup(name: string, types: readonly string[], values: ReadonlyArray<bigint | number | string>): { value: string | undefined } | undefined {
    const s = this.#load(name);
    if (s.types.join(' . ') !== types.join(' . '))
      throw new Error(`interpreter: @${name} is of type ${s.types.join(' . ')}, the rule uses it as ${types.join(' . ')}`);
    return s.elements.find((e) => e.parts.every(([lo, hi], i) => (values[i] as bigint) >= (lo as bigint) && (values[i] as bigint) <= (hi as bigint)));
  }
}

type Addr = ReturnType<typeof addrOf>;
type Action = { kind: 'accept' | 'drop' } | { kind: 'jump' | 'goto'; chain: string };
/** What one statement says of a packet: no match, a match, or a match that sets the rule's action. */
export type Outcome = boolean | Action;
/** The packet's addresses, parsed once a packet, and the rule being matched (for errors). */
export interface Where {
  src: Addr;
  dst: Addr;
  rule: string;
}

/** The packet fields the common statements read. */
export interface BasePacket {
  saddr: string;
  daddr: string;
  proto: L4;
  dport: number;
  ctState: CtState;
}

/**
 * What both interpreters share: every rule parsed and every element loaded
 * up front (unknown text fails even where no packet would go), set lookups,
 * the walk of a hook's chains and the matching of the common statements. A
 * dialect overrides `match` for the statements of its own.
 */
export class RulesetInterpreter<P extends BasePacket, S extends { kind: string }> {
  readonly rs: Ruleset;
  readonly #sets: SetLookup;
  readonly #parse: (rule: string) => readonly S[];
  readonly #who: string;
  readonly #basesByHook = new Map<string, DesiredChain[]>();
  constructor(rs: Ruleset, parse: (rule: string) => readonly S[], who: string) {
    this.rs = rs;
    this.#parse = parse;
    this.#who = who;
    for (const c of rs.chains.values()) for (const r of c.rules) parse(r.rule);
    this.#sets = new SetLookup(rs);
  }

  /** The first element of a set or map matching `values`. */
  lookup(name: string, types: readonly string[], values: ReadonlyArray<bigint | number | string>): { value: string | undefined } | undefined {
    return this.#sets.lookup(name, types, values);
  }

  /** Runs the base chains of `hook` in priority order. */
  protected run(hook: string, pkt: P): HookResult {
    const bases = this.#bases(hook);
    // The packet's addresses are parsed once, not again in every chain it enters.
    const addrs = { src: addrOf(pkt.saddr), dst: addrOf(pkt.daddr) };
    const trail: string[] = [];
    for (const b of bases) {
      const r = this.#chain(b.def.name, pkt, addrs, 0);
      if (r.kind !== 'continue') trail.push(r.by);
      const v = r.kind === 'continue' ? (b.def.policy ?? 'accept') : r.kind;
      if (v === 'drop') return { verdict: 'drop', trail };
    }
    return { verdict: 'accept', trail };
  }

  /** The base chains of `hook` in priority order, sorted once per hook: the ruleset never changes. */
  #bases(hook: string): DesiredChain[] {
    let bases = this.#basesByHook.get(hook);
    if (!bases) {
      bases = [...this.rs.chains.values()].filter((c) => c.def.hook === hook).sort((a, b) => Number(a.def.priority) - Number(b.def.priority));
      this.#basesByHook.set(hook, bases);
    }
    return bases;
  }

  #chain(name: string, pkt: P, { src, dst }: { src: Addr; dst: Addr }, depth: number): { kind: 'accept' | 'drop'; by: string } | { kind: 'continue' } {
    if (depth > 16) throw new Error(`${this.#who}: chain depth exceeded at ${name}`);
    const c = this.rs.chains.get(name);
    if (!c) throw new Error(`${this.#who}: no chain ${name}`);
    for (const r of c.rules) {
      let matched = true;
      let action: Action | undefined;
      for (const s of this.#parse(r.rule)) {
        const o = this.match(s, pkt, { src, dst, rule: r.rule });
        if (o === false) {
          matched = false;
          break;
        }
        if (o !== true) action = o;
      }
      if (!matched || !action) continue;
      if (!('chain' in action)) return { kind: action.kind, by: `${name}: ${r.rule}${r.comment ? ` (${r.comment})` : ''}` };
      const sub = this.#chain(action.chain, pkt, { src, dst }, depth + 1);
      // goto: the called chain's fall-through returns past this chain.
      if (action.kind === 'goto' || sub.kind !== 'continue') return sub;
    }
    return { kind: 'continue' };
  }

  /** A verdict map's value as the action it sets. */
  protected verdictOf(value: string | undefined, map: string): Action {
    const m = /^(accept|drop)$|^(jump|goto) (\w+)$/.exec(value ?? '');
    if (!m) throw new Error(`${this.#who}: unknown verdict ${String(value)} in map ${map}`);
    return m[1] ? { kind: m[1] as 'accept' } : { kind: m[2] as 'jump', chain: m[3] as string };
  }

  /** The common statements; a dialect matches its own kinds and hands the rest here. */
  protected match(stmt: S, pkt: P, { src, dst }: Where): Outcome {
    const s = stmt as unknown as CommonStmt;
    const addrType = (f: IpFamily): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');
    switch (s.kind) {
      case 'addr': {
        const a = s.field === 'saddr' ? src : dst;
        return a.family === s.family && (this.lookup(s.set, [addrType(s.family)], [a.value]) !== undefined) !== (s.negated === true);
      }
      case 'addrIs': {
        const a = s.field === 'saddr' ? src : dst;
        return a.family === s.family && a.value === addrOf(s.addr).value;
      }
      case 'protoPort':
        return this.lookup(s.set, ['inet_proto', 'inet_service'], [pkt.proto, pkt.dport]) !== undefined;
      case 'addrProtoPort':
        return (
          dst.family === s.family && this.lookup(s.set, [addrType(s.family), 'inet_proto', 'inet_service'], [dst.value, pkt.proto, pkt.dport]) !== undefined
        );
      case 'vmap': {
        const a = s.field === 'saddr' ? src : dst;
        const e = a.family === s.family ? this.lookup(s.map, [addrType(s.family)], [a.value]) : undefined;
        return e ? this.verdictOf(e.value, s.map) : false;
      }
      case 'ct':
        return s.states.includes(pkt.ctState);
      case 'tcpNotSyn':
        // The interpreters' packets open connections: a TCP one is a SYN.
        return false;
      case 'skip':
        return true;
      case 'verdict':
        return { kind: s.verdict };
      case 'jump':
      case 'goto':
        return { kind: s.kind, chain: s.chain };
      default:
        throw new Error(`${this.#who}: no matcher for ${(s as { kind: string }).kind}`);
    }
  }
}

export class Datapath extends RulesetInterpreter<Packet, Stmt> {
  constructor(rs: Ruleset) {
    super(rs, parseRule, 'interpreter');
  }

  /** The hook being run: a packet on `input` is to this node's own addresses, on `forward` never. */
  #hook = '';

  /** Runs the base chains of `hook` in priority order. */
  hook(hook: string, pkt: Packet): HookResult {
    if (addrOf(pkt.saddr).family !== addrOf(pkt.daddr).family) throw new Error('interpreter: mixed-family packet');
    this.#hook = hook;
    return this.run(hook, pkt);
  }

  protected override match(s: Stmt, pkt: Packet, where: Where): Outcome {
    if (s.kind === 'fibLocal') return this.#hook === 'input';
    if (s.kind === 'fromLo') return false; // this interpreter's packets come from pods or from beyond the node
    return super.match(s, pkt, where);
  }
}
