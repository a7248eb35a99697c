// RTM_*LINK bodies against linux/rtnetlink.h and linux/if_link.h:
//   struct ifinfomsg { u8 ifi_family; u8 pad; u16 ifi_type; s32 ifi_index; u32 ifi_flags; u32 ifi_change; }  (16 bytes)
// IFLA_ADDRESS=1 IFLA_IFNAME=3 IFLA_MTU=4 IFLA_LINK=5 IFLA_TXQLEN=13 IFLA_OPERSTATE=16 IFLA_LINKINFO=18
// IFLA_IFALIAS=20 IFLA_NET_NS_FD=28 IFLA_LINK_NETNSID=37; IFLA_INFO_KIND=1 IFLA_INFO_DATA=2; VETH_INFO_PEER=1.
import { describe, expect, it } from 'vitest';
import { bytesToMac, decodeLink, encodeGetLink, encodeLinkChange, encodeNewVeth, ifinfomsg, macToBytes } from '../../../src/netlink/link.ts';
import { hex, le32, str0, words } from './bytes.ts';

const IFINFOMSG_ZERO = '00 00 0000 00000000 00000000 00000000';

describe('ifinfomsg', () => {
  it('is 16 bytes: family, pad, type, index (s32), flags, change', () => {
    expect(words(ifinfomsg())).toBe(words(hex(IFINFOMSG_ZERO)));
    expect(words(ifinfomsg({ family: 7, index: 0x01020304, flags: 0x11043, change: 0xffffffff }))).toBe(words(hex('07 00 0000 04030201 43100100 ffffffff')));
  });
});

describe('encodeNewVeth', () => {
  it('matches the hand-built layout: ifinfomsg, IFNAME, MTU, LINKINFO{KIND veth, DATA{PEER{ifinfomsg, IFNAME, MTU, NET_NS_FD}}}', () => {
    const got = encodeNewVeth({ name: 'veth0a', peerName: 'eth0', peerNetnsFd: 7, mtu: 1450 });
    const expected = hex(`
      ${IFINFOMSG_ZERO}
      0b00 0300 ${str0('veth0a')} 00
      0800 0400 aa050000
      4400 1280
        0900 0100 ${str0('veth')} 000000
        3400 0280
          3000 0100
            ${IFINFOMSG_ZERO}
            0900 0300 ${str0('eth0')} 000000
            0800 0400 aa050000
            0800 1c00 07000000`);
    expect(expected.length).toBe(104);
    expect(words(got)).toBe(words(expected));
  });

  it('adds MACs to each end and no alias (the kernel ignores IFLA_IFALIAS on creation)', () => {
    const got = encodeNewVeth({
      name: 'weir1234',
      peerName: 'eth0',
      peerNetnsFd: 25,
      mtu: 9000,
      mac: '02:00:00:00:00:01',
      peerMac: '0A:58:0A:F4:01:05',
    });
    const expected = hex(`
      ${IFINFOMSG_ZERO}
      0d00 0300 ${str0('weir1234')} 000000
      0800 0400 ${le32(9000)}
      0a00 0100 020000000001 0000
      5000 1280
        0900 0100 ${str0('veth')} 000000
        4000 0280
          3c00 0100
            ${IFINFOMSG_ZERO}
            0900 0300 ${str0('eth0')} 000000
            0800 0400 ${le32(9000)}
            0a00 0100 0a580af40105 0000
            0800 1c00 19000000`);
    expect(words(got)).toBe(words(expected));
  });

  it('leaves IFLA_MTU out of both ends when no MTU is given', () => {
    const got = encodeNewVeth({ name: 'a', peerName: 'b', peerNetnsFd: 3 });
    const expected = hex(`
      ${IFINFOMSG_ZERO}
      0600 0300 6100 0000
      3800 1280
        0900 0100 ${str0('veth')} 000000
        2800 0280
          2400 0100
            ${IFINFOMSG_ZERO}
            0600 0300 6200 0000
            0800 1c00 03000000`);
    expect(words(got)).toBe(words(expected));
  });

  it('rejects a bad MAC before building anything', () => {
    expect(() => encodeNewVeth({ name: 'a', peerName: 'b', peerNetnsFd: 3, peerMac: '02:00:00:00:00' })).toThrow(RangeError);
  });
});

describe('encodeLinkChange', () => {
  it('up sets IFF_UP in both flags and change', () => {
    expect(words(encodeLinkChange(5, { up: true }))).toBe(words(hex('00 00 0000 05000000 01000000 01000000')));
  });

  it('down clears IFF_UP: flags 0, change IFF_UP', () => {
    expect(words(encodeLinkChange(5, { up: false }))).toBe(words(hex('00 00 0000 05000000 00000000 01000000')));
  });

  it('leaves flags and change 0 when up is not given; attributes in order name, mtu, mac, alias', () => {
    const got = encodeLinkChange(0x102, { name: 'eth1', mtu: 1280, mac: 'de:ad:be:ef:00:01', alias: 'x' });
    const expected = hex(`
      00 00 0000 02010000 00000000 00000000
      0900 0300 ${str0('eth1')} 000000
      0800 0400 00050000
      0a00 0100 deadbeef0001 0000
      0600 1400 7800 0000`);
    expect(words(got)).toBe(words(expected));
  });

  it('an empty alias is sent (it clears the alias), mtu 0 is sent too', () => {
    expect(words(encodeLinkChange(1, { alias: '', mtu: 0 }))).toBe(
      words(hex(`00 00 0000 01000000 00000000 00000000  0800 0400 00000000  0500 1400 00 000000`)),
    );
  });
});

describe('encodeGetLink', () => {
  it('by index: a bare ifinfomsg with the index', () => {
    expect(words(encodeGetLink({ index: 3 }))).toBe(words(hex('00 00 0000 03000000 00000000 00000000')));
  });
  it('by name: index 0 plus IFLA_IFNAME', () => {
    expect(words(encodeGetLink({ name: 'lo' }))).toBe(words(hex(`${IFINFOMSG_ZERO} 0700 0300 6c6f00 00`)));
  });
});

describe('decodeLink', () => {
  it('decodes a kernel-style veth with the peer in another namespace', () => {
    // What the kernel sends for `ip link show veth0` in a RTM_NEWLINK reply.
    const payload = hex(`
      00 00 0100 05000000 43100100 00000000
      0a00 0300 ${str0('veth0')} 0000
      0800 0d00 e8030000
      0500 1000 06 000000
      0800 0400 dc050000
      0800 0500 02000000
      0800 2500 00000000
      0a00 0100 0a580af40105 0000
      0a00 0200 ffffffffffff 0000
      0800 1400 ${str0('pod')}
      1000 1280
        0900 0100 ${str0('veth')} 000000`);
    expect(decodeLink(payload)).toEqual({
      index: 5,
      flags: 0x11043,
      name: 'veth0',
      mtu: 1500,
      mac: '0a:58:0a:f4:01:05',
      alias: 'pod',
      kind: 'veth',
      parentIndex: 2,
      linkNetnsId: 0,
      operstate: 6,
    });
  });

  it('decodes loopback: no kind, no alias, no parent', () => {
    const payload = hex(`
      00 00 0403 01000000 49000100 00000000
      0700 0300 6c6f00 00
      0800 0400 00000100
      0500 1000 00 000000
      0a00 0100 000000000000 0000`);
    expect(decodeLink(payload)).toEqual({ index: 1, flags: 0x10049, name: 'lo', mtu: 65536, mac: '00:00:00:00:00:00', operstate: 0 });
  });

  it('ignores a hardware address that is not 6 bytes long (e.g. an IPv4 tunnel)', () => {
    const payload = hex(`
      00 00 0003 07000000 c1000000 00000000
      0800 0300 74756e00
      0800 0100 0a000001`);
    expect(decodeLink(payload)).toEqual({ index: 7, flags: 0xc1, name: 'tun' });
  });

  it('reads a negative IFLA_LINK_NETNSID and tolerates a link without a name', () => {
    expect(decodeLink(hex(`${IFINFOMSG_ZERO} 0800 2500 ffffffff`))).toEqual({ index: 0, flags: 0, name: '', linkNetnsId: -1 });
  });
});

describe('macToBytes / bytesToMac', () => {
  it('parses lower- and upper-case colon form', () => {
    expect(macToBytes('0a:58:0a:f4:01:05').toString('hex')).toBe('0a580af40105');
    expect(macToBytes('DE:AD:BE:EF:00:FF').toString('hex')).toBe('deadbeef00ff');
  });

  it.each([
    '',
    '0a:58:0a:f4:01',
    '0a:58:0a:f4:01:05:06',
    '0a-58-0a-f4-01-05',
    '0a58.0af4.0105',
    'a:58:0a:f4:01:05',
    '0a:58:0a:f4:01:5',
    '00a:58:0a:f4:01:05',
    'gg:58:0a:f4:01:05',
    '0a:58:0a:f4:01:05:',
    ' 0a:58:0a:f4:01:05',
    '0a:58:0a:f4:01:0x',
    '+1:58:0a:f4:01:05',
  ])('rejects %j', (mac) => {
    expect(() => macToBytes(mac)).toThrow(RangeError);
  });

  it('bytesToMac prints lower-case, zero-padded', () => {
    expect(bytesToMac(Uint8Array.of(0x0a, 0x58, 0x0a, 0xf4, 0x01, 0x05))).toBe('0a:58:0a:f4:01:05');
    expect(bytesToMac(macToBytes('AB:CD:EF:01:02:03'))).toBe('ab:cd:ef:01:02:03');
  });
});
