// Opening a netlink socket inside a network namespace: created while the
// thread is in `ns` (it stays bound to that namespace afterwards), bound,
// and asked for the kernel's extended-ack error text. Every handle
// (rtnetlink, ctnetlink, nflog) opens its socket here.
import { Errno, NetlinkError } from '../errors.ts';
import * as libc from '../sys/libc.ts';
import { type Netns, inNetns } from '../sys/netns.ts';
import * as C from './constants.ts';
import { type NlMsg, nlmsg, parseError, parseMessages } from './message.ts';

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

/** One netlink socket and its request/reply exchange (sequence numbers, acks, dumps, errors). */
export class NetlinkSocket {
  readonly fd: number;
  #seq = Math.floor(Math.random() * 0x7fffffff);
  readonly #buf = Buffer.alloc(RECV_BUFFER);
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
    if (this.#closed) throw new NetlinkError(`${op} (handle closed)`, Errno.EBADF);
    const seq = (this.#seq = (this.#seq + 1) >>> 0);
    const dump = (flags & C.NLM_F_DUMP) === C.NLM_F_DUMP;
    libc.sendto(this.fd, nlmsg(type, C.NLM_F_REQUEST | (dump ? 0 : C.NLM_F_ACK) | flags, seq, body), null);
    const replies: NlMsg[] = [];
    for (;;) {
      const n = libc.recv(this.fd, this.#buf, MSG_TRUNC);
      if (n > this.#buf.length) throw new NetlinkError(`${op} (reply of ${n} bytes truncated)`, Errno.ENOBUFS);
      for (const msg of parseMessages(this.#buf.subarray(0, n))) {
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
}
