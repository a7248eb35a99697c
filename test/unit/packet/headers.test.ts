// The IP and transport headers at the start of a packet (src/packet/headers.ts):
// hand-written packets checked field by field, packets built from the fields
// read back whole, and every cut of them read as far as it reaches.
import { describe, expect, it } from 'vitest';
import { type PacketHeaders, parsePacketHeaders, tcpFlagNames } from '../../../src/packet/headers.ts';
import { hex } from '../netlink/bytes.ts';
import { IPV4_TCP_SYN, IPV6_UDP } from './packets.ts';

describe('parsePacketHeaders', () => {
  it('IPv4 TCP SYN: addresses, ports, flags', () => {
    expect(parsePacketHeaders(hex(IPV4_TCP_SYN), 4)).toEqual({
      family: 4,
      src: '10.96.250.1',
      dst: '10.96.250.2',
      protocol: 'TCP',
      sport: 56692,
      dport: 81,
      tcpFlags: 0x02,
    });
    expect(tcpFlagNames(0x02)).toEqual(['SYN']);
    expect(tcpFlagNames(0x12)).toEqual(['SYN', 'ACK']);
    expect(tcpFlagNames(0xff)).toEqual(['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR']);
  });

  it('IPv6 UDP', () => {
    expect(parsePacketHeaders(hex(IPV6_UDP), 6)).toEqual({
      family: 6,
      src: 'fd96:250::1',
      dst: 'fd96:250::2',
      protocol: 'UDP',
      sport: 5001,
      dport: 53,
    });
  });

  it('without a family, the version nibble decides; a mismatch is refused', () => {
    expect(parsePacketHeaders(hex(IPV4_TCP_SYN))?.family).toBe(4);
    expect(parsePacketHeaders(hex(IPV6_UDP))?.family).toBe(6);
    expect(parsePacketHeaders(hex(IPV4_TCP_SYN), 6)).toBeUndefined();
    expect(parsePacketHeaders(hex('00112233'))).toBeUndefined();
    expect(parsePacketHeaders(Buffer.alloc(0))).toBeUndefined();
  });

  it('IPv4 options (IHL 6) are skipped', () => {
    const b = hex(`46 00 002c  1234 4000  40 11 0000  0a60fa01 0a60fa02  01010100  9c40 1f90 0008 0000`);
    expect(parsePacketHeaders(b)).toMatchObject({ protocol: 'UDP', sport: 40000, dport: 8080 });
  });

  it('ICMP echo request: type and code, no ports', () => {
    const b = hex(`45 00 001c  0001 0000  40 01 0000  0a60fa01 0a60fa02  08 00 f7ff 0000 0000`);
    expect(parsePacketHeaders(b)).toEqual({ family: 4, src: '10.96.250.1', dst: '10.96.250.2', protocol: 'ICMP', icmpType: 8, icmpCode: 0 });
  });

  it('SCTP: ports from the common header', () => {
    const b = hex(`45 00 0020  0001 4000  40 84 0000  0a60fa01 0a60fa02  c350 0b59 00000000 00000000`);
    expect(parsePacketHeaders(b)).toMatchObject({ protocol: 'SCTP', sport: 50000, dport: 2905 });
  });

  it('IPv6: extension headers are walked to the transport header (hop-by-hop, then ICMPv6)', () => {
    const b = hex(`
      60000000 0020 00 01  fe800000 00000000 00000000 00000001  ff020000 00000000 00000000 00000016
      3a 00 0502 0000 0100
      8f 00 0000 00000000 00000000 00000000 00000000`);
    expect(parsePacketHeaders(b)).toMatchObject({ family: 6, protocol: 'ICMPv6', icmpType: 143, icmpCode: 0 });
  });

  it('IPv6 first fragment has the ports; a later fragment has none and says so', () => {
    const head = `60000000 0010 2c 40  fd960250 00000000 00000000 00000001  fd960250 00000000 00000000 00000002`;
    expect(parsePacketHeaders(hex(`${head}  06 00 0001 12345678  dd74 0051 7f12c582`))).toMatchObject({ protocol: 'TCP', sport: 56692, dport: 81 });
    const later = parsePacketHeaders(hex(`${head}  06 00 00b8 12345678  00000000 00000000`))!;
    expect(later).toMatchObject({ protocol: 'TCP', fragment: true });
    expect(later.sport).toBeUndefined();
  });

  it('IPv4 non-first fragment: no transport header', () => {
    const b = hex(`45 00 0028  1234 00b9  40 06 0000  0a60fa01 0a60fa02  dd74 0051 00000000 00000000 5002 faf0 0000 0000`);
    const h = parsePacketHeaders(b)!;
    expect(h).toMatchObject({ protocol: 'TCP', fragment: true });
    expect(h.sport).toBeUndefined();
  });

  it('a copy range that cuts the transport header: what fits and nothing more', () => {
    const full = hex(IPV4_TCP_SYN);
    expect(parsePacketHeaders(full.subarray(0, 24))).toMatchObject({ sport: 56692, dport: 81 });
    expect(parsePacketHeaders(full.subarray(0, 24))!.tcpFlags).toBeUndefined();
    const cut = parsePacketHeaders(full.subarray(0, 22))!;
    expect(cut).toEqual({ family: 4, src: '10.96.250.1', dst: '10.96.250.2', protocol: 'TCP' });
    expect(parsePacketHeaders(full.subarray(0, 19))).toBeUndefined();
  });

  it('a protocol without a name stays a number (GRE 47)', () => {
    const b = hex(`45 00 0018  0001 0000  40 2f 0000  0a60fa01 0a60fa02  0000 0800`);
    expect(parsePacketHeaders(b)).toEqual({ family: 4, src: '10.96.250.1', dst: '10.96.250.2', protocol: 47 });
  });
});

// Addresses as bytes (hex) and as the parser prints them.
const V4 = { src: ['0a60fa01', '10.96.250.1'], dst: ['0a60fa02', '10.96.250.2'] } as const;
const V6 = { src: ['fd960250000000000000000000000001', 'fd96:250::1'], dst: ['fd960250000000000000000000000002', 'fd96:250::2'] } as const;

const PROTO_NUMBERS: Record<string, number> = { ICMP: 1, TCP: 6, UDP: 17, ICMPv6: 58, SCTP: 132 };

const u16 = (n: number): string => n.toString(16).padStart(4, '0');
const u8 = (n: number): string => n.toString(16).padStart(2, '0');

/** The transport header `h` describes: TCP 20 bytes, UDP 8, SCTP's common header 12, ICMP 8, other protocols 4 bytes of data. */
function transportBytes(h: PacketHeaders): string {
  switch (h.protocol) {
    case 'TCP':
      return `${u16(h.sport!)}${u16(h.dport!)} 00000001 00000000 50${u8(h.tcpFlags!)}faf0 00000000`;
    case 'UDP':
      return `${u16(h.sport!)}${u16(h.dport!)} 0008 0000`;
    case 'SCTP':
      return `${u16(h.sport!)}${u16(h.dport!)} 00000000 00000000`;
    case 'ICMP':
    case 'ICMPv6':
      return `${u8(h.icmpType!)}${u8(h.icmpCode!)} 0000 00000000`;
    default:
      return '00000000';
  }
}

/** An IPv4 (no options) or IPv6 (no extension headers) packet with the headers `h` describes. */
function build(h: PacketHeaders): Buffer {
  const proto = typeof h.protocol === 'number' ? h.protocol : (PROTO_NUMBERS[h.protocol] as number);
  const l4 = hex(transportBytes(h));
  if (h.family === 4) return Buffer.concat([hex(`45 00 ${u16(20 + l4.length)} 0001 4000 40 ${u8(proto)} 0000 ${V4.src[0]} ${V4.dst[0]}`), l4]);
  return Buffer.concat([hex(`60000000 ${u16(l4.length)} ${u8(proto)} 40 ${V6.src[0]} ${V6.dst[0]}`), l4]);
}

function headers(family: 4 | 6, rest: Omit<PacketHeaders, 'family' | 'src' | 'dst'>): PacketHeaders {
  const a = family === 4 ? V4 : V6;
  return { family, src: a.src[1], dst: a.dst[1], ...rest };
}

const CASES: PacketHeaders[] = [4, 6].flatMap((f) => {
  const family = f as 4 | 6;
  return [
    headers(family, { protocol: 'TCP', sport: 56692, dport: 81, tcpFlags: 0x12 }),
    headers(family, { protocol: 'UDP', sport: 5001, dport: 53 }),
    headers(family, { protocol: 'SCTP', sport: 50000, dport: 2905 }),
    headers(family, family === 4 ? { protocol: 'ICMP', icmpType: 8, icmpCode: 0 } : { protocol: 'ICMPv6', icmpType: 128, icmpCode: 0 }),
    headers(family, { protocol: 47 }),
  ];
});

describe('parsePacketHeaders on built packets', () => {
  it.each(CASES.map((h) => [`IPv${h.family} ${h.protocol}`, h] as const))('%s reads back what it was built from', (_, h) => {
    expect(parsePacketHeaders(build(h))).toEqual(h);
    expect(parsePacketHeaders(build(h), h.family)).toEqual(h);
  });

  it.each(CASES.map((h) => [`IPv${h.family} ${h.protocol}`, h] as const))(
    '%s cut at every length: undefined without the whole IP header, else what fits',
    (_, h) => {
      const full = build(h);
      const ipLen = h.family === 4 ? 20 : 40;
      for (let n = 0; n < full.length; n++) {
        const got = parsePacketHeaders(full.subarray(0, n));
        if (n < ipLen) {
          expect(got).toBeUndefined();
          continue;
        }
        expect(got).toMatchObject({ family: h.family, src: h.src, dst: h.dst, protocol: h.protocol });
        // Every field read from a cut packet is the full packet's.
        for (const [k, v] of Object.entries(got!)) expect(h[k as keyof PacketHeaders]).toEqual(v);
      }
    },
  );

  it('an IPv4 header length past the bytes gives the IP header alone', () => {
    const b = hex(`4f 00 0028  0001 4000  40 06 0000  ${V4.src[0]} ${V4.dst[0]}  dd74 0051`);
    expect(parsePacketHeaders(b)).toEqual(headers(4, { protocol: 'TCP' }));
  });
});
