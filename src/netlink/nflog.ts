// nfnetlink_log (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_ULOG): the packets
// that nftables rules log with `log prefix "..." group N`, as messages. Pure
// byte encoding and decoding, no sockets; the effects live in nflog-handle.ts,
// and the logged packet's own headers are read by src/packet/headers.ts.
//
// Layout, from linux/netfilter/nfnetlink.h and nfnetlink_log.h:
//   nlmsghdr, type = NFNL_SUBSYS_ULOG (4) << 8 | NFULNL_MSG_PACKET (0) | NFULNL_MSG_CONFIG (1)
//   struct nfgenmsg { u8 nfgen_family; u8 version (NFNETLINK_V0); be16 res_id = group number }
//   then NFULA_* attributes. As in ctnetlink, integers inside attribute
//   payloads are big-endian (the attribute headers stay in host order).
//
// Kernel behaviour worth knowing (net/netfilter/nfnetlink_log.c, 6.x):
// - A group is an "instance" of the socket's network namespace, owned by the
//   netlink portid that sent NFULNL_CFG_CMD_BIND. Any config message about a
//   group owned by another socket is refused with EPERM, so a second socket
//   binding a bound group gets EPERM, not EBUSY (EBUSY is only for the owner
//   binding the same group twice). Closing the socket destroys its instances
//   (NETLINK_URELEASE), so the group is free again at once.
// - PF_BIND/PF_UNBIND are not needed: nft's `log group N` names the ULOG
//   logger type itself, and nfnetlink_log registers that type for every
//   family when it loads. PF_BIND would instead make nfnetlink_log the
//   namespace's *default* logger of that family, hijacking every plain `log`
//   rule (no group) into group 0. So weir never sends it.
// - A new instance starts with copy mode PACKET and range 0xffff-4, a queue
//   threshold of 100 packets and a flush timeout of 1 s: without QTHRESH and
//   TIMEOUT, a lone packet reaches userspace one second late. Batched packets
//   arrive as one multipart datagram closed by NLMSG_DONE.
// - NFULA_CFG_TIMEOUT/QTHRESH/NLBUFSIZ are read as be32 even though the
//   policy says NLA_U32; NFULA_CFG_FLAGS is be16. NLBUFSIZ outside
//   [NLMSG_GOODSIZE, 131072] is silently ignored (the ERANGE is dropped).
// - NFULA_TIMESTAMP is only sent for the hooks up to FORWARD (prerouting,
//   input, forward), never for output/postrouting.
// - The packet message's nfgen_family is the hook's protocol family
//   (NFPROTO_IPV4 = 2, NFPROTO_IPV6 = 10 for ip/ip6/inet tables; 7 bridge, 5
//   netdev) and the payload starts at the network header.

import { InternalError } from '../errors.ts';
import { AF_INET, AF_INET6, AF_UNSPEC } from './constants.ts';
import { attr, attrToString, nlmsg, parseAttrs, parseMessages } from './message.ts';

export const NFNL_SUBSYS_ULOG = 4;
export const NFNETLINK_V0 = 0;
const NFGENMSG_LEN = 4;

// enum nfulnl_msg_types
export const NFULNL_MSG_PACKET = 0;
export const NFULNL_MSG_CONFIG = 1;
export const NFLOG_PACKET = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
export const NFLOG_CONFIG = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;

// enum nfulnl_attr_type
export const NFULA_PACKET_HDR = 1;
export const NFULA_MARK = 2;
export const NFULA_TIMESTAMP = 3;
export const NFULA_IFINDEX_INDEV = 4;
export const NFULA_IFINDEX_OUTDEV = 5;
export const NFULA_IFINDEX_PHYSINDEV = 6;
export const NFULA_IFINDEX_PHYSOUTDEV = 7;
export const NFULA_HWADDR = 8;
export const NFULA_PAYLOAD = 9;
export const NFULA_PREFIX = 10;
export const NFULA_UID = 11;
export const NFULA_SEQ = 12;
export const NFULA_SEQ_GLOBAL = 13;
export const NFULA_GID = 14;
export const NFULA_HWTYPE = 15;
export const NFULA_HWHEADER = 16;
export const NFULA_HWLEN = 17;
export const NFULA_CT = 18;
export const NFULA_CT_INFO = 19;

// enum nfulnl_msg_config_cmds
export const NFULNL_CFG_CMD_NONE = 0;
export const NFULNL_CFG_CMD_BIND = 1;
export const NFULNL_CFG_CMD_UNBIND = 2;
export const NFULNL_CFG_CMD_PF_BIND = 3;
export const NFULNL_CFG_CMD_PF_UNBIND = 4;

// enum nfulnl_attr_config
export const NFULA_CFG_CMD = 1;
export const NFULA_CFG_MODE = 2;
export const NFULA_CFG_NLBUFSIZ = 3;
export const NFULA_CFG_TIMEOUT = 4;
export const NFULA_CFG_QTHRESH = 5;
export const NFULA_CFG_FLAGS = 6;

export const NFULNL_COPY_NONE = 0;
export const NFULNL_COPY_META = 1;
export const NFULNL_COPY_PACKET = 2;
/** The largest copy range the kernel accepts (0xffff minus an attribute header). */
export const NFULNL_COPY_RANGE_MAX = 0xffff - 4;

export const NFULNL_CFG_F_SEQ = 0x1;
export const NFULNL_CFG_F_SEQ_GLOBAL = 0x2;
export const NFULNL_CFG_F_CONNTRACK = 0x4;

/** The largest NLBUFSIZ the kernel accepts (the smallest is NLMSG_GOODSIZE, its default). */
export const NFULNL_NLBUFSIZ_MAX = 131072;

// enum nf_inet_hooks (and NF_NETDEV_INGRESS/EGRESS = 0/1 for netdev tables)
export const NF_INET_PRE_ROUTING = 0;
export const NF_INET_LOCAL_IN = 1;
export const NF_INET_FORWARD = 2;
export const NF_INET_LOCAL_OUT = 3;
export const NF_INET_POST_ROUTING = 4;
/** nft's hook names, for ip/ip6/inet/bridge tables. */
export const INET_HOOK_NAMES = ['prerouting', 'input', 'forward', 'output', 'postrouting'] as const;

/** A hook number as nft names it (`hook3` when unknown). */
export const hookName = (hook: number): string => INET_HOOK_NAMES[hook] ?? `hook${hook}`;

const checkU16 = (what: string, v: number): number => {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new InternalError(`nflog: bad ${what} ${String(v)}`);
  return v;
};
const checkU32 = (what: string, v: number): number => {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new InternalError(`nflog: bad ${what} ${String(v)}`);
  return v;
};

/** struct nfgenmsg for nfnetlink_log: the family and the group in res_id (big-endian). */
export function nflogGenmsg(group: number, family = AF_UNSPEC): Buffer {
  const b = Buffer.alloc(NFGENMSG_LEN);
  b.writeUInt8(family, 0);
  b.writeUInt8(NFNETLINK_V0, 1);
  b.writeUInt16BE(checkU16('group', group), 2);
  return b;
}

const be32Attr = (type: number, what: string, v: number): Buffer => {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(checkU32(what, v));
  return attr(type, p);
};

export interface NflogConfig {
  /** NFULNL_CFG_CMD_*; sent first, so a BIND may carry the settings below in the same message. */
  command?: number;
  /** Copy mode (NFULNL_COPY_*) and, for PACKET, how many bytes of each packet to copy (0 = the maximum). */
  copy?: { mode: number; range: number };
  /** Size of the kernel's batching skb, bytes (NLMSG_GOODSIZE..NFULNL_NLBUFSIZ_MAX; others are ignored by the kernel). */
  nlbufsiz?: number;
  /** Flush timeout, in 1/100 s: how long a partial batch waits. */
  timeout?: number;
  /** Queue threshold: a batch is sent once it holds this many packets. */
  qthreshold?: number;
  /** NFULNL_CFG_F_* */
  flags?: number;
}

/**
 * The body (nfgenmsg + attributes) of an NFULNL_MSG_CONFIG message for
 * `group`. The kernel ignores the family for the group commands, so it is
 * AF_UNSPEC; attributes go in the order the kernel applies them.
 */
export function encodeNflogConfig(group: number, cfg: NflogConfig): Buffer {
  const parts: Buffer[] = [nflogGenmsg(group, AF_UNSPEC)];
  if (cfg.command !== undefined) parts.push(attr(NFULA_CFG_CMD, Uint8Array.of(checkU16('command', cfg.command) & 0xff)));
  if (cfg.copy) {
    // struct nfulnl_msg_config_mode { be32 copy_range; u8 copy_mode; u8 _pad } (packed: 6 bytes)
    const p = Buffer.alloc(6);
    p.writeUInt32BE(checkU32('copy range', cfg.copy.range), 0);
    p.writeUInt8(cfg.copy.mode & 0xff, 4);
    parts.push(attr(NFULA_CFG_MODE, p));
  }
  if (cfg.nlbufsiz !== undefined) parts.push(be32Attr(NFULA_CFG_NLBUFSIZ, 'nlbufsiz', cfg.nlbufsiz));
  if (cfg.timeout !== undefined) parts.push(be32Attr(NFULA_CFG_TIMEOUT, 'timeout', cfg.timeout));
  if (cfg.qthreshold !== undefined) parts.push(be32Attr(NFULA_CFG_QTHRESH, 'qthreshold', cfg.qthreshold));
  if (cfg.flags !== undefined) {
    const p = Buffer.alloc(2);
    p.writeUInt16BE(checkU16('flags', cfg.flags));
    parts.push(attr(NFULA_CFG_FLAGS, p));
  }
  return Buffer.concat(parts);
}

/** BIND: this socket becomes the receiver of `group` in its namespace. */
export const encodeNflogBind = (group: number): Buffer => encodeNflogConfig(group, { command: NFULNL_CFG_CMD_BIND });
/** UNBIND: release `group` (closing the socket does the same). */
export const encodeNflogUnbind = (group: number): Buffer => encodeNflogConfig(group, { command: NFULNL_CFG_CMD_UNBIND });
/** Copy mode PACKET: the first `range` bytes of each packet (from the network header). */
export const encodeNflogCopyPacket = (group: number, range: number): Buffer => encodeNflogConfig(group, { copy: { mode: NFULNL_COPY_PACKET, range } });

/** A whole config request, ready to send. */
export const nflogConfigMessage = (flags: number, seq: number, body: Buffer): Buffer => nlmsg(NFLOG_CONFIG, flags, seq, body);

// ---- packets ----

export interface NflogPacket {
  /** The nflog group (res_id). */
  group: number;
  /** The rule's `log prefix`, '' when it had none. */
  prefix: string;
  /** The netfilter hook number (NF_INET_*; see hookName). */
  hook: number;
  /** Input / output interface index, when the hook has one. */
  indev?: number;
  outdev?: number;
  /** When the packet was received (only for prerouting, input and forward). */
  timestamp?: Date;
  /** IP version, from the message family (or the link-layer protocol for bridge/netdev tables). */
  family: 4 | 6 | undefined;
  /** nfgen_family as sent: the protocol family of the table's hook (NFPROTO_*). */
  nfproto: number;
  /** Link-layer protocol (ETH_P_*), e.g. 0x0800 for IPv4. */
  hwProtocol: number;
  mark?: number;
  /** Owner of the local socket that sent the packet, for locally generated packets. */
  uid?: number;
  gid?: number;
  /** The copied bytes of the packet, starting at the network header (up to the copy range). */
  payload: Buffer;
}

const ETH_P_IP = 0x0800;
const ETH_P_IPV6 = 0x86dd;
const be32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32BE(0) : undefined);

function familyOf(nfproto: number, hwProtocol: number): 4 | 6 | undefined {
  if (nfproto === AF_INET) return 4;
  if (nfproto === AF_INET6) return 6;
  if (hwProtocol === ETH_P_IP) return 4;
  if (hwProtocol === ETH_P_IPV6) return 6;
  return undefined;
}

/**
 * Decodes the payload (nfgenmsg + attributes) of one NFULNL_MSG_PACKET
 * message. Returns undefined for a message too short to hold the nfgenmsg or
 * without NFULA_PACKET_HDR. The payload is copied, so the result does not
 * keep the receive buffer alive or change when it is reused.
 */
export function decodeNflogPacket(body: Buffer): NflogPacket | undefined {
  if (body.length < NFGENMSG_LEN) return undefined;
  const nfproto = body.readUInt8(0);
  const group = body.readUInt16BE(2);
  const a = parseAttrs(body.subarray(NFGENMSG_LEN));
  const hdr = a.get(NFULA_PACKET_HDR);
  if (!hdr || hdr.length < 4) return undefined;
  const hwProtocol = hdr.readUInt16BE(0);
  const pkt: NflogPacket = {
    group,
    prefix: attrToString(a.get(NFULA_PREFIX)) ?? '',
    hook: hdr.readUInt8(2),
    family: familyOf(nfproto, hwProtocol),
    nfproto,
    hwProtocol,
    payload: Buffer.from(a.get(NFULA_PAYLOAD) ?? Buffer.alloc(0)),
  };
  const indev = be32(a.get(NFULA_IFINDEX_INDEV));
  if (indev !== undefined) pkt.indev = indev;
  const outdev = be32(a.get(NFULA_IFINDEX_OUTDEV));
  if (outdev !== undefined) pkt.outdev = outdev;
  const ts = a.get(NFULA_TIMESTAMP);
  if (ts && ts.length >= 16) {
    const sec = ts.readBigUInt64BE(0);
    const usec = ts.readBigUInt64BE(8);
    pkt.timestamp = new Date(Number(sec) * 1000 + Math.floor(Number(usec) / 1000));
  }
  const mark = be32(a.get(NFULA_MARK));
  if (mark !== undefined) pkt.mark = mark;
  const uid = be32(a.get(NFULA_UID));
  if (uid !== undefined) pkt.uid = uid;
  const gid = be32(a.get(NFULA_GID));
  if (gid !== undefined) pkt.gid = gid;
  return pkt;
}

/**
 * Every packet of one datagram from an nflog socket (a batch is several
 * messages closed by NLMSG_DONE). Other messages (ACKs, errors, DONE) are
 * skipped; use parseMessages for those.
 */
export function decodeNflogDatagram(buf: Buffer): NflogPacket[] {
  const out: NflogPacket[] = [];
  for (const m of parseMessages(buf)) {
    if (m.type !== NFLOG_PACKET) continue;
    const p = decodeNflogPacket(m.payload);
    if (p) out.push(p);
  }
  return out;
}
