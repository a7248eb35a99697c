import { describe, expect, it } from 'vitest';
import { emptyResult, formatResult, parsePrevResult, type WeirResult } from '../../../src/cni/result.ts';
import { SUPPORTED_VERSIONS } from '../../../src/cni/version.ts';
import { failure } from './helpers.ts';

/** A dual-stack pod result that uses every field, 1.1.0 ones included. */
const full: WeirResult = {
  interfaces: [
    { name: 'weir0a1b2c3d4e5', mac: 'ee:ee:ee:ee:ee:ee', mtu: 1500 },
    { name: 'eth0', mac: '0a:58:0a:f4:01:05', sandbox: '/var/run/netns/cni-1', mtu: 1500, socketPath: '/run/x.sock', pciID: '0000:00:1f.6' },
  ],
  ips: [
    { address: '10.244.1.5/24', gateway: '169.254.1.1', interface: 1 },
    { address: 'fd00:10:244:1::5/64', gateway: 'fe80::1', interface: 1 },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '169.254.1.1', mtu: 1450, advmss: 1400, priority: 100, table: 254, scope: 0 },
    { dst: '::/0', gw: 'fe80::1' },
    { dst: '169.254.1.1/32', scope: 253 },
  ],
  dns: { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['default.svc.cluster.local'], options: ['ndots:5'] },
};

const dns = { nameservers: ['10.96.0.10'], domain: 'cluster.local', search: ['default.svc.cluster.local'], options: ['ndots:5'] };

const json04 = (v: string): Record<string, unknown> => ({
  cniVersion: v,
  interfaces: [
    { name: 'weir0a1b2c3d4e5', mac: 'ee:ee:ee:ee:ee:ee' },
    { name: 'eth0', mac: '0a:58:0a:f4:01:05', sandbox: '/var/run/netns/cni-1' },
  ],
  ips: [
    { version: '4', interface: 1, address: '10.244.1.5/24', gateway: '169.254.1.1' },
    { version: '6', interface: 1, address: 'fd00:10:244:1::5/64', gateway: 'fe80::1' },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '::/0', gw: 'fe80::1' }, { dst: '169.254.1.1/32' }],
  dns,
});

const json100 = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'weir0a1b2c3d4e5', mac: 'ee:ee:ee:ee:ee:ee' },
    { name: 'eth0', mac: '0a:58:0a:f4:01:05', sandbox: '/var/run/netns/cni-1' },
  ],
  ips: [
    { interface: 1, address: '10.244.1.5/24', gateway: '169.254.1.1' },
    { interface: 1, address: 'fd00:10:244:1::5/64', gateway: 'fe80::1' },
  ],
  routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '::/0', gw: 'fe80::1' }, { dst: '169.254.1.1/32' }],
  dns,
};

const json110 = {
  cniVersion: '1.1.0',
  interfaces: [
    { name: 'weir0a1b2c3d4e5', mac: 'ee:ee:ee:ee:ee:ee', mtu: 1500 },
    { name: 'eth0', mac: '0a:58:0a:f4:01:05', mtu: 1500, sandbox: '/var/run/netns/cni-1', socketPath: '/run/x.sock', pciID: '0000:00:1f.6' },
  ],
  ips: [
    { interface: 1, address: '10.244.1.5/24', gateway: '169.254.1.1' },
    { interface: 1, address: 'fd00:10:244:1::5/64', gateway: 'fe80::1' },
  ],
  routes: [
    { dst: '0.0.0.0/0', gw: '169.254.1.1', mtu: 1450, advmss: 1400, priority: 100, table: 254, scope: 0 },
    { dst: '::/0', gw: 'fe80::1' },
    { dst: '169.254.1.1/32', scope: 253 },
  ],
  dns,
};

describe('formatResult', () => {
  it.each(['0.3.0', '0.3.1', '0.4.0'])('%s labels ips with version and drops 1.1.0 fields', (v) => {
    expect(formatResult(full, v)).toEqual(json04(v));
  });

  it('1.0.0 has no ip version and no 1.1.0 fields', () => {
    expect(formatResult(full, '1.0.0')).toEqual(json100);
  });

  it('1.1.0 carries the new interface and route fields', () => {
    expect(formatResult(full, '1.1.0')).toEqual(json110);
  });

  it('emits keys in the order of the Go structs', () => {
    expect(JSON.stringify(formatResult(full, '0.4.0'))).toBe(JSON.stringify(json04('0.4.0')));
    expect(JSON.stringify(formatResult(full, '1.1.0'))).toBe(JSON.stringify(json110));
  });

  it('keeps interface index 0', () => {
    const r: WeirResult = { ...emptyResult(), interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.2/24', interface: 0 }] };
    expect(formatResult(r, '1.0.0')).toEqual({ cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ interface: 0, address: '10.0.0.2/24' }] });
  });

  it('omits empty dns from 1.x but keeps {} in 0.x, as the Go types do', () => {
    const r: WeirResult = { ...emptyResult(), ips: [{ address: '10.0.0.2/24' }] };
    expect(formatResult(r, '1.1.0')).toEqual({ cniVersion: '1.1.0', ips: [{ address: '10.0.0.2/24' }] });
    expect(formatResult(r, '1.0.0')).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] });
    expect(formatResult(r, '0.4.0')).toEqual({ cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.2/24' }], dns: {} });
    expect(formatResult(emptyResult(), '1.1.0')).toEqual({ cniVersion: '1.1.0' });
    expect(formatResult({ ...emptyResult(), dns: { nameservers: [], search: [], domain: '' } }, '1.1.0')).toEqual({ cniVersion: '1.1.0' });
  });

  it('omits zero mtu/advmss/priority but keeps table and scope 0', () => {
    const r: WeirResult = {
      ...emptyResult(),
      interfaces: [{ name: 'eth0', mtu: 0 }],
      routes: [{ dst: '10.0.0.0/8', mtu: 0, advmss: 0, priority: 0, table: 0, scope: 0 }],
    };
    expect(formatResult(r, '1.1.0')).toEqual({ cniVersion: '1.1.0', interfaces: [{ name: 'eth0' }], routes: [{ dst: '10.0.0.0/8', table: 0, scope: 0 }] });
  });

  it('canonicalises addresses', () => {
    const r: WeirResult = { ...emptyResult(), ips: [{ address: 'FD00:0:0:0::05/64', gateway: 'FE80:0::1' }], routes: [{ dst: '0:0::/0', gw: 'FE80::0001' }] };
    expect(formatResult(r, '1.0.0')).toEqual({
      cniVersion: '1.0.0',
      ips: [{ address: 'fd00::5/64', gateway: 'fe80::1' }],
      routes: [{ dst: '::/0', gw: 'fe80::1' }],
    });
  });

  it('refuses unsupported versions with code 1 and broken results with 199', () => {
    expect(failure(() => formatResult(full, '0.2.0')).code).toBe(1);
    expect(failure(() => formatResult({ ...emptyResult(), ips: [{ address: '10.0.0.2' }] }, '1.0.0')).code).toBe(199);
    expect(failure(() => formatResult({ ...emptyResult(), ips: [{ address: '10.0.0.2/24', interface: 0 }] }, '1.0.0')).code).toBe(199);
  });
});

describe('parsePrevResult', () => {
  it('reads 0.3.x/0.4.0 results', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
      const r = parsePrevResult(json04(v), '1.1.0');
      expect(r).toEqual({
        interfaces: [
          { name: 'weir0a1b2c3d4e5', mac: 'ee:ee:ee:ee:ee:ee' },
          { name: 'eth0', mac: '0a:58:0a:f4:01:05', sandbox: '/var/run/netns/cni-1' },
        ],
        ips: [
          { address: '10.244.1.5/24', gateway: '169.254.1.1', interface: 1 },
          { address: 'fd00:10:244:1::5/64', gateway: 'fe80::1', interface: 1 },
        ],
        routes: [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '::/0', gw: 'fe80::1' }, { dst: '169.254.1.1/32' }],
        dns,
      });
    }
  });

  it('reads 1.1.0 results in full', () => {
    expect(parsePrevResult(json110)).toEqual(full);
  });

  it.each([...SUPPORTED_VERSIONS])('round-trips through %s', (v) => {
    const once = formatResult(full, v);
    const back = parsePrevResult(once, v);
    expect(formatResult(back, v)).toEqual(once);
    // and through JSON text, as it travels
    expect(formatResult(parsePrevResult(JSON.parse(JSON.stringify(once)), v), v)).toEqual(once);
  });

  it('takes the config version when the result has none', () => {
    expect(parsePrevResult({ ips: [{ version: '4', address: '10.0.0.2/24' }] }, '0.4.0').ips).toEqual([{ address: '10.0.0.2/24' }]);
    expect(failure(() => parsePrevResult({ ips: [{ version: '6', address: '10.0.0.2/24' }] }, '0.4.0')).msg).toMatch(/^prevResult\.ips\[0\]\.version: /);
    // 1.x has no version field; a stray one is ignored like the Go types do
    expect(parsePrevResult({ ips: [{ version: '6', address: '10.0.0.2/24' }] }, '1.0.0').ips).toEqual([{ address: '10.0.0.2/24' }]);
  });

  it('reads an IPAM-style result without interfaces', () => {
    expect(parsePrevResult({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }], dns: {} })).toEqual({
      interfaces: [],
      ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1' }],
      routes: [],
      dns: {},
    });
  });

  it.each([
    ['prevResult', 'x'],
    ['prevResult.cniVersion', { cniVersion: 1 }],
    ['prevResult.interfaces', { interfaces: {} }],
    ['prevResult.interfaces[0]', { interfaces: ['eth0'] }],
    ['prevResult.interfaces[0].name', { interfaces: [{}] }],
    ['prevResult.interfaces[0].mac', { interfaces: [{ name: 'eth0', mac: 5 }] }],
    ['prevResult.interfaces[0].mtu', { interfaces: [{ name: 'eth0', mtu: -1 }] }],
    ['prevResult.ips[0].address', { ips: [{ address: '10.0.0.2' }] }],
    ['prevResult.ips[0].address', { ips: [{}] }],
    ['prevResult.ips[0].gateway', { ips: [{ address: '10.0.0.2/24', gateway: '10.0.0' }] }],
    ['prevResult.ips[0].interface', { ips: [{ address: '10.0.0.2/24', interface: 0 }] }],
    ['prevResult.ips[0].interface', { interfaces: [{ name: 'a' }], ips: [{ address: '10.0.0.2/24', interface: -1 }] }],
    ['prevResult.routes[0].dst', { routes: [{ dst: 'default' }] }],
    ['prevResult.routes[0].gw', { routes: [{ dst: '0.0.0.0/0', gw: 'x' }] }],
    ['prevResult.routes[0].scope', { routes: [{ dst: '0.0.0.0/0', scope: 256 }] }],
    ['prevResult.dns', { dns: 'x' }],
    ['prevResult.dns.search[1]', { dns: { search: ['a', 2] } }],
  ])('refuses bad %s with code 7', (key, raw) => {
    const f = failure(() => parsePrevResult(raw, '1.1.0'));
    expect(f.code).toBe(7);
    expect(f.msg.startsWith(`${key}: `)).toBe(true);
  });

  it('refuses unsupported result versions with code 1', () => {
    expect(failure(() => parsePrevResult({ cniVersion: '0.2.0' }, '1.1.0')).code).toBe(1);
  });
});
