import { describe, expect, it } from 'vitest';
import { cidrContains, formatIp, hasHostBits, networkOf, parseCidr, parseIp, tryParseCidr, tryParseIp } from '../../../src/ip.ts';
import { failure } from './helpers.ts';

const canon = (s: string): string => formatIp(parseIp(s).bytes);

describe('IPv4 text', () => {
  it('parses dotted quads to bytes', () => {
    expect(parseIp('10.244.1.5')).toEqual({ family: 4, bytes: new Uint8Array([10, 244, 1, 5]) });
    expect(parseIp('0.0.0.0').bytes).toEqual(new Uint8Array(4));
    expect(parseIp('255.255.255.255').bytes).toEqual(new Uint8Array([255, 255, 255, 255]));
  });

  it.each([
    '01.2.3.4',
    '1.02.3.4',
    '256.1.1.1',
    '1.2.3',
    '1.2.3.4.5',
    '1.2.3.',
    '.1.2.3',
    '1..2.3',
    '1.2.3.-4',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '0x1.2.3.4',
    '1.2.3.4/24',
    '',
    '1e1.2.3.4',
  ])('refuses %j with code 7', (s) => {
    expect(tryParseIp(s)).toBeUndefined();
    expect(failure(() => parseIp(s)).code).toBe(7);
  });

  it('formats bytes back', () => {
    expect(formatIp(new Uint8Array([192, 168, 0, 1]))).toBe('192.168.0.1');
  });
});

describe('IPv6 text', () => {
  it.each([
    ['fd00:10:244:1::5', 'fd00:10:244:1::5'],
    ['FD00:0010:0244:0001:0000:0000:0000:0005', 'fd00:10:244:1::5'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['0:0:0:0:0:0:0:0', '::'],
    // RFC 5952 4.2.3: equal runs, the first is compressed
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    // RFC 5952 4.2.3: the longest run wins even when it comes second
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    // RFC 5952 4.2.2: a single zero group is not compressed
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    // `::` may stand for a single group, which is then written out as 0
    ['2001:db8:0:1:1:1:1::', '2001:db8:0:1:1:1:1:0'],
    ['1::', '1::'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fe80::1:2', 'fe80::1:2'],
    ['2001:DB8::ABCD', '2001:db8::abcd'],
    // RFC 5952 5: IPv4-mapped keeps the dotted tail
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::FFFF:c000:0201', '::ffff:192.0.2.1'],
    // embedded IPv4 that is not mapped is written in hex
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ])('%s -> %s', (input, want) => {
    expect(canon(input)).toBe(want);
    expect(parseIp(input).family).toBe(6);
    // canonical text parses back to the same bytes
    expect(parseIp(want).bytes).toEqual(parseIp(input).bytes);
  });

  it('parses to the right bytes', () => {
    expect(Array.from(parseIp('2001:db8::1:0:0:1').bytes)).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
  });

  it.each([
    ':::',
    '1:::2',
    '1::2::3',
    ':1::',
    '::1:',
    '1:2:3:4:5:6:7',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7::8',
    '2001:db8::0:1:1:1:1:1',
    '12345::',
    'g::1',
    'fe80::1%eth0',
    '[::1]',
    '::1.2.3',
    '::01.2.3.4',
    '1.2.3.4::',
    '::1.2.3.4:1',
    ':',
    '1:2:3:4:5:6:7:1.2.3.4',
  ])('refuses %j', (s) => {
    expect(tryParseIp(s)).toBeUndefined();
    expect(failure(() => parseIp(s)).code).toBe(7);
  });

  it('accepts a full address with an IPv4 tail', () => {
    expect(canon('1:2:3:4:5:6:1.2.3.4')).toBe('1:2:3:4:5:6:102:304');
  });
});

describe('formatIp', () => {
  it('refuses byte lengths that are not 4 or 16', () => {
    expect(failure(() => formatIp(new Uint8Array(5))).code).toBe(199);
  });
});

describe('CIDRs', () => {
  it('parses address, prefix and bytes with the address canonical', () => {
    const c = parseCidr('fd00:0010:0244:0001::/64');
    expect(c).toEqual({ family: 6, address: 'fd00:10:244:1::', prefix: 64, bytes: parseIp('fd00:10:244:1::').bytes });
    expect(parseCidr('10.244.1.5/24')).toMatchObject({ family: 4, address: '10.244.1.5', prefix: 24 });
  });

  it.each(['10.0.0.0', '10.0.0.0/33', '::/129', '10.0.0.0/-1', '10.0.0.0/08', '10.0.0.0/', '/24', '10.0.0.0/24/1', '10.0.0.0/ 24', 'fd00::/64x'])(
    'refuses %j',
    (s) => {
      expect(tryParseCidr(s)).toBeUndefined();
      expect(failure(() => parseCidr(s)).code).toBe(7);
    },
  );

  it('knows host bits and networks', () => {
    expect(hasHostBits(parseCidr('10.244.1.5/24'))).toBe(true);
    expect(hasHostBits(parseCidr('10.244.1.0/24'))).toBe(false);
    expect(hasHostBits(parseCidr('10.244.1.0/23'))).toBe(true);
    expect(hasHostBits(parseCidr('fd00:10:244:1::/64'))).toBe(false);
    expect(hasHostBits(parseCidr('fd00:10:244:1::1/64'))).toBe(true);
    expect(networkOf(parseCidr('10.244.1.77/20')).address).toBe('10.244.0.0');
    expect(networkOf(parseCidr('fd00:10:244:1:ffff::1/63')).address).toBe('fd00:10:244::');
    expect(hasHostBits(parseCidr('0.0.0.0/0'))).toBe(false);
  });

  it('tests containment per family', () => {
    const net = parseCidr('10.244.1.0/24');
    expect(cidrContains(net, parseIp('10.244.1.200'))).toBe(true);
    expect(cidrContains(net, parseIp('10.244.2.1'))).toBe(false);
    expect(cidrContains(net, parseIp('::ffff:10.244.1.1'))).toBe(false);
  });
});
