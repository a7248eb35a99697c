// RTM_*ROUTE bodies: struct rtmsg plus RTA_* attributes.

import { afToFamily, familyToAf } from './addr.ts';
import * as C from './constants.ts';
import { attr, attrNested, attrToU32, attrU32, parseAttrs } from './message.ts';

const RTMSG_LEN = 12;

export interface Route {
  family: 4 | 6;
  /** Destination bytes; absent for a default route. */
  dst?: Uint8Array;
  dstLen: number;
  gateway?: Uint8Array;
  oif?: number;
  prefsrc?: Uint8Array;
  priority?: number;
  /** Routing table id (RT_TABLE_MAIN = 254 when absent). */
  table?: number;
  /** RTPROT_*: weir marks its own routes with a dedicated protocol number. */
  protocol?: number;
  scope?: number;
  /** RTN_*: unicast unless told otherwise. */
  type?: number;
  /** RTNH_F_* flags, e.g. RTNH_F_ONLINK. */
  flags?: number;
  mtu?: number;
  advmss?: number;
}

export function encodeRoute(r: Route): Buffer {
  const table = r.table ?? C.RT_TABLE_MAIN;
  const hdr = Buffer.alloc(RTMSG_LEN);
  hdr.writeUInt8(familyToAf(r.family), 0);
  hdr.writeUInt8(r.dstLen, 1);
  hdr.writeUInt8(0, 2); // src_len
  hdr.writeUInt8(0, 3); // tos
  // rtm_table is 8 bits; ids above 255 only fit in RTA_TABLE.
  hdr.writeUInt8(table < 256 ? table : 0, 4);
  hdr.writeUInt8(r.protocol ?? C.RTPROT_BOOT, 5);
  hdr.writeUInt8(r.scope ?? C.RT_SCOPE_UNIVERSE, 6);
  hdr.writeUInt8(r.type ?? C.RTN_UNICAST, 7);
  hdr.writeUInt32LE((r.flags ?? 0) >>> 0, 8);
  const parts: Buffer[] = [hdr];
  if (r.dst && r.dstLen > 0) parts.push(attr(C.RTA_DST, r.dst));
  if (r.gateway) parts.push(attr(C.RTA_GATEWAY, r.gateway));
  if (r.oif) parts.push(attrU32(C.RTA_OIF, r.oif));
  if (r.prefsrc) parts.push(attr(C.RTA_PREFSRC, r.prefsrc));
  if (r.priority !== undefined) parts.push(attrU32(C.RTA_PRIORITY, r.priority));
  if (table >= 256) parts.push(attrU32(C.RTA_TABLE, table));
  const metrics: Buffer[] = [];
  if (r.mtu) metrics.push(attrU32(C.RTAX_MTU, r.mtu));
  if (r.advmss) metrics.push(attrU32(C.RTAX_ADVMSS, r.advmss));
  if (metrics.length) parts.push(attrNested(C.RTA_METRICS, ...metrics));
  return Buffer.concat(parts);
}

/** RTM_GETROUTE dump request body for one family. */
export function encodeGetRoute(family: 4 | 6): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b.writeUInt8(familyToAf(family), 0);
  return b;
}

export function decodeRoute(payload: Buffer): Route | undefined {
  const family = afToFamily(payload.readUInt8(0));
  if (!family) return undefined;
  const attrs = parseAttrs(payload.subarray(RTMSG_LEN));
  const r: Route = {
    family,
    dstLen: payload.readUInt8(1),
    table: attrToU32(attrs.get(C.RTA_TABLE)) ?? payload.readUInt8(4),
    protocol: payload.readUInt8(5),
    scope: payload.readUInt8(6),
    type: payload.readUInt8(7),
    flags: payload.readUInt32LE(8),
  };
  const dst = attrs.get(C.RTA_DST);
  if (dst) r.dst = Uint8Array.from(dst);
  const gw = attrs.get(C.RTA_GATEWAY);
  if (gw) r.gateway = Uint8Array.from(gw);
  const oif = attrToU32(attrs.get(C.RTA_OIF));
  if (oif !== undefined) r.oif = oif;
  const src = attrs.get(C.RTA_PREFSRC);
  if (src) r.prefsrc = Uint8Array.from(src);
  const prio = attrToU32(attrs.get(C.RTA_PRIORITY));
  if (prio !== undefined) r.priority = prio;
  const metrics = attrs.get(C.RTA_METRICS);
  if (metrics) {
    const m = parseAttrs(metrics);
    const mtu = attrToU32(m.get(C.RTAX_MTU));
    if (mtu !== undefined) r.mtu = mtu;
    const advmss = attrToU32(m.get(C.RTAX_ADVMSS));
    if (advmss !== undefined) r.advmss = advmss;
  }
  return r;
}
