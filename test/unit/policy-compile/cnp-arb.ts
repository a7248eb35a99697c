// Random ClusterNetworkPolicies for the compiler's properties, over the
// small clusters of cluster.ts: both tiers, priorities drawn from a few
// values (so that ties, broken by name, are common), every action, every
// peer kind (pods, namespaces, nodes by label, networks around the pod and
// node addresses, learned domain names) and every kind of protocol entry.
import fc from 'fast-check';
import type {
  ClusterNetworkPolicy,
  ClusterNetworkPolicyEgressPeer,
  ClusterNetworkPolicyEgressRule,
  ClusterNetworkPolicyIngressRule,
  ClusterNetworkPolicyProtocol,
  ClusterNetworkPolicySubject,
} from '../../../src/policy/cnp-types.ts';
import { type Change, type ClusterModel, changeArb, clusterArb, LEARNED, nsSelectorArb, podSelectorArb } from './cluster.ts';

export const CNP_SLOTS = 4;

const NETWORKS = [
  '10.1.0.0/24',
  '10.2.0.0/25',
  '10.1.0.14/32',
  '0.0.0.0/0',
  '192.168.0.0/24',
  '203.0.113.0/24',
  '::/0',
  'fd00:1::/64',
  'fd01::2/128',
  '169.254.169.254/32',
  'fd00:ec2::254/128',
];
const NODE_SELECTORS = [{}, { matchLabels: { zone: 'a' } }, { matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] }];
const DOMAINS = [['*.example.com'], ['www.example.com'], ['example.org', 'nothing.example.net']];
const NUMBERED: ClusterNetworkPolicyProtocol[] = [
  { tcp: { destinationPort: { number: 80 } } },
  { tcp: { destinationPort: { range: { start: 8000, end: 9100 } } } },
  { udp: { destinationPort: { number: 53 } } },
  { udp: {} },
  { sctp: { destinationPort: { number: 9999 } } },
];
const NAMED: ClusterNetworkPolicyProtocol[] = [{ destinationNamedPort: 'http' }, { destinationNamedPort: 'dns' }, { destinationNamedPort: 'sctp-x' }];

const podsPeerArb = fc.oneof(
  nsSelectorArb.map((namespaces) => ({ namespaces })),
  fc
    .tuple(fc.option(nsSelectorArb, { nil: undefined }), podSelectorArb)
    .map(([namespaceSelector, podSelector]) => ({ pods: { ...(namespaceSelector ? { namespaceSelector } : {}), podSelector } })),
);
const otherPeerArb: fc.Arbitrary<ClusterNetworkPolicyEgressPeer> = fc.oneof(
  fc.constantFrom(...NODE_SELECTORS).map((nodes) => ({ nodes })),
  fc.uniqueArray(fc.constantFrom(...NETWORKS), { minLength: 1, maxLength: 2 }).map((networks) => ({ networks })),
);
const actionArb = fc.constantFrom('Accept' as const, 'Deny' as const, 'Pass' as const);
const protocolsArb = (named: boolean) =>
  fc.option(fc.uniqueArray(fc.constantFrom(...NUMBERED, ...(named ? NAMED : [])), { minLength: 1, maxLength: 2 }), { nil: undefined, freq: 2 });

const ingressRuleArb: fc.Arbitrary<ClusterNetworkPolicyIngressRule> = fc
  .record({ action: actionArb, from: fc.array(podsPeerArb, { minLength: 1, maxLength: 2 }), protocols: protocolsArb(true) })
  .map(({ protocols, ...r }) => ({ ...r, ...(protocols ? { protocols } : {}) }));

const egressRuleArb: fc.Arbitrary<ClusterNetworkPolicyEgressRule> = fc
  .record({
    action: actionArb,
    to: fc.array(fc.oneof({ weight: 2, arbitrary: podsPeerArb }, { weight: 2, arbitrary: otherPeerArb }), { minLength: 1, maxLength: 2 }),
    domains: fc.option(fc.constantFrom(...DOMAINS), { nil: undefined, freq: 3 }),
    named: fc.boolean(),
  })
  .chain(({ action, to, domains, named }) => {
    // The API refuses domainNames outside Accept rules, and named ports with non-pod peers.
    const peers: ClusterNetworkPolicyEgressPeer[] = [...to, ...(domains && action === 'Accept' ? [{ domainNames: domains }] : [])];
    const podsOnly = peers.every((p) => p.namespaces !== undefined || p.pods !== undefined);
    return protocolsArb(named && podsOnly).map((protocols) => ({ action, to: peers, ...(protocols ? { protocols } : {}) }));
  });

/** A subject has the shape of a pods or namespaces peer. */
const subjectArb: fc.Arbitrary<ClusterNetworkPolicySubject> = podsPeerArb;

/** The ClusterNetworkPolicy of one slot (named by its slot: equal priorities are ordered by name). */
export const cnpArb = (slot: number): fc.Arbitrary<ClusterNetworkPolicy> =>
  fc
    .record({
      tier: fc.constantFrom('Admin' as const, 'Baseline' as const),
      priority: fc.constantFrom(0, 5, 5, 10),
      subject: subjectArb,
      ingress: fc.array(ingressRuleArb, { maxLength: 3 }),
      egress: fc.array(egressRuleArb, { maxLength: 3 }),
    })
    .map(({ tier, priority, subject, ingress, egress }) => ({
      metadata: { name: `cnp${slot}` },
      spec: { tier, priority, subject, ...(ingress.length ? { ingress } : {}), ...(egress.length ? { egress } : {}) },
    }));

const learnedArb = fc.subarray(Object.keys(LEARNED));

/** A cluster of cluster.ts with ClusterNetworkPolicies and learned domain names. */
export const tieredClusterArb: fc.Arbitrary<ClusterModel> = fc
  .record({
    base: clusterArb,
    clusterPolicies: fc.tuple(...Array.from({ length: CNP_SLOTS }, (_, i) => fc.option(cnpArb(i), { nil: null, freq: 3 }))),
    learned: learnedArb,
  })
  .map(({ base, clusterPolicies, learned }) => ({ ...base, clusterPolicies, learned }));

/** cluster.ts's changes, plus ClusterNetworkPolicies coming, going or changing, and learned names changing. */
export const tieredChangeArb: fc.Arbitrary<Change> = fc.oneof(
  { weight: 4, arbitrary: changeArb },
  {
    weight: 2,
    arbitrary: fc
      .integer({ min: 0, max: CNP_SLOTS - 1 })
      .chain((slot) => fc.record({ kind: fc.constant('cnp' as const), slot: fc.constant(slot), policy: fc.option(cnpArb(slot), { nil: null }) })),
  },
  { weight: 1, arbitrary: learnedArb.map((learned) => ({ kind: 'dns' as const, learned })) },
);
