// The reference evaluator with ClusterNetworkPolicy, against the API's own
// cases: the conformance suite's policies and the truth tables its tests
// poke (network-policy-api v0.3.0, conformance/tests and base/), and the
// user-story examples of its documentation (site-src/user-story-examples).
import { describe, expect, it } from 'vitest';
import type {
  ClusterNetworkPolicy,
  ClusterNetworkPolicyEgressRule,
  ClusterNetworkPolicyIngressRule,
  ClusterNetworkPolicyProtocol,
} from '../../../src/policy/cnp-types.ts';
import { type ClusterState, formatVerdict, type NetworkPolicy, PolicyEvaluator, type Protocol } from '../../../src/policy/index.ts';
import { CENTAUR, cnp, conformanceWorld, HOST_PORTS, type House, house, NODE_IPS, NS, nsName, P, withPolicies } from './cnp-fixtures.ts';
import { conn, policy } from './helpers.ts';

const world = conformanceWorld();
const judge = (state: ClusterState) => {
  const e = new PolicyEvaluator(state);
  return (src: string, dst: string, protocol: Protocol = 'TCP', port = 80) => e.evaluate(conn(src, dst, protocol, port));
};
const allowed = (state: ClusterState) => {
  const j = judge(state);
  return (src: string, dst: string, protocol: Protocol = 'TCP', port = 80) => j(src, dst, protocol, port).allowed;
};

const tcp = (n: number): ClusterNetworkPolicyProtocol => ({ tcp: { destinationPort: { number: n } } });
const udp = (n: number): ClusterNetworkPolicyProtocol => ({ udp: { destinationPort: { number: n } } });
const sctp = (n: number): ClusterNetworkPolicyProtocol => ({ sctp: { destinationPort: { number: n } } });
const toNs = (h: House, action: 'Accept' | 'Deny' | 'Pass', name: string, protocols?: ClusterNetworkPolicyProtocol[]): ClusterNetworkPolicyEgressRule => ({
  name,
  action,
  to: [{ namespaces: nsName(h) }],
  ...(protocols ? { protocols } : {}),
});
const fromNs = (h: House, action: 'Accept' | 'Deny' | 'Pass', name: string, protocols?: ClusterNetworkPolicyProtocol[]): ClusterNetworkPolicyIngressRule => ({
  name,
  action,
  from: [{ namespaces: nsName(h) }],
  ...(protocols ? { protocols } : {}),
});
const swap = <T>(xs: T[], i: number, j: number): T[] => {
  const out = [...xs];
  [out[i], out[j]] = [out[j] as T, out[i] as T];
  return out;
};

// conformance/base/admin_tier/standard-gress-rules-combined.yaml
const gressEgress: ClusterNetworkPolicyEgressRule[] = [
  toNs('ravenclaw', 'Accept', 'allow-to-ravenclaw-everything'),
  toNs('ravenclaw', 'Deny', 'deny-to-ravenclaw-everything'),
  toNs('ravenclaw', 'Pass', 'pass-to-ravenclaw-everything'),
  toNs('slytherin', 'Deny', 'deny-to-slytherin-at-ports-80-53-9003', [tcp(80), udp(53), sctp(9003)]),
  toNs('slytherin', 'Pass', 'pass-to-slytherin-at-port-80-53-9003', [tcp(80), udp(53), sctp(9003)]),
  toNs('hufflepuff', 'Accept', 'allow-to-hufflepuff-at-ports-8080-5353-9003', [tcp(8080), udp(5353), sctp(9003)]),
  toNs('hufflepuff', 'Deny', 'deny-to-hufflepuff-everything-else'),
];
const gressIngress: ClusterNetworkPolicyIngressRule[] = [
  fromNs('ravenclaw', 'Accept', 'allow-from-ravenclaw-everything'),
  fromNs('ravenclaw', 'Deny', 'deny-from-ravenclaw-everything'),
  fromNs('ravenclaw', 'Pass', 'pass-from-ravenclaw-everything'),
  fromNs('slytherin', 'Deny', 'deny-from-slytherin-at-port-80-53-9003', [tcp(80), udp(53), sctp(9003)]),
  fromNs('slytherin', 'Pass', 'pass-from-slytherin-at-port-80-53-9003', [tcp(80), udp(53), sctp(9003)]),
  fromNs('hufflepuff', 'Accept', 'allow-from-hufflepuff-at-port-80-5353-9003', [tcp(80), udp(5353), sctp(9003)]),
  fromNs('hufflepuff', 'Deny', 'deny-from-hufflepuff-everything-else'),
];
const gress = (tier: 'Admin' | 'Baseline', egress = gressEgress, ingress = gressIngress): ClusterNetworkPolicy =>
  cnp('gress-rules', tier, 15, { namespaces: nsName('gryffindor') }, { egress, ingress });

describe('conformance: CNPAdminTierGress (standard-gress-rules-combined)', () => {
  it('allow-gress across protocols, and at the specified ports', () => {
    const ok = allowed(withPolicies(world, [gress('Admin')]));
    for (const [src, proto, port] of [
      [P('gryffindor', 0), 'TCP', 80],
      [P('gryffindor', 1), 'UDP', 53],
      [P('gryffindor', 0), 'SCTP', 9003],
    ] as const) {
      expect(ok(src, P('ravenclaw', 0), proto, port)).toBe(true);
    }
    for (const [src, proto, port] of [
      [P('ravenclaw', 0), 'TCP', 80],
      [P('ravenclaw', 1), 'UDP', 53],
      [P('ravenclaw', 1), 'SCTP', 9003],
    ] as const) {
      expect(ok(src, P('gryffindor', 0), proto, port)).toBe(true);
    }
    const cedric = P('hufflepuff', 1);
    expect([ok(P('gryffindor', 0), cedric, 'TCP', 8080), ok(P('gryffindor', 1), cedric, 'TCP', 80)]).toEqual([true, false]);
    expect([ok(P('gryffindor', 0), cedric, 'UDP', 5353), ok(P('gryffindor', 1), cedric, 'UDP', 53)]).toEqual([true, false]);
    expect([ok(P('gryffindor', 0), cedric, 'SCTP', 9003), ok(P('gryffindor', 1), cedric, 'SCTP', 9005)]).toEqual([true, false]);
    const harry = P('gryffindor', 1);
    expect([ok(P('hufflepuff', 0), harry, 'TCP', 80), ok(P('hufflepuff', 1), harry, 'TCP', 8080)]).toEqual([true, false]);
    expect([ok(P('hufflepuff', 0), harry, 'UDP', 5353), ok(P('hufflepuff', 1), harry, 'UDP', 53)]).toEqual([true, false]);
    expect([ok(P('hufflepuff', 0), harry, 'SCTP', 9003), ok(P('hufflepuff', 1), harry, 'SCTP', 9005)]).toEqual([true, false]);
  });

  it('deny-gress: the Deny rule moved first wins, in both directions', () => {
    const ok = allowed(withPolicies(world, [gress('Admin', swap(gressEgress, 0, 1), swap(gressIngress, 0, 1))]));
    for (const [proto, port] of [
      ['TCP', 80],
      ['UDP', 53],
      ['SCTP', 9003],
    ] as const) {
      expect(ok(P('gryffindor', 0), P('ravenclaw', 1), proto, port)).toBe(false);
      expect(ok(P('ravenclaw', 0), P('gryffindor', 1), proto, port)).toBe(false);
    }
  });

  it('deny-gress at the specified ports; other ports are left to the default', () => {
    const ok = allowed(withPolicies(world, [gress('Admin')]));
    const draco = P('slytherin', 0);
    const harry = P('gryffindor', 0);
    expect([ok(harry, draco, 'TCP', 80), ok(P('gryffindor', 1), draco, 'TCP', 8080)]).toEqual([false, true]);
    expect([ok(harry, draco, 'UDP', 53), ok(P('gryffindor', 1), draco, 'UDP', 5353)]).toEqual([false, true]);
    expect([ok(harry, draco, 'SCTP', 9003), ok(P('gryffindor', 1), draco, 'SCTP', 9005)]).toEqual([false, true]);
    expect([ok(draco, harry, 'TCP', 80), ok(P('slytherin', 1), harry, 'TCP', 8080)]).toEqual([false, true]);
  });

  it('pass-gress: the Pass rule moved first sends the traffic on, and nothing below isolates it', () => {
    const j = judge(withPolicies(world, [gress('Admin', swap(gressEgress, 0, 2), swap(gressIngress, 0, 2))]));
    const v = j(P('gryffindor', 0), P('ravenclaw', 0), 'UDP', 5353);
    expect(v.allowed).toBe(true);
    expect(v.egress.reasons).toEqual([
      {
        kind: 'cluster-rule',
        policy: { namespace: '', name: 'gress-rules', kind: 'ClusterNetworkPolicy' },
        tier: 'Admin',
        priority: 15,
        rule: 0,
        name: 'pass-to-ravenclaw-everything',
        action: 'Pass',
      },
      { kind: 'not-isolated' },
    ]);
    expect(v.egress.tier).toBeUndefined();
    const ok = allowed(withPolicies(world, [gress('Admin', swap(gressEgress, 3, 4), swap(gressIngress, 3, 4))]));
    for (const [proto, port] of [
      ['TCP', 80],
      ['TCP', 8080],
      ['UDP', 53],
      ['SCTP', 9003],
    ] as const) {
      expect(ok(P('gryffindor', 0), P('slytherin', 0), proto, port)).toBe(true);
      expect(ok(P('slytherin', 0), P('gryffindor', 0), proto, port)).toBe(true);
    }
  });

  it('the same policy in the Baseline tier: same answers while no NetworkPolicy isolates', () => {
    const a = allowed(withPolicies(world, [gress('Admin')]));
    const b = allowed(withPolicies(world, [gress('Baseline')]));
    for (const dst of [P('ravenclaw', 0), P('slytherin', 0), P('hufflepuff', 1)]) {
      for (const [proto, port] of [
        ['TCP', 80],
        ['TCP', 8080],
        ['UDP', 53],
        ['UDP', 5353],
        ['SCTP', 9003],
        ['SCTP', 9005],
      ] as const) {
        expect(b(P('gryffindor', 0), dst, proto, port)).toBe(a(P('gryffindor', 0), dst, proto, port));
        expect(b(dst, P('gryffindor', 1), proto, port)).toBe(a(dst, P('gryffindor', 1), proto, port));
      }
    }
  });
});

// conformance/base/admin_tier/standard-priority-field.yaml
const gryffindorPods = { pods: { namespaceSelector: house('gryffindor'), podSelector: house('gryffindor') } };
const slytherinPods = { pods: { namespaceSelector: house('slytherin'), podSelector: house('slytherin') } };
const priorityCase = (passPriority: number): ClusterNetworkPolicy[] => [
  cnp('priority-50-example', 'Admin', 50, gryffindorPods, {
    ingress: [{ name: 'deny-all-ingress-from-slytherin', action: 'Deny', from: [slytherinPods] }],
    egress: [{ name: 'deny-all-egress-to-slytherin', action: 'Deny', to: [slytherinPods] }],
  }),
  cnp('old-priority-60-new-priority-40-example', 'Admin', passPriority, gryffindorPods, {
    ingress: [{ name: 'pass-all-ingress-from-slytherin', action: 'Pass', from: [slytherinPods] }],
    egress: [{ name: 'pass-all-egress-to-slytherin', action: 'Pass', to: [slytherinPods] }],
  }),
  cnp('default', 'Baseline', 10, gryffindorPods, {
    ingress: [{ name: 'allow-all-ingress-from-slytherin', action: 'Accept', from: [slytherinPods] }],
    egress: [{ name: 'allow-all-egress-to-slytherin', action: 'Accept', to: [slytherinPods] }],
  }),
];

describe('conformance: CNPAdminTierPriorityField', () => {
  it('the Deny at priority 50 comes before the Pass at 60', () => {
    const ok = allowed(withPolicies(world, priorityCase(60)));
    expect([ok(P('slytherin', 0), P('gryffindor', 0)), ok(P('slytherin', 1), P('gryffindor', 0), 'TCP', 8080)]).toEqual([false, false]);
    expect([ok(P('gryffindor', 0), P('slytherin', 0)), ok(P('gryffindor', 1), P('slytherin', 0), 'TCP', 8080)]).toEqual([false, false]);
  });

  it('priority 40: the Pass comes first, and the Baseline Accept decides', () => {
    const j = judge(withPolicies(world, priorityCase(40)));
    const v = j(P('slytherin', 0), P('gryffindor', 0));
    expect(v.allowed).toBe(true);
    expect(v.ingress.tier).toBe('Baseline');
    expect(v.ingress.clusterPolicies?.map((p) => p.name)).toEqual(['old-priority-60-new-priority-40-example', 'priority-50-example', 'default']);
    expect(v.ingress.reasons.map((r) => (r.kind === 'cluster-rule' ? `${r.tier}:${r.action}:${r.name}` : r.kind))).toEqual([
      'Admin:Pass:pass-all-ingress-from-slytherin',
      'Baseline:Accept:allow-all-ingress-from-slytherin',
    ]);
    expect(j(P('gryffindor', 1), P('slytherin', 0), 'TCP', 8080).allowed).toBe(true);
  });
});

describe('conformance: CNPAdminTierSamePriority (standard-same-priority)', () => {
  const deny80 = (name: string, subject: House, peer: House, port: number): ClusterNetworkPolicy =>
    cnp(
      name,
      'Admin',
      15,
      { namespaces: nsName(subject) },
      { ingress: [fromNs(peer, 'Deny', `deny-from-${peer}`, [tcp(port)])], egress: [toNs(peer, 'Deny', `deny-to-${peer}`, [tcp(port)])] },
    );
  const ok = allowed(
    withPolicies(world, [
      deny80('same-priority-gryffindor-slytherin', 'gryffindor', 'slytherin', 80),
      deny80('same-priority-gryffindor-hufflepuff', 'gryffindor', 'hufflepuff', 80),
      deny80('same-priority-hufflepuff-slytherin', 'hufflepuff', 'slytherin', 8080),
    ]),
  );
  it('denies in both directions for each same-priority policy', () => {
    expect(ok(P('slytherin', 0), P('gryffindor', 0))).toBe(false);
    expect(ok(P('gryffindor', 0), P('slytherin', 0))).toBe(false);
    expect(ok(P('hufflepuff', 0), P('gryffindor', 0))).toBe(false);
    expect(ok(P('gryffindor', 1), P('hufflepuff', 0))).toBe(false);
    expect(ok(P('slytherin', 1), P('hufflepuff', 0), 'TCP', 8080)).toBe(false);
    expect(ok(P('hufflepuff', 1), P('slytherin', 0), 'TCP', 8080)).toBe(false);
  });
  it("does not apply one policy's rules to another's subject, nor touch other traffic", () => {
    expect(ok(P('slytherin', 0), P('gryffindor', 0), 'TCP', 8080)).toBe(true);
    expect(ok(P('gryffindor', 0), P('slytherin', 0), 'TCP', 8080)).toBe(true);
    expect(ok(P('slytherin', 1), P('hufflepuff', 0))).toBe(true);
    expect(ok(P('hufflepuff', 0), P('slytherin', 0))).toBe(true);
    expect(ok(P('ravenclaw', 0), P('gryffindor', 0))).toBe(true);
    expect(ok(P('gryffindor', 1), P('ravenclaw', 0))).toBe(true);
  });
  it('equal priorities are ordered by name, the same order the kernel uses', () => {
    const a = cnp('b-accept', 'Admin', 7, { namespaces: {} }, { egress: [{ action: 'Accept', to: [{ namespaces: {} }] }] });
    const d = cnp('a-deny', 'Admin', 7, { namespaces: {} }, { egress: [{ action: 'Deny', to: [{ namespaces: {} }] }] });
    const v = judge(withPolicies(world, [a, d]))(P('gryffindor', 0), P('slytherin', 0));
    expect(v.allowed).toBe(false);
    expect(v.egress.clusterPolicies?.map((p) => p.name)).toEqual(['a-deny', 'b-accept']);
  });
});

describe('conformance: CNPAdminTierIntegration (standard-anp-np-banp): Admin, then NetworkPolicy, then Baseline', () => {
  const passExample = (ingress: 'Deny' | 'Pass', egress: 'Deny' | 'Pass'): ClusterNetworkPolicy =>
    cnp(
      'pass-example',
      'Admin',
      10,
      { namespaces: house('gryffindor') },
      {
        ingress: [{ name: 'deny-all-ingress-from-slytherin', action: ingress, from: [{ namespaces: house('slytherin') }] }],
        egress: [{ name: 'deny-all-egress-to-slytherin', action: egress, to: [{ namespaces: house('slytherin') }] }],
      },
    );
  const np: NetworkPolicy = policy(`${NS('gryffindor')}/allow-gress-from-to-slytherin-to-gryffindor`, {
    policyTypes: ['Ingress', 'Egress'],
    ingress: [{ from: [{ namespaceSelector: house('slytherin') }] }],
    egress: [{ to: [{ namespaceSelector: house('slytherin') }] }],
  });
  const baseline = cnp(
    'default',
    'Baseline',
    10,
    { namespaces: house('gryffindor') },
    {
      ingress: [{ name: 'deny-all-ingress-from-slytherin', action: 'Deny', from: [{ namespaces: house('slytherin') }] }],
      egress: [{ name: 'deny-all-egress-to-slytherin', action: 'Deny', to: [{ namespaces: house('slytherin') }] }],
    },
  );

  it('the Admin Deny overrides the NetworkPolicy that allows', () => {
    const j = judge(withPolicies(world, [passExample('Deny', 'Deny'), baseline], [np]));
    const v = j(P('slytherin', 0), P('gryffindor', 0));
    expect(v.allowed).toBe(false);
    expect(v.ingress).toMatchObject({ isolated: true, tier: 'Admin', allowed: false });
    expect(j(P('gryffindor', 1), P('slytherin', 0), 'TCP', 8080).allowed).toBe(false);
  });
  it('Pass hands it to the NetworkPolicy, which allows', () => {
    const j = judge(withPolicies(world, [passExample('Pass', 'Pass'), baseline], [np]));
    const v = j(P('slytherin', 1), P('gryffindor', 0), 'TCP', 8080);
    expect(v.allowed).toBe(true);
    expect(v.ingress.tier).toBe('NetworkPolicy');
    expect(v.ingress.reasons.map((r) => r.kind)).toEqual(['cluster-rule', 'rule']);
    expect(j(P('gryffindor', 0), P('slytherin', 0)).allowed).toBe(true);
  });
  it('without the NetworkPolicy, Pass reaches the Baseline Deny', () => {
    const j = judge(withPolicies(world, [passExample('Pass', 'Pass'), baseline]));
    expect(j(P('slytherin', 0), P('gryffindor', 0)).ingress).toMatchObject({ allowed: false, tier: 'Baseline', isolated: false });
    expect(j(P('gryffindor', 0), P('slytherin', 0)).egress).toMatchObject({ allowed: false, tier: 'Baseline' });
    expect(j(P('hufflepuff', 0), P('gryffindor', 0)).allowed).toBe(true);
  });
  it('a NetworkPolicy decides for the pods it isolates, whatever the Baseline says', () => {
    const j = judge(withPolicies(world, [baseline], [np]));
    expect(j(P('slytherin', 0), P('gryffindor', 0)).ingress).toMatchObject({ allowed: true, tier: 'NetworkPolicy' });
    expect(j(P('hufflepuff', 0), P('gryffindor', 0)).ingress).toMatchObject({ allowed: false, tier: 'NetworkPolicy', reasons: [{ kind: 'no-rule-matched' }] });
  });
});

describe('conformance: CNPAdminTierEgressNodePeers (experimental-egress-selector-rules)', () => {
  const linux = { matchLabels: { 'kubernetes.io/os': 'linux' } };
  const policyOf = (tier: 'Admin' | 'Baseline') =>
    cnp('node-and-cidr-as-peers-example', tier, 75, gryffindorPods, {
      egress: [
        { name: 'allow-egress-to-34567-on-nodes', action: 'Accept', to: [{ nodes: linux }], protocols: [tcp(HOST_PORTS[0] as number)] },
        { name: 'pass-egress-to-34569-on-nodes', action: 'Pass', to: [{ nodes: linux }], protocols: [udp(HOST_PORTS[2] as number)] },
        { name: 'deny-egress-to-slytherin-and-nodes-and-internet', action: 'Deny', to: [slytherinPods, { nodes: linux }, { networks: ['0.0.0.0/0', '::/0'] }] },
      ],
    });
  it('accept, pass and deny to the nodes, to the other node and to its own', () => {
    const ok = allowed(withPolicies(world, [policyOf('Admin')]));
    for (const server of [CENTAUR(0), CENTAUR(1)]) {
      expect(ok(P('gryffindor', 1), server, 'TCP', HOST_PORTS[0])).toBe(true);
      expect(ok(P('gryffindor', 1), server, 'UDP', HOST_PORTS[2])).toBe(true);
      expect(ok(P('gryffindor', 1), server, 'TCP', HOST_PORTS[1])).toBe(false);
      expect(ok(P('gryffindor', 1), server, 'UDP', HOST_PORTS[4])).toBe(false);
      expect(ok(P('gryffindor', 1), server, 'SCTP', HOST_PORTS[6])).toBe(false);
    }
    expect(ok(P('gryffindor', 0), P('slytherin', 1))).toBe(false);
    expect(ok(P('gryffindor', 0), '8.8.8.8', 'UDP', 53)).toBe(false);
    expect(ok(P('gryffindor', 0), '2001:db8::1', 'UDP', 53)).toBe(false);
    // networks match pod traffic too ("cluster-internal traffic will be checked against the rule as well")
    expect(ok(P('gryffindor', 0), P('hufflepuff', 0))).toBe(false);
    // ingress is not governed: node and pods reach the gryffindor pods
    expect(ok(NODE_IPS.n2[0], P('gryffindor', 1))).toBe(true);
    expect(ok(P('slytherin', 0), P('gryffindor', 1))).toBe(true);
  });
  it("a NetworkPolicy's own-node exemption applies in its tier, after the Admin tier", () => {
    const denyEgress = policy(`${NS('gryffindor')}/deny-egress`, { policyTypes: ['Egress'] });
    const j = judge(withPolicies(world, [policyOf('Admin')], [denyEgress]));
    // gryffindor-0 runs on n1: its own node is allowed by the NetworkPolicy tier after the Pass ...
    expect(j(P('gryffindor', 0), CENTAUR(0), 'UDP', HOST_PORTS[2]).egress).toMatchObject({
      allowed: true,
      tier: 'NetworkPolicy',
      reasons: [{ kind: 'cluster-rule', action: 'Pass' }, { kind: 'own-node' }],
    });
    // ... the other node is not
    expect(j(P('gryffindor', 0), CENTAUR(1), 'UDP', HOST_PORTS[2]).egress).toMatchObject({ allowed: false, tier: 'NetworkPolicy' });
    // and the Admin Deny is not overridden by it
    expect(j(P('gryffindor', 0), CENTAUR(0), 'TCP', HOST_PORTS[1]).egress).toMatchObject({ allowed: false, tier: 'Admin' });
  });
});

describe('the documentation examples (site-src/user-story-examples)', () => {
  it('story 1: deny traffic at a cluster level', () => {
    const c = cnp(
      'cluster-wide-deny-example',
      'Admin',
      10,
      { namespaces: nsName('gryffindor') },
      { ingress: [{ action: 'Deny', from: [{ namespaces: { matchLabels: {} } }], name: 'select-all-deny-all' }] },
    );
    const ok = allowed(withPolicies(world, [c]));
    expect(ok(P('slytherin', 0), P('gryffindor', 0))).toBe(false);
    expect(ok(P('gryffindor', 1), P('gryffindor', 0))).toBe(false);
    // not from pods: nodes and the outside are not namespaces peers
    expect(ok(NODE_IPS.n1[0], P('gryffindor', 0))).toBe(true);
    expect(ok('203.0.113.9', P('gryffindor', 0))).toBe(true);
    expect(ok(P('gryffindor', 0), P('slytherin', 0))).toBe(true);
  });

  it('story 2: allow traffic at a cluster level, over any NetworkPolicy', () => {
    const c = cnp(
      'cluster-wide-allow-example',
      'Admin',
      30,
      { namespaces: {} },
      {
        ingress: [{ action: 'Accept', name: 'allow-monitoring-ns-ingress', from: [{ namespaces: nsName('ravenclaw') }] }],
        egress: [
          { action: 'Accept', name: 'allow-kube-dns-egress', to: [{ pods: { namespaceSelector: nsName('hufflepuff'), podSelector: house('hufflepuff') } }] },
        ],
      },
    );
    const denyAll = policy(`${NS('gryffindor')}/deny-all`, { policyTypes: ['Ingress', 'Egress'] });
    const ok = allowed(withPolicies(world, [c], [denyAll]));
    expect(ok(P('ravenclaw', 0), P('gryffindor', 0))).toBe(true);
    expect(ok(P('gryffindor', 0), P('hufflepuff', 1), 'UDP', 53)).toBe(true);
    expect(ok(P('slytherin', 0), P('gryffindor', 0))).toBe(false);
    expect(ok(P('gryffindor', 0), P('slytherin', 0))).toBe(false);
  });

  it('story 3: delegate to NetworkPolicy with Pass, named ports included', () => {
    const c = cnp(
      'pub-svc-delegate-example',
      'Admin',
      20,
      { namespaces: {} },
      {
        egress: [
          {
            action: 'Pass',
            to: [{ pods: { namespaceSelector: nsName('slytherin'), podSelector: house('slytherin') } }],
            protocols: [tcp(8080), { destinationNamedPort: 'web' }, udp(53)],
          },
        ],
      },
    );
    const deny = cnp('deny-rest', 'Admin', 100, { namespaces: {} }, { egress: [{ action: 'Deny', to: [{ namespaces: nsName('slytherin') }] }] });
    const j = judge(withPolicies(world, [c, deny]));
    expect(j(P('gryffindor', 0), P('slytherin', 0), 'TCP', 80).egress).toMatchObject({
      allowed: true,
      reasons: [{ kind: 'cluster-rule', action: 'Pass' }, { kind: 'not-isolated' }],
    });
    expect(j(P('gryffindor', 0), P('slytherin', 0), 'TCP', 8080).allowed).toBe(true);
    expect(j(P('gryffindor', 0), P('slytherin', 0), 'UDP', 53).allowed).toBe(true);
    // `web` is TCP 80: UDP 80 is not it, and neither is TCP 81
    expect(j(P('gryffindor', 0), P('slytherin', 0), 'UDP', 80).egress).toMatchObject({ allowed: false, tier: 'Admin' });
    expect(j(P('gryffindor', 0), P('slytherin', 0), 'TCP', 81).allowed).toBe(false);
  });

  it('story 4 (v2): pass within a tenant, deny between tenants', () => {
    const tenants = {
      ...world,
      namespaces: world.namespaces.map((n) => ({
        metadata: { ...n.metadata, labels: { ...n.metadata?.labels, tenant: n.metadata?.name === NS('ravenclaw') ? 'b' : 'a' } },
      })),
    };
    const c = cnp(
      'tenant-creation-example',
      'Admin',
      50,
      { namespaces: { matchExpressions: [{ key: 'tenant', operator: 'Exists' }] } },
      {
        ingress: [
          { action: 'Pass', from: [{ namespaces: { matchLabels: { tenant: 'a' } } }] },
          { action: 'Deny', from: [{ namespaces: {} }] },
        ],
      },
    );
    const ok = allowed(withPolicies(tenants, [c]));
    expect(ok(P('slytherin', 0), P('gryffindor', 0))).toBe(true);
    expect(ok(P('ravenclaw', 0), P('gryffindor', 0))).toBe(false);
  });

  it('story 5: a Baseline deny-all is the default for pods no NetworkPolicy isolates', () => {
    const c = cnp('default', 'Baseline', 10, { namespaces: {} }, { ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }] });
    const open = policy(`${NS('gryffindor')}/allow-all`, { ingress: [{}] });
    const j = judge(withPolicies(world, [c], [open]));
    expect(j(P('slytherin', 0), P('hufflepuff', 0)).ingress).toMatchObject({ allowed: false, tier: 'Baseline' });
    expect(j(P('slytherin', 0), P('gryffindor', 0)).ingress).toMatchObject({ allowed: true, tier: 'NetworkPolicy' });
    expect(j('203.0.113.9', P('hufflepuff', 0)).allowed).toBe(true);
  });
});

describe('subjects, peers and special cases', () => {
  const denyAllAdmin = cnp(
    'deny-all',
    'Admin',
    0,
    { namespaces: {} },
    { ingress: [{ action: 'Deny', from: [{ namespaces: {} }] }], egress: [{ action: 'Deny', to: [{ networks: ['0.0.0.0/0', '::/0'] }] }] },
  );

  it('a pod reaching itself is never subject to ClusterNetworkPolicy', () => {
    const v = judge(withPolicies(world, [denyAllAdmin]))(P('gryffindor', 0), P('gryffindor', 0));
    expect(v.allowed).toBe(true);
    expect(v.egress.reasons).toEqual([{ kind: 'self' }]);
  });

  it('hostNetwork pods are neither subjects nor pod peers, but are their node as a nodes or networks peer', () => {
    const j = judge(withPolicies(world, [denyAllAdmin]));
    expect(j(CENTAUR(0), P('gryffindor', 1)).egress).toMatchObject({ reasons: [{ kind: 'not-a-pod' }] });
    expect(j(CENTAUR(0), P('gryffindor', 1)).ingress.allowed).toBe(true);
    expect(j(P('gryffindor', 1), CENTAUR(0)).egress).toMatchObject({ allowed: false, tier: 'Admin' });
    const byPods = cnp('pods-only', 'Admin', 0, { namespaces: {} }, { egress: [{ action: 'Deny', to: [{ namespaces: {} }] }] });
    expect(allowed(withPolicies(world, [byPods]))(P('gryffindor', 1), CENTAUR(0))).toBe(true);
  });

  it('domainNames: the addresses learned for a matching name, nothing else', () => {
    const learned = new Map([
      ['www.example.com', ['198.51.100.10', '2001:db8::10']],
      ['example.com', ['198.51.100.20']],
      ['Other.Example.org.', ['198.51.100.30']],
    ]);
    const allow = cnp(
      'fqdn',
      'Admin',
      1,
      { namespaces: {} },
      { egress: [{ action: 'Accept', to: [{ domainNames: ['*.example.com', 'other.example.org'] }] }] },
    );
    const deny = cnp('deny-out', 'Baseline', 1, { namespaces: {} }, { egress: [{ action: 'Deny', to: [{ networks: ['0.0.0.0/0', '::/0'] }] }] });
    const ok = allowed(withPolicies(world, [allow, deny], [], { domainAddresses: learned }));
    expect(ok(P('gryffindor', 0), '198.51.100.10', 'TCP', 443)).toBe(true);
    expect(ok(P('gryffindor', 0), '2001:db8::10', 'TCP', 443)).toBe(true);
    expect(ok(P('gryffindor', 0), '198.51.100.30', 'TCP', 443)).toBe(true);
    // `*.example.com` does not match example.com itself
    expect(ok(P('gryffindor', 0), '198.51.100.20', 'TCP', 443)).toBe(false);
    expect(ok(P('gryffindor', 0), '198.51.100.99', 'TCP', 443)).toBe(false);
    expect(allowed(withPolicies(world, [allow, deny]))(P('gryffindor', 0), '198.51.100.10', 'TCP', 443)).toBe(false);
  });

  it('a policy weir cannot express is judged "Deny all" for its subjects, and reported', () => {
    const bad = cnp('bad', 'Baseline', 3, { namespaces: nsName('gryffindor') }, { egress: [{ action: 'Accept', to: [{ networks: ['10.0.0.0/33'] }] }] });
    const e = new PolicyEvaluator(withPolicies(world, [bad]));
    expect(e.clusterErrors.map((x) => x.field)).toEqual(['spec.egress[0].to[0].networks[0].cidr']);
    expect(e.evaluate(conn(P('gryffindor', 0), '203.0.113.1')).egress).toMatchObject({ allowed: false, tier: 'Baseline' });
    expect(e.evaluate(conn(P('slytherin', 0), '203.0.113.1')).allowed).toBe(true);
    expect(e.evaluate(conn(P('slytherin', 0), P('gryffindor', 0))).allowed).toBe(true);
  });

  it('subjectsOf and clusterPoliciesFor name the CNP subjects', () => {
    const e = new PolicyEvaluator(withPolicies(world, [gress('Admin'), denyAllAdmin]));
    expect(
      e
        .subjectsOf({ namespace: '', name: 'gress-rules', kind: 'ClusterNetworkPolicy' })
        .map((p) => p.name)
        .sort(),
    ).toEqual(['harry-potter-0', 'harry-potter-1']);
    expect(e.clusterPoliciesFor({ namespace: NS('gryffindor'), name: 'harry-potter-0' }, 'egress').map((p) => p.name)).toEqual(['deny-all', 'gress-rules']);
    expect(e.clusterPoliciesFor({ namespace: NS('forbidden-forrest'), name: 'centaur-0' }, 'egress')).toEqual([]);
  });

  it('the explanation names the tier, the policy and the rule', () => {
    const text = formatVerdict(judge(withPolicies(world, [gress('Admin')]))(P('gryffindor', 0), P('slytherin', 0)), 'TCP', 80);
    expect(text).toContain(
      'egress at network-policy-conformance-gryffindor/harry-potter-0: DENIED [Admin tier]: denied by ClusterNetworkPolicy gress-rules (Admin tier, priority 15) spec.egress[3] "deny-to-slytherin-at-ports-80-53-9003"',
    );
    const pass = formatVerdict(judge(withPolicies(world, [gress('Admin', swap(gressEgress, 3, 4))]))(P('gryffindor', 0), P('slytherin', 0)), 'TCP', 80);
    expect(pass).toContain(
      'allowed [default]: passed on from the Admin tier by ClusterNetworkPolicy gress-rules (Admin tier, priority 15) spec.egress[3] "pass-to-slytherin-at-port-80-53-9003"; no NetworkPolicy selects it for egress and no ClusterNetworkPolicy rule decided: allowed by default',
    );
  });
});
