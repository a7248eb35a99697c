// RTM_*ADDR bodies against linux/if_addr.h:
//   struct ifaddrmsg { u8 ifa_family; u8 ifa_prefixlen; u8 ifa_flags; u8 ifa_scope; u32 ifa_index; }  (8 bytes)
// IFA_ADDRESS=1 IFA_LOCAL=2 IFA_LABEL=3 IFA_BROADCAST=4 IFA_CACHEINFO=6 IFA_FLAGS=8.
import { describe, expect, it } from 'vitest';
import { afToFamily, decodeAddr, encodeAddr, encodeGetAddr, familyToAf, ifaddrmsg } from '../../../src/netlink/addr.ts';
import { IFA_F_NODAD, IFA_F_PERMANENT, RT_SCOPE_HOST, RT_SCOPE_LINK } from '../../../src/netlink/constants.ts';
import { hex, str0, words } from './bytes.ts';

const IFA_F_NOPREFIXROUTE = 0x200;
const v4 = (a: number, b: number, c: number, d: number): Uint8Array => Uint8Array.of(a, b, c, d);
const FD00_5 = hex('fd000000000000000000000000000005'); // fd00::5
const FE80_1 = hex('fe800000000000000000000000000001'); // fe80::1
const CACHEINFO = 'ffffffff ffffffff 10270000 10270000'; // struct ifa_cacheinfo: prefered, valid, cstamp, tstamp

describe('family mapping', () => {
  it('maps 4/6 to AF_INET/AF_INET6 and back', () => {
    expect([familyToAf(4), familyToAf(6)]).toEqual([2, 10]);
    expect([afToFamily(2), afToFamily(10), afToFamily(0), afToFamily(17)]).toEqual([4, 6, undefined, undefined]);
  });
});

describe('ifaddrmsg', () => {
  it('is 8 bytes: family, prefixlen, flags (low 8 bits), scope, index', () => {
    expect(words(ifaddrmsg(4, 24, 0x01020304, RT_SCOPE_LINK, 0x1ff))).toBe(words(hex('02 18 ff fd 04030201')));
    expect(words(ifaddrmsg(6, 128, 1))).toBe(words(hex('0a 80 00 00 01000000')));
  });
});

describe('encodeAddr', () => {
  it('IPv4 carries IFA_LOCAL then IFA_ADDRESS, both the same address', () => {
    const got = encodeAddr({ family: 4, address: v4(10, 244, 1, 5), prefix: 24, index: 3 });
    expect(words(got)).toBe(
      words(
        hex(`
          02 18 00 00 03000000
          0800 0200 0af40105
          0800 0100 0af40105`),
      ),
    );
  });

  it('IPv6 carries IFA_ADDRESS only, and IFA_F_NODAD both in the header and in IFA_FLAGS', () => {
    const got = encodeAddr({ family: 6, address: FD00_5, prefix: 64, index: 2, flags: IFA_F_NODAD });
    expect(words(got)).toBe(
      words(
        hex(`
          0a 40 02 00 02000000
          1400 0100 fd000000 00000000 00000000 00000005
          0800 0800 02000000`),
      ),
    );
  });

  it('flags wider than 8 bits go whole into IFA_FLAGS, truncated in the header; scope goes in the header', () => {
    const got = encodeAddr({
      family: 4,
      address: v4(127, 0, 0, 2),
      prefix: 8,
      index: 1,
      scope: RT_SCOPE_HOST,
      flags: IFA_F_NOPREFIXROUTE | IFA_F_PERMANENT,
    });
    expect(words(got)).toBe(
      words(
        hex(`
          02 08 80 fe 01000000
          0800 0200 7f000002
          0800 0100 7f000002
          0800 0800 80020000`),
      ),
    );
  });

  it('a /32 and a /128 encode their prefix length in one byte', () => {
    expect(encodeAddr({ family: 4, address: v4(1, 2, 3, 4), prefix: 32, index: 1 })[1]).toBe(32);
    expect(encodeAddr({ family: 6, address: FD00_5, prefix: 128, index: 1 })[1]).toBe(128);
  });
});

describe('encodeGetAddr', () => {
  it('is a zeroed ifaddrmsg with the family (AF_UNSPEC when none)', () => {
    expect(words(encodeGetAddr())).toBe(words(hex('00000000 00000000')));
    expect(words(encodeGetAddr(4))).toBe(words(hex('02000000 00000000')));
    expect(words(encodeGetAddr(6))).toBe(words(hex('0a000000 00000000')));
  });
});

describe('decodeAddr', () => {
  it('decodes a kernel-style IPv4 address (IFA_FLAGS wins over the header byte)', () => {
    const payload = hex(`
      02 18 80 00 02000000
      0800 0100 0af40101
      0800 0200 0af40101
      0800 0400 0af401ff
      0900 0300 ${str0('eth0')} 000000
      0800 0800 80000000
      1400 0600 ${CACHEINFO}`);
    expect(decodeAddr(payload)).toEqual({
      family: 4,
      address: v4(10, 244, 1, 1),
      prefix: 24,
      flags: IFA_F_PERMANENT,
      scope: 0,
      index: 2,
      label: 'eth0',
    });
  });

  it('prefers IFA_LOCAL (own address) over IFA_ADDRESS (the peer on point-to-point links)', () => {
    const payload = hex(`
      02 20 80 00 09000000
      0800 0100 c0a80002
      0800 0200 c0a80001`);
    expect(decodeAddr(payload)?.address).toEqual(v4(192, 168, 0, 1));
  });

  it('decodes a kernel-style IPv6 link-local address with flags wider than 8 bits', () => {
    const payload = hex(`
      0a 40 80 fd 04000000
      1400 0100 fe800000 00000000 00000000 00000001
      1400 0600 ${CACHEINFO}
      0800 0800 80020000
      0500 0b00 00 000000`);
    expect(decodeAddr(payload)).toEqual({
      family: 6,
      address: Uint8Array.from(FE80_1),
      prefix: 64,
      flags: 0x280,
      scope: RT_SCOPE_LINK,
      index: 4,
    });
  });

  it('falls back to the header flags without IFA_FLAGS', () => {
    expect(decodeAddr(hex('0a 80 02 00 01000000  1400 0100 fd000000 00000000 00000000 00000005'))?.flags).toBe(IFA_F_NODAD);
  });

  it('returns a copy, not a view into the receive buffer', () => {
    const payload = hex('02 18 00 00 01000000  0800 0200 0a000001');
    const a = decodeAddr(payload);
    payload.fill(0);
    expect(a?.address).toEqual(v4(10, 0, 0, 1));
  });

  it('returns undefined for another family or a message without an address', () => {
    expect(decodeAddr(hex('11 18 00 00 01000000  0800 0200 0a000001'))).toBeUndefined();
    expect(decodeAddr(hex('02 18 00 00 01000000  0900 0300 6c6f00 00'))).toBeUndefined();
  });

  it('decodes what encodeAddr produced', () => {
    const spec = { family: 6 as const, address: Uint8Array.from(FD00_5), prefix: 64, index: 2, scope: 0, flags: IFA_F_NODAD };
    expect(decodeAddr(encodeAddr(spec))).toEqual(spec);
  });
});
