// Kernel = applied: the differences between the `inet weir` table the kernel
// holds (nft's listing, read back by nft/listing.ts) and the ruleset the
// engine last applied. Pure; the agent's KernelVerifier (kernel-verifier.ts)
// reads the table, calls tableDrift(), and repairs with one full replacement.
//
// Elements are compared by value, not by text: nft prints an interval that
// is a whole prefix as `10.0.0.0/8` where weir wrote `10.0.0.0-10.255.255.255`,
// an address range of one address as the address, and merges adjacent
// intervals of a one-field interval set; protocols may be names or numbers.
// Rules are compared as text, in order, with their comments (every rule weir
// writes carries one).

import { tryParseCidr } from '../ip.ts';
import { cidrSpan } from '../ip-ranges.ts';
import { formatAddress, parseAddress } from '../ipam/range.ts';
import type { ListedChain, ListedSet, ListedTable } from '../nft/listing.ts';
import { mergeRanges } from '../policy/intervals.ts';
import type { DesiredChain, DesiredSet, Ruleset } from '../policy/ruleset.ts';

export const DRIFT_REASONS = [
  'table-missing',
  // Found by the cheap check (kernel-verifier.ts) from the table's handle and use count:
  'table-replaced',
  'objects-changed',
  'set-missing',
  'set-extra',
  'set-changed',
  'element-missing',
  'element-extra',
  'chain-missing',
  'chain-extra',
  'chain-changed',
] as const;
export type DriftReason = (typeof DRIFT_REASONS)[number];

export interface Drift {
  reason: DriftReason;
  /** The set, map or chain concerned (the table's name for table-missing). */
  object: string;
  detail: string;
}

export interface DriftReport {
  /** Differences found, by reason (zero reasons left out). */
  counts: Partial<Record<DriftReason, number>>;
  /** The first `limit` differences, for logs and weirctl. */
  examples: Drift[];
}

/**
 * How nft 1.0.6 prints rule text that weir writes another way, found by
 * listing every rule the compiler emits (the kernel tests compare a freshly
 * applied table with tableDrift() and fail on any difference).
 */
const PRINTED: ReadonlyArray<readonly [string, string]> = [['tcp flags & (syn | ack) != syn', 'tcp flags != syn / syn,ack']];

/** A rule as nft lists it. */
export function ruleText(rule: string, comment: string | undefined): string {
  let r = rule;
  for (const [from, to] of PRINTED) if (r.includes(from)) r = r.replace(from, to);
  return comment === undefined ? r : `${r} comment "${comment}"`;
}

/** Differences between what was applied and what the kernel lists (`undefined`: the table is gone). */
export function tableDrift(applied: Ruleset, listed: ListedTable | undefined, limit = 20): DriftReport {
  const report: DriftReport = { counts: {}, examples: [] };
  const add = (reason: DriftReason, object: string, detail: string): void => {
    report.counts[reason] = (report.counts[reason] ?? 0) + 1;
    if (report.examples.length < limit) report.examples.push({ reason, object, detail });
  };
  if (!listed) {
    add('table-missing', `${applied.table.family} ${applied.table.name}`, 'the table is gone');
    return report;
  }
  for (const [name, want] of applied.sets) {
    const have = listed.sets.get(name);
    if (!have) add('set-missing', name, `${want.def.kind} ${name} is gone`);
    else compareSet(name, want, have, add);
  }
  for (const name of listed.sets.keys()) if (!applied.sets.has(name)) add('set-extra', name, `${listed.sets.get(name)?.kind} ${name} was not applied by weir`);
  for (const [name, want] of applied.chains) {
    const have = listed.chains.get(name);
    if (!have) add('chain-missing', name, `chain ${name} is gone`);
    else compareChain(name, want, have, add);
  }
  for (const name of listed.chains.keys()) if (!applied.chains.has(name)) add('chain-extra', name, `chain ${name} was not applied by weir`);
  return report;
}

type Add = (reason: DriftReason, object: string, detail: string) => void;

function compareChain(name: string, want: DesiredChain, have: ListedChain, add: Add): void {
  const def = want.def;
  if ((def.hook !== undefined) !== (have.base !== undefined) || (def.policy !== undefined && def.policy !== have.policy)) {
    add('chain-changed', name, `base chain ${def.hook ?? '-'} policy ${def.policy ?? '-'} applied, the kernel has ${have.base ?? 'a regular chain'}`);
    return;
  }
  const rules = want.rules;
  if (rules.length !== have.rules.length) {
    add('chain-changed', name, `${rules.length} rule(s) applied, the kernel has ${have.rules.length}`);
    return;
  }
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i] as DesiredChain['rules'][number];
    const text = ruleText(r.rule, r.comment);
    if (text !== have.rules[i]) {
      add('chain-changed', name, `rule ${i + 1}: applied ${JSON.stringify(text)}, the kernel has ${JSON.stringify(have.rules[i])}`);
      return;
    }
  }
}

function compareSet(name: string, want: DesiredSet, have: ListedSet, add: Add): void {
  const def = want.def;
  const interval = def.flags?.includes('interval') === true;
  if (def.kind !== have.kind || def.type !== have.type || interval !== have.flags.includes('interval')) {
    add(
      'set-changed',
      name,
      `${def.kind} of type ${def.type}${interval ? ' (interval)' : ''} applied, the kernel has a ${have.kind} of type ${have.type} flags ${have.flags.join(',') || '-'}`,
    );
    return;
  }
  // A timeout set's elements are written at run time with their expiry (the
  // DNS path's learned addresses), not by the engine: only the set is compared.
  if (def.flags?.includes('timeout')) return;
  const [keyType, valueType] = def.type.split(' : ') as [string, string | undefined];
  const fields = keyType.split(' . ');
  const canon = (parts: readonly string[], value: string | undefined): string => canonicalElement(fields, parts, valueType === undefined ? undefined : value);
  const wanted: string[] = [];
  for (const e of want.elements.values()) wanted.push(canon(e.key, e.value));
  const listed = have.elements.map((t) => {
    const [k, v] = t.split(' : ') as [string, string | undefined];
    return canon(k.split(' . '), v);
  });
  // A one-field interval set: nft merges adjacent intervals, so compare the union.
  const [a, b] =
    interval && fields.length === 1 && valueType === undefined
      ? [unionOf(fields[0] as string, wanted), unionOf(fields[0] as string, listed)]
      : [wanted, listed];
  const inKernel = new Set(b);
  const applied = new Set(a);
  for (const e of a) if (!inKernel.has(e)) add('element-missing', name, `${e} is not in the kernel's ${def.kind}`);
  for (const e of b) if (!applied.has(e)) add('element-extra', name, `${e} is in the kernel's ${def.kind} but was not applied`);
}

const PROTOCOLS: Readonly<Record<string, string>> = { icmp: '1', tcp: '6', udp: '17', sctp: '132', 'ipv6-icmp': '58', icmpv6: '58' };

/**
 * One element as comparable text: each field canonical (addresses and ranges
 * as `lo` or `lo-hi`, protocols as numbers), then ` : value` for maps.
 */
export function canonicalElement(fields: readonly string[], parts: readonly string[], value: string | undefined): string {
  let out = '';
  for (let i = 0; i < parts.length; i++) out += `${i > 0 ? ' . ' : ''}${canonicalField(fields[i] ?? '', (parts[i] as string).trim())}`;
  return value === undefined ? out : `${out} : ${value.trim()}`;
}

function canonicalField(type: string, text: string): string {
  switch (type) {
    case 'ipv4_addr':
    case 'ipv6_addr': {
      // One address prints as weir writes it (dotted quad, RFC 5952).
      if (!text.includes('/') && !text.includes('-')) return text;
      const r = addressRange(text);
      if (!r) return text;
      return r.lo === r.hi ? formatAddress(r.family, r.lo) : `${formatAddress(r.family, r.lo)}-${formatAddress(r.family, r.hi)}`;
    }
    case 'inet_proto':
      return PROTOCOLS[text] ?? text;
    case 'inet_service': {
      const m = /^(\d+)-(\d+)$/.exec(text);
      return m && m[1] === m[2] ? String(Number(m[1])) : text;
    }
    default:
      return text.replace(/^"(.*)"$/, '$1');
  }
}

/** `a`, `a/len` or `a-b` as a range of addresses; undefined when it is none of them. */
function addressRange(text: string): { family: 4 | 6; lo: bigint; hi: bigint } | undefined {
  const dash = text.indexOf('-');
  if (dash > 0) {
    const lo = parseAddress(text.slice(0, dash));
    const hi = parseAddress(text.slice(dash + 1));
    return lo && hi && lo.family === hi.family ? { family: lo.family, lo: lo.value, hi: hi.value } : undefined;
  }
  if (text.includes('/')) {
    const c = tryParseCidr(text);
    if (!c) return undefined;
    const span = cidrSpan(c);
    return { family: c.family, lo: span.getFirst().getValue(), hi: span.getLast().getValue() };
  }
  const a = parseAddress(text);
  return a && { family: a.family, lo: a.value, hi: a.value };
}

/** The canonical texts of a one-field interval set, merged into disjoint ranges. */
function unionOf(type: string, texts: readonly string[]): string[] {
  if (type !== 'ipv4_addr' && type !== 'ipv6_addr') return texts.slice();
  const byFamily = new Map<4 | 6, Array<[bigint, bigint]>>();
  const other: string[] = [];
  for (const t of texts) {
    const r = addressRange(t);
    if (!r) other.push(t);
    else {
      const list = byFamily.get(r.family) ?? [];
      list.push([r.lo, r.hi]);
      byFamily.set(r.family, list);
    }
  }
  for (const [family, ranges] of byFamily)
    for (const [lo, hi] of mergeRanges(ranges)) other.push(lo === hi ? formatAddress(family, lo) : `${formatAddress(family, lo)}-${formatAddress(family, hi)}`);
  return other;
}
