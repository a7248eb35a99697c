// IP address and CIDR text <-> bytes, dependency-free. Parsing is strict on
// purpose: everything weir stores or hands to the kernel goes through here, so
// ambiguous spellings (octal-looking `01.2.3.4`, zone IDs, short IPv4 forms)
// are refused rather than guessed at. Output is canonical: dotted quad for
// IPv4 and RFC 5952 for IPv6, so equal addresses always compare equal as text.
// Text stays here: ip-num reads zone IDs and prints IPv6 groups uncompressed.
//
// CIDR arithmetic is ip-num's (src/ip-ranges.ts), except the few masks below,
// which the CNI plugin's ADD path uses (the conflist's pod CIDR checks) beside
// the IPAM range's bigint walk: loading ip-num would cost each plugin run more
// than all of that arithmetic (measured: docs/ip.md).
import { InternalError, InvalidConfigError } from './errors.ts';

export type IpFamily = 4 | 6;

/** An address in network byte order: 4 bytes for IPv4, 16 for IPv6. */
export interface IpBytes {
  family: IpFamily;
  bytes: Uint8Array;
}

/** A parsed `address/prefix`; `address` is canonical text of `bytes` (host bits kept). */
export interface Cidr {
  family: IpFamily;
  address: string;
  prefix: number;
  bytes: Uint8Array;
}

export const addressBits = (family: IpFamily): number => (family === 4 ? 32 : 128);

const DEC_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIpv4(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? '';
    // Leading zeros are refused: inet_aton reads them as octal, Go and
    // Python refuse them; accepting them would make one string mean two things.
    if (!DEC_OCTET.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** Parses colon-separated hex groups (with an optional trailing dotted quad) into 16-bit words. */
function parseGroups(part: string, allowV4Tail: boolean): number[] | undefined {
  if (part === '') return [];
  const pieces = part.split(':');
  const words: number[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i] ?? '';
    if (allowV4Tail && i === pieces.length - 1 && p.includes('.')) {
      const v4 = parseIpv4(p);
      if (!v4) return undefined;
      words.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
    } else {
      if (!HEX_GROUP.test(p)) return undefined;
      words.push(parseInt(p, 16));
    }
  }
  return words;
}

function parseIpv6(s: string): Uint8Array | undefined {
  // Zone IDs (`fe80::1%eth0`) and brackets are not addresses; refuse them.
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  let words: number[];
  if (halves.length === 2) {
    const head = parseGroups(halves[0] ?? '', false);
    const tail = parseGroups(halves[1] ?? '', true);
    if (!head || !tail) return undefined;
    // `::` stands for at least one zero group (RFC 4291 2.2).
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return undefined;
    words = [...head, ...new Array<number>(missing).fill(0), ...tail];
  } else {
    const all = parseGroups(s, true);
    if (all?.length !== 8) return undefined;
    words = all;
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  return out;
}

/** Parses IPv4 or IPv6 text; undefined when it is not a valid address. */
export function tryParseIp(s: string): IpBytes | undefined {
  if (typeof s !== 'string' || s.length === 0 || s.length > 45) return undefined;
  if (s.includes(':')) {
    const bytes = parseIpv6(s);
    return bytes ? { family: 6, bytes } : undefined;
  }
  const bytes = parseIpv4(s);
  return bytes ? { family: 4, bytes } : undefined;
}

/** Parses IPv4 or IPv6 text; throws InvalidConfigError when it is not a valid address. */
export function parseIp(s: string): IpBytes {
  const ip = tryParseIp(s);
  if (!ip) throw new InvalidConfigError(`invalid IP address ${JSON.stringify(String(s).slice(0, 64))}`);
  return ip;
}

function formatIpv6(b: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  // RFC 5952 5: IPv4-mapped addresses keep their dotted-quad tail.
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  // RFC 5952 4.2: compress the longest run of two or more zero groups; on a
  // tie the first run wins; a lone zero group is never compressed.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // RFC 5952 4.1 and 4.3: no leading zeros, lower-case hex.
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical text of a 4- or 16-byte address (RFC 5952 for IPv6). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length === 16) return formatIpv6(bytes);
  throw new InternalError(`formatIp: an address has 4 or 16 bytes, got ${bytes.length}`);
}

/** Parses `address/prefix`; undefined when invalid. The address keeps its host bits. */
export function tryParseCidr(s: string): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0 || slash !== s.lastIndexOf('/')) return undefined;
  const ip = tryParseIp(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > addressBits(ip.family)) return undefined;
  return { family: ip.family, address: formatIp(ip.bytes), prefix, bytes: ip.bytes };
}

/** Parses `address/prefix`; throws InvalidConfigError when invalid. */
export function parseCidr(s: string): Cidr {
  const c = tryParseCidr(s);
  if (!c) throw new InvalidConfigError(`invalid CIDR ${JSON.stringify(String(s).slice(0, 64))}`);
  return c;
}

/** `address/prefix` in canonical text. */
export const formatCidr = (c: { address: string; prefix: number }): string => `${c.address}/${c.prefix}`;

// ---- masks for the ADD path (the agent and the policy compiler use src/ip-ranges.ts) ----

/** The address with every bit past `prefix` cleared. */
function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** The network a CIDR lies in, host bits cleared. */
export function networkOf(c: Cidr): Cidr {
  const bytes = maskBytes(c.bytes, c.prefix);
  return { family: c.family, address: formatIp(bytes), prefix: c.prefix, bytes };
}

/** True when bits past the prefix are set, e.g. `10.244.1.5/24`. */
export const hasHostBits = (c: Cidr): boolean => !maskBytes(c.bytes, c.prefix).every((b, i) => b === c.bytes[i]);

/** True when `ip` lies inside network `c`. */
export function cidrContains(c: Cidr, ip: IpBytes): boolean {
  if (ip.family !== c.family) return false;
  const a = maskBytes(c.bytes, c.prefix);
  const b = maskBytes(ip.bytes, c.prefix);
  return a.every((x, i) => x === b[i]);
}

/** The address as an unsigned integer, for range arithmetic (IPAM). */
export function bytesToBigint(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

export function bigintToBytes(family: IpFamily, v: bigint): Uint8Array {
  const out = new Uint8Array(family === 4 ? 4 : 16);
  for (let i = out.length - 1; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}
