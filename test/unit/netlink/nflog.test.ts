// nfnetlink_log messages, byte for byte against linux/netfilter/nfnetlink.h
// and nfnetlink_log.h:
//   nlmsg_type = NFNL_SUBSYS_ULOG (4) << 8 | NFULNL_MSG_{PACKET 0, CONFIG 1}
//   struct nfgenmsg { u8 family; u8 version 0; be16 res_id = group }
//   config: NFULA_CFG_CMD=1 {u8 command: BIND 1, UNBIND 2, PF_BIND 3, PF_UNBIND 4}
//           NFULA_CFG_MODE=2 {be32 copy_range; u8 copy_mode; u8 pad} (6 bytes, packed)
//           NFULA_CFG_NLBUFSIZ=3, TIMEOUT=4, QTHRESH=5 (be32), FLAGS=6 (be16)
//   packet: NFULA_PACKET_HDR=1 {be16 hw_protocol; u8 hook; u8 pad}, MARK=2 (be32),
//           TIMESTAMP=3 {be64 sec; be64 usec}, IFINDEX_INDEV=4, IFINDEX_OUTDEV=5 (be32),
//           PAYLOAD=9, PREFIX=10 (NUL-terminated), UID=11, GID=14 (be32), HWTYPE=15 (be16)
// Attribute headers are host order (little-endian here); payload integers are big-endian.
import { describe, expect, it } from 'vitest';
import { InternalError } from '../../../src/errors.ts';
import { NLM_F_ACK, NLM_F_REQUEST } from '../../../src/netlink/constants.ts';
import { parseMessages } from '../../../src/netlink/message.ts';
import {
  decodeNflogDatagram,
  decodeNflogPacket,
  encodeNflogBind,
  encodeNflogConfig,
  encodeNflogCopyPacket,
  encodeNflogUnbind,
  hookName,
  NFLOG_CONFIG,
  NFLOG_PACKET,
  NFULNL_CFG_CMD_BIND,
  NFULNL_CFG_F_SEQ,
  NFULNL_COPY_PACKET,
  nflogConfigMessage,
  nflogGenmsg,
  parsePacketHeaders,
  tcpFlagNames,
} from '../../../src/netlink/nflog.ts';
import { hex, str0, words } from './bytes.ts';

describe('message types and nfgenmsg', () => {
  it('subsystem 4 in the high byte: PACKET 0x0400, CONFIG 0x0401', () => {
    expect([NFLOG_PACKET, NFLOG_CONFIG]).toEqual([0x400, 0x401]);
  });

  it('nfgenmsg: family, version 0, the group in res_id big-endian', () => {
    expect(words(nflogGenmsg(7))).toBe('00000007');
    expect(words(nflogGenmsg(0x1234, 2))).toBe('02001234');
    expect(words(nflogGenmsg(65535))).toBe('0000ffff');
    expect(() => nflogGenmsg(65536)).toThrow(InternalError);
    expect(() => nflogGenmsg(-1)).toThrow(/bad group/);
  });
});

describe('config messages', () => {
  it('bind: AF_UNSPEC, NFULA_CFG_CMD with command 1, padded to 4 bytes', () => {
    expect(words(encodeNflogBind(7))).toBe(words(hex('00 00 0007 | 0500 0100 01 000000')));
  });

  it('unbind: command 2', () => {
    expect(words(encodeNflogUnbind(7))).toBe(words(hex('00 00 0007 | 0500 0100 02 000000')));
  });

  it('copy packet: NFULA_CFG_MODE, be32 range then u8 mode (6 bytes, padded to 8)', () => {
    expect(words(encodeNflogCopyPacket(7, 128))).toBe(words(hex('00 00 0007 | 0a00 0200 00000080 02 00 0000')));
  });

  it('the whole request: nlmsghdr type 0x0401, NLM_F_REQUEST|NLM_F_ACK', () => {
    const m = nflogConfigMessage(NLM_F_REQUEST | NLM_F_ACK, 9, encodeNflogBind(7));
    expect(words(m)).toBe(words(hex('1c000000 0104 0500 09000000 00000000 | 00 00 0007 | 0500 0100 01 000000')));
  });

  it('bind with settings in one message: CMD first, then MODE, NLBUFSIZ, TIMEOUT, QTHRESH (be32), FLAGS (be16)', () => {
    const body = encodeNflogConfig(300, {
      command: NFULNL_CFG_CMD_BIND,
      copy: { mode: NFULNL_COPY_PACKET, range: 0xffff },
      nlbufsiz: 65536,
      timeout: 10,
      qthreshold: 32,
      flags: NFULNL_CFG_F_SEQ,
    });
    expect(words(body)).toBe(
      words(
        hex(`00 00 012c
          0500 0100 01 000000
          0a00 0200 0000ffff 02 00 0000
          0800 0300 00010000
          0800 0400 0000000a
          0800 0500 00000020
          0600 0600 0001 0000`),
      ),
    );
  });

  it('no command and no settings: a bare nfgenmsg', () => {
    expect(words(encodeNflogConfig(7, {}))).toBe('00000007');
  });

  it('refuses values that do not fit their fields', () => {
    expect(() => encodeNflogConfig(7, { qthreshold: -1 })).toThrow(/bad qthreshold/);
    expect(() => encodeNflogConfig(7, { timeout: 2 ** 32 })).toThrow(/bad timeout/);
    expect(() => encodeNflogConfig(7, { flags: 0x10000 })).toThrow(/bad flags/);
    expect(() => encodeNflogConfig(7, { copy: { mode: 2, range: 1.5 } })).toThrow(/bad copy range/);
  });
});

// ---- packets ----

// IPv4 TCP SYN 10.96.250.1:56692 -> 10.96.250.2:81, no options (40 bytes).
const IPV4_TCP_SYN = `
  45 00 0028  1234 4000  40 06 0000  0a60fa01  0a60fa02
  dd74 0051  7f12c582  00000000  50 02 faf0  0000 0000`;
// IPv6 UDP fd96:250::1:5001 -> fd96:250::2:53, 8 bytes of data (56 bytes).
const IPV6_UDP = `
  60000000  0010 11 40
  fd960250 00000000 00000000 00000001
  fd960250 00000000 00000000 00000002
  1389 0035 0010 0000  6869 6869 6869 6869`;

const PREFIX = 'weir deny in prof_x: '; // 21 characters: 22 with the NUL, attribute of 26, padded to 28

// A packet logged in the input hook of an inet table: family NFPROTO_IPV4,
// group 7, with the prefix, the input interface, a timestamp and the payload.
const PKT_V4 = `
  02 00 0007
  0800 0100  0800 01 00
  1a00 0a00  ${str0(PREFIX)} 0000
  0800 0400  00000002
  0600 0f00  0001 0000
  1400 0300  000000006553f100 000000000001e240
  2c00 0900  ${IPV4_TCP_SYN}`;

// One logged in the output hook of an ip6 table: outdev, mark, uid/gid, no
// prefix, no timestamp (the kernel sends one only up to the forward hook).
const PKT_V6 = `
  0a 00 0007
  0800 0100  86dd 03 00
  0800 0500  00000003
  0800 0200  0000beef
  0800 0b00  000003e8
  0800 0e00  000003e9
  3c00 0900  ${IPV6_UDP}`;

function msg(type: number, body: string): Buffer {
  const b = hex(body);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + b.length, 0);
  h.writeUInt16LE(type, 4);
  return Buffer.concat([h, b]);
}

describe('decodeNflogPacket', () => {
  it('IPv4 TCP SYN in the input hook: prefix, indev, timestamp, payload', () => {
    const p = decodeNflogPacket(hex(PKT_V4))!;
    expect(p).toEqual({
      group: 7,
      prefix: PREFIX,
      hook: 1,
      family: 4,
      nfproto: 2,
      hwProtocol: 0x0800,
      indev: 2,
      timestamp: new Date(1700000000123),
      payload: hex(IPV4_TCP_SYN),
    });
    expect(hookName(p.hook)).toBe('input');
  });

  it('IPv6 UDP in the output hook: outdev, mark, uid and gid, empty prefix, no timestamp', () => {
    const p = decodeNflogPacket(hex(PKT_V6))!;
    expect(p).toEqual({
      group: 7,
      prefix: '',
      hook: 3,
      family: 6,
      nfproto: 10,
      hwProtocol: 0x86dd,
      outdev: 3,
      mark: 0xbeef,
      uid: 1000,
      gid: 1001,
      payload: hex(IPV6_UDP),
    });
    expect(hookName(p.hook)).toBe('output');
  });

  it('copies the payload: reusing the receive buffer does not change a decoded packet', () => {
    const buf = hex(PKT_V4);
    const p = decodeNflogPacket(buf)!;
    buf.fill(0);
    expect(p.payload).toEqual(hex(IPV4_TCP_SYN));
  });

  it('bridge/netdev tables: the family comes from hw_protocol', () => {
    const bridge = decodeNflogPacket(hex('07 00 0001  0800 0100 86dd 00 00'))!;
    expect(bridge.family).toBe(6);
    expect(bridge.payload.length).toBe(0);
    expect(decodeNflogPacket(hex('05 00 0001  0800 0100 0806 00 00'))!.family).toBeUndefined(); // ARP
  });

  it('no NFULA_PACKET_HDR, or too short for the nfgenmsg: undefined', () => {
    expect(decodeNflogPacket(hex('02 00 0007  0800 0400 00000002'))).toBeUndefined();
    expect(decodeNflogPacket(hex('02 00'))).toBeUndefined();
  });
});

describe('decodeNflogDatagram', () => {
  it('a batch: every PACKET message, the closing NLMSG_DONE and other messages skipped', () => {
    const dgram = Buffer.concat([
      msg(NFLOG_PACKET, PKT_V4),
      msg(NFLOG_PACKET, PKT_V6),
      msg(2, '00000000 10000000 0104 0500 09000000 00000000'), // an ACK
      msg(3, '00 00 0007'), // NLMSG_DONE, as the kernel closes a batch
    ]);
    expect(parseMessages(dgram).length).toBe(4);
    const ps = decodeNflogDatagram(dgram);
    expect(ps.map((p) => [p.family, p.prefix, p.hook])).toEqual([
      [4, PREFIX, 1],
      [6, '', 3],
    ]);
  });

  it('a datagram cut in the middle of a message yields the whole ones before it', () => {
    const dgram = Buffer.concat([msg(NFLOG_PACKET, PKT_V4), msg(NFLOG_PACKET, PKT_V6)]);
    expect(decodeNflogDatagram(dgram.subarray(0, dgram.length - 10)).length).toBe(1);
  });
});

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
