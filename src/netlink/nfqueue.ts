// nfnetlink_queue (NETLINK_NETFILTER, subsystem NFNL_SUBSYS_QUEUE): binding
// a queue, the packets it delivers, and the verdicts that release them.
// Pure byte encoding, no sockets; the effect is nfqueue-handle.ts.
//
// Layout, from linux/netfilter/nfnetlink_queue.h:
//   config   (NFQNL_MSG_CONFIG)  nfgenmsg { AF_UNSPEC, V0, res_id = be16 queue }
//            NFQA_CFG_CMD    { u8 command; u8 pad; be16 pf }
//            NFQA_CFG_PARAMS { be32 copy_range; u8 copy_mode } (packed, 5 bytes)
//            NFQA_CFG_QUEUE_MAXLEN be32, NFQA_CFG_MASK be32 + NFQA_CFG_FLAGS be32
//   packet   (NFQNL_MSG_PACKET)  NFQA_PACKET_HDR { be32 id; be16 hw_protocol; u8 hook } (packed),
//            NFQA_PAYLOAD from the network header, NFQA_CAP_LEN be32 when cut
//   verdict  (NFQNL_MSG_VERDICT) NFQA_VERDICT_HDR { be32 verdict; be32 id }
//
// Kernel behaviour worth knowing (net/netfilter/nfnetlink_queue.c):
// - A queue number is per network namespace and owned by the socket that
//   bound it (EBUSY for another). When that socket closes, the packets it
//   still held are dropped (nfqnl_flush with NF_DROP); from then on, a rule
//   with `bypass` lets packets through while nobody is bound.
// - FAIL_OPEN: a packet that finds the queue full is accepted instead of
//   dropped.
// - A verdict for an id no longer queued is refused with ENOENT (an error
//   reply on the socket, harmless).
import { InternalError } from '../errors.ts';
import { AF_UNSPEC } from './constants.ts';
import { attr, nlmsg, parseAttrs, parseMessages } from './message.ts';

export const NFNL_SUBSYS_QUEUE = 3;
export const NFQNL_MSG_PACKET = 0;
export const NFQNL_MSG_VERDICT = 1;
export const NFQNL_MSG_CONFIG = 2;
export const NFQUEUE_PACKET = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
export const NFQUEUE_VERDICT = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT;
export const NFQUEUE_CONFIG = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG;

// enum nfqnl_attr_type
export const NFQA_PACKET_HDR = 1;
export const NFQA_VERDICT_HDR = 2;
export const NFQA_MARK = 3;
export const NFQA_IFINDEX_INDEV = 5;
export const NFQA_IFINDEX_OUTDEV = 6;
export const NFQA_PAYLOAD = 10;
export const NFQA_CAP_LEN = 13;

// enum nfqnl_attr_config
export const NFQA_CFG_CMD = 1;
export const NFQA_CFG_PARAMS = 2;
export const NFQA_CFG_QUEUE_MAXLEN = 3;
export const NFQA_CFG_MASK = 4;
export const NFQA_CFG_FLAGS = 5;

export const NFQNL_CFG_CMD_BIND = 1;
export const NFQNL_CFG_CMD_UNBIND = 2;
export const NFQNL_COPY_PACKET = 2;
export const NFQA_CFG_F_FAIL_OPEN = 0x1;

export const NF_DROP = 0;
export const NF_ACCEPT = 1;

const check = (what: string, v: number, max: number): number => {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new InternalError(`nfqueue: bad ${what} ${String(v)}`);
  return v;
};

/** struct nfgenmsg: the queue number in res_id (big-endian). */
export function nfqueueGenmsg(queue: number, family = AF_UNSPEC): Buffer {
  return Buffer.of(family, 0, check('queue', queue, 0xffff) >> 8, queue & 0xff);
}

const be32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};

export interface NfqueueConfig {
  /** NFQNL_CFG_CMD_*; the kernel applies the command before the other settings of the message. */
  command?: number;
  /** Bytes of each packet to copy (from the network header). */
  copyRange?: number;
  /** Packets the queue holds before FAIL_OPEN (or dropping) applies. */
  maxLen?: number;
  /** NFQA_CFG_F_* to set (the mask is the same bits: the others stay as they are). */
  flags?: number;
}

/** The body (nfgenmsg + attributes) of a config message for `queue`. */
export function encodeNfqueueConfig(queue: number, cfg: NfqueueConfig): Buffer {
  const parts: Buffer[] = [nfqueueGenmsg(queue)];
  if (cfg.command !== undefined) parts.push(attr(NFQA_CFG_CMD, Buffer.of(check('command', cfg.command, 0xff), 0, 0, 0)));
  if (cfg.copyRange !== undefined) {
    const p = Buffer.alloc(5);
    p.writeUInt32BE(check('copy range', cfg.copyRange, 0xffff));
    p.writeUInt8(NFQNL_COPY_PACKET, 4);
    parts.push(attr(NFQA_CFG_PARAMS, p));
  }
  if (cfg.maxLen !== undefined) parts.push(attr(NFQA_CFG_QUEUE_MAXLEN, be32(check('queue length', cfg.maxLen, 0xffffffff))));
  if (cfg.flags !== undefined) {
    check('flags', cfg.flags, 0xffffffff);
    parts.push(attr(NFQA_CFG_MASK, be32(cfg.flags)), attr(NFQA_CFG_FLAGS, be32(cfg.flags)));
  }
  return Buffer.concat(parts);
}

/** A whole config request, ready to send. */
export const nfqueueConfigMessage = (flags: number, seq: number, body: Buffer): Buffer => nlmsg(NFQUEUE_CONFIG, flags, seq, body);

/** A verdict for one packet of `queue` (not acked: a verdict costs one datagram and no reply). */
export function nfqueueVerdictMessage(queue: number, id: number, verdict: number, seq = 0): Buffer {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32BE(check('verdict', verdict, 0xffffffff), 0);
  hdr.writeUInt32BE(check('packet id', id, 0xffffffff), 4);
  // NLM_F_REQUEST only (no ACK).
  return nlmsg(NFQUEUE_VERDICT, 0x01, seq, Buffer.concat([nfqueueGenmsg(queue), attr(NFQA_VERDICT_HDR, hdr)]));
}

export interface QueuedPacket {
  readonly queue: number;
  /** The kernel's id of the packet in its queue, for the verdict. */
  readonly id: number;
  readonly hwProtocol: number;
  readonly hook: number;
  /** NFPROTO of the hook (2 IPv4, 10 IPv6; 1 is never sent: inet tables queue per family). */
  readonly nfproto: number;
  /** The copied bytes from the network header (a copy, not a view of the receive buffer). */
  readonly payload: Buffer;
  /** The packet's length when the copy was cut short. */
  readonly capLen?: number;
  readonly indev?: number;
  readonly outdev?: number;
}

/** One NFQNL_MSG_PACKET body; undefined when it is too short or has no packet header. */
export function decodeQueuedPacket(body: Buffer): QueuedPacket | undefined {
  if (body.length < 4) return undefined;
  const a = parseAttrs(body.subarray(4));
  const hdr = a.get(NFQA_PACKET_HDR);
  if (!hdr || hdr.length < 7) return undefined;
  const u32 = (t: number): number | undefined => {
    const v = a.get(t);
    return v && v.length >= 4 ? v.readUInt32BE(0) : undefined;
  };
  const capLen = u32(NFQA_CAP_LEN);
  const indev = u32(NFQA_IFINDEX_INDEV);
  const outdev = u32(NFQA_IFINDEX_OUTDEV);
  return {
    queue: body.readUInt16BE(2),
    id: hdr.readUInt32BE(0),
    hwProtocol: hdr.readUInt16BE(4),
    hook: hdr.readUInt8(6),
    nfproto: body.readUInt8(0),
    payload: Buffer.from(a.get(NFQA_PAYLOAD) ?? Buffer.alloc(0)),
    ...(capLen !== undefined ? { capLen } : {}),
    ...(indev !== undefined ? { indev } : {}),
    ...(outdev !== undefined ? { outdev } : {}),
  };
}

/** Every queued packet of one datagram (others, such as error replies to late verdicts, are skipped). */
export function decodeQueueDatagram(buf: Buffer): QueuedPacket[] {
  const out: QueuedPacket[] = [];
  for (const m of parseMessages(buf)) {
    if (m.type !== NFQUEUE_PACKET) continue;
    const p = decodeQueuedPacket(m.payload);
    if (p) out.push(p);
  }
  return out;
}
