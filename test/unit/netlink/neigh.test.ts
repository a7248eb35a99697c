// RTM_*NEIGH bodies against linux/neighbour.h:
//   struct ndmsg { u8 ndm_family; u8 ndm_pad1; u16 ndm_pad2; s32 ndm_ifindex; u16 ndm_state; u8 ndm_flags; u8 ndm_type; }  (12 bytes)
// NDA_DST=1 NDA_LLADDR=2 NDA_CACHEINFO=3 NDA_PROBES=4.
import { describe, expect, it } from 'vitest';
import { NUD_PERMANENT } from '../../../src/netlink/constants.ts';
import { decodeNeigh, encodeGetNeigh, encodeNeigh } from '../../../src/netlink/neigh.ts';
import { hex, words } from './bytes.ts';

const NUD_REACHABLE = 0x02;
const NUD_FAILED = 0x20;
const NTF_ROUTER = 0x80;

describe('encodeNeigh', () => {
  it('IPv4 permanent entry: ndmsg, NDA_DST, NDA_LLADDR padded to 12 bytes', () => {
    const got = encodeNeigh({ family: 4, index: 3, address: Uint8Array.of(169, 254, 1, 1), mac: 'EE:EE:EE:EE:EE:EE', state: NUD_PERMANENT });
    expect(words(got)).toBe(
      words(
        hex(`
          02 00 0000  03000000  8000 00 00
          0800 0100 a9fe0101
          0a00 0200 eeeeeeeeeeee 0000`),
      ),
    );
  });

  it('IPv6 without a MAC: NDA_DST only', () => {
    const got = encodeNeigh({ family: 6, index: 0x0102, address: hex('fe800000000000000000000000000001'), state: NUD_FAILED });
    expect(words(got)).toBe(words(hex(`0a 00 0000  02010000  2000 00 00  1400 0100 fe800000 00000000 00000000 00000001`)));
  });

  it('rejects a bad MAC', () => {
    expect(() => encodeNeigh({ family: 4, index: 1, address: Uint8Array.of(1, 2, 3, 4), mac: 'ee:ee', state: NUD_PERMANENT })).toThrow(RangeError);
  });
});

describe('encodeGetNeigh', () => {
  it('is a zeroed ndmsg with the family', () => {
    expect(words(encodeGetNeigh(4))).toBe(words(hex('02000000 00000000 00000000')));
    expect(words(encodeGetNeigh(6))).toBe(words(hex('0a000000 00000000 00000000')));
  });
});

describe('decodeNeigh', () => {
  it('decodes a kernel-style IPv6 router entry, ignoring cache info and probes', () => {
    const payload = hex(`
      0a 00 0000  04000000  0200 80 01
      1400 0100 fe800000 00000000 00000000 00000001
      0a00 0200 0a580af40101 0000
      1400 0300 00000000 00000000 00000000 00000000
      0800 0400 00000000`);
    expect(decodeNeigh(payload)).toEqual({
      family: 6,
      index: 4,
      state: NUD_REACHABLE,
      address: Uint8Array.from(hex('fe800000000000000000000000000001')),
      mac: '0a:58:0a:f4:01:01',
    });
    expect(payload[10]).toBe(NTF_ROUTER);
  });

  it('decodes an IPv4 entry without a link-layer address (incomplete/failed)', () => {
    expect(decodeNeigh(hex(`02 00 0000  02000000  2000 00 01  0800 0100 0a000001`))).toEqual({
      family: 4,
      index: 2,
      state: NUD_FAILED,
      address: Uint8Array.of(10, 0, 0, 1),
    });
  });

  it('ignores a link-layer address that is not 6 bytes (e.g. an IPv4 tunnel endpoint)', () => {
    expect(decodeNeigh(hex(`02 00 0000  05000000  8000 00 01  0800 0100 0a000001  0800 0200 c0000201`))?.mac).toBeUndefined();
  });

  it('returns undefined without NDA_DST or for AF_BRIDGE (fdb) entries', () => {
    expect(decodeNeigh(hex(`02 00 0000  02000000  8000 00 01  0a00 0200 eeeeeeeeeeee 0000`))).toBeUndefined();
    expect(decodeNeigh(hex(`07 00 0000  02000000  8000 02 00  0a00 0200 eeeeeeeeeeee 0000`))).toBeUndefined();
  });

  it('decodes what encodeNeigh produced', () => {
    const n = { family: 4 as const, index: 9, address: Uint8Array.of(10, 244, 1, 5), mac: '0a:58:0a:f4:01:05', state: NUD_PERMANENT };
    expect(decodeNeigh(encodeNeigh(n))).toEqual(n);
  });
});
