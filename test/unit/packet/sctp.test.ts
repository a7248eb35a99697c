import { describe, expect, it } from 'vitest';
import { buildSctpInit, crc32c, parseSctpPacket, SCTP_INIT_PACKET_LEN, sctpChecksum, sctpOffset, verifySctpChecksum } from '../../../src/packet/sctp.ts';

describe('crc32c', () => {
  // RFC 3720 appendix B.4 vectors and the usual check value.
  it.each([
    ['123456789', Buffer.from('123456789'), 0xe3069283],
    ['empty', Buffer.alloc(0), 0],
    ['"a"', Buffer.from('a'), 0xc1d04330],
    ['32 zero bytes', Buffer.alloc(32), 0x8a9136aa],
    ['32 0xff bytes', Buffer.alloc(32, 0xff), 0x62a8ab43],
    ['32 incrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e],
    ['32 decrementing bytes', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c],
  ])('%s', (_name, bytes, want) => {
    expect(crc32c(bytes)).toBe(want);
  });

  it('accepts a string (UTF-8) like the bytes', () => {
    expect(crc32c('123456789')).toBe(0xe3069283);
  });
});

// Built by buildSctpInit and accepted by the kernel's conntrack (a
// `ct state invalid drop` rule let it through, while the same packet with the
// checksum bytes reversed or zeroed was dropped): a ground-truth vector.
const KNOWN_INIT = '9c400050' + '00000000' + '1087ba5a' + '01000014' + '00001234' + '0000ffff' + '000affff' + '00001234';

describe('buildSctpInit', () => {
  it('is byte-exact', () => {
    const p = buildSctpInit({ srcPort: 40000, dstPort: 80, initiateTag: 0x1234 });
    expect(p.length).toBe(SCTP_INIT_PACKET_LEN);
    expect(p.toString('hex')).toBe(KNOWN_INIT);
  });

  it('stores the CRC32c little-endian over the packet with the checksum zeroed', () => {
    const p = buildSctpInit({ srcPort: 1, dstPort: 2, initiateTag: 3, aRwnd: 4, outboundStreams: 5, inboundStreams: 6, initialTsn: 7 });
    const zeroed = Buffer.from(p);
    zeroed.fill(0, 8, 12);
    expect(p.readUInt32LE(8)).toBe(crc32c(zeroed));
    expect(sctpChecksum(p)).toBe(crc32c(zeroed));
    expect(verifySctpChecksum(p)).toBe(true);
    expect(p.subarray(12).toString('hex')).toBe('01000014' + '00000003' + '00000004' + '0005' + '0006' + '00000007');
    expect(p.readUInt32BE(4)).toBe(0); // verification tag of an INIT
  });

  it('can carry a deliberately wrong checksum', () => {
    const p = buildSctpInit({ srcPort: 40000, dstPort: 80, initiateTag: 0x1234, checksumOverride: 0 });
    expect(p.readUInt32LE(8)).toBe(0);
    expect(verifySctpChecksum(p)).toBe(false);
  });

  it.each([
    [{ srcPort: 0, dstPort: 80, initiateTag: 1 }],
    [{ srcPort: 1, dstPort: 65536, initiateTag: 1 }],
    [{ srcPort: 1, dstPort: 80, initiateTag: 0 }],
    [{ srcPort: 1, dstPort: 80, initiateTag: 2 ** 32 }],
    [{ srcPort: 1, dstPort: 80, initiateTag: 1, outboundStreams: 0 }],
    [{ srcPort: 1.5, dstPort: 80, initiateTag: 1 }],
  ])('refuses %j', (o) => {
    expect(() => buildSctpInit(o)).toThrow(/SCTP INIT/);
  });
});

describe('parseSctpPacket', () => {
  const init = Buffer.from(KNOWN_INIT, 'hex');
  const want = { srcPort: 40000, dstPort: 80, verificationTag: 0, chunkType: 1, initiateTag: 0x1234, checksumOk: true };

  it('parses a bare packet (and what a raw IPv6 socket delivers)', () => {
    expect(parseSctpPacket(init)).toEqual(want);
    expect(parseSctpPacket(init, 6)).toEqual(want);
  });

  it('skips the IPv4 header a raw IPv4 socket delivers', () => {
    const ip = Buffer.from('450000340842400040841d3c0a6300010a630002', 'hex');
    const pkt = Buffer.concat([ip, init]);
    expect(sctpOffset(pkt, 4)).toBe(20);
    expect(parseSctpPacket(pkt, 4)).toEqual(want);
  });

  it('honours IPv4 options (IHL > 5)', () => {
    const ip = Buffer.concat([Buffer.from('460000380842400040841d3c0a6300010a630002', 'hex'), Buffer.from('01010100', 'hex')]);
    expect(parseSctpPacket(Buffer.concat([ip, init]), 4)).toEqual(want);
  });

  it('reports a bad checksum', () => {
    const bad = Buffer.from(init);
    bad.writeUInt32BE(bad.readUInt32LE(8), 8); // big-endian: wrong
    expect(parseSctpPacket(bad).checksumOk).toBe(false);
  });

  it('gives no initiate tag for other chunks', () => {
    const abort = Buffer.from('9c40005000001234000000000600000400000000', 'hex');
    expect(parseSctpPacket(abort)).toMatchObject({ chunkType: 6, initiateTag: undefined, verificationTag: 0x1234 });
  });

  it('refuses truncated input', () => {
    expect(() => parseSctpPacket(init.subarray(0, 14))).toThrow(/too short/);
    expect(() => parseSctpPacket(init.subarray(0, 20))).toThrow(/INIT chunk too short/);
    expect(() => parseSctpPacket(Buffer.alloc(10), 4)).toThrow(/too short/);
    expect(() => parseSctpPacket(Buffer.concat([Buffer.from('60', 'hex'), Buffer.alloc(40)]), 4)).toThrow(/not an IPv4/);
  });
});
