import { describe, expect, it } from 'vitest';
import { DEFAULT_DATA_DIR, parseNetConf } from '../../../src/cni/config.ts';
import { parseIp } from '../../../src/ip.ts';
import { failure } from './helpers.ts';

const base = {
  cniVersion: '1.1.0',
  name: 'weirnet',
  type: 'weir',
  podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
  mtu: 1500,
  dataDir: '/var/lib/cni/weir',
};
const conf = (over: Record<string, unknown> = {}, drop: string[] = []): string => {
  const o: Record<string, unknown> = { ...base, ...over };
  for (const k of drop) delete o[k];
  return JSON.stringify(o);
};

describe('good configs', () => {
  it('parses the contract example exactly', () => {
    expect(parseNetConf(conf())).toEqual({
      cniVersion: '1.1.0',
      name: 'weirnet',
      type: 'weir',
      podCIDRs: [
        { family: 4, address: '10.244.1.0', prefix: 24, bytes: parseIp('10.244.1.0').bytes },
        { family: 6, address: 'fd00:10:244:1::', prefix: 64, bytes: parseIp('fd00:10:244:1::').bytes },
      ],
      mtu: 1500,
      dataDir: '/var/lib/cni/weir',
    });
  });

  it('defaults dataDir and leaves mtu unset', () => {
    const c = parseNetConf(conf({}, ['mtu', 'dataDir']));
    expect(c.dataDir).toBe(DEFAULT_DATA_DIR);
    expect(c).not.toHaveProperty('mtu');
  });

  it('accepts single-family networks and canonicalises addresses', () => {
    expect(parseNetConf(conf({ podCIDRs: ['fd00:0010:0244:0001:0000::/80'] })).podCIDRs.map((c) => `${c.address}/${c.prefix}`)).toEqual(['fd00:10:244:1::/80']);
    expect(parseNetConf(conf({ podCIDRs: ['10.244.0.0/30'], mtu: 68 })).podCIDRs).toHaveLength(1);
    expect(parseNetConf(conf({ podCIDRs: ['fd00::/126'], mtu: 1280 })).mtu).toBe(1280);
  });

  it('keeps the standard keys', () => {
    const c = parseNetConf(
      conf({
        runtimeConfig: { portMappings: [] },
        args: { cni: { labels: [] } },
        capabilities: { portMappings: true, bandwidth: false },
        dns: { nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] },
        someRuntimeKey: 1,
      }),
    );
    expect(c.runtimeConfig).toEqual({ portMappings: [] });
    expect(c.args).toEqual({ cni: { labels: [] } });
    expect(c.capabilities).toEqual({ portMappings: true, bandwidth: false });
    expect(c.dns).toEqual({ nameservers: ['10.96.0.10'], search: ['svc.cluster.local'] });
  });

  it('parses prevResult in the config version', () => {
    const c = parseNetConf(
      conf({
        cniVersion: '0.4.0',
        prevResult: { interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }], ips: [{ version: '4', address: '10.244.1.5/24', interface: 0 }] },
      }),
    );
    expect(c.prevResult).toEqual({
      interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/x' }],
      ips: [{ address: '10.244.1.5/24', interface: 0 }],
      routes: [],
      dns: {},
    });
  });

  it('reads GC attachments under both keys and merges them', () => {
    const a = { containerID: 'abc', ifname: 'eth0' };
    const b = { containerID: 'def', ifname: 'eth0' };
    expect(parseNetConf(conf({ 'cni.dev/valid-attachments': [a] })).validAttachments).toEqual([a]);
    expect(parseNetConf(conf({ 'cni.dev/attachments': [b] })).validAttachments).toEqual([b]);
    expect(parseNetConf(conf({ 'cni.dev/valid-attachments': [a], 'cni.dev/attachments': [a, b] })).validAttachments).toEqual([a, b]);
    expect(parseNetConf(conf({ 'cni.dev/valid-attachments': [] })).validAttachments).toEqual([]);
    expect(parseNetConf(conf())).not.toHaveProperty('validAttachments');
  });

  it('negotiates the version from cniVersions when cniVersion is absent', () => {
    expect(parseNetConf(conf({ cniVersions: ['1.0.0', '1.1.0', '2.0.0'] }, ['cniVersion'])).cniVersion).toBe('1.1.0');
    const c = parseNetConf(conf({ cniVersion: '1.0.0', cniVersions: ['1.0.0', '1.1.0'] }));
    expect(c.cniVersion).toBe('1.0.0');
    expect(c.cniVersions).toEqual(['1.0.0', '1.1.0']);
  });
});

describe('bad JSON is code 6', () => {
  it.each(['', '{', 'not json', '{"name": "x",}', '[]', 'null', '"string"', '42'])('%j', (stdin) => {
    expect(failure(() => parseNetConf(stdin)).code).toBe(6);
  });
});

describe('bad versions are code 1', () => {
  it.each([
    [{ cniVersion: '0.2.0' }, []],
    [{ cniVersion: '1.2.0' }, []],
    [{ cniVersion: 'banana' }, []],
    [{}, ['cniVersion']],
    [{ cniVersions: ['0.1.0', '0.2.0'] }, ['cniVersion']],
  ] as [Record<string, unknown>, string[]][])('%j', (over, drop) => {
    expect(failure(() => parseNetConf(conf(over, drop))).code).toBe(1);
  });

  it('an unsupported prevResult version is code 1', () => {
    expect(failure(() => parseNetConf(conf({ prevResult: { cniVersion: '0.2.0', ip4: { ip: '10.0.0.2/24' } } }))).code).toBe(1);
  });
});

describe('bad keys are code 7 and named', () => {
  const cases: [string, Record<string, unknown>, string[]][] = [
    ['cniVersion', { cniVersion: 110 }, []],
    ['cniVersions', { cniVersions: '1.1.0' }, []],
    ['cniVersions[1]', { cniVersions: ['1.1.0', 'x'] }, []],
    ['name', {}, ['name']],
    ['name', { name: '' }, []],
    ['name', { name: 7 }, []],
    ['name', { name: '../etc' }, []],
    ['name', { name: '-net' }, []],
    ['name', { name: 'a b' }, []],
    ['name', { name: 'n'.repeat(256) }, []],
    ['type', {}, ['type']],
    ['type', { type: '' }, []],
    ['type', { type: '../bin/weir' }, []],
    ['podCIDRs', {}, ['podCIDRs']],
    ['podCIDRs', { podCIDRs: '10.244.1.0/24' }, []],
    ['podCIDRs', { podCIDRs: [] }, []],
    ['podCIDRs', { podCIDRs: ['10.244.1.0/24', 'fd00::/64', '10.1.0.0/16'] }, []],
    ['podCIDRs[0]', { podCIDRs: ['10.244.1.0'] }, []],
    ['podCIDRs[0]', { podCIDRs: [24] }, []],
    ['podCIDRs[0]', { podCIDRs: ['10.244.1.1/24'] }, []],
    ['podCIDRs[1]', { podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::1/64'] }, []],
    ['podCIDRs[0]', { podCIDRs: ['10.244.1.0/31'] }, []],
    ['podCIDRs[0]', { podCIDRs: ['10.244.1.1/32'] }, []],
    ['podCIDRs[0]', { podCIDRs: ['fd00::/127'] }, []],
    ['podCIDRs[1]', { podCIDRs: ['10.244.1.0/24', '10.244.2.0/24'] }, []],
    ['podCIDRs[1]', { podCIDRs: ['fd00::/64', 'fd01::/64'] }, []],
    ['mtu', { mtu: '1500' }, []],
    ['mtu', { mtu: 1500.5 }, []],
    ['mtu', { mtu: 67, podCIDRs: ['10.244.1.0/24'] }, []],
    ['mtu', { mtu: 65536 }, []],
    ['mtu', { mtu: 1279 }, []],
    ['mtu', { mtu: 1279, podCIDRs: ['fd00::/64'] }, []],
    ['dataDir', { dataDir: 'var/lib/weir' }, []],
    ['dataDir', { dataDir: '' }, []],
    ['dataDir', { dataDir: 5 }, []],
    ['dataDir', { dataDir: '/var/lib/../../etc' }, []],
    ['runtimeConfig', { runtimeConfig: [] }, []],
    ['args', { args: 'K=V' }, []],
    ['capabilities', { capabilities: true }, []],
    ['capabilities.portMappings', { capabilities: { portMappings: 'yes' } }, []],
    ['dns', { dns: [] }, []],
    ['dns.nameservers', { dns: { nameservers: '1.1.1.1' } }, []],
    ['prevResult', { prevResult: 'x' }, []],
    ['prevResult.ips[0].address', { prevResult: { ips: [{ address: '10.0.0.300/24' }] } }, []],
    ['cni.dev/valid-attachments', { 'cni.dev/valid-attachments': {} }, []],
    ['cni.dev/valid-attachments[0]', { 'cni.dev/valid-attachments': ['abc'] }, []],
    ['cni.dev/valid-attachments[0].containerID', { 'cni.dev/valid-attachments': [{ ifname: 'eth0' }] }, []],
    ['cni.dev/attachments[0].ifname', { 'cni.dev/attachments': [{ containerID: 'a', ifname: 1 }] }, []],
  ];
  it.each(cases)('%s', (key, over, drop) => {
    const f = failure(() => parseNetConf(conf(over, drop)));
    expect(f.code).toBe(7);
    expect(f.msg.startsWith(`${key}: `)).toBe(true);
  });

  it('says which network a CIDR with host bits meant', () => {
    expect(failure(() => parseNetConf(conf({ podCIDRs: ['10.244.1.7/24'] }))).msg).toContain('10.244.1.0/24');
  });
});
