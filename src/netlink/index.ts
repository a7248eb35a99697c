export * from './constants.ts';
export type { Addr } from './addr.ts';
export type { Link, LinkChange, VethSpec } from './link.ts';
export type { Neigh } from './neigh.ts';
export type { Route } from './route.ts';
export { NetlinkHandle } from './handle.ts';
export { ConntrackHandle } from './conntrack-handle.ts';
export type { CtEntry, CtTuple } from './conntrack.ts';
