// RTM_*NEIGH bodies: struct ndmsg plus NDA_* attributes.

import { afToFamily, familyToAf } from './addr.ts';
import * as C from './constants.ts';
import { bytesToMac, macToBytes } from './link.ts';
import { attr, parseAttrs } from './message.ts';

const NDMSG_LEN = 12;

export interface Neigh {
  family: 4 | 6;
  index: number;
  address: Uint8Array;
  mac?: string;
  /** NUD_* state, e.g. NUD_PERMANENT. */
  state: number;
}

export function encodeNeigh(n: Neigh): Buffer {
  const hdr = Buffer.alloc(NDMSG_LEN);
  hdr.writeUInt8(familyToAf(n.family), 0);
  hdr.writeInt32LE(n.index, 4);
  hdr.writeUInt16LE(n.state, 8);
  const parts: Buffer[] = [hdr, attr(C.NDA_DST, n.address)];
  if (n.mac) parts.push(attr(C.NDA_LLADDR, macToBytes(n.mac)));
  return Buffer.concat(parts);
}

export function encodeGetNeigh(family: 4 | 6): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(familyToAf(family), 0);
  return b;
}

export function decodeNeigh(payload: Buffer): Neigh | undefined {
  const family = afToFamily(payload.readUInt8(0));
  if (!family) return undefined;
  const attrs = parseAttrs(payload.subarray(NDMSG_LEN));
  const dst = attrs.get(C.NDA_DST);
  if (!dst) return undefined;
  const n: Neigh = { family, index: payload.readInt32LE(4), state: payload.readUInt16LE(8), address: Uint8Array.from(dst) };
  const ll = attrs.get(C.NDA_LLADDR);
  if (ll && ll.length === 6) n.mac = bytesToMac(ll);
  return n;
}
