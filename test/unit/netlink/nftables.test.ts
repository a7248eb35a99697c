// nf_tables element batches, byte for byte.
//
// The fixtures are what nft 1.0.6 (libnftnl 1.2.4) sent to kernel 6.18 for
// the command above each, captured in a throwaway namespace with
//   ip netns exec NS strace -e trace=sendmsg -e write=3 nft add element ...
// (the batch datagram only; nft's cache dumps before it are left out). Ours
// differs from nft's in three ways, each undone by fromNft() below:
// - every message carries NLM_F_ACK (nft asks for errors only);
// - no NFTA_SET_ELEM_LIST_SET_ID (type 4, be32) in adds: nft sends its cache's
//   id for sets made in the same batch; the kernel finds an existing set by name;
// - each element is an NFTA_LIST_ELEM (1); libnftnl numbers them 1, 2, 3...
//   The kernel walks the list with nla_for_each_nested and ignores the type;
//   its own dumps use NFTA_LIST_ELEM for every element.
// Sequence numbers: nft's begin at 0, so encodeBatch(..., 0) matches.
import { describe, expect, it } from 'vitest';
import { Errno } from '../../../src/errors.ts';
import { NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_REQUEST, NLMSG_ERROR } from '../../../src/netlink/constants.ts';
import { NLA_F_NESTED, nlmsg, parseMessages } from '../../../src/netlink/message.ts';
import {
  elementAtOffset,
  elementLayout,
  encodeBatch,
  encodeElement,
  encodeKey,
  encodeSetElem,
  errorOffset,
  MAX_ELEMENTS_BYTES,
  NFNL_MSG_BATCH_BEGIN,
  NFNL_MSG_BATCH_END,
  nftMsgType,
  parseVerdict,
  type SetElemMessage,
} from '../../../src/netlink/nftables.ts';
import type { ElementChange } from '../../../src/nft/element-writer.ts';
import { NftError } from '../../../src/nft/errors.ts';
import { canWriteElements, encodeChanges } from '../../../src/nft/netlink-elements.ts';
import { nft } from '../../../src/nft/transaction.ts';
import { elementSets } from '../../helpers/nft-sets.ts';
import { hex, le16, words } from './bytes.ts';

const NFTA_SET_ELEM_LIST_SET_ID = 4;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;

/** Walks the attributes of `buf` (headers in host order), yielding [offset, len, type]. */
function* attrsOf(buf: Buffer): Generator<[number, number, number]> {
  for (let off = 0; off + 4 <= buf.length; off += (buf.readUInt16LE(off) + 3) & ~3) {
    yield [off, buf.readUInt16LE(off), buf.readUInt16LE(off + 2)];
  }
}

/** nft's captured batch, made into what weir sends (see the file comment). */
function fromNft(capture: string): Buffer {
  return Buffer.concat(
    parseMessages(hex(capture)).map((m, seq) => {
      if (m.type === NFNL_MSG_BATCH_BEGIN || m.type === NFNL_MSG_BATCH_END) return nlmsg(m.type, m.flags, seq, m.payload);
      const parts = [m.payload.subarray(0, 4)];
      for (const [off, len, type] of attrsOf(m.payload.subarray(4))) {
        const a = Buffer.from(m.payload.subarray(4 + off, 4 + off + ((len + 3) & ~3)));
        if (type === NFTA_SET_ELEM_LIST_SET_ID) continue;
        if ((type & ~NLA_F_NESTED) === NFTA_SET_ELEM_LIST_ELEMENTS) {
          for (const [eoff] of attrsOf(a.subarray(4))) a.writeUInt16LE(NLA_F_NESTED | 1, 4 + eoff + 2);
        }
        parts.push(a);
      }
      return nlmsg(m.type, m.flags | NLM_F_ACK, seq, Buffer.concat(parts));
    }),
  );
}

const t = nft.table('inet', 'weirt');
const sets = { ...elementSets(t), ip4: nft.set(nft.table('ip', 'weirt4'), 's', 'ipv4_addr') };
type SetName = keyof typeof sets;

/** Our batch for one message's worth of changes, sequence numbers from 0. */
function ours(verb: 'add' | 'delete', set: SetName, elements: [string[], string?][]): Buffer {
  const changes: ElementChange[] = elements.map(([key, value]) => ({ verb, set: sets[set], key, ...(value === undefined ? {} : { value }) }));
  return encodeBatch(encodeChanges(changes).messages.map(encodeSetElem), 0);
}

// prettier-ignore
const CAPTURES: { cmd: string; verb: 'add' | 'delete'; set: SetName; elements: [string[], string?][]; nft: string }[] = [
  {
    cmd: 'add element inet weirt s4 { 10.244.1.5 }',
    verb: 'add',
    set: 's4',
    elements: [[['10.244.1.5']]],
    nft: '140000001000010000000000000000000000000a440000000c0a01040100000000000000010000000a00010077656972740000000700020073340000080004000000000114000380100001800c000180080001000af40105140000001100010002000000000000000000000a',
  },
  {
    cmd: 'delete element inet weirt c6 { 2001:db8::5 . udp . 53 }',
    verb: 'delete',
    set: 'c6',
    elements: [[['2001:db8::5', 'udp', '53']]],
    nft: '140000001000010000000000000000000000000a500000000e0a01000100000000000000010000000a000100776569727400000007000200633600002800038024000180200001801c00010020010db80000000000000000000000051100000000350000140000001100010002000000000000000000000a',
  },
  {
    cmd: 'add element inet weirt c4 { 10.244.1.5 . tcp . 8080 }',
    verb: 'add',
    set: 'c4',
    elements: [[['10.244.1.5', 'tcp', '8080']]],
    nft: '140000001000010000000000000000000000000a4c0000000c0a01040100000000000000010000000a0001007765697274000000070002006334000008000400000000031c0003801800018014000180100001000af40105060000001f900000140000001100010002000000000000000000000a',
  },
  {
    cmd: 'add element inet weirt m4 { 10.244.1.5 : goto prof_a }',
    verb: 'add',
    set: 'm4',
    elements: [[['10.244.1.5'], 'goto prof_a']],
    nft: '140000001000010000000000000000000000000a600000000c0a01040100000000000000010000000a0001007765697274000000070002006d3400000800040000000008300003802c0001800c000180080001000af401051c0002801800028008000100fffffffc0b00020070726f665f610000140000001100010002000000000000000000000a',
  },
  {
    cmd: 'add element inet weirt m6 { 2001:db8::1 : accept, 2001:db8::2 : drop, 2001:db8::3 : jump prof_a }',
    verb: 'add',
    set: 'm6',
    elements: [
      [['2001:db8::1'], 'accept'],
      [['2001:db8::2'], 'drop'],
      [['2001:db8::3'], 'jump prof_a'],
    ],
    nft: '140000001000010000000000000000000000000ac40000000c0a01040100000000000000010000000a0001007765697274000000070002006d3600000800040000000009940003802c000180180001801400010020010db8000000000000000000000001100002800c00028008000100000000012c000280180001801400010020010db8000000000000000000000002100002800c000280080001000000000038000380180001801400010020010db80000000000000000000000031c0002801800028008000100fffffffd0b00020070726f665f610000140000001100010002000000000000000000000a',
  },
  {
    cmd: 'add element inet weirt s6 { fe80::1, ::ffff:10.0.0.1 }',
    verb: 'add',
    set: 's6',
    elements: [[['fe80::1']], [['::ffff:10.0.0.1']]],
    nft: '140000001000010000000000000000000000000a6c0000000c0a01040100000000000000010000000a0001007765697274000000070002007336000008000400000000023c0003801c0001801800018014000100fe8000000000000000000000000000011c000280180001801400010000000000000000000000ffff0a000001140000001100010002000000000000000000000a',
  },
  {
    cmd: 'add element inet weirt pp { tcp . 443, sctp . 9, icmpv6 . 0 }',
    verb: 'add',
    set: 'pp',
    elements: [[['tcp', '443']], [['sctp', '9']], [['icmpv6', '0']]],
    nft: '140000001000010000000000000000000000000a700000000c0a01040100000000000000010000000a0001007765697274000000070002007070000008000400000000054000038014000180100001800c0001000600000001bb000014000280100001800c000100840000000009000014000380100001800c0001003a00000000000000140000001100010002000000000000000000000a',
  },
  {
    cmd: 'add element inet weirt p { icmpv6, 255 }',
    verb: 'add',
    set: 'p',
    elements: [[['icmpv6']], [['255']]],
    nft: '140000001000010000000000000000000000000a540000000c0a01040100000000000000010000000a00010077656972740000000600020070000000080004000000000624000380100001800c000180050001003a000000100002800c00018005000100ff000000140000001100010002000000000000000000000a',
  },
  {
    cmd: 'add element inet weirt sv { 8080 }',
    verb: 'add',
    set: 'sv',
    elements: [[['8080']]],
    nft: '140000001000010000000000000000000000000a440000000c0a01040100000000000000010000000a00010077656972740000000700020073760000080004000000000714000380100001800c000180060001001f900000140000001100010002000000000000000000000a',
  },
  {
    cmd: 'delete element inet weirt m4 { 10.244.1.5 }',
    verb: 'delete',
    set: 'm4',
    elements: [[['10.244.1.5']]],
    nft: '140000001000010000000000000000000000000a3c0000000e0a01000100000000000000010000000a0001007765697274000000070002006d34000014000380100001800c000180080001000af40105140000001100010002000000000000000000000a',
  },
  {
    cmd: 'add element ip weirt4 s { 192.168.0.1 }',
    verb: 'add',
    set: 'ip4',
    elements: [[['192.168.0.1']]],
    nft: '140000001000010000000000000000000000000a440000000c0a01040100000000000000020000000b00010077656972743400000600020073000000080004000000000a14000380100001800c00018008000100c0a80001140000001100010002000000000000000000000a',
  },
];

describe('nf_tables element batches against nft 1.0.6', () => {
  for (const c of CAPTURES) {
    it(c.cmd, () => {
      expect(words(ours(c.verb, c.set, c.elements))).toBe(words(fromNft(c.nft)));
    });
  }

  it('frames BEGIN and END with res_id = NFNL_SUBSYS_NFTABLES in network order, and acks every message in between', () => {
    const b = ours('add', 's4', [[['10.244.1.5']]]);
    const [begin, msg, end] = parseMessages(b);
    expect(begin).toMatchObject({ type: 0x10, flags: NLM_F_REQUEST, seq: 0 });
    expect(begin?.payload.toString('hex')).toBe('0000000a'); // AF_UNSPEC, NFNETLINK_V0, be16 10
    expect(msg).toMatchObject({ type: nftMsgType(12), flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE, seq: 1 });
    expect(end).toMatchObject({ type: 0x11, flags: NLM_F_REQUEST, seq: 2 });
    expect(end?.payload.toString('hex')).toBe('0000000a');
    // A delete is not NLM_F_CREATE; neither ever has NLM_F_EXCL (re-adding is no error).
    expect(parseMessages(ours('delete', 's4', [[['10.244.1.5']]]))[1]).toMatchObject({ type: nftMsgType(14), flags: NLM_F_REQUEST | NLM_F_ACK });
  });
});

describe('element keys', () => {
  const key = (type: string, parts: string[]): string => words(encodeKey(elementLayout(type, false)!, parts));

  it('pads every field of a concatenation to 4 bytes (NFT_REG32_SIZE), zero filled', () => {
    expect(key('ipv4_addr . inet_proto . inet_service', ['10.244.1.5', 'tcp', '8080'])).toBe('0af40105 06000000 1f900000');
    expect(key('ipv6_addr . inet_proto . inet_service', ['fd00::1', 'sctp', '65535'])).toBe('fd000000 00000000 00000000 00000001 84000000 ffff0000');
    expect(key('inet_proto . inet_service', ['17', '0'])).toBe('11000000 00000000');
  });

  it('sends a single field at its own size', () => {
    expect(key('inet_proto', ['udp'])).toBe('11');
    expect(key('inet_service', ['443'])).toBe('01bb');
    expect(key('ipv4_addr', ['0.0.0.0'])).toBe('00000000');
    expect(key('ipv6_addr', ['::'])).toBe('00000000 00000000 00000000 00000000');
    // A one-byte value still pads its attribute to 4 bytes: len 5, then 3 zeros.
    expect(words(encodeElement(encodeKey(elementLayout('inet_proto', false)!, ['icmp'])))).toBe('10000180 0c000180 05000100 01000000');
  });

  it("knows the protocol names weir writes, and nft's listing name of 58", () => {
    const protos = ['tcp', 'udp', 'sctp', 'icmp', 'icmpv6', 'ipv6-icmp'].map((p) => key('inet_proto', [p]));
    expect(protos).toEqual(['06', '11', '84', '01', '3a', '3a']);
  });

  it.each([
    ['ipv4_addr', ['10.0.0.256']],
    ['ipv4_addr', ['10.0.0.0/8']],
    ['ipv4_addr', ['010.0.0.1']],
    ['ipv4_addr', ['fd00::1']],
    ['ipv6_addr', ['10.0.0.1']],
    ['ipv6_addr', ['fe80::1%eth0']],
    ['inet_service', ['70000']],
    ['inet_service', ['80-90']],
    ['inet_service', ['http']],
    ['inet_service', ['-1']],
    ['inet_service', ['']],
    ['inet_proto', ['256']],
    ['inet_proto', ['gre']],
    ['inet_proto', ['TCP']],
    ['ipv4_addr . inet_service', ['10.0.0.1']],
    ['ipv4_addr', ['10.0.0.1', '80']],
  ])('refuses %s %j', (type, parts) => {
    expect(() => encodeKey(elementLayout(type, false)!, parts)).toThrow(RangeError);
  });

  it('knows only the types it can encode', () => {
    expect(elementLayout('ipv4_addr . inet_proto . inet_service', false)).toEqual({ key: ['ipv4_addr', 'inet_proto', 'inet_service'], verdict: false });
    expect(elementLayout('inet_proto . inet_service : verdict', true)).toEqual({ key: ['inet_proto', 'inet_service'], verdict: true });
    for (const [type, isMap] of [
      ['ether_addr', false],
      ['ipv4_addr . mark', false],
      ['ifname', false],
      ['ipv4_addr : verdict', false],
      ['ipv4_addr', true],
      ['ipv4_addr : ipv4_addr', true],
      ['ipv4_addr : verdict : verdict', true],
      ['', false],
      ['toString', false],
    ] as const) {
      expect(elementLayout(type, isMap), type).toBeUndefined();
    }
  });
});

describe('verdicts', () => {
  it('encodes the four verdicts as be32 codes, with the chain for jump and goto', () => {
    const data = (v: string): string => words(encodeElement(Buffer.of(1, 2, 3, 4), parseVerdict(v)).subarray(16));
    expect(data('accept')).toBe('10000280 0c000280 08000100 00000001'); // NF_ACCEPT
    expect(data('drop')).toBe('10000280 0c000280 08000100 00000000'); // NF_DROP
    // NFT_JUMP = -3, NFT_GOTO = -4; the chain name NUL-terminated and padded.
    expect(data('jump pol_x')).toBe(`1c000280 18000280 08000100 fffffffd 0a000200 706f6c5f 78000000`);
    expect(data('goto  pol_x ')).toBe(`1c000280 18000280 08000100 fffffffc 0a000200 706f6c5f 78000000`);
  });

  it.each(['reject', 'continue', 'jump', 'goto a b', 'accept now', '', `goto ${'c'.repeat(256)}`])('refuses %j', (v) => {
    expect(() => parseVerdict(v)).toThrow(RangeError);
  });
});

describe('messages and errors', () => {
  const m: SetElemMessage = {
    verb: 'delete',
    family: 'inet',
    table: 'weirt',
    set: 's4',
    elements: ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((a) => encodeElement(encodeKey(elementLayout('ipv4_addr', false)!, [a]))),
  };

  it('finds the element an extack offset points at', () => {
    // nlmsghdr 16 + nfgenmsg 4 + table 12 + set 8 + ELEMENTS header 4 = 44; elements are 16 bytes.
    expect([44, 60, 76].map((o) => elementAtOffset(m, o))).toEqual([0, 1, 2]);
    expect([0, 32, 40, 48, 92].map((o) => elementAtOffset(m, o))).toEqual([undefined, undefined, undefined, undefined, undefined]);
    const msg = parseMessages(nlmsg(encodeSetElem(m).type, 0, 1, encodeSetElem(m).body))[0];
    expect(msg?.payload.readUInt16LE(60 - 16 + 2)).toBe(NLA_F_NESTED | 1); // an NFTA_LIST_ELEM does start there
  });

  it('reads NLMSGERR_ATTR_OFFS from a capped error reply, and nothing from a plain one', () => {
    // error -ENOENT, the echoed request header (capped), then OFFS = 60.
    const payload = hex(`feffffff 3c000000 0e0a0500 07000000 00000000 | 0800 0200 3c000000`);
    const reply = { type: NLMSG_ERROR, flags: NLM_F_CAPPED | NLM_F_ACK_TLVS, seq: 7, pid: 0, payload };
    expect(errorOffset(reply)).toBe(60);
    expect(errorOffset({ ...reply, flags: NLM_F_CAPPED })).toBeUndefined();
    expect(errorOffset({ ...reply, payload: hex('00000000') })).toBeUndefined();
  });

  it('refuses an empty message, one over the u16 attribute limit, and an unknown family', () => {
    expect(() => encodeSetElem({ ...m, elements: [] })).toThrow(RangeError);
    expect(() => encodeSetElem({ ...m, elements: [Buffer.alloc(MAX_ELEMENTS_BYTES + 4)] })).toThrow(RangeError);
    expect(() => encodeSetElem({ ...m, family: 'arpx' })).toThrow(RangeError);
    expect(le16(MAX_ELEMENTS_BYTES + 4)).toBe('ffff');
  });
});

describe('encodeChanges', () => {
  const add = (set: SetName, ...key: string[]): ElementChange => ({ verb: 'add', set: sets[set], key });
  const del = (set: SetName, ...key: string[]): ElementChange => ({ verb: 'delete', set: sets[set], key });

  it('groups consecutive changes of the same set and verb into one message', () => {
    const { messages, origins } = encodeChanges([
      add('s4', '10.0.0.1'),
      add('s4', '10.0.0.2'),
      del('s4', '10.0.0.3'),
      add('c4', '10.0.0.1', 'tcp', '80'),
      add('s4', '10.0.0.4'),
    ]);
    expect(messages.map((x) => `${x.verb} ${x.set} ${x.elements.length}`)).toEqual(['add s4 2', 'delete s4 1', 'add c4 1', 'add s4 1']);
    expect(origins).toEqual([[0, 1], [2], [3], [4]]);
    // The same set given as another (equal) object still groups.
    expect(encodeChanges([add('s4', '10.0.0.1'), { ...add('s4', '10.0.0.2'), set: { ...sets.s4 } }]).messages).toHaveLength(1);
  });

  it('splits a large change into messages under the attribute limit, keeping every element in order', () => {
    const changes = Array.from({ length: 20_000 }, (_, i) => add('c6', `fd00::${i.toString(16)}`, 'tcp', String(i % 65536)));
    const { messages, origins } = encodeChanges(changes);
    expect(messages.length).toBeGreaterThan(1);
    for (const x of messages) expect(x.elements.reduce((n, e) => n + e.length, 0)).toBeLessThanOrEqual(MAX_ELEMENTS_BYTES);
    expect(origins.flat()).toEqual(changes.map((_, i) => i));
    // About 64 KiB each: the elements, and the nfgenmsg, table and set before them.
    for (const x of messages) expect(encodeSetElem(x).body.length).toBeLessThanOrEqual(0xffff + 4 + 12 + 8);
  });

  it('throws NftError (EINVAL) naming the change it cannot encode, before anything is sent', () => {
    const bad: [ElementChange, RegExp][] = [
      [add('s4', '10.0.0.300'), /10\.0\.0\.300 to set inet weirt s4: "10\.0\.0\.300" is not an IPv4 address/],
      [add('c4', '10.0.0.1', 'tcp', '70000'), /"70000" is not a port number/],
      [add('m4', '10.0.0.1'), /needs a verdict/],
      [{ ...add('m4', '10.0.0.1'), value: 'reject' }, /"reject" is not a verdict/],
      [{ ...add('s4', '10.0.0.1'), value: 'accept' }, /a set element has no value/],
      [{ verb: 'add', set: nft.set(t, 'mac', 'ether_addr'), key: ['00:11:22:33:44:55'] }, /type "ether_addr" is not supported/],
      [{ verb: 'add', set: nft.set(t, 'r', 'ipv4_addr', { flags: ['interval'] }), key: ['10.0.0.0/8'] }, /with flags interval is not supported/],
    ];
    for (const [change, re] of bad) {
      let err: unknown;
      try {
        encodeChanges([add('s4', '10.0.0.1'), change]);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NftError);
      expect(err).toMatchObject({ errno: Errno.EINVAL, op: 1 });
      expect((err as Error).message).toMatch(re);
    }
  });

  it('a map delete needs no verdict', () => {
    expect(encodeChanges([del('m4', '10.0.0.1')]).messages[0]?.elements[0]?.length).toBe(16);
  });
});

describe('canWriteElements', () => {
  it('is true for plain sets and verdict maps of supported types only', () => {
    expect(Object.values(sets).every(canWriteElements)).toBe(true);
    expect(canWriteElements(nft.map(t, 'hp', 'inet_proto . inet_service : verdict'))).toBe(true);
    expect(canWriteElements(nft.set(t, 'r', 'ipv4_addr', { flags: ['interval'] }))).toBe(false);
    expect(canWriteElements(nft.map(t, 'r', 'ipv4_addr : verdict', { flags: ['interval'] }))).toBe(false);
    expect(canWriteElements(nft.set(t, 'pr', 'inet_proto . inet_service', { flags: ['interval'] }))).toBe(false);
    expect(canWriteElements(nft.set(t, 'm', 'mark'))).toBe(false);
    expect(canWriteElements(nft.map(t, 'snat', 'ipv4_addr : ipv4_addr'))).toBe(false);
    expect(canWriteElements(nft.set(t, 'x', 'ipv4_addr : verdict'))).toBe(false);
    expect(canWriteElements(nft.set(t, 'tm', 'ipv4_addr', { flags: ['timeout'] }))).toBe(true);
  });
});
