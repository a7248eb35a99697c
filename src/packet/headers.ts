// The IP and transport headers at the start of a packet, pure: what the drop
// log and the tests read from the bytes that nfnetlink_log copied (starting
// at the network header, cut at the copy range). Parsing goes as far as the
// bytes reach and never throws: bytes that are not a plausible IPv4/IPv6
// header give undefined, a transport header cut short gives the fields that
// fit.
import { formatIp } from '../ip.ts';
import { IPPROTO_SCTP } from './sctp.ts';

export type L4Protocol = 'TCP' | 'UDP' | 'SCTP' | 'ICMP' | 'ICMPv6';

export interface PacketHeaders {
  family: 4 | 6;
  src: string;
  dst: string;
  /** The transport protocol by name, or its number when weir has no name for it. */
  protocol: L4Protocol | number;
  /** Ports of TCP, UDP and SCTP, when the copied bytes reach them (never for a non-first fragment). */
  sport?: number;
  dport?: number;
  /** The TCP flags byte (FIN 0x01 … CWR 0x80); see tcpFlagNames. */
  tcpFlags?: number;
  /** ICMP / ICMPv6 type and code. */
  icmpType?: number;
  icmpCode?: number;
  /** A fragment other than the first: no transport header. */
  fragment?: boolean;
}

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

const PROTO_NAMES: ReadonlyMap<number, L4Protocol> = new Map([
  [IPPROTO_ICMP, 'ICMP'],
  [IPPROTO_TCP, 'TCP'],
  [IPPROTO_UDP, 'UDP'],
  [IPPROTO_ICMPV6, 'ICMPv6'],
  [IPPROTO_SCTP, 'SCTP'],
]);

const protocolOf = (proto: number): L4Protocol | number => PROTO_NAMES.get(proto) ?? proto;

const TCP_FLAG_NAMES = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'] as const;
/** `0x12` → ['SYN', 'ACK']. */
export const tcpFlagNames = (flags: number): string[] => TCP_FLAG_NAMES.filter((_, i) => flags & (1 << i));

// IPv6 extension headers that are skipped to find the transport header.
const IPV6_HOPOPTS = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_AH = 51;
const IPV6_DSTOPTS = 60;
/** How many extension headers are walked before giving up on reaching the transport header. */
const IPV6_MAX_EXTENSIONS = 8;

function transport(h: PacketHeaders, proto: number, b: Buffer, off: number): PacketHeaders {
  if (proto === IPPROTO_TCP || proto === IPPROTO_UDP || proto === IPPROTO_SCTP) {
    if (b.length >= off + 4) {
      h.sport = b.readUInt16BE(off);
      h.dport = b.readUInt16BE(off + 2);
    }
    if (proto === IPPROTO_TCP && b.length >= off + 14) h.tcpFlags = b.readUInt8(off + 13);
  } else if (proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) {
    if (b.length >= off + 2) {
      h.icmpType = b.readUInt8(off);
      h.icmpCode = b.readUInt8(off + 1);
    }
  }
  return h;
}

function parseIpv4(b: Buffer): PacketHeaders | undefined {
  if (b.length < 20) return undefined;
  const ihl = (b.readUInt8(0) & 0x0f) * 4;
  if (ihl < 20) return undefined;
  const proto = b.readUInt8(9);
  const h: PacketHeaders = { family: 4, src: formatIp(b.subarray(12, 16)), dst: formatIp(b.subarray(16, 20)), protocol: protocolOf(proto) };
  if ((b.readUInt16BE(6) & 0x1fff) !== 0) {
    h.fragment = true;
    return h;
  }
  return transport(h, proto, b, ihl);
}

function parseIpv6(b: Buffer): PacketHeaders | undefined {
  if (b.length < 40) return undefined;
  const h: PacketHeaders = { family: 6, src: formatIp(b.subarray(8, 24)), dst: formatIp(b.subarray(24, 40)), protocol: 0 };
  let next = b.readUInt8(6);
  let off = 40;
  // Walk the extension headers; a header cut off by the copy range ends the walk.
  for (let i = 0; i < IPV6_MAX_EXTENSIONS; i++) {
    if (next === IPV6_HOPOPTS || next === IPV6_ROUTING || next === IPV6_DSTOPTS) {
      if (b.length < off + 2) break;
      const n = b.readUInt8(off);
      off += (b.readUInt8(off + 1) + 1) * 8;
      next = n;
    } else if (next === IPV6_FRAGMENT) {
      if (b.length < off + 8) break;
      const n = b.readUInt8(off);
      const fragOff = b.readUInt16BE(off + 2) & 0xfff8;
      off += 8;
      next = n;
      if (fragOff !== 0) {
        h.protocol = protocolOf(next);
        h.fragment = true;
        return h;
      }
    } else if (next === IPV6_AH) {
      // AH counts its length in 4-byte words, minus two (RFC 4302).
      if (b.length < off + 2) break;
      const n = b.readUInt8(off);
      off += (b.readUInt8(off + 1) + 2) * 4;
      next = n;
    } else {
      break;
    }
  }
  h.protocol = protocolOf(next);
  return transport(h, next, b, off);
}

/**
 * Reads the IP header of a packet (and the transport header, as far as the
 * bytes go). `family` is what the packet is known to be (an nflog message's
 * family); without it the IP version nibble decides. Returns undefined for
 * bytes that are not a plausible IPv4/IPv6 header.
 */
export function parsePacketHeaders(payload: Buffer, family?: 4 | 6): PacketHeaders | undefined {
  if (payload.length < 1) return undefined;
  const version = payload.readUInt8(0) >> 4;
  const fam = family ?? (version === 4 ? 4 : version === 6 ? 6 : undefined);
  if (fam === undefined || version !== fam) return undefined;
  return fam === 4 ? parseIpv4(payload) : parseIpv6(payload);
}
