// What the plugin and the agent ask of rtnetlink in one namespace: links,
// addresses, routes and neighbours. NetlinkHandle is the real one (a socket
// bound to the namespace); FakeRtnl (fake-rtnl.ts) keeps the same state in
// maps for fast unit tests of the code that wires pods and programs routes.
import type { Addr } from './addr.ts';
import type { Link, LinkChange, VethSpec } from './link.ts';
import type { Neigh } from './neigh.ts';
import type { Route } from './route.ts';

/** The address an add or delete names (scope and flags default as the kernel's). */
export type AddrSpec = Omit<Addr, 'scope' | 'flags'> & { scope?: number; flags?: number };

export interface Rtnl {
  linkList(): Link[];
  /** The link, or undefined when no such link exists. */
  linkGet(by: { index: number } | { name: string }): Link | undefined;
  /** A veth pair whose peer is born in the namespace `spec.peerNetnsFd` names. EEXIST when the name is taken. */
  createVeth(spec: VethSpec): void;
  linkSet(index: number, change: LinkChange): void;
  /** Deletes a link; deleting either end of a veth deletes both. */
  linkDelete(index: number): void;
  addrList(family?: 4 | 6): Addr[];
  addrAdd(a: AddrSpec): void;
  addrDelete(a: AddrSpec): void;
  routeList(family: 4 | 6): Route[];
  /** EEXIST when a route to the same destination is in the table. */
  routeAdd(r: Route): void;
  routeReplace(r: Route): void;
  /** ESRCH when no route matches. */
  routeDelete(r: Route): void;
  neighList(family: 4 | 6): Neigh[];
  neighReplace(n: Neigh): void;
  close(): void;
}
