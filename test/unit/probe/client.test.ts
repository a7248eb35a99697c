import { describe, expect, it } from 'vitest';
import { parsePortList } from '../../../lab/probe/cli.ts';
import { formatTarget, parseTarget, parseTargetsJson, randomSrcPort, randomTag } from '../../../lab/probe/client.ts';

describe('targets', () => {
  it('parses IPv4 and bracketed IPv6, protocol case-insensitive, TCP by default', () => {
    expect(parseTarget('10.244.1.6:80/TCP')).toEqual({ ip: '10.244.1.6', port: 80, protocol: 'TCP' });
    expect(parseTarget('[fd00::6]:81/sctp')).toEqual({ ip: 'fd00::6', port: 81, protocol: 'SCTP' });
    expect(parseTarget('10.0.0.1:53')).toEqual({ ip: '10.0.0.1', port: 53, protocol: 'TCP' });
  });

  it.each(['10.0.0.1', '10.0.0.1:0/TCP', '10.0.0.1:70000/TCP', 'fd00::1:80/TCP', '10.0.0.1:80/ICMP', '010.0.0.1:80/TCP', 'host:80/TCP'])('refuses %s', (s) => {
    expect(() => parseTarget(s)).toThrow();
  });

  it('round-trips through formatTarget', () => {
    for (const s of ['10.244.1.6:80/TCP', '[fd00::6]:81/SCTP', '[::1]:9/UDP']) expect(formatTarget(parseTarget(s))).toBe(s);
  });

  it('reads JSON targets: strings or objects', () => {
    expect(parseTargetsJson('["10.0.0.1:80/UDP", {"ip": "fd00::1", "port": 81, "protocol": "sctp"}, {"ip": "10.0.0.2", "port": 1}]')).toEqual([
      { ip: '10.0.0.1', port: 80, protocol: 'UDP' },
      { ip: 'fd00::1', port: 81, protocol: 'SCTP' },
      { ip: '10.0.0.2', port: 1, protocol: 'TCP' },
    ]);
    expect(() => parseTargetsJson('{}')).toThrow(/array/);
    expect(() => parseTargetsJson('[{"ip": 1, "port": 80}]')).toThrow(/bad target/);
  });

  it('draws tags and source ports in range', () => {
    for (let i = 0; i < 1000; i++) {
      const t = randomTag();
      expect(t).toBeGreaterThanOrEqual(1);
      expect(t).toBeLessThanOrEqual(0xffffffff);
      const p = randomSrcPort();
      expect(p).toBeGreaterThanOrEqual(32768);
      expect(p).toBeLessThan(61000);
    }
  });
});

describe('parsePortList', () => {
  it('splits commas across repeated flags and dedups', () => {
    expect(parsePortList(['80,81', '81', ' 82 '], '--tcp')).toEqual([80, 81, 82]);
    expect(parsePortList(undefined, '--tcp')).toEqual([]);
  });
  it.each(['0', '65536', 'http', '-1', '8o'])('refuses %s', (p) => {
    expect(() => parsePortList([p], '--udp')).toThrow(/--udp/);
  });
});
