import { describe, expect, it } from 'vitest';
import { CniCode, InvalidConfigError } from '../../../src/errors.ts';
import { canonicalIp, PodRange } from '../../../src/ipam/range.ts';

const configError = (fn: () => unknown): InvalidConfigError => {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidConfigError);
    expect((e as InvalidConfigError).cniCode).toBe(CniCode.InvalidConfig);
    return e as InvalidConfigError;
  }
  throw new Error('expected InvalidConfigError');
};

describe('PodRange IPv4', () => {
  it('a /24 excludes network and broadcast', () => {
    const r = PodRange.parse('10.244.1.0/24');
    expect(r.family).toBe(4);
    expect(r.cidr).toBe('10.244.1.0/24');
    expect(r.firstAddress).toBe('10.244.1.1');
    expect(r.lastAddress).toBe('10.244.1.254');
    expect(r.size).toBe(254n);
    expect(r.contains('10.244.1.0')).toBe(false);
    expect(r.contains('10.244.1.1')).toBe(true);
    expect(r.contains('10.244.1.254')).toBe(true);
    expect(r.contains('10.244.1.255')).toBe(false);
    expect(r.contains('10.244.2.1')).toBe(false);
    expect(r.contains('fd00::1')).toBe(false);
    expect(r.contains('not an ip')).toBe(false);
  });

  it('next() steps and wraps from the last usable to the first', () => {
    const r = PodRange.parse('10.244.1.0/24');
    expect(r.next('10.244.1.1')).toBe('10.244.1.2');
    expect(r.next('10.244.1.253')).toBe('10.244.1.254');
    expect(r.next('10.244.1.254')).toBe('10.244.1.1');
    // Outside the range (a stale hint): restart at the first address.
    expect(r.next('10.244.1.255')).toBe('10.244.1.1');
    expect(r.next('192.168.0.7')).toBe('10.244.1.1');
    expect(r.next('fd00::1')).toBe('10.244.1.1');
  });

  it('a /30 holds two addresses and cycles between them', () => {
    const r = PodRange.parse('192.168.7.4/30');
    expect(r.size).toBe(2n);
    expect([r.firstAddress, r.lastAddress]).toEqual(['192.168.7.5', '192.168.7.6']);
    expect(r.next('192.168.7.5')).toBe('192.168.7.6');
    expect(r.next('192.168.7.6')).toBe('192.168.7.5');
  });

  it('rejects /31 and /32: point-to-point and host prefixes are not pod subnets', () => {
    expect(configError(() => PodRange.parse('10.0.0.0/31')).message).toMatch(/too small.*\/30/);
    configError(() => PodRange.parse('10.0.0.1/32'));
  });

  it('rejects malformed input and host bits', () => {
    for (const bad of ['10.0.0.0', '10.0.0/24', '10.0.0.256/24', '10.0.0.0/33', '10.0.0.0/024', '010.0.0.0/8', '10.0.0.0/-1', '10.0.0.0/']) {
      configError(() => PodRange.parse(bad));
    }
    expect(configError(() => PodRange.parse('10.244.1.5/24')).message).toContain('10.244.1.0/24');
  });

  it('withPrefix gives the CNI form', () => {
    expect(PodRange.parse('10.244.1.0/24').withPrefix('10.244.1.5')).toBe('10.244.1.5/24');
  });

  it('skips excluded addresses (a gateway) in size, contains and next', () => {
    const r = PodRange.parse('10.0.0.0/29', { exclude: ['10.0.0.1', '10.0.0.6'] });
    expect(r.size).toBe(4n);
    expect(r.firstAddress).toBe('10.0.0.2');
    expect(r.lastAddress).toBe('10.0.0.5');
    expect(r.contains('10.0.0.1')).toBe(false);
    expect(r.next('10.0.0.5')).toBe('10.0.0.2');
    configError(() => PodRange.parse('10.0.0.0/29', { exclude: ['10.0.1.1'] }));
    configError(() => PodRange.parse('10.0.0.0/30', { exclude: ['10.0.0.1', '10.0.0.2'] }));
  });
});

describe('PodRange IPv6', () => {
  it('a /64 excludes only the subnet-router anycast address', () => {
    const r = PodRange.parse('fd00:10:244:1::/64');
    expect(r.family).toBe(6);
    expect(r.cidr).toBe('fd00:10:244:1::/64');
    expect(r.firstAddress).toBe('fd00:10:244:1::1');
    expect(r.lastAddress).toBe('fd00:10:244:1:ffff:ffff:ffff:ffff');
    expect(r.size).toBe(2n ** 64n - 1n);
    expect(r.contains('fd00:10:244:1::')).toBe(false);
    expect(r.contains('fd00:10:244:1:0:0:0:1')).toBe(true);
    expect(r.contains('fd00:10:244:2::1')).toBe(false);
    expect(r.next('fd00:10:244:1::ffff')).toBe('fd00:10:244:1::1:0');
    expect(r.withPrefix('FD00:10:244:1:0::5')).toBe('fd00:10:244:1::5/64');
  });

  it('a /126 holds three addresses and wraps', () => {
    const r = PodRange.parse('2001:db8::/126');
    expect(r.size).toBe(3n);
    expect(r.firstAddress).toBe('2001:db8::1');
    expect(r.lastAddress).toBe('2001:db8::3');
    expect(r.next('2001:db8::3')).toBe('2001:db8::1');
  });

  it('rejects /127, /128 and host bits', () => {
    configError(() => PodRange.parse('2001:db8::/127'));
    configError(() => PodRange.parse('2001:db8::1/128'));
    expect(configError(() => PodRange.parse('2001:db8::1/64')).message).toContain('2001:db8::/64');
  });
});

describe('canonical text', () => {
  it.each([
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // first of two equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
    ['2001:DB8::A', '2001:db8::a'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['fe80:0:0:0:0:0:0:0', 'fe80::'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'], // the longer run wins
    ['::ffff:10.1.2.3', '::ffff:10.1.2.3'], // RFC 5952 section 5: IPv4-mapped keeps the dotted quad,
    ['10.1.2.3', '10.1.2.3'],
  ])('%s -> %s', (input, out) => {
    expect(canonicalIp(input)).toBe(out);
  });

  it.each(['1:2:3:4:5:6:7:8:9', '1::2::3', '1:2:3:4:5:6:7', '12345::', 'g::', '1:2:3:4:5:6:7::8', 'fe80::1%eth0', '1.2.3', ''])('rejects %s', (input) => {
    expect(canonicalIp(input)).toBeUndefined();
  });
});
