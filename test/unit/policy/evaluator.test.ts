// One case per semantic rule of NetworkPolicy, with expectations written from
// the Kubernetes documentation (concept page and API reference).
import { describe, expect, it } from 'vitest';
import {
  type ClusterState,
  evaluate,
  type NetworkPolicy,
  type NetworkPolicyPort,
  PolicyError,
  PolicyEvaluator,
  PolicyQueryError,
  type Protocol,
} from '../../../src/policy/index.ts';
import { conn, ns, pod, policy, thrown } from './helpers.ts';

const namespaces = [ns('x', { env: 'prod' }), ns('y', { env: 'dev' }), ns('z')];
const nodes = [
  { name: 'n1', internalIPs: ['192.168.0.1', 'fd00:ffff::1'] },
  { name: 'n2', internalIPs: ['192.168.0.2', 'fd00:ffff::2'] },
];
const n1 = { node: 'n1', hostIPs: ['192.168.0.1', 'fd00:ffff::1'] };
const n2 = { node: 'n2', hostIPs: ['192.168.0.2', 'fd00:ffff::2'] };
const pods = [
  pod('x/a', {
    labels: { pod: 'a', app: 'web' },
    ips: ['10.0.1.1', 'fd00:1::1'],
    ...n1,
    ports: [
      { name: 'http', containerPort: 8080 },
      { name: 'dns', containerPort: 53, protocol: 'UDP' },
    ],
  }),
  pod('x/b', { labels: { pod: 'b', app: 'db' }, ips: ['10.0.1.2', 'fd00:1::2'], ...n1 }),
  pod('x/c', { labels: { pod: 'c' }, ips: ['10.0.2.3', 'fd00:2::3'], ...n2 }),
  pod('y/a', { labels: { pod: 'a', app: 'web' }, ips: ['10.0.2.4', 'fd00:2::4'], ...n2, ports: [{ name: 'http', containerPort: 8081 }] }),
  pod('y/b', { labels: { pod: 'b' }, ips: ['10.0.1.5'], ...n1 }),
  pod('z/a', { labels: { pod: 'a' }, ips: ['10.0.2.6', 'fd00:2::6'], ...n2 }),
  // a hostNetwork pod on n1: its addresses are n1's
  pod('x/host', { labels: { pod: 'host', app: 'web' }, ips: ['192.168.0.1', 'fd00:ffff::1'], hostNetwork: true, ...n1 }),
  // terminated and not-yet-addressed pods, both labelled like x/a
  pod('x/done', { labels: { pod: 'done', app: 'web' }, ips: ['10.0.1.9'], phase: 'Succeeded', ...n1 }),
  pod('x/failed', { labels: { pod: 'failed', app: 'web' }, ips: ['10.0.1.10'], phase: 'Failed', ...n1 }),
  pod('x/pending', { labels: { pod: 'pending', app: 'web' }, phase: 'Pending', ...n1 }),
];

const state = (policies: NetworkPolicy[], over: Partial<ClusterState> = {}): ClusterState => ({ pods, namespaces, nodes, policies, ...over });
const judge = (policies: NetworkPolicy[], over: Partial<ClusterState> = {}) => {
  const e = new PolicyEvaluator(state(policies, over));
  return (src: string, dst: string, protocol: Protocol = 'TCP', port = 80) => e.evaluate(conn(src, dst, protocol, port));
};
const ok = (policies: NetworkPolicy[]) => {
  const j = judge(policies);
  return (src: string, dst: string, protocol: Protocol = 'TCP', port = 80) => j(src, dst, protocol, port).allowed;
};

const denyIngress = (nsName: string) => policy(`${nsName}/deny-ingress`, { podSelector: {}, policyTypes: ['Ingress'] });
const denyEgress = (nsName: string) => policy(`${nsName}/deny-egress`, { podSelector: {}, policyTypes: ['Egress'] });
const denyAll = (nsName: string) => policy(`${nsName}/deny-all`, { podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
const selectA = { matchLabels: { pod: 'a' } };

describe('isolation', () => {
  it('with no policies everything is allowed and nothing is isolated', () => {
    const v = judge([])('x/a', 'y/a');
    expect(v.allowed).toBe(true);
    expect(v.ingress).toMatchObject({ isolated: false, allowed: true, reasons: [{ kind: 'not-isolated' }], subject: { namespace: 'y', name: 'a' } });
    expect(v.egress).toMatchObject({ isolated: false, allowed: true, reasons: [{ kind: 'not-isolated' }], subject: { namespace: 'x', name: 'a' } });
    expect(judge([])('x/a', '8.8.8.8').allowed).toBe(true);
    expect(judge([])('8.8.8.8', 'x/a').allowed).toBe(true);
  });

  it('default deny ingress isolates every pod of its namespace for ingress only', () => {
    const j = judge([denyIngress('x')]);
    const v = j('y/a', 'x/a');
    expect(v.allowed).toBe(false);
    expect(v.ingress).toMatchObject({
      isolated: true,
      allowed: false,
      policies: [{ namespace: 'x', name: 'deny-ingress' }],
      reasons: [{ kind: 'no-rule-matched' }],
    });
    expect(v.egress.isolated).toBe(false);
    expect(j('x/b', 'x/a').allowed).toBe(false);
    expect(j('1.2.3.4', 'x/a').allowed).toBe(false);
    // egress of x is untouched, and other namespaces are not affected
    expect(j('x/a', 'y/a').allowed).toBe(true);
    expect(j('x/a', '1.2.3.4').allowed).toBe(true);
    expect(j('z/a', 'y/a').allowed).toBe(true);
  });

  it('default deny egress isolates for egress only', () => {
    const j = judge([denyEgress('x')]);
    const v = j('x/a', 'y/a');
    expect(v.allowed).toBe(false);
    expect(v.egress).toMatchObject({ isolated: true, allowed: false, reasons: [{ kind: 'no-rule-matched' }] });
    expect(v.ingress.allowed).toBe(true);
    expect(j('x/a', '1.2.3.4').allowed).toBe(false);
    expect(j('y/a', 'x/a').allowed).toBe(true);
  });

  it('default deny all blocks both directions, within the namespace too', () => {
    const j = ok([denyAll('x')]);
    expect(j('x/a', 'y/a')).toBe(false);
    expect(j('y/a', 'x/a')).toBe(false);
    expect(j('x/a', 'x/b')).toBe(false);
    expect(j('y/a', 'z/a')).toBe(true);
  });

  it('ingress: [] without policyTypes denies all ingress (Ingress is always implied)', () => {
    const j = ok([policy('x/p', { podSelector: selectA, ingress: [] })]);
    expect(j('x/b', 'x/a')).toBe(false);
    expect(j('x/a', 'x/b')).toBe(true);
  });

  it('egress: [] without policyTypes isolates nothing for egress', () => {
    const v = judge([policy('x/p', { podSelector: selectA, egress: [] })])('x/a', 'y/a');
    expect(v.egress.isolated).toBe(false);
    expect(v.allowed).toBe(true);
  });

  it('ingress: [{}] allows everything, pods and non-pods, any port', () => {
    const j = ok([denyIngress('x'), policy('x/allow-all', { podSelector: {}, ingress: [{}] })]);
    expect(j('y/a', 'x/a', 'UDP', 9)).toBe(true);
    expect(j('203.0.113.9', 'x/a', 'SCTP', 1)).toBe(true);
    expect(j('x/b', 'x/a')).toBe(true);
  });

  it('egress: [{}] allows everything out', () => {
    const j = ok([denyEgress('x'), policy('x/allow-all', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] })]);
    expect(j('x/a', 'y/a')).toBe(true);
    expect(j('x/a', '8.8.8.8', 'UDP', 53)).toBe(true);
  });

  it('a policy selects only pods of its own namespace', () => {
    const j = ok([policy('y/deny', { podSelector: {} })]);
    expect(j('z/a', 'x/a')).toBe(true);
    expect(j('z/a', 'y/a')).toBe(false);
  });

  it('a pod selector that matches nothing isolates nothing', () => {
    expect(judge([policy('x/p', { podSelector: { matchLabels: { pod: 'nobody' } } })])('y/a', 'x/a').ingress.isolated).toBe(false);
  });

  it('the egress verdict and the ingress verdict are both needed', () => {
    // egress deny at the source, ingress allow at the destination
    let v = judge([denyEgress('x'), policy('y/allow', { podSelector: {}, ingress: [{}] })])('x/a', 'y/a');
    expect([v.allowed, v.egress.allowed, v.ingress.allowed, v.ingress.isolated]).toEqual([false, false, true, true]);
    // egress allow at the source, ingress deny at the destination
    v = judge([policy('x/allow', { podSelector: {}, policyTypes: ['Egress'], egress: [{}] }), denyIngress('y')])('x/a', 'y/a');
    expect([v.allowed, v.egress.allowed, v.egress.isolated, v.ingress.allowed]).toEqual([false, true, true, false]);
  });
});

describe('peers', () => {
  it('podSelector alone selects pods of the policy namespace', () => {
    const j = ok([policy('x/p', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] })]);
    expect(j('x/a', 'x/b')).toBe(true);
    expect(j('y/a', 'x/b')).toBe(false); // app=web, but in y
    expect(j('x/c', 'x/b')).toBe(false);
    expect(j('10.0.9.9', 'x/b')).toBe(false);
  });

  it('an empty podSelector peer is every pod of the policy namespace', () => {
    const j = ok([policy('x/p', { podSelector: selectA, ingress: [{ from: [{ podSelector: {} }] }] })]);
    expect(j('x/c', 'x/a')).toBe(true);
    expect(j('y/a', 'x/a')).toBe(false);
  });

  it('namespaceSelector alone selects every pod of the matching namespaces', () => {
    const j = ok([policy('x/p', { podSelector: selectA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'dev' } } }] }] })]);
    expect(j('y/a', 'x/a')).toBe(true);
    expect(j('y/b', 'x/a')).toBe(true);
    expect(j('z/a', 'x/a')).toBe(false);
    expect(j('x/b', 'x/a')).toBe(false); // x is env=prod: its own namespace is not implied
  });

  it('namespaceSelector {} selects all pods of all namespaces, but no non-pod address', () => {
    const j = ok([policy('x/p', { podSelector: selectA, ingress: [{ from: [{ namespaceSelector: {} }] }] })]);
    for (const src of ['x/b', 'x/c', 'y/a', 'y/b', 'z/a']) expect(j(src, 'x/a')).toBe(true);
    expect(j('203.0.113.1', 'x/a')).toBe(false);
  });

  it('namespaces are selectable by kubernetes.io/metadata.name even when the object is missing', () => {
    const j = judge(
      [policy('x/p', { podSelector: selectA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'z' } } }] }] })],
      {
        namespaces: [],
      },
    );
    expect(j('z/a', 'x/a').allowed).toBe(true);
    expect(j('y/a', 'x/a').allowed).toBe(false);
  });

  it('podSelector and namespaceSelector in one peer are ANDed', () => {
    const j = ok([
      policy('x/p', {
        podSelector: selectA,
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['x'] }] },
                podSelector: { matchLabels: { pod: 'b' } },
              },
            ],
          },
        ],
      }),
    ]);
    expect(j('y/b', 'x/a')).toBe(true);
    expect(j('y/a', 'x/a')).toBe(false);
    expect(j('z/a', 'x/a')).toBe(false);
    expect(j('x/b', 'x/a')).toBe(false);
  });

  it('separate peers are ORed', () => {
    const j = ok([
      policy('x/p', {
        podSelector: selectA,
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'dev' } } }, { podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    ]);
    expect(j('y/a', 'x/a')).toBe(true);
    expect(j('y/b', 'x/a')).toBe(true);
    expect(j('x/b', 'x/a')).toBe(true);
    expect(j('x/c', 'x/a')).toBe(false);
    expect(j('z/a', 'x/a')).toBe(false);
  });

  it('NotIn matches namespaces that lack the key', () => {
    // none of the namespaces carries an `ns` label, so `ns NotIn (x)` selects them all, x included
    const j = ok([
      policy('x/p', {
        podSelector: selectA,
        ingress: [{ from: [{ namespaceSelector: { matchExpressions: [{ key: 'ns', operator: 'NotIn', values: ['x'] }] } }] }],
      }),
    ]);
    expect(j('x/b', 'x/a')).toBe(true);
    expect(j('z/a', 'x/a')).toBe(true);
  });

  it('matchExpressions in subject and peer selectors', () => {
    const j = ok([
      policy('x/p', {
        podSelector: { matchExpressions: [{ key: 'app', operator: 'Exists' }] },
        ingress: [{ from: [{ podSelector: { matchExpressions: [{ key: 'app', operator: 'DoesNotExist' }] } }] }],
      }),
    ]);
    expect(j('x/c', 'x/a')).toBe(true); // x/c has no app label
    expect(j('x/b', 'x/a')).toBe(false);
    expect(j('x/b', 'x/c')).toBe(true); // x/c is not selected (no app label)
  });

  it('egress peers use the same selectors', () => {
    const j = ok([
      policy('x/p', {
        podSelector: selectA,
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { env: 'dev' } }, podSelector: selectA }] }],
      }),
    ]);
    expect(j('x/a', 'y/a')).toBe(true);
    expect(j('x/a', 'y/b')).toBe(false);
    expect(j('x/a', 'z/a')).toBe(false);
    expect(j('x/b', 'z/a')).toBe(true); // x/b is not selected
  });
});

describe('ports', () => {
  const onlyPorts = (ports: NetworkPolicyPort[]) => ok([policy('x/p', { podSelector: selectA, ingress: [{ ports }] })]);

  it('a numeric port opens that port of that protocol only', () => {
    const j = onlyPorts([{ port: 8080 }]);
    expect(j('y/a', 'x/a', 'TCP', 8080)).toBe(true);
    expect(j('y/a', 'x/a', 'TCP', 80)).toBe(false);
    expect(j('y/a', 'x/a', 'UDP', 8080)).toBe(false);
    expect(j('y/a', 'x/a', 'SCTP', 8080)).toBe(false);
  });

  it('endPort opens an inclusive range', () => {
    const j = onlyPorts([{ port: 8000, endPort: 8100 }]);
    expect(j('y/a', 'x/a', 'TCP', 7999)).toBe(false);
    expect(j('y/a', 'x/a', 'TCP', 8000)).toBe(true);
    expect(j('y/a', 'x/a', 'TCP', 8100)).toBe(true);
    expect(j('y/a', 'x/a', 'TCP', 8101)).toBe(false);
    expect(j('y/a', 'x/a', 'UDP', 8050)).toBe(false);
  });

  it('a protocol-only entry opens every port of that protocol', () => {
    const j = onlyPorts([{ protocol: 'UDP' }]);
    expect(j('y/a', 'x/a', 'UDP', 1)).toBe(true);
    expect(j('y/a', 'x/a', 'UDP', 65535)).toBe(true);
    expect(j('y/a', 'x/a', 'TCP', 1)).toBe(false);
  });

  it('an SCTP or UDP rule does not open TCP', () => {
    const j = onlyPorts([
      { protocol: 'SCTP', port: 80 },
      { protocol: 'UDP', port: 81 },
    ]);
    expect(j('y/a', 'x/a', 'SCTP', 80)).toBe(true);
    expect(j('y/a', 'x/a', 'TCP', 80)).toBe(false);
    expect(j('y/a', 'x/a', 'UDP', 80)).toBe(false);
    expect(j('y/a', 'x/a', 'UDP', 81)).toBe(true);
    expect(j('y/a', 'x/a', 'TCP', 81)).toBe(false);
  });

  it('ports and peers must both match within one rule', () => {
    const j = ok([policy('x/p', { podSelector: selectA, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] }] })]);
    expect(j('x/b', 'x/a', 'TCP', 80)).toBe(true);
    expect(j('x/b', 'x/a', 'TCP', 81)).toBe(false);
    expect(j('x/c', 'x/a', 'TCP', 80)).toBe(false);
  });

  it('ingress named ports resolve against the destination (the subject), name and protocol', () => {
    const j = ok([policy('x/p', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }, { protocol: 'UDP', port: 'dns' }] }] })]);
    expect(j('y/a', 'x/a', 'TCP', 8080)).toBe(true);
    expect(j('y/a', 'x/a', 'TCP', 80)).toBe(false);
    expect(j('y/a', 'x/a', 'UDP', 53)).toBe(true);
    expect(j('y/a', 'x/a', 'TCP', 53)).toBe(false); // dns is declared UDP
    // x/b declares no ports: the names resolve to nothing there, so nothing opens
    expect(j('y/a', 'x/b', 'TCP', 8080)).toBe(false);
  });

  it('the same name resolves per pod', () => {
    const j = ok([policy('y/p', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] })]);
    expect(j('x/a', 'y/a', 'TCP', 8081)).toBe(true);
    expect(j('x/a', 'y/a', 'TCP', 8080)).toBe(false);
  });

  it('egress named ports resolve against the destination pod; a non-pod destination matches nothing', () => {
    const j = ok([policy('x/p', { podSelector: { matchLabels: { pod: 'b' } }, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] })]);
    expect(j('x/b', 'x/a', 'TCP', 8080)).toBe(true);
    expect(j('x/b', 'y/a', 'TCP', 8081)).toBe(true);
    expect(j('x/b', 'y/a', 'TCP', 8080)).toBe(false);
    expect(j('x/b', '203.0.113.1', 'TCP', 8080)).toBe(false);
    expect(j('x/b', 'z/a', 'TCP', 8080)).toBe(false);
  });
});

describe('ipBlock', () => {
  it('matches by address with except (IPv4)', () => {
    const j = ok([policy('x/p', { podSelector: selectA, ingress: [{ from: [{ ipBlock: { cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] } }] }] })]);
    expect(j('203.0.113.5', 'x/a')).toBe(true);
    expect(j('203.0.113.127', 'x/a')).toBe(true);
    expect(j('203.0.113.128', 'x/a')).toBe(false);
    expect(j('203.0.113.200', 'x/a')).toBe(false);
    expect(j('198.51.100.1', 'x/a')).toBe(false);
  });

  it('matches by address with except (IPv6)', () => {
    const j = ok([policy('x/p', { podSelector: selectA, ingress: [{ from: [{ ipBlock: { cidr: '2001:db8::/32', except: ['2001:db8:bad::/48'] } }] }] })]);
    expect(j('2001:db8:1::1', 'x/a')).toBe(true);
    expect(j('2001:db8:bad::1', 'x/a')).toBe(false);
    expect(j('2001:db9::1', 'x/a')).toBe(false);
    // an IPv4 block never matches IPv6 and vice versa
    expect(j('203.0.113.5', 'x/a')).toBe(false);
  });

  it('matches pod addresses too, in the family of the connection', () => {
    const e = new PolicyEvaluator(state([policy('x/p', { podSelector: selectA, ingress: [{ from: [{ ipBlock: { cidr: '10.0.2.0/24' } }] }] })]));
    expect(e.evaluate(conn('x/c', 'x/a')).allowed).toBe(true); // 10.0.2.3
    expect(e.evaluate(conn('z/a', 'x/a')).allowed).toBe(true); // 10.0.2.6
    expect(e.evaluate(conn('x/b', 'x/a')).allowed).toBe(false); // 10.0.1.2
    // over IPv6, x/c is fd00:2::3, outside the IPv4 block
    expect(e.evaluate({ ...conn('x/c', 'x/a'), family: 6 }).allowed).toBe(false);
  });

  it('egress ipBlock', () => {
    const j = ok([
      policy('x/p', {
        podSelector: selectA,
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: '8.8.8.0/24' } }], ports: [{ protocol: 'UDP', port: 53 }] }],
      }),
    ]);
    expect(j('x/a', '8.8.8.8', 'UDP', 53)).toBe(true);
    expect(j('x/a', '8.8.8.8', 'TCP', 53)).toBe(false);
    expect(j('x/a', '8.8.4.4', 'UDP', 53)).toBe(false);
    expect(j('x/a', 'y/a', 'UDP', 53)).toBe(false);
  });
});

describe('several policies', () => {
  it('are additive and every allowing rule is reported', () => {
    const p1 = policy('x/p1', { podSelector: selectA, ingress: [{ from: [{ podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ port: 80 }] }] });
    const p2 = policy('x/p2', {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [{ ports: [{ port: 9 }] }, { from: [{ namespaceSelector: {} }], ports: [{ port: 81 }] }],
    });
    const j = judge([p1, p2]);
    expect(j('x/b', 'x/a', 'TCP', 80).ingress.reasons).toEqual([{ kind: 'rule', policy: { namespace: 'x', name: 'p1' }, rule: 0 }]);
    expect(j('y/a', 'x/a', 'TCP', 81).ingress.reasons).toEqual([{ kind: 'rule', policy: { namespace: 'x', name: 'p2' }, rule: 1 }]);
    expect(j('x/b', 'x/a', 'TCP', 81).ingress.reasons).toEqual([{ kind: 'rule', policy: { namespace: 'x', name: 'p2' }, rule: 1 }]);
    expect(j('y/a', 'x/a', 'TCP', 80).allowed).toBe(false);
    expect(j('y/a', 'x/a', 'TCP', 80).ingress.policies).toEqual([
      { namespace: 'x', name: 'p1' },
      { namespace: 'x', name: 'p2' },
    ]);
    const both = policy('x/p3', { podSelector: {}, ingress: [{}] });
    expect(judge([p1, p2, both])('x/b', 'x/a', 'TCP', 80).ingress.reasons).toEqual([
      { kind: 'rule', policy: { namespace: 'x', name: 'p1' }, rule: 0 },
      { kind: 'rule', policy: { namespace: 'x', name: 'p3' }, rule: 0 },
    ]);
  });

  it('a deny-all policy does not subtract from another policy (there is no deny)', () => {
    const j = ok([denyAll('x'), policy('x/allow', { podSelector: selectA, ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'dev' } } }] }] })]);
    expect(j('y/a', 'x/a')).toBe(true);
    expect(j('y/a', 'x/b')).toBe(false);
  });

  it('an ingress-only policy does not isolate for egress even with egress rules', () => {
    const v = judge([policy('x/p', { podSelector: selectA, policyTypes: ['Ingress'], egress: [{ to: [{ ipBlock: { cidr: '1.1.1.1/32' } }] }] })])('x/a', 'y/a');
    expect(v.egress.isolated).toBe(false);
    expect(v.allowed).toBe(true);
  });
});

describe('nodes, host network, self and pod lifecycle', () => {
  it('traffic from the pod own node is always allowed (kubelet probes), IPv4 and IPv6', () => {
    const j = judge([denyIngress('x')]);
    const v = j('192.168.0.1', 'x/a');
    expect(v.allowed).toBe(true);
    expect(v.ingress).toMatchObject({ isolated: true, reasons: [{ kind: 'own-node' }] });
    expect(v.src).toEqual({ kind: 'node', ip: '192.168.0.1', node: 'n1' });
    expect(j('fd00:ffff::1', 'x/a').allowed).toBe(true);
    expect(j('192.168.0.2', 'x/a').allowed).toBe(false); // another node
    expect(j('192.168.0.2', 'x/c').allowed).toBe(true); // x/c runs on n2
  });

  it('the own node is known from status.hostIPs without a node list', () => {
    const j = judge([denyIngress('x')], { nodes: [] });
    expect(j('192.168.0.1', 'x/a').allowed).toBe(true);
    expect(j('192.168.0.2', 'x/c').allowed).toBe(true);
    expect(j('192.168.0.2', 'x/a').allowed).toBe(false);
  });

  it('traffic to the pod own node is always allowed too', () => {
    const j = judge([denyEgress('x')]);
    expect(j('x/a', '192.168.0.1').egress.reasons).toEqual([{ kind: 'own-node' }]);
    expect(j('x/a', '192.168.0.1').allowed).toBe(true);
    expect(j('x/a', '192.168.0.2').allowed).toBe(false);
  });

  it('a hostNetwork pod is its node address as a peer: pod selectors never match it', () => {
    const allowAllPods = policy('y/p', { podSelector: {}, ingress: [{ from: [{ namespaceSelector: {}, podSelector: {} }] }] });
    const j = judge([allowAllPods]);
    const v = j('x/host', 'y/a');
    expect(v.src).toEqual({ kind: 'node', ip: '192.168.0.1', node: 'n1', hostNetworkPod: { namespace: 'x', name: 'host' } });
    expect(v.allowed).toBe(false); // y/a runs on n2
    expect(j('x/host', 'y/b').ingress.reasons).toEqual([{ kind: 'own-node' }]); // y/b runs on n1
    // an ipBlock holding the node address does match it
    const byIp = judge([policy('y/p', { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '192.168.0.0/24' } }] }] })]);
    expect(byIp('x/host', 'y/a').allowed).toBe(true);
  });

  it('a hostNetwork pod is never a subject', () => {
    const j = judge([denyAll('x')]);
    const v = j('y/a', 'x/host');
    expect(v.allowed).toBe(true);
    expect(v.ingress).toMatchObject({ isolated: false, subject: undefined, reasons: [{ kind: 'not-a-pod' }] });
    expect(j('x/host', 'y/a').egress.reasons).toEqual([{ kind: 'not-a-pod' }]);
  });

  it('a pod cannot block access to itself', () => {
    const v = judge([denyAll('x')])('x/a', 'x/a');
    expect(v.allowed).toBe(true);
    expect(v.ingress).toMatchObject({ isolated: true, allowed: true, reasons: [{ kind: 'self' }] });
    expect(v.egress).toMatchObject({ isolated: true, allowed: true, reasons: [{ kind: 'self' }] });
  });

  it('terminated pods are neither subjects nor peers', () => {
    const allowWeb = policy('x/p', { podSelector: { matchLabels: { app: 'db' } }, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }] });
    const e = new PolicyEvaluator(state([allowWeb, denyEgress('x')]));
    // x/done still reports 10.0.1.9 but is Succeeded: that address is just an address
    const v = e.evaluate(conn('10.0.1.9', 'x/b'));
    expect(v.src).toEqual({ kind: 'external', ip: '10.0.1.9' });
    expect(v.allowed).toBe(false);
    expect(e.subjectsOf({ namespace: 'x', name: 'deny-egress' }).map((p) => p.name)).toEqual(['a', 'b', 'c']);
    for (const gone of ['x/done', 'x/failed', 'x/pending']) {
      expect(thrown(() => e.evaluate(conn(gone, 'x/b')))).toBeInstanceOf(PolicyQueryError);
    }
  });

  it('a bare IP of a live pod is that pod', () => {
    const e = new PolicyEvaluator(state([policy('x/p', { podSelector: selectA, ingress: [{ from: [{ podSelector: { matchLabels: { app: 'db' } } }] }] })]));
    const v = e.evaluate(conn('10.0.1.2', 'x/a'));
    expect(v.src).toEqual({ kind: 'pod', pod: { namespace: 'x', name: 'b' }, ip: '10.0.1.2', node: 'n1' });
    expect(v.allowed).toBe(true);
    expect(e.evaluate(conn('fd00:1::2', 'fd00:1::1')).allowed).toBe(true);
    expect(e.evaluate(conn('fd00:1::3', 'fd00:1::1')).allowed).toBe(false);
  });
});

describe('address families', () => {
  it('between pods the family defaults to the source primary family', () => {
    const v = evaluate(state([]), conn('x/a', 'x/b'));
    expect(v.family).toBe(4);
    expect(v.dst).toMatchObject({ ip: '10.0.1.2' });
    expect(evaluate(state([]), { ...conn('x/a', 'x/b'), family: 6 }).dst).toMatchObject({ ip: 'fd00:1::2' });
  });

  it('IPv6-first pods default to IPv6', () => {
    const v6first = [pod('x/s', { ips: ['fd00:9::1', '10.9.0.1'] }), pod('x/t', { ips: ['fd00:9::2', '10.9.0.2'] })];
    expect(evaluate({ pods: v6first, namespaces, policies: [] }, conn('x/s', 'x/t')).family).toBe(6);
  });

  it('impossible families are refused', () => {
    const e = new PolicyEvaluator(state([]));
    expect(thrown(() => e.evaluate({ ...conn('y/b', 'x/a'), family: 6 }))).toBeInstanceOf(PolicyQueryError); // y/b is IPv4-only
    expect(e.evaluate(conn('x/a', '2001:db8::1')).family).toBe(6);
    expect(thrown(() => e.evaluate(conn('y/b', '2001:db8::1')))).toBeInstanceOf(PolicyQueryError);
    expect(thrown(() => e.evaluate(conn('10.0.0.1', '2001:db8::1')))).toBeInstanceOf(PolicyQueryError);
  });
});

describe('bad questions and bad state', () => {
  const e = new PolicyEvaluator(state([]));
  it.each([
    ['unknown pod', conn('x/nope', 'x/a')],
    ['bad IP', conn('10.0.0.300', 'x/a')],
    ['port 0', conn('x/b', 'x/a', 'TCP', 0)],
    ['port too big', conn('x/b', 'x/a', 'TCP', 70000)],
    ['bad protocol', { ...conn('x/b', 'x/a'), protocol: 'ICMP' as Protocol }],
  ])('%s', (_n, c) => {
    expect(thrown(() => e.evaluate(c))).toBeInstanceOf(PolicyQueryError);
  });

  it('an invalid policy makes the whole snapshot refuse, naming it', () => {
    const err = thrown(() => new PolicyEvaluator(state([policy('x/bad', { ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] })])));
    expect(err).toBeInstanceOf(PolicyError);
    expect(err.message).toContain('x/bad');
  });

  it('duplicate pods and unparseable pod IPs are refused', () => {
    expect(
      thrown(() => new PolicyEvaluator({ pods: [pod('x/a', { ips: ['10.0.0.1'] }), pod('x/a', { ips: ['10.0.0.2'] })], namespaces, policies: [] })),
    ).toBeInstanceOf(PolicyQueryError);
    expect(thrown(() => new PolicyEvaluator({ pods: [pod('x/a', { ips: ['10.0.0.999'] })], namespaces, policies: [] }))).toBeInstanceOf(PolicyQueryError);
  });

  it('an IP owned by two live pods is ambiguous', () => {
    const e2 = new PolicyEvaluator({
      pods: [pod('x/a', { ips: ['10.0.0.1'] }), pod('x/b', { ips: ['10.0.0.1'] }), pod('x/c', { ips: ['10.0.0.3'] })],
      namespaces,
      policies: [],
    });
    expect(thrown(() => e2.evaluate(conn('10.0.0.1', 'x/c')))).toBeInstanceOf(PolicyQueryError);
  });

  it('policiesFor lists the isolating policies per direction', () => {
    const e3 = new PolicyEvaluator(state([denyIngress('x'), denyAll('x')]));
    expect(e3.policiesFor({ namespace: 'x', name: 'a' }, 'ingress').map((p) => p.name)).toEqual(['deny-ingress', 'deny-all']);
    expect(e3.policiesFor({ namespace: 'x', name: 'a' }, 'egress').map((p) => p.name)).toEqual(['deny-all']);
    expect(e3.policiesFor({ namespace: 'x', name: 'host' }, 'ingress')).toEqual([]);
  });
});
