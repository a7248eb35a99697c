// A netlink socket bound to one network namespace (the vishvananda/netlink
// NewHandleAt pattern): the socket is opened inside the target namespace and
// keeps talking to it after the thread has switched back, so every later call
// needs no setns at all.
import { NetlinkError } from '../errors.ts';
import type { Netns } from '../sys/netns.ts';
import { type Addr, decodeAddr, encodeAddr, encodeGetAddr } from './addr.ts';
import * as C from './constants.ts';
import { decodeLink, encodeGetLink, encodeLinkChange, encodeNewVeth, ifinfomsg, type Link, type LinkChange, type VethSpec } from './link.ts';
import type { NlMsg } from './message.ts';
import { decodeNeigh, encodeGetNeigh, encodeNeigh, type Neigh } from './neigh.ts';
import { decodeRoute, encodeGetRoute, encodeRoute, type Route } from './route.ts';
import type { Rtnl } from './rtnl.ts';
import { NetlinkSocket } from './socket.ts';

export class NetlinkHandle implements Rtnl {
  readonly #sock: NetlinkSocket;

  private constructor(sock: NetlinkSocket) {
    this.#sock = sock;
  }

  /** Opens a handle in `ns`, or in the calling thread's namespace. */
  static open(ns?: Netns): NetlinkHandle {
    return new NetlinkHandle(new NetlinkSocket(C.NETLINK_ROUTE, ns));
  }

  close(): void {
    this.#sock.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  request(op: string, type: number, flags: number, body: Buffer): NlMsg[] {
    return this.#sock.request(op, type, flags, body);
  }

  // ---- links ----

  linkList(): Link[] {
    return this.request('list links', C.RTM_GETLINK, C.NLM_F_DUMP, ifinfomsg()).map((m) => decodeLink(m.payload));
  }

  /** The link, or undefined when no such link exists. */
  linkGet(by: { index: number } | { name: string }): Link | undefined {
    try {
      const [m] = this.request(`get link ${'name' in by ? by.name : `#${by.index}`}`, C.RTM_GETLINK, 0, encodeGetLink(by));
      return m ? decodeLink(m.payload) : undefined;
    } catch (e) {
      if (e instanceof NetlinkError && (e.errno === 19 || e.errno === 2)) return undefined; // ENODEV, ENOENT
      throw e;
    }
  }

  createVeth(spec: VethSpec): void {
    this.request(`create veth ${spec.name}/${spec.peerName}`, C.RTM_NEWLINK, C.NLM_F_CREATE | C.NLM_F_EXCL, encodeNewVeth(spec));
  }

  linkSet(index: number, change: LinkChange): void {
    this.request(`set link #${index}`, C.RTM_NEWLINK, 0, encodeLinkChange(index, change));
  }

  linkDelete(index: number): void {
    this.request(`delete link #${index}`, C.RTM_DELLINK, 0, ifinfomsg({ index }));
  }

  // ---- addresses ----

  addrList(family?: 4 | 6): Addr[] {
    return this.request('list addresses', C.RTM_GETADDR, C.NLM_F_DUMP, encodeGetAddr(family))
      .map((m) => decodeAddr(m.payload))
      .filter((a): a is Addr => a !== undefined);
  }

  addrAdd(a: Parameters<typeof encodeAddr>[0]): void {
    this.request('add address', C.RTM_NEWADDR, C.NLM_F_CREATE | C.NLM_F_EXCL, encodeAddr(a));
  }

  addrDelete(a: Parameters<typeof encodeAddr>[0]): void {
    this.request('delete address', C.RTM_DELADDR, 0, encodeAddr(a));
  }

  // ---- routes ----

  routeList(family: 4 | 6): Route[] {
    return this.request('list routes', C.RTM_GETROUTE, C.NLM_F_DUMP, encodeGetRoute(family))
      .map((m) => decodeRoute(m.payload))
      .filter((r): r is Route => r !== undefined);
  }

  routeAdd(r: Route): void {
    this.request('add route', C.RTM_NEWROUTE, C.NLM_F_CREATE | C.NLM_F_EXCL, encodeRoute(r));
  }

  routeReplace(r: Route): void {
    this.request('replace route', C.RTM_NEWROUTE, C.NLM_F_CREATE | C.NLM_F_REPLACE, encodeRoute(r));
  }

  /**
   * Deletes the route matching `r`. Unset scope, protocol and type match any
   * value (as `ip route del` sends them); the kernel would otherwise require
   * the defaults that encodeRoute fills in for adds.
   */
  routeDelete(r: Route): void {
    const RT_SCOPE_NOWHERE = 255;
    this.request('delete route', C.RTM_DELROUTE, 0, encodeRoute({ ...r, scope: r.scope ?? RT_SCOPE_NOWHERE, protocol: r.protocol ?? 0, type: r.type ?? 0 }));
  }

  // ---- neighbours ----

  neighList(family: 4 | 6): Neigh[] {
    return this.request('list neighbours', C.RTM_GETNEIGH, C.NLM_F_DUMP, encodeGetNeigh(family))
      .map((m) => decodeNeigh(m.payload))
      .filter((n): n is Neigh => n !== undefined);
  }

  neighReplace(n: Neigh): void {
    this.request('replace neighbour', C.RTM_NEWNEIGH, C.NLM_F_CREATE | C.NLM_F_REPLACE, encodeNeigh(n));
  }
}
