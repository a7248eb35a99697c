// Netlink framing: nlmsghdr, TLV attributes, NLMSG_ERROR. Pure byte encoding,
// no sockets, so every layout here is unit-tested without root.
import { NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_ERROR, NLMSGERR_ATTR_MSG } from './constants.ts';

export const NLMSG_HDRLEN = 16;
const NLA_HDRLEN = 4;
// The top two bits of nla_type are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
const NLA_TYPE_MASK = 0x3fff;
export const NLA_F_NESTED = 0x8000;

export const align4 = (n: number): number => (n + 3) & ~3;

export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The bytes after the 16-byte header, up to nlmsg_len. */
  payload: Buffer;
}

/** One TLV attribute, padded to 4 bytes as the kernel requires. */
export function attr(type: number, payload: Uint8Array): Buffer {
  const len = NLA_HDRLEN + payload.length;
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  b.set(payload, NLA_HDRLEN);
  return b;
}

export const attrU8 = (type: number, v: number): Buffer => attr(type, Uint8Array.of(v));
export function attrU32(type: number, v: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32LE(v >>> 0);
  return attr(type, p);
}
export function attrS32(type: number, v: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeInt32LE(v);
  return attr(type, p);
}
/** Strings go with a NUL terminator, as iproute2 sends them. */
export const attrString = (type: number, s: string): Buffer => attr(type, Buffer.from(`${s}\0`, 'utf8'));
export const attrNested = (type: number, ...children: Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(children));

export function nlmsg(type: number, flags: number, seq: number, body: Buffer, pid = 0): Buffer {
  const b = Buffer.alloc(NLMSG_HDRLEN + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq >>> 0, 8);
  b.writeUInt32LE(pid >>> 0, 12);
  body.copy(b, NLMSG_HDRLEN);
  return b;
}

/** Splits a datagram into messages; stops at a truncated one rather than reading past it. */
export function parseMessages(buf: Buffer): NlMsg[] {
  const out: NlMsg[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** Attributes by type (flags masked off); a repeated type keeps the last value. */
export function parseAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < NLA_HDRLEN || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

/** A NUL-terminated string attribute. */
export function attrToString(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul === -1 ? b.length : nul);
}
export const attrToU32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined);
export const attrToS32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readInt32LE(0) : undefined);

export interface NlError {
  /** Positive errno; 0 is an ACK. */
  errno: number;
  /** The kernel's extended-ack message, when it sent one. */
  message?: string;
}

export function parseError(msg: NlMsg): NlError {
  if (msg.type !== NLMSG_ERROR || msg.payload.length < 4) return { errno: 0 };
  const errno = 0 - msg.payload.readInt32LE(0); // 0 - x, not -x: an ack must be 0, not -0
  if (!(msg.flags & NLM_F_ACK_TLVS)) return { errno };
  // After the error code comes the offending request: its header alone when
  // capped, otherwise the whole message; the TLVs start after it.
  const echoedLen = msg.flags & NLM_F_CAPPED || msg.payload.length < 8 ? NLMSG_HDRLEN : msg.payload.readUInt32LE(4);
  const tlvs = parseAttrs(msg.payload.subarray(4 + align4(echoedLen)));
  const message = attrToString(tlvs.get(NLMSGERR_ATTR_MSG));
  return message ? { errno, message } : { errno };
}
