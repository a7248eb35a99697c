// RTM_*ROUTE bodies against linux/rtnetlink.h:
//   struct rtmsg { u8 rtm_family; u8 rtm_dst_len; u8 rtm_src_len; u8 rtm_tos;
//                  u8 rtm_table; u8 rtm_protocol; u8 rtm_scope; u8 rtm_type; u32 rtm_flags; }  (12 bytes)
// RTA_DST=1 RTA_OIF=4 RTA_GATEWAY=5 RTA_PRIORITY=6 RTA_PREFSRC=7 RTA_METRICS=8 RTA_TABLE=15; RTAX_MTU=2 RTAX_ADVMSS=8.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RT_SCOPE_LINK, RTM_NEWROUTE, RTN_BLACKHOLE, RTNH_F_ONLINK } from '../../../src/netlink/constants.ts';
import { nlmsg, parseMessages } from '../../../src/netlink/message.ts';
import { decodeRoute, encodeGetRoute, encodeRoute, type Route } from '../../../src/netlink/route.ts';
import { hex, words } from './bytes.ts';

const v4 = (a: number, b: number, c: number, d: number): Uint8Array => Uint8Array.of(a, b, c, d);

describe('encodeRoute', () => {
  it('a /32 scope-link route to a pod: rtmsg, RTA_DST, RTA_OIF', () => {
    const got = encodeRoute({ family: 4, dst: v4(10, 244, 1, 5), dstLen: 32, oif: 3, scope: RT_SCOPE_LINK });
    expect(words(got)).toBe(
      words(
        hex(`
          02 20 00 00  fe 03 fd 01  00000000
          0800 0100 0af40105
          0800 0400 03000000`),
      ),
    );
  });

  it('a default route via a gateway has no RTA_DST, even when dst bytes are given', () => {
    const expected = hex(`
      02 00 00 00  fe 03 00 01  00000000
      0800 0500 a9fe0101
      0800 0400 02000000`);
    expect(words(encodeRoute({ family: 4, dstLen: 0, gateway: v4(169, 254, 1, 1), oif: 2 }))).toBe(words(expected));
    expect(words(encodeRoute({ family: 4, dst: v4(0, 0, 0, 0), dstLen: 0, gateway: v4(169, 254, 1, 1), oif: 2 }))).toBe(words(expected));
  });

  it('an onlink route carries RTNH_F_ONLINK in rtm_flags', () => {
    const got = encodeRoute({ family: 4, dstLen: 0, gateway: v4(192, 0, 2, 1), oif: 2, flags: RTNH_F_ONLINK });
    expect(words(got)).toBe(
      words(
        hex(`
          02 00 00 00  fe 03 00 01  04000000
          0800 0500 c0000201
          0800 0400 02000000`),
      ),
    );
  });

  it('tables below 256 go in rtm_table only', () => {
    for (const table of [1, 100, 253, 255]) {
      const got = encodeRoute({ family: 4, dst: v4(10, 0, 0, 0), dstLen: 8, oif: 1, table });
      expect(words(got)).toBe(words(hex(`02 08 00 00  ${table.toString(16).padStart(2, '0')} 03 00 01  00000000  0800 0100 0a000000  0800 0400 01000000`)));
    }
  });

  it('tables from 256 up go in RTA_TABLE, with rtm_table = RT_TABLE_UNSPEC', () => {
    expect(words(encodeRoute({ family: 4, dst: v4(10, 0, 0, 0), dstLen: 8, oif: 1, table: 1000 }))).toBe(
      words(hex(`02 08 00 00  00 03 00 01  00000000  0800 0100 0a000000  0800 0400 01000000  0800 0f00 e8030000`)),
    );
    expect(words(encodeRoute({ family: 4, dstLen: 0, oif: 1, table: 256 }))).toBe(
      words(hex(`02 00 00 00  00 03 00 01  00000000  0800 0400 01000000  0800 0f00 00010000`)),
    );
  });

  it('metrics nest under RTA_METRICS with NLA_F_NESTED; attribute order DST GATEWAY OIF PREFSRC PRIORITY TABLE METRICS', () => {
    const got = encodeRoute({
      family: 4,
      dst: v4(10, 244, 0, 0),
      dstLen: 16,
      gateway: v4(10, 244, 1, 1),
      oif: 7,
      prefsrc: v4(10, 244, 1, 5),
      priority: 0,
      table: 4242,
      protocol: 0x9e,
      mtu: 1400,
      advmss: 1360,
    });
    expect(words(got)).toBe(
      words(
        hex(`
          02 10 00 00  00 9e 00 01  00000000
          0800 0100 0af40000
          0800 0500 0af40101
          0800 0400 07000000
          0800 0700 0af40105
          0800 0600 00000000
          0800 0f00 92100000
          1400 0880
            0800 0200 78050000
            0800 0800 50050000`),
      ),
    );
  });

  it('a single metric still nests', () => {
    expect(words(encodeRoute({ family: 4, dstLen: 0, oif: 1, advmss: 1000 }))).toBe(
      words(hex(`02 00 00 00  fe 03 00 01  00000000  0800 0400 01000000  0c00 0880 0800 0800 e8030000`)),
    );
  });

  it('IPv6: 16-byte destination and gateway; type and scope from the spec', () => {
    const got = encodeRoute({
      family: 6,
      dst: hex('fd000000000000010000000000000000'),
      dstLen: 64,
      gateway: hex('fe800000000000000000000000000001'),
      oif: 2,
    });
    expect(words(got)).toBe(
      words(
        hex(`
          0a 40 00 00  fe 03 00 01  00000000
          1400 0100 fd000000 00000001 00000000 00000000
          1400 0500 fe800000 00000000 00000000 00000001
          0800 0400 02000000`),
      ),
    );
    expect(words(encodeRoute({ family: 6, dst: hex('20010db8000000000000000000000000'), dstLen: 32, type: RTN_BLACKHOLE }))).toBe(
      words(hex(`0a 20 00 00  fe 03 00 06  00000000  1400 0100 20010db8 00000000 00000000 00000000`)),
    );
  });
});

describe('encodeGetRoute', () => {
  it('is a zeroed rtmsg with the family', () => {
    expect(words(encodeGetRoute(4))).toBe(words(hex('02000000 00000000 00000000')));
    expect(words(encodeGetRoute(6))).toBe(words(hex('0a000000 00000000 00000000')));
  });
});

/** encode, wrap in a netlink message, split the datagram, decode: what a dump reply goes through. */
function roundTrip(r: Route): Route | undefined {
  const dgram = Buffer.concat([nlmsg(RTM_NEWROUTE, 0, 1, encodeRoute(r)), nlmsg(RTM_NEWROUTE, 0, 2, encodeRoute(r))]);
  const msgs = parseMessages(dgram);
  expect(msgs).toHaveLength(2);
  return decodeRoute(msgs[0]!.payload);
}

describe('decodeRoute(encodeRoute(x))', () => {
  it('round trips a scope-link /32 with defaults filled in', () => {
    expect(roundTrip({ family: 4, dst: v4(10, 244, 1, 5), dstLen: 32, oif: 3, scope: RT_SCOPE_LINK })).toEqual({
      family: 4,
      dst: v4(10, 244, 1, 5),
      dstLen: 32,
      oif: 3,
      scope: RT_SCOPE_LINK,
      table: 254,
      protocol: 3,
      type: 1,
      flags: 0,
    });
  });

  it('round trips a full route in a table >= 256', () => {
    const r: Route = {
      family: 4,
      dst: v4(10, 244, 0, 0),
      dstLen: 16,
      gateway: v4(10, 244, 1, 1),
      oif: 7,
      prefsrc: v4(10, 244, 1, 5),
      priority: 100,
      table: 1000,
      protocol: 0x9e,
      scope: 0,
      type: 1,
      flags: RTNH_F_ONLINK,
      mtu: 1400,
      advmss: 1360,
    };
    expect(roundTrip(r)).toEqual(r);
  });

  it('round trips a default IPv6 route via a link-local gateway', () => {
    const r: Route = { family: 6, dstLen: 0, gateway: hex('fe800000000000000000000000000001'), oif: 2, table: 254, protocol: 3, scope: 0, type: 1, flags: 0 };
    const got = roundTrip(r);
    expect(got).toEqual({ ...r, gateway: Uint8Array.from(r.gateway!) });
    expect(got?.dst).toBeUndefined();
  });

  it('round trips arbitrary routes (property)', () => {
    const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
    const route = fc.oneof(fc.constant<4 | 6>(4), fc.constant<4 | 6>(6)).chain((family) => {
      const alen = family === 4 ? 4 : 16;
      return fc.record({
        family: fc.constant(family),
        dstLen: fc.integer({ min: 0, max: alen * 8 }),
        dst: bytes(alen),
        gateway: fc.option(bytes(alen), { nil: undefined }),
        oif: fc.option(fc.integer({ min: 1, max: 0x7fffffff }), { nil: undefined }),
        prefsrc: fc.option(bytes(alen), { nil: undefined }),
        priority: fc.option(fc.nat(), { nil: undefined }),
        table: fc.integer({ min: 1, max: 0xffffffff }),
        protocol: fc.integer({ min: 0, max: 255 }),
        scope: fc.integer({ min: 0, max: 255 }),
        type: fc.integer({ min: 1, max: 255 }),
        flags: fc.nat(),
        mtu: fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined }),
        advmss: fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined }),
      });
    });
    fc.assert(
      fc.property(route, (rec) => {
        const r: Route = {
          family: rec.family,
          dstLen: rec.dstLen,
          table: rec.table,
          protocol: rec.protocol,
          scope: rec.scope,
          type: rec.type,
          flags: rec.flags,
        };
        if (rec.dstLen > 0) r.dst = rec.dst;
        for (const k of ['gateway', 'oif', 'prefsrc', 'priority', 'mtu', 'advmss'] as const) {
          if (rec[k] !== undefined) (r as unknown as Record<string, unknown>)[k] = rec[k];
        }
        expect(roundTrip(r)).toEqual(r);
      }),
      { numRuns: 300 },
    );
  });
});

describe('decodeRoute on kernel-style payloads', () => {
  it('decodes a dumped connected route (RTA_TABLE always present in dumps)', () => {
    const payload = hex(`
      02 18 00 00  fe 02 fd 01  00000000
      0800 0f00 fe000000
      0800 0100 0af40100
      0800 0700 0af40101
      0800 0400 02000000`);
    expect(decodeRoute(payload)).toEqual({
      family: 4,
      dstLen: 24,
      dst: v4(10, 244, 1, 0),
      prefsrc: v4(10, 244, 1, 1),
      oif: 2,
      table: 254,
      protocol: 2,
      scope: RT_SCOPE_LINK,
      type: 1,
      flags: 0,
    });
  });

  it('decodes a local-table route with RTA_TABLE overriding rtm_table, and ignores unknown attributes', () => {
    const payload = hex(`
      0a 80 00 00  00 02 00 02  00000000
      0800 0f00 e8030000
      1400 0100 fd000000 00000000 00000000 00000005
      0800 0600 00000000
      0800 0400 01000000
      0500 1400 00 000000
      2400 0c00 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000`);
    const r = decodeRoute(payload);
    expect(r).toMatchObject({ family: 6, dstLen: 128, table: 1000, protocol: 2, type: 2, priority: 0, oif: 1 });
    expect(r?.dst).toEqual(Uint8Array.from(hex('fd000000000000000000000000000005')));
  });

  it('returns undefined for a family other than AF_INET/AF_INET6 (e.g. RTNL_FAMILY_IPMR = 128)', () => {
    expect(decodeRoute(hex('80 00 00 00  fe 02 00 01  00000000'))).toBeUndefined();
  });
});
