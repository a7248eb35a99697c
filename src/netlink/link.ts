// RTM_*LINK bodies: struct ifinfomsg plus IFLA_* attributes.
import * as C from './constants.ts';
import { attr, attrNested, attrString, attrToS32, attrToString, attrToU32, attrU32, parseAttrs } from './message.ts';

const IFINFOMSG_LEN = 16;

export interface Link {
  index: number;
  name: string;
  flags: number;
  mtu?: number;
  /** Lower-case colon form, e.g. `0a:58:0a:f4:01:05`. */
  mac?: string;
  alias?: string;
  /** IFLA_INFO_KIND, e.g. `veth`. */
  kind?: string;
  /** IFLA_LINK: for a veth, the peer's index (in the peer's own namespace). */
  parentIndex?: number;
  /** IFLA_LINK_NETNSID: set when the peer lives in another namespace. */
  linkNetnsId?: number;
  operstate?: number;
}

export function ifinfomsg(opts: { family?: number; index?: number; flags?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(opts.family ?? C.AF_UNSPEC, 0);
  b.writeInt32LE(opts.index ?? 0, 4);
  b.writeUInt32LE((opts.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((opts.change ?? 0) >>> 0, 12);
  return b;
}

export function macToBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new RangeError(`bad MAC address ${mac}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}
export const bytesToMac = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');

export interface VethSpec {
  name: string;
  peerName: string;
  /** fd of the namespace the peer is created in; the pair is born split, never renamed or moved. */
  peerNetnsFd: number;
  mtu?: number;
  mac?: string;
  peerMac?: string;
}

/** RTM_NEWLINK body creating a veth pair whose peer starts life in another netns. */
export function encodeNewVeth(v: VethSpec): Buffer {
  const common = (name: string, mac?: string): Buffer[] => [
    attrString(C.IFLA_IFNAME, name),
    ...(v.mtu ? [attrU32(C.IFLA_MTU, v.mtu)] : []),
    ...(mac ? [attr(C.IFLA_ADDRESS, macToBytes(mac))] : []),
  ];
  const peer = Buffer.concat([ifinfomsg(), ...common(v.peerName, v.peerMac), attrU32(C.IFLA_NET_NS_FD, v.peerNetnsFd)]);
  return Buffer.concat([
    ifinfomsg(),
    // No IFLA_IFALIAS here: the kernel ignores it when creating a link, so
    // an alias is set afterwards with encodeLinkChange.
    ...common(v.name, v.mac),
    attrNested(C.IFLA_LINKINFO, attrString(C.IFLA_INFO_KIND, 'veth'), attrNested(C.IFLA_INFO_DATA, attr(C.VETH_INFO_PEER, peer))),
  ]);
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  mac?: string;
  alias?: string;
  name?: string;
}

/** RTM_NEWLINK (without CREATE) body changing an existing link by index. */
export function encodeLinkChange(index: number, c: LinkChange): Buffer {
  const parts: Buffer[] = [ifinfomsg({ index, flags: c.up ? C.IFF_UP : 0, change: c.up === undefined ? 0 : C.IFF_UP })];
  if (c.name !== undefined) parts.push(attrString(C.IFLA_IFNAME, c.name));
  if (c.mtu !== undefined) parts.push(attrU32(C.IFLA_MTU, c.mtu));
  if (c.mac !== undefined) parts.push(attr(C.IFLA_ADDRESS, macToBytes(c.mac)));
  if (c.alias !== undefined) parts.push(attrString(C.IFLA_IFALIAS, c.alias));
  return Buffer.concat(parts);
}

/** RTM_GETLINK body for a lookup by name (index 0) or by index. */
export function encodeGetLink(by: { index: number } | { name: string }): Buffer {
  return 'index' in by ? ifinfomsg({ index: by.index }) : Buffer.concat([ifinfomsg(), attrString(C.IFLA_IFNAME, by.name)]);
}

export function decodeLink(payload: Buffer): Link {
  const attrs = parseAttrs(payload.subarray(IFINFOMSG_LEN));
  const link: Link = {
    index: payload.readInt32LE(4),
    flags: payload.readUInt32LE(8),
    name: attrToString(attrs.get(C.IFLA_IFNAME)) ?? '',
  };
  const mtu = attrToU32(attrs.get(C.IFLA_MTU));
  if (mtu !== undefined) link.mtu = mtu;
  const mac = attrs.get(C.IFLA_ADDRESS);
  if (mac && mac.length === 6) link.mac = bytesToMac(mac);
  const alias = attrToString(attrs.get(C.IFLA_IFALIAS));
  if (alias) link.alias = alias;
  const parent = attrToS32(attrs.get(C.IFLA_LINK));
  if (parent !== undefined) link.parentIndex = parent;
  const nsid = attrToS32(attrs.get(C.IFLA_LINK_NETNSID));
  if (nsid !== undefined) link.linkNetnsId = nsid;
  const oper = attrs.get(C.IFLA_OPERSTATE);
  if (oper && oper.length >= 1) link.operstate = oper.readUInt8(0);
  const info = attrs.get(C.IFLA_LINKINFO);
  if (info) {
    const kind = attrToString(parseAttrs(info).get(C.IFLA_INFO_KIND));
    if (kind) link.kind = kind;
  }
  return link;
}
