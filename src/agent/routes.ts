// Routes to the other nodes' pod subnets (the "host-gw" model): for every
// other Node, each of its spec.podCIDRs via that Node's InternalIP of the same
// family. The agent owns exactly the routes it marks with RTPROT_WEIR_NODE.
//
// Two route protocol numbers, so that neither side can ever touch the other's
// routes:
//   - RTPROT_WEIR (87, src/plugin/names.ts): the per-pod host routes the CNI
//     plugin makes (pod IP/32 or /128 dev <host veth>), owned by ADD/DEL/GC.
//   - RTPROT_WEIR_NODE (88, here): the routes to other nodes' pod CIDRs, owned
//     by the agent's reconcile loop.
// Neither collides with /etc/iproute2/rt_protos (kernel 2, boot 3, static 4,
// dhcp 16, keepalived 18, babel 42, openr 99, bgp 186…). Anything else in the
// table (kernel, boot, static, a routing daemon's, the plugin's 87) is never
// replaced or deleted: reconcileNodeRoutes deletes only protocol-88 routes,
// adds with NLM_F_EXCL, and replaces only where its own route holds the key.

import { Errno, errnoName, InvalidConfigError, isAlreadyExists, isNotFound, NetlinkError } from '../errors.ts';
import { type Cidr, formatCidr, formatIp, type IpBytes, tryParseCidr, tryParseIp } from '../ip.ts';
import { cidrNetwork } from '../ip-ranges.ts';
import * as C from '../netlink/constants.ts';
import type { Route } from '../netlink/route.ts';
import type { Rtnl } from '../netlink/rtnl.ts';

/** The route protocol number (RTPROT_*) of the agent's routes to other nodes' pod CIDRs; 87 is the plugin's per-pod routes. */
export const RTPROT_WEIR_NODE = 88;

/** What the agent needs of a Node object. */
export interface NodeInfo {
  name: string;
  /** spec.podCIDRs */
  podCIDRs: string[];
  /** status.addresses of type InternalIP, in API order. */
  internalIPs: string[];
}

export interface NodeRoute {
  /** The pod network (host bits clear). */
  dst: Cidr;
  /** The gateway: the node's InternalIP of the same family. */
  via: IpBytes;
  /** The Node it leads to. */
  node: string;
}

/**
 * The routes this node should have, pure. For every Node but `self` that has
 * podCIDRs: each podCIDR via the node's first InternalIP of the same family
 * (kubelet lists the primary address first). A family with no InternalIP gets
 * no route, and text that does not parse is skipped, so one odd Node never
 * blocks the others. Host bits of a podCIDR are cleared (the kernel refuses a
 * route with them set). A CIDR claimed twice (a Node being replaced under a
 * new name while the old object lingers) goes to the first node by name, and
 * never a CIDR of `self`: routing our own pods away would cut them off.
 * The result is ordered by node name, then podCIDR order.
 */
export function desiredNodeRoutes(nodes: readonly NodeInfo[], self: string): NodeRoute[] {
  const claimed = new Set<string>();
  const own = nodes.find((n) => n.name === self);
  for (const raw of own?.podCIDRs ?? []) {
    const c = tryParseCidr(raw);
    if (c) claimed.add(formatCidr(cidrNetwork(c)));
  }
  const out: NodeRoute[] = [];
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const node of sorted) {
    if (node.name === self || !node.podCIDRs?.length) continue;
    const ips = (node.internalIPs ?? []).map(tryParseIp).filter((ip): ip is IpBytes => ip !== undefined);
    for (const raw of node.podCIDRs) {
      const c = tryParseCidr(raw);
      if (!c) continue;
      const dst = cidrNetwork(c);
      const key = formatCidr(dst);
      const via = ips.find((ip) => ip.family === dst.family);
      if (!via || claimed.has(key)) continue;
      claimed.add(key);
      out.push({ dst, via, node: node.name });
    }
  }
  return out;
}

/** A desired route that could not be programmed (or a stale one that could not be removed). */
export interface NodeRouteError {
  /** The destination, e.g. `10.244.3.0/24`. */
  dst: string;
  /** The node it was for; absent for a stale route. */
  node?: string;
  /** The gateway that was wanted, when there was one. */
  via?: string;
  op: 'add' | 'replace' | 'delete';
  /** One line for a log or an Event, e.g. `the gateway is not on a directly connected network`. */
  reason: string;
  /** The underlying failure (a NetlinkError carries the kernel's errno). */
  error: Error;
}

export interface NodeRouteChanges {
  /** Destinations (`cidr` text) of routes created. */
  added: string[];
  /** Destinations of routes whose gateway changed. */
  replaced: string[];
  /** Destinations of protocol-88 routes deleted (no longer desired). */
  removed: string[];
  /** Per-route failures; the other routes were still programmed. */
  errors: NodeRouteError[];
}

export interface ReconcileNodeRoutesOptions {
  /** Routing table; RT_TABLE_MAIN (254) by default. */
  table?: number;
}

const defaultMetric = (family: 4 | 6): number => (family === 4 ? 0 : 1024);
const routeDst = (r: Route): string => formatCidr({ address: formatIp(r.dst ?? new Uint8Array(r.family === 4 ? 4 : 16)), prefix: r.dstLen });
const sameBytes = (a: Uint8Array | undefined, b: Uint8Array): boolean => !!a && a.length === b.length && a.every((x, i) => x === b[i]);
const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

function protoName(p: number | undefined): string {
  const names: Record<number, string> = { 2: 'kernel', 3: 'boot', 4: 'static', 16: 'dhcp', 87: 'weir (per-pod)' };
  return p === undefined ? 'unknown' : (names[p] ?? String(p));
}

/**
 * Makes the table's protocol-88 routes equal `desired`: deletes the ones not
 * desired, adds the missing ones, replaces those whose gateway changed.
 * Routes with any other protocol are never touched; when one already holds a
 * desired destination (same prefix, same metric) the desired route is
 * reported in `errors` instead (the kernel could hold only one of the two).
 *
 * A route that the kernel refuses (typically ENETUNREACH: the gateway is not
 * on a directly connected network) is reported in `errors` and the others
 * are still programmed; when a replace fails the old route stays until the
 * next reconcile retries. Only a failure to list the routes throws.
 */
export function reconcileNodeRoutes(h: Rtnl, desired: readonly NodeRoute[], opts?: ReconcileNodeRoutesOptions): NodeRouteChanges {
  const table = opts?.table ?? C.RT_TABLE_MAIN;
  const res: NodeRouteChanges = { added: [], replaced: [], removed: [], errors: [] };
  const pass: Pass = { h, table, res };
  const want = wantedRoutes(desired, res.errors);

  const inTable = [...h.routeList(4), ...h.routeList(6)].filter((r) => (r.table ?? C.RT_TABLE_MAIN) === table);
  const foreign = inTable.filter((r) => r.protocol !== RTPROT_WEIR_NODE);
  const ours = inTable.filter((r) => r.protocol === RTPROT_WEIR_NODE);

  const current = keepOurs(pass, ours, want);
  for (const [key, d] of want) programRoute(pass, key, d, current.get(key), foreign);
  return res;
}

/** One reconcile: the handle, the table it works on, and the changes made so far. */
interface Pass {
  h: Rtnl;
  table: number;
  res: NodeRouteChanges;
}

/** Desired routes by destination; malformed and duplicate entries are errors. */
function wantedRoutes(desired: readonly NodeRoute[], errors: NodeRouteError[]): Map<string, NodeRoute> {
  const want = new Map<string, NodeRoute>();
  for (const d of desired) {
    const dst = cidrNetwork(d.dst);
    const key = formatCidr(dst);
    const via = d.via.bytes.length === 4 || d.via.bytes.length === 16 ? formatIp(d.via.bytes) : '?';
    if (d.via.family !== dst.family || d.via.bytes.length !== dst.bytes.length) {
      const reason = `gateway ${via} is not IPv${dst.family}`;
      errors.push({ dst: key, node: d.node, via, op: 'add', reason, error: new InvalidConfigError(`route to ${key} for node ${d.node}: ${reason}`) });
      continue;
    }
    const prev = want.get(key);
    if (prev) {
      const reason = `${key} is already routed to node ${prev.node}`;
      errors.push({ dst: key, node: d.node, via, op: 'add', reason, error: new InvalidConfigError(`route to ${key} for node ${d.node}: ${reason}`) });
      continue;
    }
    want.set(key, { dst, via: d.via, node: d.node });
  }
  return want;
}

/** Our routes, one per destination; everything else of ours goes. */
function keepOurs(p: Pass, ours: readonly Route[], want: ReadonlyMap<string, NodeRoute>): Map<string, Route> {
  const current = new Map<string, Route>();
  for (const r of ours) {
    const key = routeDst(r);
    if (!want.has(key) || (r.priority ?? defaultMetric(r.family)) !== defaultMetric(r.family) || current.has(key)) {
      deleteOurs(p, r, key);
      continue;
    }
    current.set(key, r);
  }
  return current;
}

/** Deletes one of our routes; a refusal other than "not found" is noted in the errors. */
function deleteOurs(p: Pass, r: Route, key: string, node?: string): void {
  try {
    // protocol 88 in the request: the kernel deletes only a route of that
    // protocol, whatever else shares the prefix.
    const spec: Route = { family: r.family, dstLen: r.dstLen, table: p.table, protocol: RTPROT_WEIR_NODE };
    if (r.dst) spec.dst = r.dst;
    if (r.gateway) spec.gateway = r.gateway;
    if (r.priority !== undefined) spec.priority = r.priority;
    p.h.routeDelete(spec);
  } catch (e) {
    if (!isNotFound(e)) {
      p.res.errors.push({ dst: key, ...(node === undefined ? {} : { node }), op: 'delete', reason: describe(e), error: asError(e) });
      return;
    }
  }
  p.res.removed.push(key);
}

/** Adds the desired route to `key`, or replaces `cur` when its gateway differs, unless a foreign route holds the destination. */
function programRoute(p: Pass, key: string, d: NodeRoute, cur: Route | undefined, foreign: readonly Route[]): void {
  const via = formatIp(d.via.bytes);
  if (cur && sameBytes(cur.gateway, d.via.bytes) && (cur.type ?? C.RTN_UNICAST) === C.RTN_UNICAST) return;

  const blocker = foreign.find((r) => r.family === d.dst.family && routeDst(r) === key && (r.priority ?? defaultMetric(r.family)) === defaultMetric(r.family));
  if (blocker) {
    // A replace would overwrite the foreign route; leave it and drop ours.
    if (cur) deleteOurs(p, cur, key, d.node);
    const gw = blocker.gateway ? ` via ${formatIp(blocker.gateway)}` : '';
    const reason = `a route with protocol ${protoName(blocker.protocol)}${gw} already holds this destination`;
    p.res.errors.push({
      dst: key,
      node: d.node,
      via,
      op: 'add',
      reason,
      error: new NetlinkError(`add route ${key} via ${via} (node ${d.node})`, Errno.EEXIST, reason),
    });
    return;
  }

  const wanted: Route = {
    family: d.dst.family,
    dst: d.dst.bytes,
    dstLen: d.dst.prefix,
    gateway: d.via.bytes,
    table: p.table,
    protocol: RTPROT_WEIR_NODE,
    scope: C.RT_SCOPE_UNIVERSE,
    type: C.RTN_UNICAST,
  };
  const op = cur ? 'replace' : 'add';
  try {
    if (cur) p.h.routeReplace(wanted);
    else p.h.routeAdd(wanted);
    (cur ? p.res.replaced : p.res.added).push(key);
  } catch (e) {
    p.res.errors.push({ dst: key, node: d.node, via, op, reason: describe(e), error: asError(e) });
  }
}

/** A short reason for a kernel refusal. */
function describe(e: unknown): string {
  if (!(e instanceof NetlinkError)) return asError(e).message;
  if (isAlreadyExists(e)) return 'another route already holds this destination';
  // IPv4 says ENETUNREACH, IPv6 EHOSTUNREACH (113), when no connected route leads to the gateway.
  if (e.errno === Errno.ENETUNREACH || e.errno === EHOSTUNREACH) return `the gateway is not on a directly connected network (${errnoName(e.errno)})`;
  return e.message;
}
const EHOSTUNREACH = 113;
