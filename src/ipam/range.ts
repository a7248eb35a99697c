// A pod address range (one per family per node) and the bigint arithmetic the
// allocator walks it with. Pure: no I/O. The small text<->bigint helpers at the
// bottom adapt src/ip.ts to bigint. Hand-written rather than on ip-num, which
// the rest of weir's CIDR arithmetic uses: this runs in the plugin on every
// ADD, where ip-num's load and its slower walk would each cost more than the
// whole allocation (measured: docs/ip.md).

import { InvalidConfigError } from '../errors.ts';
import { bigintToBytes, bytesToBigint, formatIp, tryParseIp } from '../ip.ts';

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

// ---- text <-> bigint, over the one IP parser of src/ip.ts ----

export function parseAddress(text: string): { family: Family; value: bigint } | undefined {
  const ip = tryParseIp(text);
  return ip && { family: ip.family, value: bytesToBigint(ip.bytes) };
}

export const formatAddress = (family: Family, v: bigint): string => formatIp(bigintToBytes(family, v));
