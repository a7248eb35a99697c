// A tiny packet interpreter over a compiled Ruleset (the desired state of
// src/policy/ruleset.ts, not FakeNft internals): it runs a packet through the
// base chains of one hook in priority order, following verdict maps, jumps,
// gotos and `@set` lookups, and gives the final verdict.
//
// It understands exactly the rule forms the compiler emits, and throws on any
// other text, so that a change in the compiler's output is noticed here
// rather than silently misread:
//   ip|ip6 saddr|daddr @set                 (address in a set or interval set)
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
import type { Ruleset } from '../../../src/policy/ruleset.ts';

export type L4 = 'tcp' | 'udp' | 'sctp';
export type CtState = 'new' | 'established' | 'related' | 'invalid';

export interface Packet {
  saddr: string;
  daddr: string;
  proto: L4;
  dport: number;
  ctState: CtState;
}

export interface HookResult {
  verdict: 'accept' | 'drop';
  /** Comments of the rules that gave a verdict (one per base chain that ended on a rule). */
  trail: string[];
}

type Stmt =
  | { kind: 'addr'; family: IpFamily; field: 'saddr' | 'daddr'; set: string }
  | { kind: 'vmap'; family: IpFamily; field: 'saddr' | 'daddr'; map: string }
  | { kind: 'protoPort'; set: string }
  | { kind: 'addrProtoPort'; family: IpFamily; set: string }
  | { kind: 'ct'; states: string[] }
  | { kind: 'tcpNotSyn' }
  | { kind: 'fibLocal' }
  | { kind: 'limitLog' }
  | { kind: 'counter' }
  | { kind: 'verdict'; verdict: 'accept' | 'drop' }
  | { kind: 'jump' | 'goto'; chain: string };

const FORMS: Array<[RegExp, (m: RegExpMatchArray) => Stmt]> = [
  [/^(ip6?) (saddr|daddr) vmap @(\w+)/, (m) => ({ kind: 'vmap', family: m[1] === 'ip' ? 4 : 6, field: m[2] as 'saddr', map: m[3] as string })],
  [/^(ip6?) daddr \. meta l4proto \. th dport @(\w+)/, (m) => ({ kind: 'addrProtoPort', family: m[1] === 'ip' ? 4 : 6, set: m[2] as string })],
  [/^(ip6?) (saddr|daddr) @(\w+)/, (m) => ({ kind: 'addr', family: m[1] === 'ip' ? 4 : 6, field: m[2] as 'saddr', set: m[3] as string })],
  [/^meta l4proto \. th dport @(\w+)/, (m) => ({ kind: 'protoPort', set: m[1] as string })],
  [/^ct state ((?:new|established|related|invalid)(?:,(?:new|established|related|invalid))*)/, (m) => ({ kind: 'ct', states: (m[1] as string).split(',') })],
  [/^tcp flags & \(syn \| ack\) != syn/, () => ({ kind: 'tcpNotSyn' })],
  [/^fib daddr type local/, () => ({ kind: 'fibLocal' })],
  [/^limit rate \d+\/(?:second|minute) burst \d+ packets log prefix "[^"]*" group \d+/, () => ({ kind: 'limitLog' })],
  [/^counter/, () => ({ kind: 'counter' })],
  [/^(accept|drop)$/, (m) => ({ kind: 'verdict', verdict: m[1] as 'accept' })],
  [/^(jump|goto) (\w+)$/, (m) => ({ kind: m[1] as 'jump', chain: m[2] as string })],
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

/**
 * What both interpreters start from: every rule parsed and every element
 * loaded up front (unknown text fails even where no packet would go), and
 * set lookups.
 */
export class RulesetInterpreter {
  readonly rs: Ruleset;
  readonly #sets: SetLookup;
  constructor(rs: Ruleset, parse: (rule: string) => unknown) {
    this.rs = rs;
    for (const c of rs.chains.values()) for (const r of c.rules) parse(r.rule);
    this.#sets = new SetLookup(rs);
  }

  /** The first element of a set or map matching `values`. */
  lookup(name: string, types: readonly string[], values: ReadonlyArray<bigint | number | string>): { value: string | undefined } | undefined {
    return this.#sets.lookup(name, types, values);
  }
}

export class Datapath extends RulesetInterpreter {
  constructor(rs: Ruleset) {
    super(rs, parseRule);
  }

  /** The hook being run: a packet on `input` is to this node's own addresses, on `forward` never. */
  #hook = '';

  /** Runs the base chains of `hook` in priority order. */
  hook(hook: string, pkt: Packet): HookResult {
    this.#hook = hook;
    const bases = [...this.rs.chains.values()].filter((c) => c.def.hook === hook).sort((a, b) => Number(a.def.priority) - Number(b.def.priority));
    const trail: string[] = [];
    for (const b of bases) {
      const r = this.chain(b.def.name, pkt, 0);
      if (r.kind !== 'continue') trail.push(r.by);
      const v = r.kind === 'continue' ? (b.def.policy ?? 'accept') : r.kind;
      if (v === 'drop') return { verdict: 'drop', trail };
    }
    return { verdict: 'accept', trail };
  }

  private chain(name: string, pkt: Packet, depth: number): { kind: 'accept' | 'drop'; by: string } | { kind: 'continue' } {
    if (depth > 16) throw new Error(`interpreter: chain depth exceeded at ${name}`);
    const c = this.rs.chains.get(name);
    if (!c) throw new Error(`interpreter: no chain ${name}`);
    const src = addrOf(pkt.saddr);
    const dst = addrOf(pkt.daddr);
    if (src.family !== dst.family) throw new Error('interpreter: mixed-family packet');
    for (const r of c.rules) {
      const by = `${name}: ${r.rule}${r.comment ? ` (${r.comment})` : ''}`;
      let matched = true;
      let action: { kind: 'accept' | 'drop' } | { kind: 'jump' | 'goto'; chain: string } | undefined;
      for (const s of parseRule(r.rule)) {
        if (!matched) break;
        switch (s.kind) {
          case 'addr': {
            const a = s.field === 'saddr' ? src : dst;
            matched = a.family === s.family && this.lookup(s.set, [s.family === 4 ? 'ipv4_addr' : 'ipv6_addr'], [a.value]) !== undefined;
            break;
          }
          case 'protoPort':
            matched = this.lookup(s.set, ['inet_proto', 'inet_service'], [pkt.proto, pkt.dport]) !== undefined;
            break;
          case 'addrProtoPort':
            matched =
              dst.family === s.family &&
              this.lookup(s.set, [s.family === 4 ? 'ipv4_addr' : 'ipv6_addr', 'inet_proto', 'inet_service'], [dst.value, pkt.proto, pkt.dport]) !== undefined;
            break;
          case 'ct':
            matched = s.states.includes(pkt.ctState);
            break;
          case 'tcpNotSyn':
            // The interpreter's packets open connections: a TCP one is a SYN.
            matched = false;
            break;
          case 'fibLocal':
            matched = this.#hook === 'input';
            break;
          case 'limitLog':
          case 'counter':
            break;
          case 'verdict':
            action = { kind: s.verdict };
            break;
          case 'jump':
          case 'goto':
            action = { kind: s.kind, chain: s.chain };
            break;
          case 'vmap': {
            const a = s.field === 'saddr' ? src : dst;
            if (a.family !== s.family) {
              matched = false;
              break;
            }
            const e = this.lookup(s.map, [s.family === 4 ? 'ipv4_addr' : 'ipv6_addr'], [a.value]);
            if (!e) {
              matched = false;
              break;
            }
            const m = /^(accept|drop)$|^(jump|goto) (\w+)$/.exec(e.value ?? '');
            if (!m) throw new Error(`interpreter: unknown verdict ${String(e.value)} in map ${s.map}`);
            action = m[1] ? { kind: m[1] as 'accept' } : { kind: m[2] as 'jump', chain: m[3] as string };
            break;
          }
        }
      }
      if (!matched || !action) continue;
      const act = action as { kind: 'accept' | 'drop' } | { kind: 'jump' | 'goto'; chain: string };
      if (!('chain' in act)) return { kind: act.kind, by };
      const sub = this.chain(act.chain, pkt, depth + 1);
      // goto: the called chain's fall-through returns past this chain.
      if (act.kind === 'goto' || sub.kind !== 'continue') return sub;
    }
    return { kind: 'continue' };
  }
}
