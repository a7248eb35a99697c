// NFT_MSG_GETGEN and NFT_MSG_GETTABLE, the two reads the kernel-table check
// makes every second: requests byte for byte (nfgenmsg, then the table name
// for GETTABLE), and replies as nf_tables_api.c builds them (u32 and u64
// attributes in network order).
import { describe, expect, it } from 'vitest';
import { attr, attrString } from '../../../src/netlink/message.ts';
import {
  encodeGetGen,
  encodeGetTable,
  NFT_MSG_NEWGEN,
  NFT_MSG_NEWTABLE,
  NFTA_GEN_ID,
  NFTA_TABLE_HANDLE,
  NFTA_TABLE_USE,
  nftMsgType,
  parseGenId,
  parseTableInfo,
} from '../../../src/netlink/nftables.ts';

const u32be = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const u64be = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(v);
  return b;
};
const nfgen = (family: number): Buffer => Buffer.of(family, 0, 0, 0);

describe('nf_tables generation and table identity', () => {
  it('GETGEN is an AF_UNSPEC nfgenmsg and nothing else', () => {
    const r = encodeGetGen();
    expect(r.type).toBe((10 << 8) | 16);
    expect([...r.body]).toEqual([0, 0, 0, 0]);
  });

  it('NEWGEN: the generation id', () => {
    const payload = Buffer.concat([nfgen(0), attr(NFTA_GEN_ID, u32be(0x01020304)), attr(2, u32be(77)), attrString(3, 'nft')]);
    expect(parseGenId({ type: nftMsgType(NFT_MSG_NEWGEN), flags: 0, seq: 1, pid: 0, payload })).toBe(0x01020304);
    expect(parseGenId({ type: nftMsgType(NFT_MSG_NEWTABLE), flags: 0, seq: 1, pid: 0, payload })).toBeUndefined();
  });

  it('GETTABLE names the family and the table', () => {
    const r = encodeGetTable('inet', 'weir');
    expect(r.type).toBe((10 << 8) | 1);
    expect(r.body).toEqual(Buffer.concat([nfgen(1), attrString(1, 'weir')]));
    expect(() => encodeGetTable('arpx', 'weir')).toThrow(RangeError);
  });

  it('NEWTABLE: handle and use count', () => {
    const payload = Buffer.concat([
      nfgen(1),
      attrString(1, 'weir'),
      attr(2, u32be(0)),
      attr(NFTA_TABLE_USE, u32be(1311 + 471)),
      attr(NFTA_TABLE_HANDLE, u64be(42n)),
    ]);
    expect(parseTableInfo({ type: nftMsgType(NFT_MSG_NEWTABLE), flags: 0, seq: 1, pid: 0, payload })).toEqual({ handle: 42n, use: 1782 });
  });
});
