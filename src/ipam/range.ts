// A pod address range (one per family per node) and the bigint arithmetic the
// allocator walks it with. Pure: no I/O. The small text<->bigint helpers at the
// bottom exist so IPAM does not depend on src/cni/ip.ts while that is being
// written; the lead will deduplicate them later.
import { InvalidConfigError } from '../errors.ts';

export type Family = 4 | 6;

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export interface PodRangeOptions {
  /** Addresses inside the subnet never handed out (e.g. the node's gateway). */
  exclude?: readonly string[];
}

export class PodRange {
  readonly family: Family;
  /** Canonical network form, e.g. `10.244.1.0/24` or `fd00:10:244:1::/64`. */
  readonly cidr: string;
  readonly prefix: number;
  /** First and last allocatable addresses (before exclusions). */
  readonly first: bigint;
  readonly last: bigint;
  readonly #excluded: ReadonlySet<bigint>;

  private constructor(family: Family, network: bigint, prefix: number, excluded: Set<bigint>) {
    this.family = family;
    this.prefix = prefix;
    this.cidr = `${formatAddress(family, network)}/${prefix}`;
    const hostBits = BigInt(BITS[family] - prefix);
    const broadcast = network | ((1n << hostBits) - 1n);
    // Neither family hands out the subnet's first address: in IPv4 it is the
    // network address, in IPv6 the Subnet-Router anycast address (RFC 4291
    // 2.6.1), which routers answer, so a pod holding it would see stray traffic.
    this.first = network + 1n;
    // IPv4 loses the broadcast address. IPv6 has no broadcast; its last address
    // is ordinary unicast (the RFC 2526 reserved anycast block only applies to
    // EUI-64 style subnets and would cost 128 addresses for no gain), so we
    // keep it, as the CNI host-local plugin does.
    this.last = family === 4 ? broadcast - 1n : broadcast;
    this.#excluded = excluded;
  }

  /**
   * Parses `10.244.1.0/24` or `fd00::/64`. Host bits must be zero: a pod range
   * written as `10.244.1.5/24` is more likely a typo than an intent.
   * IPv4 /31 and /32 and IPv6 /127 and /128 are rejected: they are
   * point-to-point or host prefixes (RFC 3021, RFC 6164) and leave at most one
   * pod address once the first (and, for IPv4, last) address is withheld.
   */
  static parse(cidr: string, options: PodRangeOptions = {}): PodRange {
    const slash = cidr.indexOf('/');
    if (slash < 0) throw new InvalidConfigError(`pod range "${cidr}" is not in CIDR form (address/prefix)`);
    const addr = parseAddress(cidr.slice(0, slash));
    const prefixText = cidr.slice(slash + 1);
    if (!addr || !/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) {
      throw new InvalidConfigError(`pod range "${cidr}" is not a valid CIDR`);
    }
    const { family, value } = addr;
    const bits = BITS[family];
    const prefix = Number(prefixText);
    if (prefix > bits) throw new InvalidConfigError(`pod range "${cidr}": prefix /${prefix} exceeds ${bits} bits`);
    if (prefix > bits - 2) {
      throw new InvalidConfigError(`pod range "${cidr}" is too small: use at most /${bits - 2} for IPv${family}`);
    }
    const hostMask = (1n << BigInt(bits - prefix)) - 1n;
    if ((value & hostMask) !== 0n) {
      const network = formatAddress(family, value & ~hostMask);
      throw new InvalidConfigError(`pod range "${cidr}" has host bits set; did you mean ${network}/${prefix}?`);
    }
    const excluded = new Set<bigint>();
    for (const text of options.exclude ?? []) {
      const ex = parseAddress(text);
      if (!ex || ex.family !== family || (ex.value & ~hostMask) !== value) {
        throw new InvalidConfigError(`excluded address "${text}" is not inside pod range ${cidr}`);
      }
      excluded.add(ex.value);
    }
    const range = new PodRange(family, value, prefix, excluded);
    if (range.size === 0n) throw new InvalidConfigError(`pod range ${range.cidr} has no address left after exclusions`);
    return range;
  }

  /** Number of allocatable addresses. A bigint: an IPv6 /64 holds 2^64 - 1. */
  get size(): bigint {
    let n = this.last - this.first + 1n;
    for (const v of this.#excluded) if (v >= this.first && v <= this.last) n--;
    return n;
  }

  get firstAddress(): string {
    return formatAddress(this.family, this.nextValue(this.last));
  }

  get lastAddress(): string {
    let v = this.last;
    while (this.#excluded.has(v)) v--;
    return formatAddress(this.family, v);
  }

  /** Whether `ip` is an address this range may hand out. */
  contains(ip: string): boolean {
    const a = parseAddress(ip);
    return a !== undefined && a.family === this.family && this.containsValue(a.value);
  }

  containsValue(v: bigint): boolean {
    return v >= this.first && v <= this.last && !this.#excluded.has(v);
  }

  /**
   * The allocatable address after `ip`, wrapping from the last to the first.
   * An address outside the range (e.g. a stale hint from an older config)
   * yields the first address.
   */
  next(ip: string): string {
    const a = parseAddress(ip);
    const start = a && a.family === this.family ? a.value : this.last;
    return formatAddress(this.family, this.nextValue(start));
  }

  nextValue(v: bigint): bigint {
    let n = v;
    // Terminates: parse() guarantees at least one allocatable address.
    do {
      n = n < this.first || n >= this.last ? this.first : n + 1n;
    } while (this.#excluded.has(n));
    return n;
  }

  format(v: bigint): string {
    return formatAddress(this.family, v);
  }

  /** `10.244.1.5` -> `10.244.1.5/24`, the form CNI results carry. */
  withPrefix(ip: string): string {
    return `${canonicalIp(ip) ?? ip}/${this.prefix}`;
  }

  toString(): string {
    return this.cidr;
  }
}

/** Canonical text of an address (RFC 5952 for IPv6), or undefined if invalid. */
export function canonicalIp(text: string): string | undefined {
  const a = parseAddress(text);
  return a && formatAddress(a.family, a.value);
}

export function ipFamily(text: string): Family | undefined {
  return parseAddress(text)?.family;
}

// ---- text <-> bigint ------------------------------------------------------

export function parseAddress(text: string): { family: Family; value: bigint } | undefined {
  if (text.includes(':')) {
    const v = parseV6(text);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseV4(text);
  return v === undefined ? undefined : { family: 4, value: v };
}

function parseV4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    // No leading zeros: "010" is octal to inet_aton but decimal to others.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) return undefined;
    v = (v << 8n) | BigInt(p);
  }
  return v;
}

function parseV6(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): bigint[] | undefined => {
    if (s === '') return [];
    const out: bigint[] = [];
    const parts = s.split(':');
    for (const [i, p] of parts.entries()) {
      if (i === parts.length - 1 && p.includes('.')) {
        // Trailing dotted quad, e.g. ::ffff:10.0.0.1.
        const v4 = parseV4(p);
        if (v4 === undefined) return undefined;
        out.push(v4 >> 16n, v4 & 0xffffn);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) {
        out.push(BigInt(`0x${p}`));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = groups(halves[0] ?? '');
  const tail = halves.length === 2 ? groups(halves[1] ?? '') : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let v = 0n;
  for (const g of [...head, ...Array<bigint>(missing).fill(0n), ...tail]) v = (v << 16n) | g;
  return v;
}

export function formatAddress(family: Family, v: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => ((v >> s) & 0xffn).toString()).join('.');
  }
  const groups: bigint[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push((v >> s) & 0xffffn);
  // RFC 5952 4.2: compress the longest run of two or more zero groups, the
  // first one on a tie; lower-case hex without leading zeros.
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0n) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (gs: bigint[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}
