// ctnetlink bodies, byte for byte against linux/netfilter/nfnetlink.h and
// nfnetlink_conntrack.h:
//   struct nfgenmsg { u8 nfgen_family; u8 version (NFNETLINK_V0 = 0); be16 res_id; }
//   nlmsg_type = NFNL_SUBSYS_CTNETLINK (1) << 8 | IPCTNL_MSG_CT_{NEW 0, GET 1, DELETE 2}
//   CTA_TUPLE_ORIG=1 CTA_TUPLE_REPLY=2 CTA_STATUS=3 CTA_PROTOINFO=4 CTA_TIMEOUT=7 CTA_MARK=8
//   CTA_COUNTERS_ORIG=9 CTA_USE=11 CTA_ID=12 CTA_ZONE=18 CTA_TIMESTAMP=20
//   tuple: CTA_TUPLE_IP=1 {V4_SRC=1 V4_DST=2 V6_SRC=3 V6_DST=4}, CTA_TUPLE_PROTO=2
//          {NUM=1 u8, SRC_PORT=2 be16, DST_PORT=3 be16, ICMP_ID=4 be16, ICMP_TYPE=5 u8, ICMP_CODE=6 u8,
//           ICMPV6_ID=7, ICMPV6_TYPE=8, ICMPV6_CODE=9}
// Attribute headers are host order (little-endian here); payload integers are big-endian.
// A nested attribute has NLA_F_NESTED (0x8000) in its type: CTA_TUPLE_ORIG nested = `0180`.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CT_DELETE,
  CT_GET,
  CT_NEW,
  CTA_TUPLE_ORIG,
  type CtEntry,
  type CtTuple,
  decodeCtEntry,
  decodeTuple,
  encodeCtDelete,
  encodeCtDump,
  encodeTuple,
  formatTuple,
  IPS_ASSURED,
  IPS_CONFIRMED,
  IPS_SEEN_REPLY,
  nfgenmsg,
  TCP_CONNTRACK_STATES,
} from '../../../src/netlink/conntrack.ts';
import { NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST } from '../../../src/netlink/constants.ts';
import { nlmsg, parseAttrs, parseMessages } from '../../../src/netlink/message.ts';
import { hex, words } from './bytes.ts';

const tcp4: CtTuple = { family: 4, src: '10.97.0.1', dst: '10.97.0.2', proto: 6, sport: 40000, dport: 8080 };
const udp6: CtTuple = { family: 6, src: 'fd97::1', dst: 'fd97::2', proto: 17, sport: 53, dport: 5353 };

// The orig tuple of tcp4: 40000 = 0x9c40, 8080 = 0x1f90.
const TCP4_ORIG = `
  3400 0180
    1400 0180
      0800 0100 0a610001
      0800 0200 0a610002
    1c00 0280
      0500 0100 06 000000
      0600 0200 9c40 0000
      0600 0300 1f90 0000`;
// fd97::1 = fd97 0000 ... 0001; 53 = 0x0035, 5353 = 0x14e9.
const UDP6_ORIG = `
  4c00 0180
    2c00 0180
      1400 0300 fd970000 00000000 00000000 00000001
      1400 0400 fd970000 00000000 00000000 00000002
    1c00 0280
      0500 0100 11 000000
      0600 0200 0035 0000
      0600 0300 14e9 0000`;

describe('message types and nfgenmsg', () => {
  it('subsystem 1 in the high byte, the operation in the low one', () => {
    expect([CT_NEW, CT_GET, CT_DELETE]).toEqual([0x100, 0x101, 0x102]);
  });

  it('nfgenmsg: family, version 0, res_id 0', () => {
    expect(words(nfgenmsg(0))).toBe('00000000');
    expect(words(nfgenmsg(4))).toBe('02000000');
    expect(words(nfgenmsg(6))).toBe('0a000000');
  });
});

describe('encodeCtDump', () => {
  it('is a bare nfgenmsg: AF_UNSPEC lists every family', () => {
    expect(words(encodeCtDump())).toBe('00000000');
    expect(words(encodeCtDump(4))).toBe('02000000');
    expect(words(encodeCtDump(6))).toBe('0a000000');
  });

  it('whole request: nlmsghdr with type 0x0101 and NLM_F_REQUEST|NLM_F_DUMP', () => {
    const m = nlmsg(CT_GET, NLM_F_REQUEST | NLM_F_DUMP, 7, encodeCtDump(4));
    expect(words(m)).toBe(words(hex('14000000 0101 0103 07000000 00000000  02 00 0000')));
  });
});

describe('encodeTuple', () => {
  it('IPv4 TCP: nested IP and PROTO, addresses and ports big-endian, u8 protocol padded', () => {
    expect(words(encodeTuple(CTA_TUPLE_ORIG, tcp4))).toBe(words(hex(TCP4_ORIG)));
  });

  it('IPv6 UDP: V6_SRC/V6_DST (3, 4), 16 bytes each', () => {
    expect(words(encodeTuple(CTA_TUPLE_ORIG, udp6))).toBe(words(hex(UDP6_ORIG)));
  });

  it('ICMP: id be16, type and code u8, no ports', () => {
    const t: CtTuple = { family: 4, src: '10.97.0.1', dst: '10.97.0.2', proto: 1, icmp: { id: 0x1234, type: 8, code: 0 } };
    expect(words(encodeTuple(CTA_TUPLE_ORIG, t))).toBe(
      words(
        hex(`
          3c00 0180
            1400 0180  0800 0100 0a610001  0800 0200 0a610002
            2400 0280  0500 0100 01 000000  0600 0400 1234 0000  0500 0500 08 000000  0500 0600 00 000000`),
      ),
    );
  });

  it('ICMPv6 uses the ICMPV6_* attributes (7, 8, 9)', () => {
    const t: CtTuple = { family: 6, src: 'fd97::1', dst: 'fd97::2', proto: 58, icmp: { id: 1, type: 128, code: 0 } };
    const proto = parseAttrs(parseAttrs(encodeTuple(CTA_TUPLE_ORIG, t).subarray(4)).get(2)!);
    expect([...proto.keys()]).toEqual([1, 7, 8, 9]);
    expect(words(proto.get(7)!)).toBe('0001');
    expect(proto.get(8)![0]).toBe(128);
  });

  it('refuses what the kernel would refuse, before sending', () => {
    const { sport: _sport, ...noSport } = tcp4;
    expect(() => encodeTuple(1, noSport)).toThrow(/needs sport and dport/);
    expect(() => encodeTuple(1, { ...tcp4, dport: 65536 })).toThrow(/bad dport/);
    expect(() => encodeTuple(1, { ...tcp4, sport: 1.5 })).toThrow(/bad sport/);
    expect(() => encodeTuple(1, { ...tcp4, src: 'fd97::1' })).toThrow(/not IPv4/);
    expect(() => encodeTuple(1, { ...udp6, dst: '10.97.0.2' })).toThrow(/not IPv6/);
    expect(() => encodeTuple(1, { ...tcp4, src: '10.97.0.01' })).toThrow(/invalid IP/);
    expect(() => encodeTuple(1, { family: 4, src: '10.97.0.1', dst: '10.97.0.2', proto: 1 })).toThrow(/ICMP tuple needs/);
  });

  it('a protocol without ports (e.g. GRE 47 with no key) carries only its number', () => {
    const t: CtTuple = { family: 4, src: '10.97.0.1', dst: '10.97.0.2', proto: 47 };
    const proto = parseAttrs(parseAttrs(encodeTuple(CTA_TUPLE_ORIG, t).subarray(4)).get(2)!);
    expect([...proto.keys()]).toEqual([1]);
  });
});

describe('encodeCtDelete', () => {
  it('by tuple: nfgenmsg of the tuple family, then CTA_TUPLE_ORIG', () => {
    expect(words(encodeCtDelete(tcp4))).toBe(words(hex(`02 00 0000 ${TCP4_ORIG}`)));
    expect(words(encodeCtDelete(udp6))).toBe(words(hex(`0a 00 0000 ${UDP6_ORIG}`)));
  });

  it('by entry: CTA_ZONE (be16) when set, CTA_ID (be32) when known; the reply tuple is not sent', () => {
    const e: CtEntry = { orig: tcp4, reply: { ...tcp4, src: tcp4.dst, dst: tcp4.src, sport: 8080, dport: 40000 }, zone: 5, id: 0x12345678, mark: 9 };
    expect(words(encodeCtDelete(e))).toBe(words(hex(`02 00 0000 ${TCP4_ORIG}  0600 1200 0005 0000  0800 0c00 12345678`)));
  });

  it('by entry in the default zone without id: the same bytes as by tuple', () => {
    expect(words(encodeCtDelete({ orig: udp6, reply: udp6 }))).toBe(words(encodeCtDelete(udp6)));
  });

  it('whole request: type 0x0102, REQUEST|ACK', () => {
    const m = nlmsg(CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, 1, encodeCtDelete(tcp4));
    expect(words(m.subarray(0, 16))).toBe(words(hex(`48000000 0201 0500 01000000 00000000`)));
  });

  it('always carries a tuple: a delete without one would flush the whole table', () => {
    for (const t of [tcp4, udp6]) {
      const tb = parseAttrs(encodeCtDelete(t).subarray(4));
      expect(tb.has(CTA_TUPLE_ORIG)).toBe(true);
    }
  });
});

// A kernel-style IPCTNL_MSG_CT_NEW as a dump sends it (ctnetlink_fill_info on
// 6.x): tuples, status, timeout, protoinfo, counters, mark, id, use, with
// NLA_F_NESTED on the nests. Entry of `nc 10.97.0.2 8080` from 10.97.0.1:40000.
const KERNEL_TCP4 = hex(`
  d4000000 0001 0200 2a000000 00000000
  02 00 0000
  ${TCP4_ORIG}
  3400 0280
    1400 0180  0800 0100 0a610002  0800 0200 0a610001
    1c00 0280  0500 0100 06 000000  0600 0200 1f90 0000  0600 0300 9c40 0000
  0800 0300 0000018e
  0800 0700 00069773
  3000 0480
    2c00 0180
      0500 0100 03 000000
      0500 0200 07 000000
      0500 0300 07 000000
      0600 0400 2300 0000
      0600 0500 2300 0000
  0800 0800 00000000
  0800 0c00 deadbeef
  0800 0b00 00000001`);

describe('decodeCtEntry', () => {
  it('a hand-built kernel message: tuples, id, mark, status, timeout, TCP state', () => {
    const [m] = parseMessages(KERNEL_TCP4);
    expect(m?.type).toBe(CT_NEW);
    const e = decodeCtEntry(m!.payload);
    expect(e).toEqual({
      orig: tcp4,
      reply: { family: 4, src: '10.97.0.2', dst: '10.97.0.1', proto: 6, sport: 8080, dport: 40000 },
      id: 0xdeadbeef,
      mark: 0,
      status: 0x18e,
      timeout: 431987,
      tcpState: 3,
    } satisfies CtEntry);
    expect(TCP_CONNTRACK_STATES[e!.tcpState!]).toBe('ESTABLISHED');
    expect(e!.status! & (IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED)).toBe(IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED);
  });

  it('IPv6 UDP in a zone; nests without NLA_F_NESTED (older kernels) decode the same', () => {
    const plain = (s: string) => s.replace(/0180/g, '0100').replace(/0280/g, '0200');
    const UDP6_REPLY = `
      4c00 0200
        2c00 0100
          1400 0300 fd970000 00000000 00000000 00000002
          1400 0400 fd970000 00000000 00000000 00000001
        1c00 0200
          0500 0100 11 000000  0600 0200 14e9 0000  0600 0300 0035 0000`;
    const payload = hex(`0a 00 0000 ${plain(UDP6_ORIG)} ${UDP6_REPLY} 0600 1200 0007 0000 0800 0c00 00000002`);
    expect(decodeCtEntry(payload)).toEqual({
      orig: udp6,
      reply: { family: 6, src: 'fd97::2', dst: 'fd97::1', proto: 17, sport: 5353, dport: 53 },
      zone: 7,
      id: 2,
    });
  });

  it('zone 0 is the default zone: no zone', () => {
    const payload = Buffer.concat([encodeCtDelete(tcp4), encodeTuple(2, tcp4), hex('0600 1200 0000 0000')]);
    expect(decodeCtEntry(payload)?.zone).toBeUndefined();
  });

  it('ICMP tuples decode id, type, code', () => {
    const t: CtTuple = { family: 4, src: '10.97.0.1', dst: '10.97.0.2', proto: 1, icmp: { id: 77, type: 8, code: 0 } };
    const r: CtTuple = { family: 4, src: '10.97.0.2', dst: '10.97.0.1', proto: 1, icmp: { id: 77, type: 0, code: 0 } };
    expect(decodeCtEntry(Buffer.concat([nfgenmsg(4), encodeTuple(1, t), encodeTuple(2, r)]))).toEqual({ orig: t, reply: r });
  });

  it('undefined for other families, a missing tuple, wrong address sizes, or a short payload', () => {
    const both = Buffer.concat([encodeTuple(1, tcp4), encodeTuple(2, tcp4)]);
    expect(decodeCtEntry(Buffer.concat([hex('07000000'), both]))).toBeUndefined(); // AF_BRIDGE
    expect(decodeCtEntry(Buffer.concat([nfgenmsg(4), encodeTuple(1, tcp4)]))).toBeUndefined();
    expect(decodeCtEntry(Buffer.concat([nfgenmsg(6), both]))).toBeUndefined(); // v4 addresses under AF_INET6
    expect(decodeCtEntry(hex('0200'))).toBeUndefined();
  });

  it('a truncated message never reads past its end', () => {
    const [m] = parseMessages(KERNEL_TCP4);
    for (let n = 0; n < m!.payload.length; n++) expect(() => decodeCtEntry(m!.payload.subarray(0, n))).not.toThrow();
  });
});

describe('round trip', () => {
  const port = fc.integer({ min: 0, max: 0xffff });
  const v4 = fc.ipV4();
  const v6 = fc
    .uint8Array({ minLength: 16, maxLength: 16 })
    .map((b) => Array.from({ length: 8 }, (_, i) => (((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0)).toString(16)).join(':'));
  const tuple: fc.Arbitrary<CtTuple> = fc.oneof(
    fc.record({ family: fc.constant(4 as const), src: v4, dst: v4, proto: fc.constantFrom(6, 17, 132), sport: port, dport: port }),
    fc.record({ family: fc.constant(6 as const), src: v6, dst: v6, proto: fc.constantFrom(6, 17, 132), sport: port, dport: port }),
  );

  it('decodeTuple(encodeTuple(t)) is t, with addresses in canonical text', () => {
    fc.assert(
      fc.property(tuple, (t) => {
        const got = decodeTuple(t.family, encodeTuple(1, t).subarray(4));
        const canon = (s: string) => decodeTuple(t.family, encodeTuple(1, { ...t, src: s }).subarray(4))?.src;
        expect(got).toEqual({ ...t, src: canon(t.src), dst: canon(t.dst) });
        expect(got?.sport).toBe(t.sport);
        expect(got?.dport).toBe(t.dport);
      }),
    );
  });
});

describe('formatTuple', () => {
  it('names the protocol and brackets IPv6', () => {
    expect(formatTuple(tcp4)).toBe('tcp 10.97.0.1:40000 -> 10.97.0.2:8080');
    expect(formatTuple(udp6)).toBe('udp [fd97::1]:53 -> [fd97::2]:5353');
  });
});
