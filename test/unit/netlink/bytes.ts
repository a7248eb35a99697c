// Helpers for writing expected netlink bytes by hand in the unit tests.

/** Bytes from a hex string; whitespace and `|` separators are ignored. */
export function hex(s: string): Buffer {
  const clean = s.replace(/[\s|]+/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) throw new RangeError(`bad hex: ${s}`);
  return Buffer.from(clean, 'hex');
}

/** Hex dump grouped in 4-byte words, so a failing toEqual shows where layouts part. */
export const words = (b: Uint8Array): string =>
  (
    Buffer.from(b)
      .toString('hex')
      .match(/.{1,8}/g) ?? []
  ).join(' ');

/** Hex of a NUL-terminated ASCII string, e.g. `str0('lo')` = `6c6f00`. */
export const str0 = (s: string): string => `${Buffer.from(s, 'ascii').toString('hex')}00`;

/** Little-endian hex of a u16 / u32. */
export function le16(n: number): string {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b.toString('hex');
}
export function le32(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b.toString('hex');
}
