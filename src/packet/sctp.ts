// SCTP at the packet level, pure. This kernel has no SCTP sockets
// (CONFIG_IP_SCTP off), but nftables matches SCTP and conntrack tracks it, so
// the prober sends a bare INIT chunk through a raw IPPROTO_SCTP socket and the
// destination observes it with another raw socket. No association is ever set
// up: an INIT that arrives is the verdict.
//
// Wire format (RFC 9260, formerly RFC 4960):
//   common header: src port(2) dst port(2) verification tag(4) checksum(4)
//   INIT chunk:    type=1(1) flags(1) length(2) initiate tag(4) a_rwnd(4)
//                  outbound streams(2) inbound streams(2) initial TSN(4)
// All fields are big-endian except the checksum: CRC32c (Castagnoli) over the
// whole SCTP packet with the checksum field zeroed, stored least significant
// byte first (RFC 9260 appendix A; Linux: `cpu_to_le32(~crc32c(...))`).
// Conntrack verifies it in PREROUTING, so a wrong or zero checksum makes the
// packet `ct state invalid`.
import { DecodeError, InvalidConfigError } from '../errors.ts';

export const IPPROTO_SCTP = 132;
export const SCTP_CHUNK_INIT = 1;
export const SCTP_COMMON_HEADER_LEN = 12;
export const SCTP_INIT_CHUNK_LEN = 20;
/** Length of a bare INIT packet (common header + INIT chunk, no parameters). */
export const SCTP_INIT_PACKET_LEN = SCTP_COMMON_HEADER_LEN + SCTP_INIT_CHUNK_LEN;

// Reflected Castagnoli polynomial 0x1EDC6F41 -> 0x82F63B78.
const CRC32C_TABLE = ((): Uint32Array => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32c (Castagnoli, reflected, init and final xor 0xFFFFFFFF) as an unsigned 32-bit number. */
export function crc32c(bytes: Uint8Array | string): number {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  let crc = 0xffffffff;
  for (let i = 0; i < b.length; i++) crc = (CRC32C_TABLE[(crc ^ (b[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The checksum of an SCTP packet: CRC32c with bytes 8..11 taken as zero. */
export function sctpChecksum(packet: Uint8Array): number {
  const copy = Buffer.from(packet);
  copy.fill(0, 8, 12);
  return crc32c(copy);
}

/** Writes the correct checksum into bytes 8..11 of `packet` (little-endian), in place. */
export function fillSctpChecksum(packet: Buffer): Buffer {
  packet.writeUInt32LE(sctpChecksum(packet), 8);
  return packet;
}

/** True when bytes 8..11 hold the right CRC32c (little-endian). */
export function verifySctpChecksum(packet: Uint8Array): boolean {
  if (packet.length < SCTP_COMMON_HEADER_LEN) return false;
  return Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength).readUInt32LE(8) === sctpChecksum(packet);
}

export interface SctpInitOptions {
  srcPort: number;
  dstPort: number;
  /** Non-zero; the peer echoes it as its verification tag. The prober uses it as the probe id. */
  initiateTag: number;
  /** Advertised receiver window; default 65535. */
  aRwnd?: number;
  /** Default 10. */
  outboundStreams?: number;
  /** Default 65535. */
  inboundStreams?: number;
  /** Default: the initiate tag. */
  initialTsn?: number;
  /** Testing only: store this checksum instead of the right one. */
  checksumOverride?: number;
}

function checkUint(name: string, v: number, max: number, min = 0): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new InvalidConfigError(`SCTP INIT: ${name} must be an integer in [${min}, ${max}], got ${v}`);
}

/** A bare SCTP packet with one INIT chunk, checksum filled in. */
export function buildSctpInit(o: SctpInitOptions): Buffer {
  const aRwnd = o.aRwnd ?? 65535;
  const outbound = o.outboundStreams ?? 10;
  const inbound = o.inboundStreams ?? 65535;
  const tsn = o.initialTsn ?? o.initiateTag;
  checkUint('srcPort', o.srcPort, 0xffff, 1);
  checkUint('dstPort', o.dstPort, 0xffff, 1);
  // RFC 9260 3.3.2: initiate tag, outbound and inbound streams MUST NOT be 0.
  checkUint('initiateTag', o.initiateTag, 0xffffffff, 1);
  checkUint('aRwnd', aRwnd, 0xffffffff);
  checkUint('outboundStreams', outbound, 0xffff, 1);
  checkUint('inboundStreams', inbound, 0xffff, 1);
  checkUint('initialTsn', tsn, 0xffffffff);
  const b = Buffer.alloc(SCTP_INIT_PACKET_LEN);
  b.writeUInt16BE(o.srcPort, 0);
  b.writeUInt16BE(o.dstPort, 2);
  b.writeUInt32BE(0, 4); // verification tag: 0 in an INIT
  b.writeUInt32LE(0, 8); // checksum, filled below
  b.writeUInt8(SCTP_CHUNK_INIT, 12);
  b.writeUInt8(0, 13); // flags
  b.writeUInt16BE(SCTP_INIT_CHUNK_LEN, 14);
  b.writeUInt32BE(o.initiateTag, 16);
  b.writeUInt32BE(aRwnd, 20);
  b.writeUInt16BE(outbound, 24);
  b.writeUInt16BE(inbound, 26);
  b.writeUInt32BE(tsn, 28);
  if (o.checksumOverride !== undefined) {
    checkUint('checksumOverride', o.checksumOverride, 0xffffffff);
    b.writeUInt32LE(o.checksumOverride, 8);
    return b;
  }
  return fillSctpChecksum(b);
}

export interface SctpPacketInfo {
  srcPort: number;
  dstPort: number;
  verificationTag: number;
  /** Type of the first chunk (1 = INIT). */
  chunkType: number;
  /** The initiate tag for INIT (1) and INIT ACK (2) chunks, else undefined. */
  initiateTag: number | undefined;
  checksumOk: boolean;
}

/**
 * Where the SCTP packet starts in what a raw socket delivered: a raw IPv4
 * socket hands over the IP header too (its length is IHL*4), a raw IPv6 socket
 * only the payload.
 */
export function sctpOffset(buf: Uint8Array, family: 4 | 6): number {
  if (family === 6) return 0;
  if (buf.length < 20) throw new DecodeError(`raw IPv4 packet too short (${buf.length} bytes)`);
  const b0 = buf[0] as number;
  if (b0 >> 4 !== 4) throw new DecodeError(`not an IPv4 header (version ${b0 >> 4})`);
  const ihl = (b0 & 0x0f) * 4;
  if (ihl < 20 || ihl > buf.length) throw new DecodeError(`bad IPv4 header length ${ihl}`);
  return ihl;
}

/**
 * Parses an SCTP packet. `family` says what the buffer came from: 4 for a raw
 * IPv4 socket (IP header first, skipped), 6 for a raw IPv6 socket, or
 * undefined when `buf` is the bare SCTP packet.
 */
export function parseSctpPacket(buf: Uint8Array, family?: 4 | 6): SctpPacketInfo {
  const off = family === undefined ? 0 : sctpOffset(buf, family);
  const p = Buffer.from(buf.buffer, buf.byteOffset + off, buf.byteLength - off);
  if (p.length < SCTP_COMMON_HEADER_LEN + 4) throw new DecodeError(`SCTP packet too short (${p.length} bytes)`);
  const chunkType = p.readUInt8(12);
  const chunkLen = p.readUInt16BE(14);
  let initiateTag: number | undefined;
  if (chunkType === 1 || chunkType === 2) {
    if (chunkLen < SCTP_INIT_CHUNK_LEN || p.length < SCTP_COMMON_HEADER_LEN + SCTP_INIT_CHUNK_LEN) {
      throw new DecodeError(`SCTP INIT chunk too short (${chunkLen} bytes)`);
    }
    initiateTag = p.readUInt32BE(16);
  }
  return {
    srcPort: p.readUInt16BE(0),
    dstPort: p.readUInt16BE(2),
    verificationTag: p.readUInt32BE(4),
    chunkType,
    initiateTag,
    checksumOk: verifySctpChecksum(p),
  };
}
