// nf_tables (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_NFTABLES): set and map
// element changes as one nfnetlink batch. Pure byte encoding, no sockets; the
// effect is src/nft/netlink-elements.ts.
//
// Layout, from linux/netfilter/nfnetlink.h and nf_tables.h, and byte for byte
// what nft 1.0.6 sends (captured with strace; see the unit test):
//   NFNL_MSG_BATCH_BEGIN  nfgenmsg { AF_UNSPEC, NFNETLINK_V0, res_id = be16 NFNL_SUBSYS_NFTABLES }
//   NFT_MSG_NEWSETELEM | NFT_MSG_DELSETELEM (type = NFNL_SUBSYS_NFTABLES << 8 | op)
//     nfgenmsg { NFPROTO_* of the table, NFNETLINK_V0, res_id 0 }
//     NFTA_SET_ELEM_LIST_TABLE (string), NFTA_SET_ELEM_LIST_SET (string)
//     NFTA_SET_ELEM_LIST_ELEMENTS (nested), one NFTA_LIST_ELEM (nested) per element:
//       NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE (the key bytes) }
//       NFTA_SET_ELEM_DATA { NFTA_DATA_VERDICT { NFTA_VERDICT_CODE (be32), NFTA_VERDICT_CHAIN } }  verdict maps, adds only
//   NFNL_MSG_BATCH_END    nfgenmsg as BEGIN
//
// Kernel behaviour worth knowing (net/netfilter/nfnetlink.c, nf_tables_api.c):
// - The kernel reads a batch from ONE skb, so it must go in one datagram; it
//   commits the batch only when every message in it succeeded.
// - BEGIN and END are never acked. Every message flagged NLM_F_ACK gets an
//   ack, and every failing one an error, all delivered after the whole batch
//   was processed, in message order.
// - A failing element sets the extack bad attribute to its NFTA_LIST_ELEM, so
//   NLMSGERR_ATTR_OFFS (its offset from the message's nlmsghdr) names it.
// - nft also sends NFTA_SET_ELEM_LIST_SET_ID with adds, for sets created in
//   the same batch; an existing set is found by name, so it is left out here.
import { tryParseIp } from '../ip.ts';
import { NFNETLINK_V0 } from './conntrack.ts';
import { AF_UNSPEC, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_REQUEST, NLMSG_ERROR, NLMSGERR_ATTR_OFFS } from './constants.ts';
import { align4, attr, attrNested, attrString, attrToU32, NLMSG_HDRLEN, type NlMsg, nlmsg, parseAttrs } from './message.ts';

export const NFNL_SUBSYS_NFTABLES = 10;
// NLMSG_MIN_TYPE and the next: not nf_tables messages, hence no subsystem byte.
export const NFNL_MSG_BATCH_BEGIN = 0x10;
export const NFNL_MSG_BATCH_END = 0x11;

// enum nf_tables_msg_types
export const NFT_MSG_NEWSETELEM = 12;
export const NFT_MSG_DELSETELEM = 14;
export const nftMsgType = (op: number): number => (NFNL_SUBSYS_NFTABLES << 8) | op;

// enum nft_set_elem_list_attributes
export const NFTA_SET_ELEM_LIST_TABLE = 1;
export const NFTA_SET_ELEM_LIST_SET = 2;
export const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
// enum nft_list_attributes
export const NFTA_LIST_ELEM = 1;
// enum nft_set_elem_attributes
export const NFTA_SET_ELEM_KEY = 1;
export const NFTA_SET_ELEM_DATA = 2;
// enum nft_data_attributes
export const NFTA_DATA_VALUE = 1;
export const NFTA_DATA_VERDICT = 2;
// enum nft_verdict_attributes
export const NFTA_VERDICT_CODE = 1;
export const NFTA_VERDICT_CHAIN = 2;
// Verdict codes (linux/netfilter.h, enum nft_verdicts), sent as be32.
export const NF_DROP = 0;
export const NF_ACCEPT = 1;
export const NFT_JUMP = -3;
export const NFT_GOTO = -4;

/** nfgen_family of an nf_tables table (linux/netfilter.h NFPROTO_*), by nft's family name. */
export const NFPROTO: Readonly<Record<string, number>> = { inet: 1, ip: 2, arp: 3, netdev: 5, bridge: 7, ip6: 10 };

// nft stores each field of a concatenation in whole 32-bit registers
// (NFT_REG32_SIZE), so every field is padded with zeros to a multiple of 4.
const NFT_REG32_SIZE = 4;

/** A field type the encoder knows: its size in bytes and its text-to-bytes parser. */
interface FieldType {
  readonly len: number;
  /** The field's bytes, or a reason why `s` is not a value of the type. */
  readonly parse: (s: string) => Uint8Array | string;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;
/** The protocol names nft accepts for inet_proto that weir writes; `ipv6-icmp` is how nft lists 58. */
const PROTOCOLS: Readonly<Record<string, number>> = { icmp: 1, tcp: 6, udp: 17, icmpv6: 58, 'ipv6-icmp': 58, sctp: 132 };

function address(family: 4 | 6): FieldType {
  return {
    len: family === 4 ? 4 : 16,
    parse: (s) => {
      const ip = tryParseIp(s);
      return ip?.family === family ? ip.bytes : `not an IPv${family} address`;
    },
  };
}

const FIELD_TYPES: Readonly<Record<string, FieldType>> = {
  ipv4_addr: address(4),
  ipv6_addr: address(6),
  // One byte: nft stores it in host order, which for one byte is no order at all.
  inet_proto: {
    len: 1,
    parse: (s) => {
      const n = DECIMAL.test(s) ? Number(s) : PROTOCOLS[s];
      return n !== undefined && n <= 0xff ? Uint8Array.of(n) : 'not a protocol (tcp, udp, sctp, icmp, icmpv6 or 0-255)';
    },
  },
  // Ports are big endian (network order), as the packet carries them.
  inet_service: {
    len: 2,
    parse: (s) => {
      const n = DECIMAL.test(s) ? Number(s) : NaN;
      return n <= 0xffff ? Uint8Array.of(n >> 8, n & 0xff) : 'not a port number (0-65535)';
    },
  },
};

/** How a set's or map's elements are laid out: key fields and whether a verdict goes with each. */
export interface ElementLayout {
  /** The nft type names of the key's fields, e.g. `['ipv4_addr', 'inet_proto', 'inet_service']`. */
  readonly key: readonly string[];
  readonly verdict: boolean;
}

/**
 * The layout for an nft set type (`ipv4_addr . inet_proto . inet_service`) or
 * map type (`ipv4_addr : verdict`); undefined when a field type is not one
 * this encoder knows, or a map's value is not `verdict`.
 */
export function elementLayout(type: string, isMap: boolean): ElementLayout | undefined {
  const sides = type.split(':').map((s) => s.trim());
  if (sides.length !== (isMap ? 2 : 1)) return undefined;
  if (isMap && sides[1] !== 'verdict') return undefined;
  const key = (sides[0] ?? '').split('.').map((s) => s.trim());
  if (!key.every((f) => Object.hasOwn(FIELD_TYPES, f))) return undefined;
  return { key, verdict: isMap };
}

/**
 * The key bytes of an element: one text per field (`['10.244.1.5', 'tcp',
 * '8080']`); a concatenation pads every field to 4 bytes, a single field is
 * sent at its own size. Throws RangeError for a value that is not of its type.
 */
export function encodeKey(layout: ElementLayout, parts: readonly string[]): Buffer {
  if (parts.length !== layout.key.length) {
    throw new RangeError(`key has ${parts.length} field(s), the type has ${layout.key.length} (${layout.key.join(' . ')})`);
  }
  const concat = layout.key.length > 1;
  const chunks = layout.key.map((name, i) => {
    const type = FIELD_TYPES[name];
    if (!type) throw new RangeError(`unsupported type ${name}`);
    const text = parts[i] ?? '';
    const bytes = type.parse(text);
    if (typeof bytes === 'string') throw new RangeError(`${JSON.stringify(text)} is ${bytes}`);
    const out = Buffer.alloc(concat ? Math.ceil(type.len / NFT_REG32_SIZE) * NFT_REG32_SIZE : type.len);
    out.set(bytes);
    return out;
  });
  return Buffer.concat(chunks);
}

/** A verdict as the kernel takes it: the code, and the chain for jump and goto. */
export interface Verdict {
  readonly code: number;
  readonly chain?: string;
}

// NFT_CHAIN_MAXNAMELEN is 256 including the NUL.
const CHAIN_RE = /^[^\s\0]{1,255}$/;

/** `accept`, `drop`, `jump CHAIN` or `goto CHAIN`; throws RangeError for anything else. */
export function parseVerdict(text: string): Verdict {
  const [word, chain, ...rest] = text.trim().split(/\s+/);
  if (rest.length === 0) {
    if (word === 'accept' && chain === undefined) return { code: NF_ACCEPT };
    if (word === 'drop' && chain === undefined) return { code: NF_DROP };
    if ((word === 'jump' || word === 'goto') && chain !== undefined && CHAIN_RE.test(chain) && Buffer.byteLength(chain) <= 255) {
      return { code: word === 'jump' ? NFT_JUMP : NFT_GOTO, chain };
    }
  }
  throw new RangeError(`${JSON.stringify(text)} is not a verdict (accept, drop, jump CHAIN, goto CHAIN)`);
}

function be32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
}

/** One NFTA_LIST_ELEM: the key and, for a verdict map's add, the verdict. */
export function encodeElement(key: Uint8Array, verdict?: Verdict): Buffer {
  const parts = [attrNested(NFTA_SET_ELEM_KEY, attr(NFTA_DATA_VALUE, key))];
  if (verdict) {
    const v = [attr(NFTA_VERDICT_CODE, be32(verdict.code))];
    if (verdict.chain !== undefined) v.push(attrString(NFTA_VERDICT_CHAIN, verdict.chain));
    parts.push(attrNested(NFTA_SET_ELEM_DATA, attrNested(NFTA_DATA_VERDICT, ...v)));
  }
  return attrNested(NFTA_LIST_ELEM, ...parts);
}

/**
 * The most element bytes one message carries: NFTA_SET_ELEM_LIST_ELEMENTS is
 * one attribute, and an attribute's length is a u16 that counts its header.
 */
export const MAX_ELEMENTS_BYTES = 0xffff - 4;

/** One message's worth of element changes: same table, set and verb. */
export interface SetElemMessage {
  readonly verb: 'add' | 'delete';
  /** nft's family name of the table: inet, ip, ip6, ... */
  readonly family: string;
  readonly table: string;
  readonly set: string;
  /** encodeElement() results, at most MAX_ELEMENTS_BYTES together. */
  readonly elements: readonly Buffer[];
}

/** A message before framing: the socket gives it its sequence number. */
export interface NlRequest {
  readonly type: number;
  readonly flags: number;
  readonly body: Buffer;
}

const nfgenmsg = (family: number, resId: number): Buffer => Buffer.of(family, NFNETLINK_V0, resId >> 8, resId & 0xff);

function setElemHead(m: SetElemMessage): Buffer {
  const family = NFPROTO[m.family];
  if (family === undefined) throw new RangeError(`unknown nft family ${JSON.stringify(m.family)}`);
  return Buffer.concat([nfgenmsg(family, 0), attrString(NFTA_SET_ELEM_LIST_TABLE, m.table), attrString(NFTA_SET_ELEM_LIST_SET, m.set)]);
}

/**
 * NEWSETELEM or DELSETELEM, always acked. Adds carry NLM_F_CREATE and not
 * NLM_F_EXCL: adding an element that exists is no error (as `nft add element`).
 */
export function encodeSetElem(m: SetElemMessage): NlRequest {
  const size = m.elements.reduce((n, e) => n + e.length, 0);
  if (m.elements.length === 0 || size > MAX_ELEMENTS_BYTES)
    throw new RangeError(`a set element message carries 1 to ${MAX_ELEMENTS_BYTES} bytes of elements, not ${size}`);
  const body = Buffer.concat([setElemHead(m), attrNested(NFTA_SET_ELEM_LIST_ELEMENTS, ...m.elements)]);
  return m.verb === 'add'
    ? { type: nftMsgType(NFT_MSG_NEWSETELEM), flags: NLM_F_ACK | NLM_F_CREATE, body }
    : { type: nftMsgType(NFT_MSG_DELSETELEM), flags: NLM_F_ACK, body };
}

/**
 * Which of `m.elements` starts at `offset` (from the message's nlmsghdr, as
 * NLMSGERR_ATTR_OFFS counts), or undefined when the offset is elsewhere
 * (e.g. at the set name, for a set that does not exist).
 */
export function elementAtOffset(m: SetElemMessage, offset: number): number | undefined {
  // The nlmsghdr, the head, and the header of the ELEMENTS nest come first.
  let at = NLMSG_HDRLEN + setElemHead(m).length + 4;
  for (let i = 0; i < m.elements.length; i++) {
    if (at === offset) return i;
    at += m.elements[i]?.length ?? 0;
  }
  return undefined;
}

/** The batch as one datagram: BEGIN with sequence number `seq`, the requests from seq+1, END. */
export function encodeBatch(requests: readonly NlRequest[], seq: number): Buffer {
  // res_id carries the subsystem here, in network order (nfnetlink.c still
  // accepts host order from old nft, but that is a workaround).
  const marker = nfgenmsg(AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  return Buffer.concat([
    nlmsg(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, marker),
    ...requests.map((r, i) => nlmsg(r.type, NLM_F_REQUEST | r.flags, seq + 1 + i, r.body)),
    nlmsg(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq + 1 + requests.length, marker),
  ]);
}

/**
 * NLMSGERR_ATTR_OFFS of an NLMSG_ERROR reply: where in the request the
 * offending attribute starts, when the kernel named one. (parseError reads
 * the same TLVs for the message text.)
 */
export function errorOffset(reply: NlMsg): number | undefined {
  const p = reply.payload;
  if (reply.type !== NLMSG_ERROR || !(reply.flags & NLM_F_ACK_TLVS) || p.length < 8) return undefined;
  const echoedLen = reply.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : p.readUInt32LE(4);
  return attrToU32(parseAttrs(p.subarray(4 + align4(echoedLen))).get(NLMSGERR_ATTR_OFFS));
}

// ---- the ruleset generation ----
// nf_tables counts committed transactions per network namespace (its
// base_seq); NFT_MSG_GETGEN reads it. Every batch the kernel commits moves
// it, whoever sent it, and a failed batch does not, so an unchanged
// generation means an unchanged ruleset.
export const NFT_MSG_NEWGEN = 15;
export const NFT_MSG_GETGEN = 16;
export const NFTA_GEN_ID = 1;

/** The GETGEN request (acked: the NEWGEN reply comes before the ack). */
export function encodeGetGen(): NlRequest {
  return { type: nftMsgType(NFT_MSG_GETGEN), flags: 0, body: nfgenmsg(AF_UNSPEC, 0) };
}

/** NFTA_GEN_ID of a NEWGEN reply (big-endian u32 after the nfgenmsg), or undefined. */
export function parseGenId(reply: NlMsg): number | undefined {
  if (reply.type !== nftMsgType(NFT_MSG_NEWGEN) || reply.payload.length < 4) return undefined;
  const id = parseAttrs(reply.payload.subarray(4)).get(NFTA_GEN_ID);
  return id && id.length >= 4 ? id.readUInt32BE(0) : undefined;
}

// ---- one table's identity ----
// NFT_MSG_GETTABLE for one table answers NEWTABLE with its handle (new for
// every table created, so a table deleted and made again has another) and
// its use count: every chain, set, map, stateful object and flowtable in it.
export const NFT_MSG_NEWTABLE = 0;
export const NFT_MSG_GETTABLE = 1;
export const NFTA_TABLE_NAME = 1;
export const NFTA_TABLE_USE = 3;
export const NFTA_TABLE_HANDLE = 4;

export function encodeGetTable(family: string, table: string): NlRequest {
  const f = NFPROTO[family];
  if (f === undefined) throw new RangeError(`unknown nft family ${JSON.stringify(family)}`);
  return { type: nftMsgType(NFT_MSG_GETTABLE), flags: 0, body: Buffer.concat([nfgenmsg(f, 0), attrString(NFTA_TABLE_NAME, table)]) };
}

export interface TableInfo {
  readonly handle: bigint;
  readonly use: number;
}

/** Handle and use count of a NEWTABLE reply, or undefined. */
export function parseTableInfo(reply: NlMsg): TableInfo | undefined {
  if (reply.type !== nftMsgType(NFT_MSG_NEWTABLE) || reply.payload.length < 4) return undefined;
  const attrs = parseAttrs(reply.payload.subarray(4));
  const handle = attrs.get(NFTA_TABLE_HANDLE);
  const use = attrs.get(NFTA_TABLE_USE);
  if (!handle || handle.length < 8 || !use || use.length < 4) return undefined;
  return { handle: handle.readBigUInt64BE(0), use: use.readUInt32BE(0) };
}
