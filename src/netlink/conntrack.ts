// ctnetlink (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_CTNETLINK): the conntrack
// table as messages. Pure byte encoding and decoding, no sockets; the effects
// live in conntrack-handle.ts.
//
// Layout, from linux/netfilter/nfnetlink.h and nfnetlink_conntrack.h:
//   nlmsghdr, type = NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_*
//   struct nfgenmsg { u8 nfgen_family (AF_*); u8 version (NFNETLINK_V0); be16 res_id }
//   then CTA_* attributes. Unlike rtnetlink, every integer in an attribute
//   payload is big-endian (addresses, ports, u16 zone, u32 id/mark/status/
//   timeout); the attribute headers themselves stay in host order.
//
//   CTA_TUPLE_ORIG / CTA_TUPLE_REPLY (nested)
//     CTA_TUPLE_IP (nested)    CTA_IP_V4_SRC/V4_DST (4 bytes) | CTA_IP_V6_SRC/V6_DST (16)
//     CTA_TUPLE_PROTO (nested) CTA_PROTO_NUM (u8), CTA_PROTO_SRC_PORT/DST_PORT (be16),
//                              or for ICMP: CTA_PROTO_ICMP_ID (be16), _TYPE (u8), _CODE (u8)
//     CTA_TUPLE_ZONE (be16, only for a zone bound to one direction)
//
// Kernel behaviour worth knowing (net/netfilter/nf_conntrack_netlink.c):
// - IPCTNL_MSG_CT_DELETE without CTA_TUPLE_ORIG and CTA_TUPLE_REPLY FLUSHES the
//   whole table of the namespace. encodeCtDelete always sends a tuple, and
//   there is deliberately no encoder for a tuple-less delete.
// - A delete looks the tuple up in the hash of both directions, in the zone of
//   CTA_ZONE (default zone 0). With CTA_ID as well, it deletes only an entry
//   with that id and answers ENOENT otherwise: "exactly the entry I listed",
//   not a newer connection that happens to reuse the tuple.
// - The tuple is parsed for the address family of nfgen_family, so a delete
//   must carry the tuple's own family, not AF_UNSPEC.
// - A dump (IPCTNL_MSG_CT_GET + NLM_F_DUMP) with nfgen_family AF_UNSPEC lists
//   every family; AF_INET/AF_INET6 lists that family only. Entries come back
//   as IPCTNL_MSG_CT_NEW messages. A dump only sees the socket's namespace.
// - CTA_ZONE is emitted only for a non-default zone.

import { InternalError } from '../errors.ts';
import { formatIp, parseIp } from '../ip.ts';
import { AF_INET, AF_INET6, AF_UNSPEC } from './constants.ts';
import { attr, attrNested, attrU8, parseAttrs } from './message.ts';

export const NETLINK_NETFILTER = 12;
export const NFNETLINK_V0 = 0;
export const NFNL_SUBSYS_CTNETLINK = 1;
const NFGENMSG_LEN = 4;

export const IPCTNL_MSG_CT_NEW = 0;
export const IPCTNL_MSG_CT_GET = 1;
export const IPCTNL_MSG_CT_DELETE = 2;

/** The nlmsg_type of a ctnetlink message: subsystem in the high byte, operation in the low. */
export const ctMsgType = (op: number): number => (NFNL_SUBSYS_CTNETLINK << 8) | op;
export const CT_NEW = ctMsgType(IPCTNL_MSG_CT_NEW);
export const CT_GET = ctMsgType(IPCTNL_MSG_CT_GET);
export const CT_DELETE = ctMsgType(IPCTNL_MSG_CT_DELETE);

// enum ctattr_type
export const CTA_TUPLE_ORIG = 1;
export const CTA_TUPLE_REPLY = 2;
export const CTA_STATUS = 3;
export const CTA_PROTOINFO = 4;
export const CTA_TIMEOUT = 7;
export const CTA_MARK = 8;
export const CTA_ID = 12;
export const CTA_ZONE = 18;
// enum ctattr_tuple
export const CTA_TUPLE_IP = 1;
export const CTA_TUPLE_PROTO = 2;
export const CTA_TUPLE_ZONE = 3;
// enum ctattr_ip
export const CTA_IP_V4_SRC = 1;
export const CTA_IP_V4_DST = 2;
export const CTA_IP_V6_SRC = 3;
export const CTA_IP_V6_DST = 4;
// enum ctattr_l4proto
export const CTA_PROTO_NUM = 1;
export const CTA_PROTO_SRC_PORT = 2;
export const CTA_PROTO_DST_PORT = 3;
export const CTA_PROTO_ICMP_ID = 4;
export const CTA_PROTO_ICMP_TYPE = 5;
export const CTA_PROTO_ICMP_CODE = 6;
export const CTA_PROTO_ICMPV6_ID = 7;
export const CTA_PROTO_ICMPV6_TYPE = 8;
export const CTA_PROTO_ICMPV6_CODE = 9;
// enum ctattr_protoinfo / ctattr_protoinfo_tcp
export const CTA_PROTOINFO_TCP = 1;
export const CTA_PROTOINFO_TCP_STATE = 1;

// IP protocol numbers weir meets in tuples.
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;
/** Protocols whose tuple is identified by ports: the kernel refuses a tuple of these without both. */
const PORT_PROTOS: ReadonlySet<number> = new Set([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_DCCP, IPPROTO_SCTP, IPPROTO_UDPLITE]);

// enum ip_conntrack_status (linux/netfilter/nf_conntrack_common.h), the bits worth reading.
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;
export const IPS_DYING = 1 << 9;
export const IPS_OFFLOAD = 1 << 14;

/** enum tcp_conntrack (linux/netfilter/nf_conntrack_tcp.h), indexed by CTA_PROTOINFO_TCP_STATE. */
export const TCP_CONNTRACK_STATES = [
  'NONE',
  'SYN_SENT',
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT',
  'CLOSE_WAIT',
  'LAST_ACK',
  'TIME_WAIT',
  'CLOSE',
  'SYN_SENT2',
] as const;

/** One direction of a connection, as conntrack keys it. */
export interface CtTuple {
  family: 4 | 6;
  /** Canonical address text (formatIp). */
  src: string;
  dst: string;
  /** IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP, 58 ICMPv6…). */
  proto: number;
  /** Present for port protocols (TCP, UDP, SCTP, DCCP, UDP-Lite); GRE keys too. */
  sport?: number;
  dport?: number;
  /** ICMP / ICMPv6 echo-style tuples: identifier, type, code instead of ports. */
  icmp?: { id: number; type: number; code: number };
}

export interface CtEntry {
  orig: CtTuple;
  reply: CtTuple;
  /** The kernel's id of the entry (CTA_ID); a delete carrying it hits only this entry. */
  id?: number;
  mark?: number;
  /** Conntrack zone; undefined for the default zone 0. */
  zone?: number;
  /** IPS_* bits. */
  status?: number;
  /** Seconds left before the entry expires. */
  timeout?: number;
  /** TCP only: index into TCP_CONNTRACK_STATES (3 = ESTABLISHED). */
  tcpState?: number;
}

const familyToAf = (f: 4 | 6): number => (f === 4 ? AF_INET : AF_INET6);

function u16be(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}
function u32be(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

/** struct nfgenmsg: family, NFNETLINK_V0, res_id 0. */
export function nfgenmsg(family: 0 | 4 | 6): Buffer {
  return Buffer.of(family === 0 ? AF_UNSPEC : familyToAf(family), NFNETLINK_V0, 0, 0);
}

function checkInt(what: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new InternalError(`conntrack tuple: bad ${what} ${String(v)}`);
  return v;
}

function address(family: 4 | 6, what: string, s: string): Uint8Array {
  const ip = parseIp(s);
  if (ip.family !== family) throw new InternalError(`conntrack tuple: ${what} ${s} is not IPv${family}`);
  return ip.bytes;
}

/** The nested CTA_TUPLE_ORIG/CTA_TUPLE_REPLY attribute for `t`. Validates everything the kernel would refuse. */
export function encodeTuple(type: number, t: CtTuple): Buffer {
  if (t.family !== 4 && t.family !== 6) throw new InternalError(`conntrack tuple: bad family ${String(t.family)}`);
  const [srcType, dstType] = t.family === 4 ? [CTA_IP_V4_SRC, CTA_IP_V4_DST] : [CTA_IP_V6_SRC, CTA_IP_V6_DST];
  const ip = attrNested(CTA_TUPLE_IP, attr(srcType, address(t.family, 'src', t.src)), attr(dstType, address(t.family, 'dst', t.dst)));
  const proto: Buffer[] = [attrU8(CTA_PROTO_NUM, checkInt('protocol', t.proto, 255))];
  const icmpProto = t.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  if (t.proto === icmpProto) {
    // icmp_nlattr_to_tuple / icmpv6_nlattr_to_tuple want all three.
    if (!t.icmp) throw new InternalError('conntrack tuple: an ICMP tuple needs icmp {id, type, code}');
    const [idT, typeT, codeT] =
      t.family === 4 ? [CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE] : [CTA_PROTO_ICMPV6_ID, CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE];
    proto.push(
      attr(idT, u16be(checkInt('icmp id', t.icmp.id, 0xffff))),
      attrU8(typeT, checkInt('icmp type', t.icmp.type, 255)),
      attrU8(codeT, checkInt('icmp code', t.icmp.code, 255)),
    );
  } else {
    if (PORT_PROTOS.has(t.proto) && (t.sport === undefined || t.dport === undefined)) {
      throw new InternalError(`conntrack tuple: protocol ${t.proto} needs sport and dport`);
    }
    if (t.sport !== undefined) proto.push(attr(CTA_PROTO_SRC_PORT, u16be(checkInt('sport', t.sport, 0xffff))));
    if (t.dport !== undefined) proto.push(attr(CTA_PROTO_DST_PORT, u16be(checkInt('dport', t.dport, 0xffff))));
  }
  return attrNested(type, ip, attrNested(CTA_TUPLE_PROTO, ...proto));
}

/** Body of IPCTNL_MSG_CT_GET with NLM_F_DUMP: every entry of `family`, or of all families. */
export function encodeCtDump(family?: 4 | 6): Buffer {
  return nfgenmsg(family ?? 0);
}

const isEntry = (x: CtEntry | CtTuple): x is CtEntry => 'orig' in x;

/**
 * Body of IPCTNL_MSG_CT_DELETE for one connection: its original tuple, its
 * zone when not the default, and, given a listed entry with its id, CTA_ID so
 * that only that very entry can go.
 */
export function encodeCtDelete(target: CtEntry | CtTuple): Buffer {
  const orig = isEntry(target) ? target.orig : target;
  const parts: Buffer[] = [nfgenmsg(orig.family), encodeTuple(CTA_TUPLE_ORIG, orig)];
  if (isEntry(target)) {
    if (target.zone !== undefined) parts.push(attr(CTA_ZONE, u16be(checkInt('zone', target.zone, 0xffff))));
    if (target.id !== undefined) parts.push(attr(CTA_ID, u32be(checkInt('id', target.id, 0xffffffff))));
  }
  return Buffer.concat(parts);
}

const be16 = (b: Buffer | undefined): number | undefined => (b && b.length >= 2 ? b.readUInt16BE(0) : undefined);
const be32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32BE(0) : undefined);
const u8 = (b: Buffer | undefined): number | undefined => (b && b.length >= 1 ? b.readUInt8(0) : undefined);

/** A CTA_TUPLE_* payload; undefined when it lacks addresses of `family` or a protocol. */
export function decodeTuple(family: 4 | 6, payload: Buffer): CtTuple | undefined {
  const tb = parseAttrs(payload);
  const ipAttrs = tb.get(CTA_TUPLE_IP);
  const protoAttrs = tb.get(CTA_TUPLE_PROTO);
  if (!ipAttrs || !protoAttrs) return undefined;
  const ip = parseAttrs(ipAttrs);
  const len = family === 4 ? 4 : 16;
  const src = ip.get(family === 4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC);
  const dst = ip.get(family === 4 ? CTA_IP_V4_DST : CTA_IP_V6_DST);
  if (src?.length !== len || dst?.length !== len) return undefined;
  const pr = parseAttrs(protoAttrs);
  const proto = u8(pr.get(CTA_PROTO_NUM));
  if (proto === undefined) return undefined;
  const t: CtTuple = { family, src: formatIp(src), dst: formatIp(dst), proto };
  const sport = be16(pr.get(CTA_PROTO_SRC_PORT));
  const dport = be16(pr.get(CTA_PROTO_DST_PORT));
  if (sport !== undefined) t.sport = sport;
  if (dport !== undefined) t.dport = dport;
  const [idT, typeT, codeT] =
    family === 4 ? [CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE] : [CTA_PROTO_ICMPV6_ID, CTA_PROTO_ICMPV6_TYPE, CTA_PROTO_ICMPV6_CODE];
  const id = be16(pr.get(idT));
  const type = u8(pr.get(typeT));
  const code = u8(pr.get(codeT));
  if (id !== undefined && type !== undefined && code !== undefined) t.icmp = { id, type, code };
  return t;
}

/**
 * One IPCTNL_MSG_CT_NEW message of a dump (payload after the nlmsghdr, i.e.
 * starting with nfgenmsg). Undefined for a family other than IPv4/IPv6 or a
 * message without both tuples.
 */
export function decodeCtEntry(payload: Buffer): CtEntry | undefined {
  if (payload.length < NFGENMSG_LEN) return undefined;
  const af = payload.readUInt8(0);
  const family = af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
  if (!family) return undefined;
  const tb = parseAttrs(payload.subarray(NFGENMSG_LEN));
  const origAttrs = tb.get(CTA_TUPLE_ORIG);
  const replyAttrs = tb.get(CTA_TUPLE_REPLY);
  const orig = origAttrs && decodeTuple(family, origAttrs);
  const reply = replyAttrs && decodeTuple(family, replyAttrs);
  if (!orig || !reply) return undefined;
  const e: CtEntry = { orig, reply };
  const id = be32(tb.get(CTA_ID));
  const mark = be32(tb.get(CTA_MARK));
  const zone = be16(tb.get(CTA_ZONE));
  const status = be32(tb.get(CTA_STATUS));
  const timeout = be32(tb.get(CTA_TIMEOUT));
  if (id !== undefined) e.id = id;
  if (mark !== undefined) e.mark = mark;
  if (zone !== undefined && zone !== 0) e.zone = zone;
  if (status !== undefined) e.status = status;
  if (timeout !== undefined) e.timeout = timeout;
  const protoinfo = tb.get(CTA_PROTOINFO);
  const tcp = protoinfo && parseAttrs(protoinfo).get(CTA_PROTOINFO_TCP);
  const tcpState = tcp && u8(parseAttrs(tcp).get(CTA_PROTOINFO_TCP_STATE));
  if (tcpState !== undefined) e.tcpState = tcpState;
  return e;
}

/** `tcp 10.0.0.1:40000 -> 10.0.0.2:80`, for logs and error messages. */
export function formatTuple(t: CtTuple): string {
  const host = (a: string, p: number | undefined) => (p === undefined ? a : t.family === 6 ? `[${a}]:${p}` : `${a}:${p}`);
  const name = t.proto === IPPROTO_TCP ? 'tcp' : t.proto === IPPROTO_UDP ? 'udp' : t.proto === IPPROTO_SCTP ? 'sctp' : `proto ${t.proto}`;
  const icmp = t.icmp ? ` (icmp type ${t.icmp.type} code ${t.icmp.code} id ${t.icmp.id})` : '';
  return `${name} ${host(t.src, t.sport)} -> ${host(t.dst, t.dport)}${icmp}`;
}
