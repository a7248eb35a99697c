import { describe, expect, it } from 'vitest';
import { formatPortMatch, namedPortsOf, type PortMatch, portMatches, portsMatch, resolveNamedPort } from '../../../src/policy/index.ts';
import { pod } from './helpers.ts';

const web = pod('x/web', {
  ips: ['10.0.0.1'],
  ports: [
    { name: 'http', containerPort: 8080 },
    { name: 'dns', containerPort: 53, protocol: 'UDP' },
    { name: 'dns-tcp', containerPort: 53, protocol: 'TCP' },
    { containerPort: 9000 },
  ],
  sidecarPorts: [{ name: 'metrics', containerPort: 9090 }],
});
const named = namedPortsOf(web);

describe('named port resolution', () => {
  it('needs name and protocol to match; container ports default to TCP', () => {
    expect(resolveNamedPort(named, 'TCP', 'http')).toEqual([8080]);
    expect(resolveNamedPort(named, 'UDP', 'http')).toEqual([]);
    expect(resolveNamedPort(named, 'UDP', 'dns')).toEqual([53]);
    expect(resolveNamedPort(named, 'TCP', 'dns')).toEqual([]);
    expect(resolveNamedPort(named, 'TCP', 'nope')).toEqual([]);
  });

  it('sidecars (restartPolicy Always init containers) count; plain init containers do not', () => {
    expect(resolveNamedPort(named, 'TCP', 'metrics')).toEqual([9090]);
    const p = pod('x/p', { ips: ['10.0.0.2'] });
    if (p.spec) p.spec.initContainers = [{ ports: [{ name: 'setup', containerPort: 1 }] }];
    expect(resolveNamedPort(namedPortsOf(p), 'TCP', 'setup')).toEqual([]);
  });

  it('a pod without spec has no names', () => {
    expect(namedPortsOf({}).size).toBe(0);
    expect(namedPortsOf(undefined).size).toBe(0);
  });
});

describe('port matching', () => {
  const tcp80: PortMatch = { protocol: 'TCP', kind: 'range', from: 80, to: 80 };
  const range: PortMatch = { protocol: 'TCP', kind: 'range', from: 32000, to: 32768 };
  const udpAll: PortMatch = { protocol: 'UDP', kind: 'all' };
  const http: PortMatch = { protocol: 'TCP', kind: 'named', name: 'http' };

  it('numeric port: protocol and number', () => {
    expect(portMatches(tcp80, 'TCP', 80, undefined)).toBe(true);
    expect(portMatches(tcp80, 'TCP', 81, undefined)).toBe(false);
    expect(portMatches(tcp80, 'UDP', 80, undefined)).toBe(false);
    expect(portMatches(tcp80, 'SCTP', 80, undefined)).toBe(false);
  });

  it('range is inclusive at both ends', () => {
    expect(portMatches(range, 'TCP', 31999, undefined)).toBe(false);
    expect(portMatches(range, 'TCP', 32000, undefined)).toBe(true);
    expect(portMatches(range, 'TCP', 32768, undefined)).toBe(true);
    expect(portMatches(range, 'TCP', 32769, undefined)).toBe(false);
    expect(portMatches(range, 'UDP', 32100, undefined)).toBe(false);
  });

  it('protocol only: every port of that protocol and no other', () => {
    expect(portMatches(udpAll, 'UDP', 1, undefined)).toBe(true);
    expect(portMatches(udpAll, 'UDP', 65535, undefined)).toBe(true);
    expect(portMatches(udpAll, 'TCP', 53, undefined)).toBe(false);
  });

  it('named: resolved against the receiving pod; no pod means no match', () => {
    expect(portMatches(http, 'TCP', 8080, named)).toBe(true);
    expect(portMatches(http, 'TCP', 80, named)).toBe(false);
    expect(portMatches(http, 'TCP', 8080, undefined)).toBe(false);
    expect(portMatches({ protocol: 'TCP', kind: 'named', name: 'missing' }, 'TCP', 8080, named)).toBe(false);
  });

  it('a rule without ports matches everything; a list needs one entry to match', () => {
    expect(portsMatch('any', 'SCTP', 7, undefined)).toBe(true);
    expect(portsMatch([tcp80, udpAll], 'UDP', 7, undefined)).toBe(true);
    expect(portsMatch([tcp80, udpAll], 'TCP', 7, undefined)).toBe(false);
    expect(portsMatch([], 'TCP', 80, undefined)).toBe(false);
  });

  it('formats', () => {
    expect([tcp80, range, udpAll, http].map(formatPortMatch)).toEqual(['TCP/80', 'TCP/32000-32768', 'UDP/*', 'TCP/http']);
  });
});
