// HostFirewallPolicy normalization (src/policy/host-normalize.ts): defaults,
// the peer kinds of a cluster-scoped policy, what is refused and how a refused
// policy is enforced; the failsafe port lists; the ports a hostNetwork pod
// declares.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_FAILSAFE_INBOUND,
  DEFAULT_FAILSAFE_OUTBOUND,
  declaredPorts,
  failClosedHostPolicy,
  formatPortRange,
  normalizeHostPolicies,
  normalizeHostPolicy,
  parsePortRanges,
  portRangesContain,
} from '../../../src/policy/host-normalize.ts';
import { formatSelector } from '../../../src/policy/selector.ts';
import type { HostFirewallPolicy, HostFirewallPolicySpec } from '../../../src/policy/types.ts';
import { pod, thrown } from '../policy/helpers.ts';

const hfp = (name: string, spec: HostFirewallPolicySpec | unknown): HostFirewallPolicy => ({
  metadata: { name, uid: 'u', resourceVersion: '7' },
  spec: spec as HostFirewallPolicySpec,
});

describe('normalizeHostPolicy', () => {
  it('defaults: mode Enforce, policyTypes as NetworkPolicy (Ingress, plus Egress when egress has rules)', () => {
    const p = normalizeHostPolicy(hfp('a', { nodeSelector: {} }));
    expect(p).toMatchObject({ name: 'a', uid: 'u', resourceVersion: '7', mode: 'Enforce', policyTypes: ['Ingress'], ingress: [], egress: undefined });
    expect(formatSelector(p.nodeSelector)).toBe('<everything>');
    const e = normalizeHostPolicy(hfp('b', { nodeSelector: { matchLabels: { role: 'worker' } }, mode: 'Audit', egress: [{}] }));
    expect(e).toMatchObject({ mode: 'Audit', policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [{ index: 0, peers: 'any', ports: 'any' }] });
    expect(formatSelector(e.nodeSelector)).toBe('role=worker');
    expect(normalizeHostPolicy(hfp('c', { nodeSelector: {}, policyTypes: ['Egress'] }))).toMatchObject({ ingress: undefined, egress: [] });
  });

  it('peers: ipBlock; nodeSelector; podSelector alone is pods of EVERY namespace (cluster-scoped); namespaceSelector, alone or ANDed', () => {
    const p = normalizeHostPolicy(
      hfp('peers', {
        nodeSelector: {},
        ingress: [
          {
            from: [
              { ipBlock: { cidr: '10.0.0.1/8', except: ['10.1.0.0/16'] } },
              { nodeSelector: { matchLabels: { role: 'cp' } } },
              { podSelector: { matchLabels: { app: 'prom' } } },
              { namespaceSelector: { matchLabels: { team: 'ops' } } },
              { namespaceSelector: { matchLabels: { team: 'ops' } }, podSelector: { matchLabels: { app: 'x' } } },
            ],
            ports: [{ port: 9100 }, { protocol: 'UDP', port: 53, endPort: 60 }, { port: 'metrics' }, { protocol: 'SCTP' }],
          },
        ],
      }),
    );
    const [rule] = p.ingress ?? [];
    if (!rule || rule.peers === 'any' || rule.ports === 'any') throw new Error('no rule');
    const [block, nodes, podsAlone, nsAlone, both] = rule.peers;
    expect(block).toMatchObject({ kind: 'ipBlock', cidr: { address: '10.0.0.0', prefix: 8 } });
    expect(nodes?.kind === 'nodes' && formatSelector(nodes.nodes)).toBe('role=cp');
    expect(podsAlone?.kind === 'pods' && podsAlone.namespaces !== 'own' && formatSelector(podsAlone.namespaces)).toBe('<everything>');
    expect(podsAlone?.kind === 'pods' && formatSelector(podsAlone.pods)).toBe('app=prom');
    expect(nsAlone?.kind === 'pods' && formatSelector(nsAlone.pods)).toBe('<everything>');
    expect(both?.kind === 'pods' && both.namespaces !== 'own' && formatSelector(both.namespaces)).toBe('team=ops');
    expect(rule.ports).toEqual([
      { protocol: 'TCP', kind: 'range', from: 9100, to: 9100 },
      { protocol: 'UDP', kind: 'range', from: 53, to: 60 },
      { protocol: 'TCP', kind: 'named', name: 'metrics' },
      { protocol: 'SCTP', kind: 'all' },
    ]);
  });

  it('refuses, naming the HostFirewallPolicy and the field, what it cannot express', () => {
    const cases: Array<[HostFirewallPolicySpec | unknown, string]> = [
      [undefined, 'spec'],
      [{}, 'spec.nodeSelector'],
      [{ nodeSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }, 'spec.nodeSelector.matchExpressions[0].values'],
      [{ nodeSelector: {}, mode: 'Warn' }, 'spec.mode'],
      [{ nodeSelector: {}, policyTypes: ['Sideways'] }, 'spec.policyTypes[0]'],
      [{ nodeSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, nodeSelector: {} }] }] }, 'spec.ingress[0].from[0]'],
      [{ nodeSelector: {}, ingress: [{ from: [{ nodeSelector: {}, podSelector: {} }] }] }, 'spec.ingress[0].from[0]'],
      [{ nodeSelector: {}, egress: [{ to: [{}] }] }, 'spec.egress[0].to[0]'],
      [{ nodeSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/33' } }] }] }, 'spec.ingress[0].from[0].ipBlock.cidr'],
      [{ nodeSelector: {}, ingress: [{ ports: [{ port: 80, endPort: 79 }] }] }, 'spec.ingress[0].ports[0].endPort'],
      [{ nodeSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] }, 'spec.ingress[0].ports[0].endPort'],
      [{ nodeSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }] }] }, 'spec.ingress[0].ports[0].protocol'],
    ];
    for (const [spec, field] of cases) {
      const e = thrown(() => normalizeHostPolicy(hfp('bad', spec)));
      expect(e.field, JSON.stringify(spec)).toBe(field);
      expect(e.message).toMatch(/^HostFirewallPolicy bad: /);
    }
    expect(thrown(() => normalizeHostPolicy({ spec: { nodeSelector: {} } })).field).toBe('metadata.name');
  });

  it('a refused policy is enforced fail-closed: deny-all in its directions, on the nodes it selects (every node when even that is unusable); Audit stays Audit', () => {
    const a = failClosedHostPolicy(hfp('x', { nodeSelector: { matchLabels: { role: 'edge' } }, ingress: [{ from: [{}] }] }));
    expect(a).toMatchObject({ name: 'x', mode: 'Enforce', policyTypes: ['Ingress'], ingress: [], egress: undefined });
    expect(formatSelector(a.nodeSelector)).toBe('role=edge');
    const b = failClosedHostPolicy(hfp('y', { nodeSelector: { matchExpressions: [{ key: 'k', operator: 'Bad' }] }, policyTypes: 'nope', mode: 'Audit' }));
    expect(b).toMatchObject({ mode: 'Audit', policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] });
    expect(formatSelector(b.nodeSelector)).toBe('<everything>');
    const { policies, errors } = normalizeHostPolicies([hfp('z', { nodeSelector: {} }), hfp('x', { nodeSelector: {}, mode: 'Nope' })]);
    expect(policies.map((p) => p.name)).toEqual(['x', 'z']);
    expect(errors.map((e) => e.policy)).toEqual([{ namespace: '', name: 'x', kind: 'HostFirewallPolicy' }]);
  });

  it('warns about sections policyTypes makes inert', () => {
    const p = normalizeHostPolicy(hfp('w', { nodeSelector: {}, policyTypes: ['Egress'], ingress: [{}] }));
    expect(p.warnings).toEqual(['spec.ingress has no effect: spec.policyTypes does not include Ingress']);
  });
});

describe('failsafe port lists', () => {
  it('the defaults hold SSH, the API server, kubelet, etcd and DHCP inbound; DNS, the API server, etcd and DHCP outbound', () => {
    const inbound = parsePortRanges(DEFAULT_FAILSAFE_INBOUND);
    for (const [proto, port] of [
      ['tcp', 22],
      ['tcp', 6443],
      ['tcp', 10250],
      ['tcp', 2379],
      ['tcp', 2380],
      ['udp', 67],
      ['udp', 68],
      ['udp', 546],
      ['udp', 547],
    ] as const) {
      expect(portRangesContain(inbound, proto, port), `${proto}/${port}`).toBe(true);
    }
    expect(portRangesContain(inbound, 'TCP', 80)).toBe(false);
    expect(portRangesContain(inbound, 'udp', 22)).toBe(false);
    const outbound = parsePortRanges(DEFAULT_FAILSAFE_OUTBOUND);
    for (const [proto, port] of [
      ['tcp', 53],
      ['udp', 53],
      ['tcp', 6443],
      ['tcp', 2379],
      ['udp', 67],
      ['udp', 547],
    ] as const) {
      expect(portRangesContain(outbound, proto, port), `${proto}/${port}`).toBe(true);
    }
  });

  it('parses lists and lists of lists, prints them back, and refuses nonsense', () => {
    expect(parsePortRanges(['tcp:22, UDP:67-68', 'sctp:9'])).toEqual([
      { protocol: 'tcp', from: 22, to: 22 },
      { protocol: 'udp', from: 67, to: 68 },
      { protocol: 'sctp', from: 9, to: 9 },
    ]);
    expect(parsePortRanges('tcp:22,udp:67-68').map(formatPortRange)).toEqual(['tcp:22', 'udp:67-68']);
    expect(parsePortRanges('none')).toEqual([]);
    expect(parsePortRanges('')).toEqual([]);
    for (const bad of ['22', 'icmp:1', 'tcp:0', 'tcp:70000', 'tcp:30-20', 'tcp:a']) expect(() => parsePortRanges(bad), bad).toThrow(RangeError);
  });
});

describe('declaredPorts', () => {
  it('containerPort and hostPort of containers and sidecars, per protocol, deduplicated and sorted; not plain init containers', () => {
    const p = pod('x/h', {
      hostNetwork: true,
      ports: [{ containerPort: 8080 }, { containerPort: 8080, hostPort: 8080 }, { containerPort: 53, protocol: 'UDP' }, { containerPort: 9, protocol: 'SCTP' }],
      sidecarPorts: [{ containerPort: 9100, name: 'metrics' }],
    });
    (p.spec?.containers[0]?.ports ?? []).push({ containerPort: 7000, hostPort: 7001 });
    p.spec?.initContainers?.push({ ports: [{ containerPort: 1234 }] });
    expect(declaredPorts(p)).toEqual([
      { protocol: 'SCTP', port: 9 },
      { protocol: 'TCP', port: 7000 },
      { protocol: 'TCP', port: 7001 },
      { protocol: 'TCP', port: 8080 },
      { protocol: 'TCP', port: 9100 },
      { protocol: 'UDP', port: 53 },
    ]);
    expect(declaredPorts(undefined)).toEqual([]);
  });
});
