// Netlink framing, byte for byte against the layouts of linux/netlink.h:
//   struct nlmsghdr { u32 nlmsg_len; u16 nlmsg_type; u16 nlmsg_flags; u32 nlmsg_seq; u32 nlmsg_pid; }  (16 bytes)
//   struct nlattr   { u16 nla_len; u16 nla_type; }  payload padded to NLA_ALIGNTO = 4
//   struct nlmsgerr { int error; struct nlmsghdr msg; }  then, with NLM_F_ACK_TLVS, NLMSGERR_ATTR_* TLVs
import { describe, expect, it } from 'vitest';
import {
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSGERR_ATTR_MSG,
  RTM_NEWADDR,
  RTM_NEWLINK,
} from '../../../src/netlink/constants.ts';
import {
  align4,
  attr,
  attrNested,
  attrS32,
  attrString,
  attrToS32,
  attrToString,
  attrToU32,
  attrU8,
  attrU32,
  NLA_F_NESTED,
  NLMSG_HDRLEN,
  type NlMsg,
  nlmsg,
  parseAttrs,
  parseError,
  parseMessages,
} from '../../../src/netlink/message.ts';
import { hex, words } from './bytes.ts';

describe('align4', () => {
  it('rounds up to a multiple of 4', () => {
    expect([0, 1, 2, 3, 4, 5, 8, 9, 15, 16, 17].map(align4)).toEqual([0, 4, 4, 4, 4, 8, 8, 12, 16, 16, 20]);
  });
});

describe('nlmsg (struct nlmsghdr)', () => {
  it('writes len, type, flags, seq and pid little-endian, then the body', () => {
    const body = hex('aa bb cc dd');
    const m = nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 0x01020304, body, 0x0a0b0c0d);
    expect(NLMSG_HDRLEN).toBe(16);
    expect(words(m)).toBe(
      words(
        hex(`
          14 00 00 00
          10 00  05 06
          04 03 02 01
          0d 0c 0b 0a
          aa bb cc dd`),
      ),
    );
  });

  it('defaults pid to 0 and counts an unaligned body exactly (no padding in nlmsg_len)', () => {
    const m = nlmsg(RTM_NEWADDR, NLM_F_REQUEST, 7, hex('01 02 03 04 05'));
    expect(words(m)).toBe(words(hex('15000000 1400 0100 07000000 00000000 0102030405')));
  });

  it('writes sequence numbers above 2^31 and negative ones as unsigned 32-bit', () => {
    expect(nlmsg(1, 0, 0xfffffffe, Buffer.alloc(0)).readUInt32LE(8)).toBe(0xfffffffe);
    expect(nlmsg(1, 0, -1, Buffer.alloc(0)).readUInt32LE(8)).toBe(0xffffffff);
    expect(nlmsg(1, 0, 0, Buffer.alloc(0), -1).readUInt32LE(12)).toBe(0xffffffff);
  });

  it('a header-only message is exactly 16 bytes', () => {
    expect(words(nlmsg(NLMSG_DONE, NLM_F_MULTI, 1, Buffer.alloc(0)))).toBe(words(hex('10000000 0300 0200 01000000 00000000')));
  });
});

describe('attributes (struct nlattr)', () => {
  it('pads a 5-byte string attribute to 12 bytes with nla_len = 9', () => {
    const a = attrString(3, 'veth'); // "veth\0"
    expect(a.length).toBe(12);
    expect(a.readUInt16LE(0)).toBe(9);
    expect(words(a)).toBe(words(hex('0900 0300 76657468 00 000000')));
  });

  it('adds no padding to a 4-byte payload, and nla_len = 4 for an empty one', () => {
    expect(words(attr(0x1234, hex('deadbeef')))).toBe(words(hex('0800 3412 deadbeef')));
    expect(words(attr(9, Buffer.alloc(0)))).toBe(words(hex('0400 0900')));
  });

  it('pads every payload length 1..8 to the next multiple of 4 with zero bytes', () => {
    for (let n = 1; n <= 8; n++) {
      const a = attr(1, Buffer.alloc(n, 0xff));
      expect(a.readUInt16LE(0)).toBe(4 + n);
      expect(a.length).toBe(align4(4 + n));
      expect([...a.subarray(4 + n)].every((x) => x === 0)).toBe(true);
    }
  });

  it('encodes u8, u32 and s32 little-endian', () => {
    expect(words(attrU8(16, 6))).toBe(words(hex('0500 1000 06 000000')));
    expect(words(attrU32(4, 1500))).toBe(words(hex('0800 0400 dc050000')));
    expect(words(attrU32(4, 0xffffffff))).toBe(words(hex('0800 0400 ffffffff')));
    expect(words(attrS32(37, -1))).toBe(words(hex('0800 2500 ffffffff')));
    expect(words(attrS32(37, -2))).toBe(words(hex('0800 2500 feffffff')));
  });

  it('sets NLA_F_NESTED on nested attributes and counts the children, padding included', () => {
    expect(NLA_F_NESTED).toBe(0x8000);
    const n = attrNested(18, attrString(1, 'veth'), attrU32(2, 7));
    expect(words(n)).toBe(
      words(
        hex(`
          1800 1280
            0900 0100 76657468 00000000
            0800 0200 07000000`),
      ),
    );
  });

  it('nests several levels, each level flagged', () => {
    const n = attrNested(1, attrNested(2, attrU8(3, 0xab)));
    expect(words(n)).toBe(words(hex('1000 0180  0c00 0280  0500 0300 ab000000')));
  });
});

describe('parseMessages', () => {
  it('splits a datagram of several messages, stepping over the 4-byte padding', () => {
    const a = nlmsg(RTM_NEWLINK, NLM_F_MULTI, 5, hex('01 02 03 04 05'), 99); // len 21 -> 24 on the wire
    const b = nlmsg(RTM_NEWADDR, NLM_F_MULTI, 5, hex('0a0b0c0d 0e0f1011'), 99);
    const c = nlmsg(NLMSG_DONE, NLM_F_MULTI, 5, hex('00000000'), 99);
    const dgram = Buffer.concat([a, Buffer.alloc(3), b, c]);
    const msgs = parseMessages(dgram);
    expect(msgs.map((m) => [m.type, m.flags, m.seq, m.pid, m.payload.toString('hex')])).toEqual([
      [RTM_NEWLINK, NLM_F_MULTI, 5, 99, '0102030405'],
      [RTM_NEWADDR, NLM_F_MULTI, 5, 99, '0a0b0c0d0e0f1011'],
      [NLMSG_DONE, NLM_F_MULTI, 5, 99, '00000000'],
    ]);
  });

  it('reads the header fields little-endian from raw bytes', () => {
    const [m] = parseMessages(hex('14000000 1000 0506 04030201 0d0c0b0a aabbccdd'));
    expect(m).toBeDefined();
    expect({ ...m, payload: m?.payload.toString('hex') }).toEqual({
      type: 16,
      flags: 0x0605,
      seq: 0x01020304,
      pid: 0x0a0b0c0d,
      payload: 'aabbccdd',
    });
  });

  it('stops at a truncated message instead of reading past the datagram', () => {
    const ok = nlmsg(RTM_NEWLINK, 0, 1, hex('11111111'));
    const full = nlmsg(RTM_NEWLINK, 0, 2, Buffer.alloc(32, 0x22)); // nlmsg_len 48
    // Cut short at the end of the datagram.
    expect(parseMessages(Buffer.concat([ok, full.subarray(0, 30)])).map((m) => m.seq)).toEqual([1]);
    expect(parseMessages(Buffer.concat([ok, full.subarray(0, 47)])).map((m) => m.seq)).toEqual([1]);
    expect(parseMessages(Buffer.concat([ok, full])).map((m) => m.seq)).toEqual([1, 2]);
    // A length running past the datagram stops parsing, even with whole messages behind it.
    const liar = nlmsg(RTM_NEWLINK, 0, 3, hex('33333333'));
    liar.writeUInt32LE(4096, 0);
    const after = nlmsg(RTM_NEWLINK, 0, 4, hex('44444444'));
    expect(parseMessages(Buffer.concat([ok, liar, after])).map((m) => m.seq)).toEqual([1]);
  });

  it('stops at a length below the header size and ignores a trailing partial header', () => {
    const ok = nlmsg(RTM_NEWLINK, 0, 1, Buffer.alloc(0));
    expect(parseMessages(Buffer.concat([ok, hex('08000000 1000 0000 02000000 00000000')])).map((m) => m.seq)).toEqual([1]);
    expect(parseMessages(Buffer.concat([ok, hex('ffff')])).map((m) => m.seq)).toEqual([1]);
    expect(parseMessages(Buffer.alloc(0))).toEqual([]);
    expect(parseMessages(hex('10000000 0300'))).toEqual([]);
  });

  it('payload is a view bounded by nlmsg_len, not by the padding', () => {
    const [m] = parseMessages(Buffer.concat([nlmsg(1, 0, 0, hex('010203')), hex('ff')]));
    expect(m?.payload.length).toBe(3);
  });
});

describe('parseAttrs', () => {
  it('maps attributes by type and skips the padding', () => {
    const attrs = parseAttrs(Buffer.concat([attrString(3, 'eth0'), attrU8(16, 6), attrU32(4, 1500)]));
    expect([...attrs.keys()]).toEqual([3, 16, 4]);
    expect(attrs.get(3)?.toString('hex')).toBe('6574683000');
    expect(attrs.get(16)?.toString('hex')).toBe('06');
    expect(attrToU32(attrs.get(4))).toBe(1500);
  });

  it('masks NLA_F_NESTED and NLA_F_NET_BYTEORDER off the type', () => {
    const attrs = parseAttrs(hex('0800 1280 01020304  0800 0540 05060708  0800 05c0 aabbccdd'));
    expect([...attrs.keys()]).toEqual([18, 5]);
    expect(attrs.get(18)?.toString('hex')).toBe('01020304');
    // a repeated type keeps the last value
    expect(attrs.get(5)?.toString('hex')).toBe('aabbccdd');
  });

  it('stops at a truncated attribute or one shorter than its header', () => {
    expect([...parseAttrs(hex('0800 0100 01020304  0c00 0200 0102')).keys()]).toEqual([1]);
    expect([...parseAttrs(hex('0800 0100 01020304  0200 0200 0102')).keys()]).toEqual([1]);
    expect([...parseAttrs(hex('0800 0100 01020304  0800')).keys()]).toEqual([1]);
    expect(parseAttrs(Buffer.alloc(0)).size).toBe(0);
  });

  it('accepts a last attribute without trailing padding', () => {
    const attrs = parseAttrs(hex('0500 0100 07'));
    expect(attrs.get(1)?.toString('hex')).toBe('07');
  });
});

describe('attribute readers', () => {
  it('attrToString stops at the NUL, or takes everything without one', () => {
    expect(attrToString(hex('6c6f 00 7878'))).toBe('lo');
    expect(attrToString(hex('6c6f'))).toBe('lo');
    expect(attrToString(Buffer.alloc(0))).toBe('');
    expect(attrToString(undefined)).toBeUndefined();
  });

  it('attrToU32/attrToS32 need 4 bytes', () => {
    expect(attrToU32(hex('ffffffff'))).toBe(0xffffffff);
    expect(attrToS32(hex('ffffffff'))).toBe(-1);
    expect(attrToU32(hex('ffff'))).toBeUndefined();
    expect(attrToS32(hex('ff'))).toBeUndefined();
    expect(attrToU32(undefined)).toBeUndefined();
  });
});

describe('parseError (struct nlmsgerr)', () => {
  const request = nlmsg(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 42, hex('02180000 03000000 08000200 0af40105'), 1234);
  const errMsg = (flags: number, payload: Buffer): NlMsg => ({ type: NLMSG_ERROR, flags, seq: 42, pid: 0, payload });
  const s32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    return b;
  };

  it('a plain ack (error 0, request header echoed) is errno 0', () => {
    const [m] = parseMessages(nlmsg(NLMSG_ERROR, NLM_F_CAPPED, 42, Buffer.concat([s32(0), request.subarray(0, 16)])));
    expect(m).toBeDefined();
    const err = parseError(m as NlMsg);
    // `=== 0` rather than toEqual({ errno: 0 }): parseError negates the error
    // code and so returns -0 for an ack (see the report on message.ts).
    expect(err.errno === 0).toBe(true);
    expect(err.message).toBeUndefined();
  });

  it('an error without TLVs gives the positive errno and no message', () => {
    expect(parseError(errMsg(0, Buffer.concat([s32(-17), request])))).toEqual({ errno: 17 });
    expect(parseError(errMsg(0, Buffer.concat([hex('edffffff'), request])))).toEqual({ errno: 19 });
  });

  it('with NLM_F_ACK_TLVS | NLM_F_CAPPED, reads NLMSGERR_ATTR_MSG after the echoed header', () => {
    expect(NLM_F_CAPPED).toBe(0x100);
    expect(NLM_F_ACK_TLVS).toBe(0x200);
    expect(NLMSGERR_ATTR_MSG).toBe(1);
    const payload = hex(`
      efffffff
      2c000000 1400 0506 2a000000 d2040000
      1000 0100 ${Buffer.from('File exists\0').toString('hex')}`);
    expect(parseError(errMsg(NLM_F_ACK_TLVS | NLM_F_CAPPED, payload))).toEqual({ errno: 17, message: 'File exists' });
  });

  it('picks NLMSGERR_ATTR_MSG among other TLVs (e.g. NLMSGERR_ATTR_OFFS)', () => {
    const payload = Buffer.concat([s32(-22), request.subarray(0, 16), attrU32(2, 20), attrString(1, 'Invalid prefix')]);
    expect(parseError(errMsg(NLM_F_ACK_TLVS | NLM_F_CAPPED, payload))).toEqual({ errno: 22, message: 'Invalid prefix' });
  });

  it('without NLM_F_CAPPED, skips the whole echoed request (aligned) before the TLVs', () => {
    const odd = nlmsg(RTM_NEWLINK, NLM_F_REQUEST, 42, hex('0102030405')); // nlmsg_len 21, 24 with padding
    const payload = Buffer.concat([s32(-95), odd, Buffer.alloc(3), attrString(1, 'Not supported')]);
    expect(parseError(errMsg(NLM_F_ACK_TLVS, payload))).toEqual({ errno: 95, message: 'Not supported' });
    const full = Buffer.concat([s32(-17), request, attrString(1, 'Address already assigned')]);
    expect(parseError(errMsg(NLM_F_ACK_TLVS, full))).toEqual({ errno: 17, message: 'Address already assigned' });
  });

  it('ACK_TLVS without a MSG attribute gives no message', () => {
    const payload = Buffer.concat([s32(-22), request.subarray(0, 16), attrU32(2, 20)]);
    expect(parseError(errMsg(NLM_F_ACK_TLVS | NLM_F_CAPPED, payload))).toEqual({ errno: 22 });
  });

  it('a message that is not NLMSG_ERROR, or too short to hold an error code, is not an error', () => {
    expect(parseError({ type: NLMSG_DONE, flags: 0, seq: 0, pid: 0, payload: s32(-1) })).toEqual({ errno: 0 });
    expect(parseError(errMsg(0, hex('ffff')))).toEqual({ errno: 0 });
  });
});
