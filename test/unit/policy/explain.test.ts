import { describe, expect, it } from 'vitest';
import { formatVerdict, PolicyEvaluator } from '../../../src/policy/index.ts';
import { conn, ns, pod, policy } from './helpers.ts';

describe('verdict explanation', () => {
  const e = new PolicyEvaluator({
    namespaces: [ns('x'), ns('y')],
    nodes: [{ name: 'n1', internalIPs: ['192.168.0.1'] }],
    pods: [
      pod('x/a', { ips: ['10.0.0.1'], node: 'n1' }),
      pod('x/b', { ips: ['10.0.0.2'], node: 'n1' }),
      pod('y/h', { ips: ['192.168.0.1'], node: 'n1', hostNetwork: true }),
    ],
    policies: [
      policy('x/deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
      policy('x/web', {
        podSelector: { matchLabels: { pod: 'a' } },
        ingress: [{ ports: [{ port: 9 }] }, { from: [{ podSelector: { matchLabels: { pod: 'b' } } }] }],
      }),
    ],
  });

  it('names the deciding policies and rules', () => {
    const c = conn('x/b', 'x/a', 'TCP', 80);
    expect(formatVerdict(e.evaluate(c), c.protocol, c.port)).toBe(
      [
        'pod x/b (10.0.0.2) -> pod x/a (10.0.0.1) TCP/80 IPv4: DENIED',
        '  egress at x/b: DENIED (isolated): no rule allows it in x/deny',
        '  ingress at x/a: allowed (isolated): allowed by NetworkPolicy x/web spec.ingress[1]',
      ].join('\n'),
    );
  });

  it('explains non-pods, nodes and self', () => {
    expect(formatVerdict(e.evaluate(conn('y/h', 'x/a')), 'TCP', 80)).toBe(
      [
        'hostNetwork pod y/h as node n1 (192.168.0.1) -> pod x/a (10.0.0.1) TCP/80 IPv4: ALLOWED',
        '  egress at -: allowed: not a pod: NetworkPolicy does not apply',
        '  ingress at x/a: allowed (isolated): traffic between a pod and its own node is always allowed',
      ].join('\n'),
    );
    expect(formatVerdict(e.evaluate(conn('x/a', 'x/a')), 'UDP', 5)).toContain('a pod cannot block traffic to itself');
    expect(formatVerdict(e.evaluate(conn('x/a', '8.8.8.8')), 'UDP', 53)).toContain('-> address 8.8.8.8 UDP/53 IPv4: DENIED');
  });
});
