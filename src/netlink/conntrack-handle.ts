// A ctnetlink socket bound to one network namespace: lists conntrack entries
// and deletes them, so that after a NetworkPolicy change the connections the
// new policy no longer allows stop at once instead of living on as
// `ct state established` in conntrack.
//
// Like NetlinkHandle, the socket is opened inside the target namespace and
// keeps talking to that namespace's conntrack table afterwards, with no
// further setns. Conntrack is per namespace: entries of traffic forwarded by
// the node live in the node's namespace, those of a pod's own sockets in the
// pod's.
import { Errno, NetlinkError } from '../errors.ts';
import * as libc from '../sys/libc.ts';
import { openNetlinkSocket } from './socket.ts';
import type { Netns } from '../sys/netns.ts';
import * as C from './constants.ts';
import {
  CT_DELETE,
  CT_GET,
  CT_NEW,
  type CtEntry,
  type CtTuple,
  NETLINK_NETFILTER,
  decodeCtEntry,
  encodeCtDelete,
  encodeCtDump,
  formatTuple,
} from './conntrack.ts';
import { type NlMsg, nlmsg, parseError, parseMessages } from './message.ts';

// A dump datagram is at most ~32 KiB (the kernel caps it); MSG_TRUNC makes a
// larger one show up as an error instead of a silently cut message.
const RECV_BUFFER = 64 * 1024;
const MSG_TRUNC = 0x20;

export class ConntrackHandle {
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly buf = Buffer.alloc(RECV_BUFFER);
  private closed = false;

  private readonly fd: number;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** Opens a handle on the conntrack table of `ns`, or of the calling thread's namespace. */
  static open(ns?: Netns): ConntrackHandle {
    return new ConntrackHandle(openNetlinkSocket(NETLINK_NETFILTER, ns));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    libc.close(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Every entry of `family`, or of IPv4 and IPv6 when not given. */
  list(family?: 4 | 6): CtEntry[] {
    const out: CtEntry[] = [];
    for (const m of this.request(`list conntrack${family ? ` (IPv${family})` : ''}`, CT_GET, C.NLM_F_DUMP, encodeCtDump(family))) {
      if (m.type !== CT_NEW) continue;
      const e = decodeCtEntry(m.payload);
      if (e && (family === undefined || e.orig.family === family)) out.push(e);
    }
    return out;
  }

  /**
   * Deletes the connection whose original tuple is `target` (or, given a
   * listed entry, that entry: same tuple, zone and id). Returns false when no
   * such entry exists, e.g. it expired or was deleted already.
   */
  delete(target: CtTuple | CtEntry): boolean {
    const orig = 'orig' in target ? target.orig : target;
    try {
      this.request(`delete conntrack ${formatTuple(orig)}`, CT_DELETE, 0, encodeCtDelete(target));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === Errno.ENOENT) return false;
      throw e;
    }
  }

  /**
   * Lists the table and deletes every entry `pred` selects, each by its tuple
   * and id (a connection that reused a tuple after the listing survives).
   * Returns how many the kernel deleted; entries gone in the meantime do not
   * count. A failed delete does not stop the others: the first error is thrown
   * after all were tried.
   */
  deleteWhere(pred: (e: CtEntry) => boolean, family?: 4 | 6): number {
    let n = 0;
    let first: unknown;
    for (const e of this.list(family)) {
      if (!pred(e)) continue;
      try {
        if (this.delete(e)) n++;
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
    return n;
  }

  /**
   * Sends one request and collects its replies: for a dump, every message up
   * to NLMSG_DONE; otherwise the replies before the kernel's ACK. Kernel
   * errors become NetlinkError with the errno.
   */
  private request(op: string, type: number, flags: number, body: Buffer): NlMsg[] {
    if (this.closed) throw new NetlinkError(`${op} (handle closed)`, Errno.EBADF);
    const seq = (this.seq = (this.seq + 1) >>> 0);
    const dump = (flags & C.NLM_F_DUMP) === C.NLM_F_DUMP;
    libc.sendto(this.fd, nlmsg(type, C.NLM_F_REQUEST | (dump ? 0 : C.NLM_F_ACK) | flags, seq, body), null);
    const replies: NlMsg[] = [];
    for (;;) {
      const n = libc.recv(this.fd, this.buf, MSG_TRUNC);
      if (n > this.buf.length) throw new NetlinkError(`${op} (reply of ${n} bytes truncated)`, Errno.ENOBUFS);
      for (const msg of parseMessages(this.buf.subarray(0, n))) {
        if (msg.seq !== seq) continue; // a late reply to an earlier request
        if (msg.type === C.NLMSG_ERROR) {
          const err = parseError(msg);
          if (err.errno !== 0) throw new NetlinkError(op, err.errno, err.message);
          return replies;
        }
        if (msg.type === C.NLMSG_DONE) {
          // A dump that failed part-way ends with a negative errno in DONE.
          if (msg.payload.length >= 4 && msg.payload.readInt32LE(0) < 0) {
            throw new NetlinkError(op, 0 - msg.payload.readInt32LE(0));
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
