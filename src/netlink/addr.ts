// RTM_*ADDR bodies: struct ifaddrmsg plus IFA_* attributes.
import * as C from './constants.ts';
import { attr, attrToString, attrToU32, attrU32, parseAttrs } from './message.ts';

const IFADDRMSG_LEN = 8;

export interface Addr {
  family: 4 | 6;
  /** Raw address bytes (4 or 16). */
  address: Uint8Array;
  prefix: number;
  index: number;
  scope: number;
  flags: number;
  label?: string;
}

export const familyToAf = (f: 4 | 6): number => (f === 4 ? C.AF_INET : C.AF_INET6);
export const afToFamily = (af: number): 4 | 6 | undefined => (af === C.AF_INET ? 4 : af === C.AF_INET6 ? 6 : undefined);

export function ifaddrmsg(family: 4 | 6, prefix: number, index: number, scope = C.RT_SCOPE_UNIVERSE, flags = 0): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(familyToAf(family), 0);
  b.writeUInt8(prefix, 1);
  b.writeUInt8(flags & 0xff, 2);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(index, 4);
  return b;
}

/**
 * RTM_NEWADDR/RTM_DELADDR body. IPv4 needs IFA_LOCAL (the interface's own
 * address; IFA_ADDRESS is the peer on point-to-point links), IPv6 uses
 * IFA_ADDRESS alone. Flags wider than 8 bits (e.g. IFA_F_NODAD is narrow, but
 * IFA_F_NOPREFIXROUTE is not) go in IFA_FLAGS.
 */
export function encodeAddr(a: { family: 4 | 6; address: Uint8Array; prefix: number; index: number; scope?: number; flags?: number }): Buffer {
  const parts: Buffer[] = [ifaddrmsg(a.family, a.prefix, a.index, a.scope ?? C.RT_SCOPE_UNIVERSE, a.flags ?? 0)];
  if (a.family === 4) parts.push(attr(C.IFA_LOCAL, a.address));
  parts.push(attr(C.IFA_ADDRESS, a.address));
  if (a.flags) parts.push(attrU32(C.IFA_FLAGS, a.flags));
  return Buffer.concat(parts);
}

export function encodeGetAddr(family?: 4 | 6): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(family ? familyToAf(family) : C.AF_UNSPEC, 0);
  return b;
}

export function decodeAddr(payload: Buffer): Addr | undefined {
  const family = afToFamily(payload.readUInt8(0));
  if (!family) return undefined;
  const attrs = parseAttrs(payload.subarray(IFADDRMSG_LEN));
  const address = attrs.get(C.IFA_LOCAL) ?? attrs.get(C.IFA_ADDRESS);
  if (!address) return undefined;
  const a: Addr = {
    family,
    address: Uint8Array.from(address),
    prefix: payload.readUInt8(1),
    flags: attrToU32(attrs.get(C.IFA_FLAGS)) ?? payload.readUInt8(2),
    scope: payload.readUInt8(3),
    index: payload.readUInt32LE(4),
  };
  const label = attrToString(attrs.get(C.IFA_LABEL));
  if (label) a.label = label;
  return a;
}
