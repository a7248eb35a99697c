import { describe, expect, it } from 'vitest';
import { parseIp } from '../../../src/ip.ts';
import {
  effectivePolicyTypes,
  type IpBlockPeer,
  ipBlockContains,
  isValidPortName,
  type NetworkPolicy,
  type NetworkPolicySpec,
  type NormalizedPeer,
  normalizePolicies,
  normalizePolicy,
  type PodPeer,
  PolicyError,
} from '../../../src/policy/index.ts';
import { policy, thrown } from './helpers.ts';

const norm = (spec: NetworkPolicySpec) => normalizePolicy(policy('x/p', spec));
const firstPeer = (spec: NetworkPolicySpec): NormalizedPeer => {
  const r = norm(spec).ingress?.[0];
  const p = r && r.peers !== 'any' ? r.peers[0] : undefined;
  if (!p) throw new Error('no peers');
  return p;
};
const podPeer = (spec: NetworkPolicySpec): PodPeer => {
  const p = firstPeer(spec);
  if (p.kind !== 'pods') throw new Error('not a pod peer');
  return p;
};
const nsReqs = (p: PodPeer) => (p.namespaces === 'own' ? 'own' : p.namespaces.requirements);

describe('policyTypes defaulting', () => {
  // "If no policyTypes are specified on a NetworkPolicy then by default Ingress
  // will always be set and Egress will be set if the NetworkPolicy has any egress rules."
  it.each<[string, NetworkPolicySpec, string[]]>([
    ['nothing at all', {}, ['Ingress']],
    ['only ingress rules', { ingress: [{}] }, ['Ingress']],
    ['egress rules', { egress: [{}] }, ['Ingress', 'Egress']],
    ['ingress and egress rules', { ingress: [{}], egress: [{}] }, ['Ingress', 'Egress']],
    ['an empty egress list is not an egress rule', { egress: [] }, ['Ingress']],
    ['empty policyTypes counts as unset', { policyTypes: [], egress: [{}] }, ['Ingress', 'Egress']],
    ['explicit Egress only', { policyTypes: ['Egress'] }, ['Egress']],
    ['explicit Egress only, ingress rules present', { policyTypes: ['Egress'], ingress: [{}] }, ['Egress']],
    ['explicit Ingress only, egress rules present', { policyTypes: ['Ingress'], egress: [{}] }, ['Ingress']],
    ['explicit both, no rules', { policyTypes: ['Egress', 'Ingress'] }, ['Ingress', 'Egress']],
    ['duplicates collapse', { policyTypes: ['Ingress', 'Ingress'] }, ['Ingress']],
  ])('%s', (_n, spec, want) => {
    expect(effectivePolicyTypes(spec)).toEqual(want);
    const n = norm(spec);
    expect(n.policyTypes).toEqual(want);
    expect(n.ingress !== undefined).toBe(want.includes('Ingress'));
    expect(n.egress !== undefined).toBe(want.includes('Egress'));
  });

  it('a direction with no rules is present and empty (deny all), not absent', () => {
    expect(norm({ policyTypes: ['Ingress', 'Egress'] })).toMatchObject({ ingress: [], egress: [] });
  });

  it('reports sections that policyTypes makes inert instead of dropping them silently', () => {
    expect(norm({ policyTypes: ['Egress'], ingress: [{}] }).warnings).toEqual(['spec.ingress has no effect: spec.policyTypes does not include Ingress']);
    expect(norm({ policyTypes: ['Ingress'], egress: [{}] }).warnings).toEqual(['spec.egress has no effect: spec.policyTypes does not include Egress']);
    expect(norm({ ingress: [{}] }).warnings).toEqual([]);
  });
});

describe('normalized form', () => {
  it('absent podSelector selects every pod of the namespace, like {}', () => {
    expect(norm({}).podSelector.requirements).toEqual([]);
    expect(norm({}).podSelector.matchesNothing).toBe(false);
  });

  it('keeps identity and metadata', () => {
    const n = normalizePolicy({ metadata: { namespace: 'x', name: 'p', uid: 'u1', resourceVersion: '7' }, spec: {} });
    expect(n).toMatchObject({ namespace: 'x', name: 'p', uid: 'u1', resourceVersion: '7' });
  });

  it('empty or missing from/ports mean any', () => {
    const n = norm({ ingress: [{}, { from: [], ports: [] }] });
    expect(n.ingress).toEqual([
      { index: 0, peers: 'any', ports: 'any' },
      { index: 1, peers: 'any', ports: 'any' },
    ]);
  });

  it('ports: default TCP, single port, range, named, protocol only', () => {
    const n = norm({
      ingress: [
        { ports: [{ port: 80 }, { protocol: 'UDP', port: 53 }, { protocol: 'SCTP', port: 1000, endPort: 2000 }, { port: 'http' }, { protocol: 'UDP' }, {}] },
      ],
    });
    expect(n.ingress?.[0]?.ports).toEqual([
      { protocol: 'TCP', kind: 'range', from: 80, to: 80 },
      { protocol: 'UDP', kind: 'range', from: 53, to: 53 },
      { protocol: 'SCTP', kind: 'range', from: 1000, to: 2000 },
      { protocol: 'TCP', kind: 'named', name: 'http' },
      { protocol: 'UDP', kind: 'all' },
      { protocol: 'TCP', kind: 'all' },
    ]);
  });

  it('endPort equal to port is a one-port range', () => {
    expect(norm({ ingress: [{ ports: [{ port: 80, endPort: 80 }] }] }).ingress?.[0]?.ports).toEqual([{ protocol: 'TCP', kind: 'range', from: 80, to: 80 }]);
  });

  it('peers: podSelector alone is the own namespace; namespaceSelector alone is all pods; both are ANDed', () => {
    expect(firstPeer({ ingress: [{ from: [{ podSelector: { matchLabels: { a: 'b' } } }] }] })).toMatchObject({ kind: 'pods', namespaces: 'own' });
    const nsOnly = podPeer({ ingress: [{ from: [{ namespaceSelector: {} }] }] });
    expect(nsOnly).toMatchObject({ kind: 'pods', pods: { requirements: [], matchesNothing: false } });
    expect(nsReqs(nsOnly)).toEqual([]);
    const both = podPeer({ ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'y' } }, podSelector: { matchLabels: { pod: 'a' } } }] }] });
    expect(nsReqs(both)).toEqual([{ key: 'ns', operator: 'In', values: ['y'] }]);
    expect(both.pods.requirements).toEqual([{ key: 'pod', operator: 'In', values: ['a'] }]);
  });

  it('null peer selectors count as absent (JSON null is Go nil)', () => {
    const p = firstPeer({ ingress: [{ from: [{ podSelector: null, namespaceSelector: {} } as never] }] });
    expect(p.kind).toBe('pods');
  });

  it('ipBlock: host bits are cleared, except kept', () => {
    const p = firstPeer({ ingress: [{ from: [{ ipBlock: { cidr: '172.17.1.1/16', except: ['172.17.1.0/24'] } }] }] }) as IpBlockPeer;
    expect(p.cidr).toMatchObject({ family: 4, address: '172.17.0.0', prefix: 16 });
    expect(p.except.map((e) => `${e.address}/${e.prefix}`)).toEqual(['172.17.1.0/24']);
    const inside = (ip: string) => ipBlockContains(p, parseIp(ip));
    // "all of 172.17.0.0/16 except 172.17.1.0/24"
    expect(inside('172.17.0.255')).toBe(true);
    expect(inside('172.17.1.0')).toBe(false);
    expect(inside('172.17.1.255')).toBe(false);
    expect(inside('172.17.2.0')).toBe(true);
    expect(inside('172.18.0.1')).toBe(false);
    expect(inside('::ffff:172.17.0.1')).toBe(false);
  });

  it('ipBlock: IPv6 with except', () => {
    const p = firstPeer({ ingress: [{ from: [{ ipBlock: { cidr: '2001:db8::/32', except: ['2001:db8:bad::/48'] } }] }] }) as IpBlockPeer;
    expect(p.cidr.family).toBe(6);
    expect(ipBlockContains(p, parseIp('2001:db8:1::1'))).toBe(true);
    expect(ipBlockContains(p, parseIp('2001:db8:bad::1'))).toBe(false);
    expect(ipBlockContains(p, parseIp('2001:db9::1'))).toBe(false);
    expect(ipBlockContains(p, parseIp('10.0.0.1'))).toBe(false);
  });

  it('ipBlock 0.0.0.0/0 and ::/0 cover their family only', () => {
    const v4 = firstPeer({ ingress: [{ from: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }] }) as IpBlockPeer;
    const v6 = firstPeer({ ingress: [{ from: [{ ipBlock: { cidr: '::/0' } }] }] }) as IpBlockPeer;
    expect(ipBlockContains(v4, parseIp('8.8.8.8'))).toBe(true);
    expect(ipBlockContains(v4, parseIp('2001:db8::1'))).toBe(false);
    expect(ipBlockContains(v6, parseIp('2001:db8::1'))).toBe(true);
    expect(ipBlockContains(v6, parseIp('8.8.8.8'))).toBe(false);
  });
});

describe('policies that cannot be expressed are refused, naming policy and field', () => {
  const bad: [string, NetworkPolicySpec, string][] = [
    ['endPort without port', { ingress: [{ ports: [{ endPort: 90 }] }] }, 'spec.ingress[0].ports[0].endPort'],
    ['endPort below port', { ingress: [{ ports: [{ port: 90, endPort: 80 }] }] }, 'spec.ingress[0].ports[0].endPort'],
    ['endPort with a named port', { egress: [{ ports: [{ port: 'http', endPort: 90 }] }] }, 'spec.egress[0].ports[0].endPort'],
    ['endPort out of range', { ingress: [{ ports: [{ port: 80, endPort: 70000 }] }] }, 'spec.ingress[0].ports[0].endPort'],
    ['endPort not an integer', { ingress: [{ ports: [{ port: 80, endPort: 90.5 }] }] }, 'spec.ingress[0].ports[0].endPort'],
    ['port 0', { ingress: [{ ports: [{ port: 0 }] }] }, 'spec.ingress[0].ports[0].port'],
    ['port 65536', { ingress: [{ ports: [{ port: 65536 }] }] }, 'spec.ingress[0].ports[0].port'],
    ['numeric string port', { ingress: [{ ports: [{ port: '80' }] }] }, 'spec.ingress[0].ports[0].port'],
    ['port name too long', { ingress: [{ ports: [{ port: 'abcdefghijklmnop' }] }] }, 'spec.ingress[0].ports[0].port'],
    ['port name upper case', { ingress: [{ ports: [{ port: 'HTTP' }] }] }, 'spec.ingress[0].ports[0].port'],
    ['port name with --', { ingress: [{ ports: [{ port: 'a--b' }] }] }, 'spec.ingress[0].ports[0].port'],
    ['unknown protocol', { ingress: [{ ports: [{ protocol: 'ICMP', port: 1 }] }] }, 'spec.ingress[0].ports[0].protocol'],
    ['lower-case protocol', { ingress: [{ ports: [{ protocol: 'tcp', port: 1 }] }] }, 'spec.ingress[0].ports[0].protocol'],
    ['second port bad', { ingress: [{ ports: [{ port: 80 }, { port: -1 }] }] }, 'spec.ingress[0].ports[1].port'],
    ['empty peer', { ingress: [{ from: [{}] }] }, 'spec.ingress[0].from[0]'],
    ['ipBlock with podSelector', { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }] }, 'spec.ingress[0].from[0]'],
    ['ipBlock with namespaceSelector', { egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' }, namespaceSelector: {} }] }] }, 'spec.egress[0].to[0]'],
    ['ipBlock without cidr', { ingress: [{ from: [{ ipBlock: {} as never }] }] }, 'spec.ingress[0].from[0].ipBlock.cidr'],
    ['ipBlock bad cidr', { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }, 'spec.ingress[0].from[0].ipBlock.cidr'],
    ['ipBlock bare address', { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.1' } }] }] }, 'spec.ingress[0].from[0].ipBlock.cidr'],
    ['ipBlock octal-looking cidr', { ingress: [{ from: [{ ipBlock: { cidr: '010.0.0.0/8' } }] }] }, 'spec.ingress[0].from[0].ipBlock.cidr'],
    ['except bad cidr', { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['nope'] } }] }] }, 'spec.ingress[0].from[0].ipBlock.except[0]'],
    [
      'except outside cidr',
      { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] } }] }] },
      'spec.ingress[0].from[0].ipBlock.except[0]',
    ],
    [
      'except equal to cidr',
      { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.0.0.0/8'] } }] }] },
      'spec.ingress[0].from[0].ipBlock.except[0]',
    ],
    [
      'except wider than cidr',
      { ingress: [{ from: [{ ipBlock: { cidr: '10.1.0.0/16', except: ['10.0.0.0/8'] } }] }] },
      'spec.ingress[0].from[0].ipBlock.except[0]',
    ],
    [
      'except of the other family',
      { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['fd00::/64'] } }] }] },
      'spec.ingress[0].from[0].ipBlock.except[0]',
    ],
    ['IPv6 except outside', { egress: [{ to: [{ ipBlock: { cidr: 'fd00::/64', except: ['fd01::/80'] } }] }] }, 'spec.egress[0].to[0].ipBlock.except[0]'],
    [
      'second except bad',
      { ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '12.0.0.0/16'] } }] }] },
      'spec.ingress[0].from[0].ipBlock.except[1]',
    ],
    ['bad podSelector', { podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }, 'spec.podSelector.matchExpressions[0].values'],
    [
      'bad peer podSelector',
      { ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Foo' }] } }] }] },
      'spec.ingress[0].from[0].podSelector.matchExpressions[0].operator',
    ],
    [
      'bad peer namespaceSelector',
      { egress: [{ to: [{ namespaceSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['v'] }] } }] }] },
      'spec.egress[0].to[0].namespaceSelector.matchExpressions[0].values',
    ],
    ['unknown policy type', { policyTypes: ['Both'] }, 'spec.policyTypes[0]'],
    ['three policy types', { policyTypes: ['Ingress', 'Egress', 'Ingress'] }, 'spec.policyTypes'],
    ['rules not a list', { ingress: {} as never }, 'spec.ingress'],
    ['rule not an object', { egress: [7 as never] }, 'spec.egress[0]'],
    ['from not a list', { ingress: [{ from: {} as never }] }, 'spec.ingress[0].from'],
    ['ports not a list', { ingress: [{ ports: 80 as never }] }, 'spec.ingress[0].ports'],
    // validated even where policyTypes makes the section inert, as the API does
    ['inert egress section still validated', { policyTypes: ['Ingress'], egress: [{ ports: [{ port: 0 }] }] }, 'spec.egress[0].ports[0].port'],
  ];
  it.each(bad)('%s', (_n, spec, field) => {
    const e = thrown(() => norm(spec));
    expect(e).toBeInstanceOf(PolicyError);
    expect(e.code).toBe('WEIR_POLICY_INVALID');
    expect((e as PolicyError).policy).toEqual({ namespace: 'x', name: 'p' });
    expect(e.field).toBe(field);
    expect(e.message.startsWith(`NetworkPolicy x/p: ${field}: `)).toBe(true);
  });

  it('missing metadata is refused', () => {
    expect(thrown(() => normalizePolicy({ spec: {} })).field).toBe('metadata.namespace');
    expect(thrown(() => normalizePolicy({ metadata: { namespace: 'x' }, spec: {} })).field).toBe('metadata.name');
  });

  it('normalizePolicies keeps the good ones and collects every bad one', () => {
    const list: NetworkPolicy[] = [
      policy('x/good', {}),
      policy('x/bad1', { ingress: [{ ports: [{ port: 0 }] }] }),
      policy('y/good', { policyTypes: ['Egress'] }),
      policy('y/bad2', { egress: [{ to: [{}] }] }),
    ];
    const r = normalizePolicies(list);
    expect(r.policies.map((p) => `${p.namespace}/${p.name}`)).toEqual(['x/good', 'y/good']);
    expect(r.errors.map((e) => [e.policy?.name, e.field])).toEqual([
      ['bad1', 'spec.ingress[0].ports[0].port'],
      ['bad2', 'spec.egress[0].to[0]'],
    ]);
  });
});

describe('port names', () => {
  it.each([
    ['http', true],
    ['serve-80-tcp', true],
    ['a', true],
    ['abcdefghijklmno', true],
    ['abcdefghijklmnop', false],
    ['80', false],
    ['-http', false],
    ['http-', false],
    ['h--p', false],
    ['HTTP', false],
    ['', false],
    ['h_p', false],
  ])('%j valid: %s', (name, ok) => expect(isValidPortName(name)).toBe(ok));
});
