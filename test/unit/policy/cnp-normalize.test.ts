// ClusterNetworkPolicy normalization (src/policy/cnp-normalize.ts): what the
// API's Go types and their doc comments (network-policy-api v0.3.0,
// apis/v1beta1) say each field means, and what weir refuses.
import { describe, expect, it } from 'vitest';
import { parseIp } from '../../../src/ip.ts';
import {
  type ClusterNetworkPolicy,
  type ClusterNetworkPolicyEgressRule,
  type ClusterNetworkPolicySpec,
  type CnpRule,
  domainMatches,
  EVERYTHING,
  failClosedClusterPolicy,
  ipBlockContains,
  normalizeClusterPolicies,
  normalizeClusterPolicy,
  PolicyError,
} from '../../../src/policy/index.ts';
import { cnp } from './cnp-fixtures.ts';
import { thrown } from './helpers.ts';

const all = { namespaces: {} };
const egress = (...rules: ClusterNetworkPolicyEgressRule[]) => normalizeClusterPolicy(cnp('p', 'Admin', 5, all, { egress: rules }));
const rule = (r: ClusterNetworkPolicyEgressRule): CnpRule => egress(r).egress[0] as CnpRule;
const refused = (spec: unknown, field: string) => {
  const e = thrown(() => normalizeClusterPolicy({ metadata: { name: 'p' }, spec } as ClusterNetworkPolicy));
  expect(e).toBeInstanceOf(PolicyError);
  expect(e.field).toBe(field);
  return e;
};
const base: ClusterNetworkPolicySpec = { tier: 'Admin', priority: 5, subject: all };

describe('the object', () => {
  it('tier, priority and subject as given; rules in order with their names', () => {
    const n = normalizeClusterPolicy(
      cnp(
        'gress',
        'Baseline',
        15,
        { namespaces: { matchLabels: { team: 'a' } } },
        {
          ingress: [{ name: 'in', action: 'Pass', from: [{ namespaces: {} }] }],
          egress: [
            { action: 'Deny', to: [{ namespaces: {} }] },
            { name: 'second', action: 'Accept', to: [{ namespaces: {} }] },
          ],
        },
      ),
    );
    expect(n).toMatchObject({ name: 'gress', tier: 'Baseline', priority: 15, warnings: [] });
    expect(n.subject.namespaces.requirements).toEqual([{ key: 'team', operator: 'In', values: ['a'] }]);
    expect(n.subject.pods).toBe(EVERYTHING);
    expect(n.ingress.map((r) => [r.index, r.name, r.action])).toEqual([[0, 'in', 'Pass']]);
    expect(n.egress.map((r) => [r.index, r.name, r.action])).toEqual([
      [0, undefined, 'Deny'],
      [1, 'second', 'Accept'],
    ]);
  });

  it('no rules in a direction: the policy does not affect it', () => {
    expect(normalizeClusterPolicy(cnp('p', 'Admin', 0, all, {}))).toMatchObject({ ingress: [], egress: [] });
  });

  it('subject.pods: the namespace selector may be absent (every namespace); the pod selector is required', () => {
    const n = normalizeClusterPolicy(cnp('p', 'Admin', 0, { pods: { podSelector: { matchLabels: { app: 'x' } } } }, {}));
    expect(n.subject.namespaces).toBe(EVERYTHING);
    expect(n.subject.pods.requirements).toEqual([{ key: 'app', operator: 'In', values: ['x'] }]);
    refused({ ...base, subject: { pods: { namespaceSelector: {} } } }, 'spec.subject.pods.podSelector');
  });

  it.each<[string, unknown, string]>([
    ['no spec', undefined, 'spec'],
    ['an unknown tier', { ...base, tier: 'NetworkPolicy' }, 'spec.tier'],
    ['no tier', { ...base, tier: undefined }, 'spec.tier'],
    ['a priority above 1000', { ...base, priority: 1001 }, 'spec.priority'],
    ['a negative priority', { ...base, priority: -1 }, 'spec.priority'],
    ['a fractional priority', { ...base, priority: 1.5 }, 'spec.priority'],
    ['no subject', { ...base, subject: undefined }, 'spec.subject'],
    ['an empty subject', { ...base, subject: {} }, 'spec.subject'],
    ['a subject with both fields', { ...base, subject: { namespaces: {}, pods: { podSelector: {} } } }, 'spec.subject'],
    [
      'an invalid subject selector',
      { ...base, subject: { namespaces: { matchExpressions: [{ key: 'a', operator: 'Is' }] } } },
      'spec.subject.namespaces.matchExpressions[0].operator',
    ],
    ['rules that are not a list', { ...base, egress: {} }, 'spec.egress'],
    ['an unknown action', { ...base, egress: [{ action: 'Allow', to: [all] }] }, 'spec.egress[0].action'],
    ['no peers', { ...base, ingress: [{ action: 'Deny' }] }, 'spec.ingress[0].from'],
    ['an empty peer list', { ...base, egress: [{ action: 'Deny', to: [] }] }, 'spec.egress[0].to'],
    ['a peer with two fields', { ...base, egress: [{ action: 'Deny', to: [{ namespaces: {}, nodes: {} }] }] }, 'spec.egress[0].to[0]'],
    ['a bad CIDR', { ...base, egress: [{ action: 'Deny', to: [{ networks: ['10.0.0.0/33'] }] }] }, 'spec.egress[0].to[0].networks[0].cidr'],
    ['an empty networks list', { ...base, egress: [{ action: 'Deny', to: [{ networks: [] }] }] }, 'spec.egress[0].to[0].networks'],
    ['a bad domain name', { ...base, egress: [{ action: 'Accept', to: [{ domainNames: ['ex*ample.com'] }] }] }, 'spec.egress[0].to[0].domainNames[0]'],
    ['a wildcard not in front', { ...base, egress: [{ action: 'Accept', to: [{ domainNames: ['www.*.com'] }] }] }, 'spec.egress[0].to[0].domainNames[0]'],
    ['domainNames in a Deny rule', { ...base, egress: [{ action: 'Deny', to: [{ domainNames: ['example.com'] }] }] }, 'spec.egress[0].to'],
    [
      'a named port with a networks peer',
      { ...base, egress: [{ action: 'Accept', to: [{ networks: ['10.0.0.0/8'] }], protocols: [{ destinationNamedPort: 'web' }] }] },
      'spec.egress[0].protocols',
    ],
    [
      'a named port with a nodes peer',
      { ...base, egress: [{ action: 'Deny', to: [{ pods: { podSelector: {} } }, { nodes: {} }], protocols: [{ destinationNamedPort: 'web' }] }] },
      'spec.egress[0].protocols',
    ],
    ['an empty protocols list', { ...base, egress: [{ action: 'Deny', to: [all], protocols: [] }] }, 'spec.egress[0].protocols'],
    [
      'a protocol entry with two fields',
      { ...base, egress: [{ action: 'Deny', to: [all], protocols: [{ tcp: {}, udp: {} }] }] },
      'spec.egress[0].protocols[0]',
    ],
    [
      'a port with number and range',
      { ...base, egress: [{ action: 'Deny', to: [all], protocols: [{ tcp: { destinationPort: { number: 1, range: { start: 1, end: 2 } } } }] }] },
      'spec.egress[0].protocols[0].tcp.destinationPort',
    ],
    [
      'port 0',
      { ...base, egress: [{ action: 'Deny', to: [all], protocols: [{ udp: { destinationPort: { number: 0 } } }] }] },
      'spec.egress[0].protocols[0].udp.destinationPort.number',
    ],
    [
      'a reversed range',
      { ...base, egress: [{ action: 'Deny', to: [all], protocols: [{ sctp: { destinationPort: { range: { start: 9, end: 8 } } } }] }] },
      'spec.egress[0].protocols[0].sctp.destinationPort.range.end',
    ],
    [
      'a bad port name',
      { ...base, egress: [{ action: 'Deny', to: [all], protocols: [{ destinationNamedPort: 'Web' }] }] },
      'spec.egress[0].protocols[0].destinationNamedPort',
    ],
  ])('refuses %s', (_n, spec, field) => {
    const e = refused(spec, field);
    expect(e.message).toMatch(/^ClusterNetworkPolicy p: /);
  });

  it('refuses an object without a name', () => {
    expect(thrown(() => normalizeClusterPolicy({ spec: base } as ClusterNetworkPolicy)).field).toBe('metadata.name');
  });
});

describe('peers', () => {
  it('namespaces: every pod of the selected namespaces; pods: namespace AND pod selector', () => {
    const r = rule({
      action: 'Deny',
      to: [{ namespaces: { matchLabels: { a: 'b' } } }, { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'x' } } } }],
    });
    expect(r.peers).toMatchObject([
      { kind: 'pods', namespaces: { requirements: [{ key: 'a', values: ['b'] }] }, pods: EVERYTHING },
      { kind: 'pods', namespaces: EVERYTHING, pods: { requirements: [{ key: 'app', values: ['x'] }] } },
    ]);
  });

  it('nodes: a node selector; networks: one ipBlock per CIDR, masked, either family', () => {
    const r = rule({ action: 'Deny', to: [{ nodes: {} }, { networks: ['10.1.2.3/16', 'fd00::/8'] }] });
    expect(r.peers).toMatchObject([
      { kind: 'nodes', nodes: EVERYTHING },
      { kind: 'ipBlock', except: [] },
      { kind: 'ipBlock', except: [] },
    ]);
    const block = r.peers !== 'any' ? r.peers[1] : undefined;
    if (block?.kind !== 'ipBlock') throw new Error('no ipBlock');
    expect(ipBlockContains(block, parseIp('10.1.200.1'))).toBe(true);
    expect(ipBlockContains(block, parseIp('10.2.0.1'))).toBe(false);
  });

  it('domainNames: lower case, no trailing dot, sorted and unique', () => {
    expect(rule({ action: 'Accept', to: [{ domainNames: ['WWW.Example.com.', '*.kubernetes.io', 'www.example.com'] }] }).peers).toEqual([
      { kind: 'domains', names: ['*.kubernetes.io', 'www.example.com'] },
    ]);
  });

  it('a peer with no field weir knows: an Accept rule does not match through it; a Deny or Pass rule becomes "Deny all"', () => {
    const n = egress({ action: 'Accept', to: [{ serviceAccounts: {} } as never, { namespaces: {} }] }, { action: 'Pass', to: [{} as never] });
    expect(n.egress[0]?.peers).toHaveLength(1);
    expect(n.egress[1]).toMatchObject({ index: 1, action: 'Deny', peers: 'any', ports: 'any' });
    expect(n.warnings).toEqual([
      'spec.egress[0].to: a peer sets no field weir knows; that peer matches nothing',
      'spec.egress[1].to: a peer sets no field weir knows; the rule denies all traffic',
    ]);
    // an egress-only peer type in an ingress rule is one the ingress peer type does not know
    const i = normalizeClusterPolicy(cnp('p', 'Admin', 1, all, { ingress: [{ action: 'Accept', from: [{ nodes: {} } as never] }] }));
    expect(i.ingress[0]?.peers).toEqual([]);
  });

  it('domainMatches, the API examples', () => {
    expect(domainMatches('kubernetes.io', 'kubernetes.io')).toBe(true);
    for (const n of ['www.kubernetes.io', 'blog.kubernetes.io', 'my-kubernetes.io', 'wikipedia.org']) expect(domainMatches('kubernetes.io', n)).toBe(false);
    expect(domainMatches('blog.kubernetes.io', 'blog.kubernetes.io')).toBe(true);
    expect(domainMatches('blog.kubernetes.io', 'www.kubernetes.io')).toBe(false);
    for (const n of ['www.kubernetes.io', 'blog.kubernetes.io', 'latest.blog.kubernetes.io']) expect(domainMatches('*.kubernetes.io', n)).toBe(true);
    for (const n of ['kubernetes.io', 'wikipedia.org', 'xkubernetes.io']) expect(domainMatches('*.kubernetes.io', n)).toBe(false);
  });
});

describe('protocols', () => {
  it('absent: every packet; a number; a range; a protocol with no port: all of its ports', () => {
    expect(rule({ action: 'Deny', to: [all] }).ports).toBe('any');
    expect(
      rule({
        action: 'Deny',
        to: [all],
        protocols: [{ tcp: { destinationPort: { number: 80 } } }, { udp: { destinationPort: { range: { start: 5000, end: 5010 } } } }, { sctp: {} }],
      }).ports,
    ).toEqual([
      { protocol: 'TCP', kind: 'range', from: 80, to: 80 },
      { protocol: 'UDP', kind: 'range', from: 5000, to: 5010 },
      { protocol: 'SCTP', kind: 'all' },
    ]);
  });

  it('destinationNamedPort: the name under each protocol (a container port declares its own)', () => {
    expect(rule({ action: 'Accept', to: [{ pods: { podSelector: {} } }], protocols: [{ destinationNamedPort: 'web' }] }).ports).toEqual([
      { protocol: 'TCP', kind: 'named', name: 'web' },
      { protocol: 'UDP', kind: 'named', name: 'web' },
      { protocol: 'SCTP', kind: 'named', name: 'web' },
    ]);
  });
});

describe('fail closed', () => {
  it('keeps tier, priority and subject, and denies all in the directions it has rules for', () => {
    const bad = cnp('bad', 'Baseline', 40, { namespaces: { matchLabels: { a: 'b' } } }, { egress: [{ action: 'Maybe' as never, to: [all] }] });
    expect(thrown(() => normalizeClusterPolicy(bad)).field).toBe('spec.egress[0].action');
    const f = failClosedClusterPolicy(bad);
    expect(f).toMatchObject({ name: 'bad', tier: 'Baseline', priority: 40, ingress: [], egress: [{ action: 'Deny', peers: 'any', ports: 'any' }] });
    expect(f.subject.namespaces.requirements).toEqual([{ key: 'a', operator: 'In', values: ['b'] }]);
  });

  it('what cannot be read takes the closed side: Admin, priority 0, every pod, both directions', () => {
    const f = failClosedClusterPolicy({ metadata: { name: 'x' }, spec: { tier: 'Middle', priority: 'high', subject: { pods: 3 } } as never });
    expect(f).toMatchObject({ tier: 'Admin', priority: 0, subject: { namespaces: EVERYTHING, pods: EVERYTHING }, ingress: [], egress: [] });
    expect(failClosedClusterPolicy({ metadata: { name: 'y' } })).toMatchObject({ ingress: [{ action: 'Deny' }], egress: [{ action: 'Deny' }] });
  });

  it('normalizeClusterPolicies: every policy (fail-closed ones too), by priority then name; the errors apart', () => {
    const r = normalizeClusterPolicies([
      cnp('c', 'Admin', 5, all, {}),
      cnp('b', 'Baseline', 1, all, {}),
      cnp('a', 'Admin', 5, all, {}),
      cnp('z', 'Admin', 300, all, { ingress: [{ action: 'Deny', from: [] }] }),
    ]);
    expect(r.policies.map((p) => `${p.tier}/${p.priority}/${p.name}`)).toEqual(['Baseline/1/b', 'Admin/5/a', 'Admin/5/c', 'Admin/300/z']);
    expect(r.errors.map((e) => [e.policy?.name, e.field])).toEqual([['z', 'spec.ingress[0].from']]);
    expect(r.policies[3]?.ingress).toMatchObject([{ action: 'Deny', peers: 'any' }]);
  });
});
