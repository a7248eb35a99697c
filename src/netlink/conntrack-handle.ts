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
import type { Netns } from '../sys/netns.ts';
import {
  CT_DELETE,
  CT_GET,
  CT_NEW,
  type CtEntry,
  type CtTuple,
  decodeCtEntry,
  encodeCtDelete,
  encodeCtDump,
  formatTuple,
  NETLINK_NETFILTER,
} from './conntrack.ts';
import * as C from './constants.ts';
import type { NlMsg } from './message.ts';
import { NetlinkSocket } from './socket.ts';

export class ConntrackHandle {
  readonly #sock: NetlinkSocket;

  private constructor(sock: NetlinkSocket) {
    this.#sock = sock;
  }

  /** Opens a handle on the conntrack table of `ns`, or of the calling thread's namespace. */
  static open(ns?: Netns): ConntrackHandle {
    return new ConntrackHandle(new NetlinkSocket(NETLINK_NETFILTER, ns));
  }

  close(): void {
    this.#sock.close();
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

  private request(op: string, type: number, flags: number, body: Buffer): NlMsg[] {
    return this.#sock.request(op, type, flags, body);
  }
}
