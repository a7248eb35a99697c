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
} from '../../../src/netlink/nflog.ts';
import { IPV4_TCP_SYN, IPV6_UDP } from '../packet/packets.ts';
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
