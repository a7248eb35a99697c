// Opening a netlink socket inside a network namespace: created while the
// thread is in `ns` (it stays bound to that namespace afterwards), bound,
// and asked for the kernel's extended-ack error text. Every handle
// (rtnetlink, ctnetlink, nflog) opens its socket here.
import { Errno, NetlinkError } from '../errors.ts';
import * as libc from '../sys/libc.ts';
import { inNetns, type Netns } from '../sys/netns.ts';
import * as C from './constants.ts';
import { type NlError, type NlMsg, nlmsg, parseError, parseMessages } from './message.ts';

export function openNetlinkSocket(protocol: number, ns?: Netns): number {
  const make = () => libc.socket(libc.AF_NETLINK, libc.SOCK_RAW, protocol);
  const fd = ns ? inNetns(ns, make) : make();
  try {
    const sa = Buffer.alloc(12);
    sa.writeUInt16LE(libc.AF_NETLINK, 0);
    libc.bind(fd, sa);
    libc.setsockoptInt(fd, libc.SOL_NETLINK, libc.NETLINK_EXT_ACK, 1);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return fd;
}

// A dump datagram is at most ~32 KiB (the kernel caps it); with MSG_TRUNC,
// recv reports the real size, so a reply larger than the buffer is an error
// instead of a silently cut list.
const RECV_BUFFER = 64 * 1024;
const MSG_TRUNC = 0x20;
// asm-generic/socket.h: SO_SNDBUF past net.core.wmem_max, for CAP_NET_ADMIN.
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
// Below net.core.{w,r}mem_default (212992), so a batch that fits them pays no setsockopt.
const SMALL_BUFFER = 64 * 1024;
// What one ack costs in the receive buffer (the skb's truesize). Measured
// about 800 bytes on 6.18: a batch of ~260 acked messages overflows the
// default buffer, and overflowing acks are dropped (ENOBUFS, or silently
// while the socket is still marked congested).
const REPLY_TRUESIZE = 1024;

/** The first failed message of a batch: errno, extended-ack text and the reply itself (its seq, its TLVs). */
export interface BatchError extends NlError {
  readonly reply: NlMsg;
}

/** One netlink socket and its request/reply exchange (sequence numbers, acks, dumps, errors). */
export class NetlinkSocket {
  readonly fd: number;
  #seq = Math.floor(Math.random() * 0x7fffffff);
  readonly #buf = Buffer.alloc(RECV_BUFFER);
  #sndbuf = SMALL_BUFFER;
  #rcvbuf = SMALL_BUFFER;
  #closed = false;

  constructor(protocol: number, ns?: Netns) {
    this.fd = openNetlinkSocket(protocol, ns);
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.close(this.fd);
  }

  /**
   * Sends one request and collects its replies: for a dump, every message up
   * to NLMSG_DONE; otherwise the replies before the kernel's ACK. Kernel
   * errors become NetlinkError with the errno and the extended-ack text.
   */
  request(op: string, type: number, flags: number, body: Buffer): NlMsg[] {
    this.#checkOpen(op);
    this.#seq = (this.#seq + 1) >>> 0;
    const seq = this.#seq;
    const dump = (flags & C.NLM_F_DUMP) === C.NLM_F_DUMP;
    libc.sendto(this.fd, nlmsg(type, C.NLM_F_REQUEST | (dump ? 0 : C.NLM_F_ACK) | flags, seq, body), null);
    const replies: NlMsg[] = [];
    for (;;) {
      for (const msg of this.#receive(op)) {
        if (msg.seq !== seq) continue; // a late reply to an earlier request
        if (msg.type === C.NLMSG_ERROR) {
          const err = parseError(msg);
          if (err.errno !== 0) throw new NetlinkError(op, err.errno, err.message);
          return replies;
        }
        if (msg.type === C.NLMSG_DONE) {
          // A dump that failed part-way ends with a negative errno in DONE.
          if (msg.payload.length >= 4 && msg.payload.readInt32LE(0) < 0) {
            throw new NetlinkError(op, parseError({ ...msg, type: C.NLMSG_ERROR }).errno);
          }
          if (msg.flags & C.NLM_F_DUMP_INTR) throw new NetlinkError(`${op} (dump interrupted)`, Errno.EINTR);
          return replies;
        }
        if (msg.type === C.NLMSG_NOOP) continue;
        replies.push({ ...msg, payload: Buffer.from(msg.payload) });
      }
    }
  }

  /**
   * Sends several messages in ONE datagram, as an nfnetlink batch must go
   * (the kernel reads a batch from a single skb), and waits until every
   * message flagged NLM_F_ACK is acked. `encode` frames the messages with
   * consecutive sequence numbers from the one it is given. Returns the first
   * error reply (undefined when all were acked); replies still queued after
   * it are skipped by later exchanges, as replies to earlier requests.
   */
  sendBatch(op: string, encode: (seq: number) => Buffer): BatchError | undefined {
    this.#checkOpen(op);
    const datagram = encode((this.#seq + 1) >>> 0);
    const sent = parseMessages(datagram);
    const last = sent.at(-1);
    if (!last) throw new NetlinkError(`${op} (empty batch)`, Errno.EINVAL);
    this.#seq = last.seq;
    const ours = new Set(sent.map((m) => m.seq));
    const waiting = new Set(sent.filter((m) => m.flags & C.NLM_F_ACK).map((m) => m.seq));
    // The kernel answers the whole batch within sendto: all replies must fit at once.
    this.#sndbuf = growBuffer(this.fd, SO_SNDBUFFORCE, libc.SO_SNDBUF, this.#sndbuf, datagram.length);
    this.#rcvbuf = growBuffer(this.fd, SO_RCVBUFFORCE, libc.SO_RCVBUF, this.#rcvbuf, sent.length * REPLY_TRUESIZE);
    libc.sendto(this.fd, datagram, null);
    while (waiting.size > 0) {
      for (const msg of this.#receive(op)) {
        if (msg.type !== C.NLMSG_ERROR || !ours.has(msg.seq)) continue;
        const err = parseError(msg);
        if (err.errno !== 0) return { ...err, reply: { ...msg, payload: Buffer.from(msg.payload) } };
        waiting.delete(msg.seq);
      }
    }
    return undefined;
  }

  #checkOpen(op: string): void {
    if (this.#closed) throw new NetlinkError(`${op} (handle closed)`, Errno.EBADF);
  }

  /** One datagram's messages (views into the receive buffer: copy what is kept). */
  #receive(op: string): NlMsg[] {
    const n = libc.recv(this.fd, this.#buf, MSG_TRUNC);
    if (n > this.#buf.length) throw new NetlinkError(`${op} (reply of ${n} bytes truncated)`, Errno.ENOBUFS);
    return parseMessages(this.#buf.subarray(0, n));
  }
}

/**
 * Grows a socket buffer to `size` when it is smaller than that; returns the
 * new size. netlink_sendmsg refuses (EMSGSIZE) a datagram larger than the
 * send buffer, and replies that do not fit the receive buffer are dropped.
 */
function growBuffer(fd: number, force: number, plain: number, current: number, size: number): number {
  if (size <= current) return current;
  try {
    libc.setsockoptInt(fd, libc.SOL_SOCKET, force, size);
  } catch {
    // Without CAP_NET_ADMIN: as much as net.core.[rw]mem_max allows.
    libc.setsockoptInt(fd, libc.SOL_SOCKET, plain, size);
  }
  return size;
}
