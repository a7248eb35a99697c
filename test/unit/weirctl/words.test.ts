import { describe, expect, it } from 'vitest';
import { normalizePolicy } from '../../../src/policy/normalize.ts';
import { namedPortsOf } from '../../../src/policy/ports.ts';
import type { NetworkPolicyPeer, NetworkPolicyPort } from '../../../src/policy/types.ts';
import { describePeers, describePorts } from '../../../src/weirctl/words.ts';

const peers = (from: NetworkPolicyPeer[]) => {
  const p = normalizePolicy({ metadata: { namespace: 'shop', name: 'p' }, spec: { podSelector: {}, ingress: [{ from }] } });
  return describePeers(p.ingress![0]!.peers, 'shop');
};
const ports = (list: NetworkPolicyPort[] | undefined, direction: 'ingress' | 'egress' = 'ingress') => {
  const p = normalizePolicy({ metadata: { namespace: 'shop', name: 'p' }, spec: { podSelector: {}, ingress: [{ ...(list ? { ports: list } : {}) }] } });
  const named = namedPortsOf({
    spec: {
      containers: [
        {
          ports: [
            { name: 'http', containerPort: 8080 },
            { name: 'dns', containerPort: 53, protocol: 'UDP' },
          ],
        },
      ],
    },
  });
  return describePorts(p.ingress![0]!.ports, { direction, named });
};

describe('peers in words', () => {
  it("pods of the policy's namespace", () => {
    expect(peers([{ podSelector: { matchLabels: { app: 'client' } } }])).toEqual(['pods app=client in namespace shop']);
    expect(peers([{ podSelector: {} }])).toEqual(['all pods in namespace shop']);
  });
  it('namespaces, and pods in namespaces', () => {
    expect(peers([{ namespaceSelector: { matchLabels: { team: 'a' } } }])).toEqual(['namespaces team=a']);
    expect(peers([{ namespaceSelector: {} }])).toEqual(['all pods in all namespaces']);
    expect(
      peers([
        { namespaceSelector: { matchLabels: { team: 'a' } }, podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['db', 'cache'] }] } },
      ]),
    ).toEqual(['pods tier in (cache,db) in namespaces team=a']);
    expect(peers([{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'x' } } }])).toEqual(['pods app=x in all namespaces']);
  });
  it('ipBlocks with their exceptions', () => {
    expect(peers([{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }])).toEqual(['10.0.0.0/8 except 10.1.0.0/16']);
    expect(peers([{ ipBlock: { cidr: '192.168.1.1/24' } }, { ipBlock: { cidr: 'fd00::/8', except: ['fd00::/16', 'fd01::/16'] } }])).toEqual([
      '192.168.1.0/24',
      'fd00::/8 except fd00::/16, fd01::/16',
    ]);
  });
  it('a rule without peers is any', () => {
    const p = normalizePolicy({ metadata: { namespace: 'shop', name: 'p' }, spec: { podSelector: {}, ingress: [{}] } });
    expect(describePeers(p.ingress![0]!.peers, 'shop')).toEqual(['any']);
  });
});

describe('ports in words', () => {
  it('numbers, ranges, protocols, all ports', () => {
    expect(ports([{ port: 80 }, { protocol: 'UDP', port: 1000, endPort: 2000 }, { protocol: 'SCTP' }])).toEqual(['TCP 80', 'UDP 1000-2000', 'all SCTP ports']);
    expect(ports(undefined)).toEqual(['all ports']);
  });
  it('named ports resolve on this pod for ingress, on each destination for egress', () => {
    expect(ports([{ port: 'http' }])).toEqual(['named http (TCP 8080 on this pod)']);
    expect(ports([{ protocol: 'UDP', port: 'dns' }])).toEqual(['named dns (UDP 53 on this pod)']);
    expect(ports([{ port: 'dns' }])).toEqual(['named dns (TCP; this pod declares no such port, so it matches nothing)']);
    expect(ports([{ port: 'http' }], 'egress')).toEqual(['named http (TCP, the port of that name on each destination pod)']);
  });
});
