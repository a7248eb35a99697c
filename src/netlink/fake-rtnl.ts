// Rtnl in maps, for unit tests of the code that wires pods and programs
// routes: a world of namespaces (each named by the fd a Netns would carry),
// with links, addresses, routes and neighbours, and the kernel's answers
// where tests rely on them: EEXIST for a taken link name, address or route,
// ENODEV for an unknown link, ESRCH for a route that is not there, a veth
// deleted whole from either end, and a link's addresses, routes and
// neighbours gone with it. `failNext` makes one operation fail with an errno,
// as the kernel refuses one. Not modelled: reachability of gateways, route
// scopes and metrics beyond what is stored, sysctls.
import { Errno, NetlinkError } from '../errors.ts';
import type { Addr } from './addr.ts';
import * as C from './constants.ts';
import type { Link, LinkChange, VethSpec } from './link.ts';
import type { Neigh } from './neigh.ts';
import type { Route } from './route.ts';
import type { AddrSpec, Rtnl } from './rtnl.ts';

type Op = keyof Omit<Rtnl, 'close'>;

interface Space {
  links: Map<number, Link>;
  addrs: Addr[];
  routes: Route[];
  neighs: Neigh[];
}

const hex = (b: Uint8Array | undefined): string => (b ? Buffer.from(b).toString('hex') : '-');
const routeKey = (r: Route): string => `${r.family}|${r.table ?? C.RT_TABLE_MAIN}|${hex(r.dst)}/${r.dstLen}|${r.priority ?? 0}`;
const addrKey = (a: Pick<Addr, 'family' | 'address' | 'prefix' | 'index'>): string => `${a.family}|${a.index}|${hex(a.address)}/${a.prefix}`;

/** Every namespace of one fake machine; `handle(fd)` is the Rtnl of one of them. */
export class FakeNetworks {
  readonly #spaces = new Map<number, Space>();
  /** veth ends: index to its peer's [namespace fd, index]. */
  readonly #peers = new Map<number, [number, number]>();
  #nextIndex = 2;
  #failures: { op: Op; errno: number }[] = [];

  /** The namespace `fd` (made on first use, with its loopback as index 1). */
  space(fd: number): Space {
    let s = this.#spaces.get(fd);
    if (!s) {
      s = { links: new Map([[1, { index: 1, name: 'lo', flags: C.IFF_UP, mtu: 65536 }]]), addrs: [], routes: [], neighs: [] };
      this.#spaces.set(fd, s);
    }
    return s;
  }

  handle(fd: number): FakeRtnl {
    return new FakeRtnl(this, fd);
  }

  /** The next `op` (on any namespace) fails with `errno`, changing nothing. */
  failNext(op: Op, errno: number): void {
    this.#failures.push({ op, errno });
  }

  /** Throws the failure queued for `op`, if any. */
  check(op: Op, what: string): void {
    const i = this.#failures.findIndex((f) => f.op === op);
    if (i < 0) return;
    const [f] = this.#failures.splice(i, 1);
    throw new NetlinkError(what, (f as { errno: number }).errno);
  }

  newIndex(): number {
    return this.#nextIndex++;
  }

  pair(a: [number, number], b: [number, number]): void {
    this.#peers.set(a[1], b);
    this.#peers.set(b[1], a);
  }

  /** Removes a link and what hangs on it; a veth's peer goes too. */
  remove(fd: number, index: number): void {
    const drop = (f: number, i: number): void => {
      const s = this.space(f);
      s.links.delete(i);
      s.addrs = s.addrs.filter((a) => a.index !== i);
      s.routes = s.routes.filter((r) => r.oif !== i);
      s.neighs = s.neighs.filter((n) => n.index !== i);
      this.#peers.delete(i);
    };
    const peer = this.#peers.get(index);
    drop(fd, index);
    if (peer) drop(peer[0], peer[1]);
  }
}

export class FakeRtnl implements Rtnl {
  readonly #w: FakeNetworks;
  readonly #fd: number;

  constructor(world: FakeNetworks, fd: number) {
    this.#w = world;
    this.#fd = fd;
  }

  get #s(): Space {
    return this.#w.space(this.#fd);
  }

  #link(index: number, what: string): Link {
    const l = this.#s.links.get(index);
    if (!l) throw new NetlinkError(what, Errno.ENODEV);
    return l;
  }

  linkList(): Link[] {
    return [...this.#s.links.values()].map((l) => ({ ...l }));
  }

  linkGet(by: { index: number } | { name: string }): Link | undefined {
    this.#w.check('linkGet', 'get link');
    const l = 'index' in by ? this.#s.links.get(by.index) : [...this.#s.links.values()].find((x) => x.name === by.name);
    return l ? { ...l } : undefined;
  }

  createVeth(spec: VethSpec): void {
    const what = `create veth ${spec.name}/${spec.peerName}`;
    this.#w.check('createVeth', what);
    const peerSpace = this.#w.space(spec.peerNetnsFd);
    const taken = (s: Space, name: string): boolean => [...s.links.values()].some((l) => l.name === name);
    if (taken(this.#s, spec.name) || taken(peerSpace, spec.peerName)) throw new NetlinkError(what, Errno.EEXIST);
    const a = this.#w.newIndex();
    const b = this.#w.newIndex();
    const mtu = spec.mtu ?? 1500;
    this.#s.links.set(a, { index: a, name: spec.name, flags: 0, mtu, kind: 'veth', parentIndex: b, ...(spec.mac ? { mac: spec.mac } : {}) });
    peerSpace.links.set(b, { index: b, name: spec.peerName, flags: 0, mtu, kind: 'veth', parentIndex: a, ...(spec.peerMac ? { mac: spec.peerMac } : {}) });
    this.#w.pair([this.#fd, a], [spec.peerNetnsFd, b]);
  }

  linkSet(index: number, change: LinkChange): void {
    const what = `set link #${index}`;
    this.#w.check('linkSet', what);
    const l = this.#link(index, what);
    const next: Link = { ...l };
    if (change.up !== undefined) next.flags = change.up ? l.flags | C.IFF_UP : l.flags & ~C.IFF_UP;
    if (change.mtu !== undefined) next.mtu = change.mtu;
    if (change.mac !== undefined) next.mac = change.mac;
    if (change.alias !== undefined) next.alias = change.alias;
    if (change.name !== undefined) next.name = change.name;
    this.#s.links.set(index, next);
  }

  linkDelete(index: number): void {
    const what = `delete link #${index}`;
    this.#w.check('linkDelete', what);
    this.#link(index, what);
    this.#w.remove(this.#fd, index);
  }

  addrList(family?: 4 | 6): Addr[] {
    return this.#s.addrs.filter((a) => family === undefined || a.family === family).map((a) => ({ ...a }));
  }

  addrAdd(a: AddrSpec): void {
    const what = 'add address';
    this.#w.check('addrAdd', what);
    this.#link(a.index, what);
    if (this.#s.addrs.some((x) => addrKey(x) === addrKey(a))) throw new NetlinkError(what, Errno.EEXIST);
    this.#s.addrs.push({ ...a, scope: a.scope ?? C.RT_SCOPE_UNIVERSE, flags: a.flags ?? 0 });
  }

  addrDelete(a: AddrSpec): void {
    const what = 'delete address';
    this.#w.check('addrDelete', what);
    const i = this.#s.addrs.findIndex((x) => addrKey(x) === addrKey(a));
    if (i < 0) throw new NetlinkError(what, Errno.EADDRNOTAVAIL);
    this.#s.addrs.splice(i, 1);
  }

  routeList(family: 4 | 6): Route[] {
    return this.#s.routes.filter((r) => r.family === family).map((r) => ({ ...r }));
  }

  #checkOif(r: Route, what: string): void {
    if (r.oif !== undefined) this.#link(r.oif, what);
  }

  routeAdd(r: Route): void {
    const what = 'add route';
    this.#w.check('routeAdd', what);
    this.#checkOif(r, what);
    if (this.#s.routes.some((x) => routeKey(x) === routeKey(r))) throw new NetlinkError(what, Errno.EEXIST);
    this.#s.routes.push({ ...r });
  }

  routeReplace(r: Route): void {
    const what = 'replace route';
    this.#w.check('routeReplace', what);
    this.#checkOif(r, what);
    this.#s.routes = [...this.#s.routes.filter((x) => routeKey(x) !== routeKey(r)), { ...r }];
  }

  routeDelete(r: Route): void {
    const what = 'delete route';
    this.#w.check('routeDelete', what);
    // Unset protocol, scope and type match any value, as in NetlinkHandle.routeDelete.
    const i = this.#s.routes.findIndex(
      (x) => routeKey(x) === routeKey(r) && (r.protocol === undefined || x.protocol === r.protocol) && (r.oif === undefined || x.oif === r.oif),
    );
    if (i < 0) throw new NetlinkError(what, Errno.ESRCH);
    this.#s.routes.splice(i, 1);
  }

  neighList(family: 4 | 6): Neigh[] {
    return this.#s.neighs.filter((n) => n.family === family).map((n) => ({ ...n }));
  }

  neighReplace(n: Neigh): void {
    const what = 'replace neighbour';
    this.#w.check('neighReplace', what);
    this.#link(n.index, what);
    this.#s.neighs = [...this.#s.neighs.filter((x) => !(x.index === n.index && hex(x.address) === hex(n.address))), { ...n }];
  }

  close(): void {}
}
