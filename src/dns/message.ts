// DNS responses (RFC 1035, AAAA from RFC 3596) as the agent sees them on
// their way to a pod: only what learning addresses needs, the header, the
// question and the A, AAAA and CNAME records of the answer section. Pure;
// every input is hostile (any pod's traffic, or anyone who can send a
// packet with source port 53), so every read is bounds-checked, compression
// pointers may only point backwards (no loops), names are capped at the
// RFC's 255 bytes, and anything malformed is a DnsParseError, never a
// partial answer.

import { CniCode, WeirError } from '../errors.ts';

/** A DNS message that does not parse: the answer is passed on unread. */
export class DnsParseError extends WeirError {
  readonly code = 'WEIR_DNS_PARSE';
  readonly cniCode = CniCode.DecodeFailure;
}

export const TYPE_A = 1;
export const TYPE_CNAME = 5;
export const TYPE_AAAA = 28;
const CLASS_IN = 1;
const HEADER = 12;
const MAX_NAME = 255;
/** More records than this in one message is not an answer worth reading (a 64 KiB TCP message holds ~4k). */
const MAX_RECORDS = 4096;

export interface DnsRecord {
  /** Owner name, canonical: lower case, no trailing dot (the root is ''). */
  readonly name: string;
  readonly type: number;
  readonly ttl: number;
  /** A / AAAA: the address as text; CNAME: the canonical target name. */
  readonly data: string;
}

export interface DnsResponse {
  readonly id: number;
  /** RCODE (0 NOERROR, 3 NXDOMAIN, ...). */
  readonly rcode: number;
  /** TC: the answer was cut to fit UDP; the records present are still true. */
  readonly truncated: boolean;
  readonly questions: readonly string[];
  /** The answer section's A, AAAA and CNAME records of class IN; others are skipped. */
  readonly answers: readonly DnsRecord[];
}

const fail = (why: string): never => {
  throw new DnsParseError(why);
};

function need(buf: Uint8Array, off: number, n: number, what: string): void {
  if (off + n > buf.length) fail(`${what} runs past the end of the message (${buf.length} bytes)`);
}

const u16 = (b: Uint8Array, o: number): number => (b[o] as number) * 256 + (b[o + 1] as number);
const u32 = (b: Uint8Array, o: number): number => u16(b, o) * 65536 + u16(b, o + 2);

/** Label bytes as text: letters lower-cased; a dot or a byte outside printable ASCII escaped, so no two names collide. */
function labelText(b: Uint8Array, from: number, len: number): string {
  let s = '';
  for (let i = from; i < from + len; i++) {
    const c = b[i] as number;
    if (c >= 0x41 && c <= 0x5a) s += String.fromCharCode(c + 32);
    else if (c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c) s += String.fromCharCode(c);
    else s += `\\${c.toString().padStart(3, '0')}`;
  }
  return s;
}

/**
 * Reads a (possibly compressed) name at `off`: the canonical text and where
 * the name ends in the message (after its first pointer, if any). Each
 * pointer must point before the place the previous jump went to (the first
 * one, before itself), so the jumps go strictly backwards and a loop is
 * impossible; real compression only ever points at earlier names.
 */
export function readName(b: Uint8Array, off: number): { name: string; end: number } {
  const labels: string[] = [];
  let wire = 1; // the root label's length byte
  let pos = off;
  let end = -1;
  let limit = -1;
  for (;;) {
    need(b, pos, 1, 'a name');
    const len = b[pos] as number;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      need(b, pos, 2, 'a compression pointer');
      const target = u16(b, pos) & 0x3fff;
      if (target >= (limit < 0 ? pos : limit)) fail(`a compression pointer at ${pos} does not point backwards (to ${target})`);
      if (end < 0) end = pos + 2;
      limit = target;
      pos = target;
      continue;
    }
    if (kind !== 0) fail(`label type 0x${kind.toString(16)} at ${pos} is not supported`);
    need(b, pos + 1, len, 'a label');
    wire += len + 1;
    if (wire > MAX_NAME) fail(`a name longer than ${MAX_NAME} bytes at ${off}`);
    labels.push(labelText(b, pos + 1, len));
    pos += 1 + len;
  }
  return { name: labels.join('.'), end };
}

/** Parses a DNS message that must be a response (QR set, standard query); throws DnsParseError otherwise. */
export function parseResponse(b: Uint8Array): DnsResponse {
  need(b, 0, HEADER, 'the header');
  const flags = u16(b, 2);
  if ((flags & 0x8000) === 0) fail('not a response (QR is 0)');
  if (((flags >> 11) & 0xf) !== 0) fail(`opcode ${(flags >> 11) & 0xf} is not a standard query`);
  const qd = u16(b, 4);
  const an = u16(b, 6);
  if (qd + an > MAX_RECORDS) fail(`${qd} questions and ${an} answers is more than weir reads`);
  let off = HEADER;
  const questions: string[] = [];
  for (let i = 0; i < qd; i++) {
    const q = readName(b, off);
    need(b, q.end, 4, 'a question');
    questions.push(q.name);
    off = q.end + 4;
  }
  const answers: DnsRecord[] = [];
  for (let i = 0; i < an; i++) {
    const owner = readName(b, off);
    need(b, owner.end, 10, 'a record header');
    const type = u16(b, owner.end);
    const klass = u16(b, owner.end + 2);
    // The top bit makes a TTL negative (RFC 2181 8): treat it as zero.
    const raw = u32(b, owner.end + 4);
    const ttl = raw > 0x7fffffff ? 0 : raw;
    const rdlen = u16(b, owner.end + 8);
    const rdata = owner.end + 10;
    need(b, rdata, rdlen, 'record data');
    off = rdata + rdlen;
    if (klass !== CLASS_IN) continue;
    if (type === TYPE_A) {
      if (rdlen !== 4) fail(`an A record of ${rdlen} bytes`);
      answers.push({ name: owner.name, type, ttl, data: `${b[rdata]}.${b[rdata + 1]}.${b[rdata + 2]}.${b[rdata + 3]}` });
    } else if (type === TYPE_AAAA) {
      if (rdlen !== 16) fail(`an AAAA record of ${rdlen} bytes`);
      answers.push({ name: owner.name, type, ttl, data: ipv6Text(b.subarray(rdata, rdata + 16)) });
    } else if (type === TYPE_CNAME) {
      const target = readName(b, rdata);
      if (target.end > rdata + rdlen) fail('a CNAME target runs past its record');
      answers.push({ name: owner.name, type, ttl, data: target.name });
    }
  }
  return { id: u16(b, 0), rcode: flags & 0xf, truncated: (flags & 0x0200) !== 0, questions, answers };
}

/** RFC 5952 text of 16 bytes: lower case, the longest run of two or more zero groups as `::`. */
export function ipv6Text(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(u16(b, i));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string =>
    g
      .slice(from, to)
      .map((x) => x.toString(16))
      .join(':');
  return best < 0 ? hex(0, 8) : `${hex(0, best)}::${hex(best + bestLen, 8)}`;
}

/** What one response teaches: a name and the addresses it resolves to, valid for `ttl` seconds. */
export interface Resolution {
  readonly name: string;
  readonly addresses: readonly string[];
  readonly ttl: number;
}

/** CNAME chains longer than this are not followed (resolvers give up around 8-16). */
const MAX_CHAIN = 16;

/**
 * The addresses each name of the response resolves to: for every question,
 * and every name its CNAME chain goes through, the A/AAAA records at the
 * chain's end. The TTL is the smallest along the chain: when any link
 * expires, the client asks again. A policy naming an alias (`www.shop.com`)
 * or its target (`shop.cdn.net`) matches; records no question leads to
 * (unsolicited additions to the answer) teach nothing.
 */
export function resolutions(r: DnsResponse): Resolution[] {
  if (r.rcode !== 0) return [];
  const cnames = new Map<string, DnsRecord>();
  const addrs = new Map<string, DnsRecord[]>();
  for (const a of r.answers) {
    if (a.type === TYPE_CNAME) {
      if (!cnames.has(a.name)) cnames.set(a.name, a);
    } else {
      const list = addrs.get(a.name) ?? [];
      list.push(a);
      addrs.set(a.name, list);
    }
  }
  const out = new Map<string, { addresses: Set<string>; ttl: number }>();
  for (const q of new Set(r.questions)) {
    const chain: string[] = [q];
    let ttl = Number.POSITIVE_INFINITY;
    let at = q;
    for (let i = 0; i < MAX_CHAIN; i++) {
      const c = cnames.get(at);
      if (!c || chain.includes(c.data)) break;
      ttl = Math.min(ttl, c.ttl);
      at = c.data;
      chain.push(at);
    }
    const records = addrs.get(at) ?? [];
    if (records.length === 0) continue;
    const t = Math.min(ttl, ...records.map((x) => x.ttl));
    for (const name of chain) {
      const e = out.get(name) ?? { addresses: new Set<string>(), ttl: t };
      for (const x of records) e.addresses.add(x.data);
      e.ttl = Math.min(e.ttl, t);
      out.set(name, e);
    }
  }
  return [...out].map(([name, e]) => ({ name, addresses: [...e.addresses].sort(), ttl: e.ttl }));
}
