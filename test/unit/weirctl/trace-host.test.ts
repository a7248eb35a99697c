// weirctl trace judges with the semantics the node's agent enforces: with
// host-firewall mode on, a flow to a hostNetwork pod (or its node's address)
// is judged by the NetworkPolicy that selects that pod, as the host chains
// enforce it, not waved through as "not a pod". And a flow whose destination,
// pod or node, is on another node is checked by this node's kernel for its
// egress half only.
import { describe, expect, it } from 'vitest';
import { PolicyEvaluator } from '../../../src/policy/evaluator.ts';
import type { ClusterState, Pod } from '../../../src/policy/types.ts';
import { egressOnly, enforcedSemantics, parseEndpoint } from '../../../src/weirctl/commands/trace.ts';
import type { AgentStatus } from '../../../src/weirctl/context.ts';

const W1 = '172.18.0.3';
const W2 = '172.18.0.4';

const pod = (name: string, labels: Record<string, string>, ip: string, node: string, hostNetwork = false): Pod => ({
  metadata: { namespace: 'hf', name, labels },
  spec: { nodeName: node, ...(hostNetwork ? { hostNetwork: true } : {}), containers: [{ ports: [{ containerPort: 9099 }] }] },
  status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], hostIP: node === 'w1' ? W1 : W2 },
});

const state: ClusterState = {
  pods: [
    pod('hostsrv', { app: 'hostsrv' }, W2, 'w2', true),
    pod('bad', { role: 'bad' }, '10.244.1.7', 'w1'),
    pod('good', { role: 'good' }, '10.244.1.8', 'w1'),
  ],
  namespaces: [{ metadata: { name: 'hf' } }],
  policies: [
    {
      metadata: { namespace: 'hf', name: 'good-only' },
      spec: {
        podSelector: { matchLabels: { app: 'hostsrv' } },
        policyTypes: ['Ingress'],
        ingress: [{ from: [{ podSelector: { matchLabels: { role: 'good' } } }] }],
      },
    },
  ],
  nodes: [
    { name: 'w1', internalIPs: [W1] },
    { name: 'w2', internalIPs: [W2] },
  ],
};

const failsafe = { inbound: ['tcp:22', 'tcp:10250'], outbound: ['udp:53'] };
const statusWith = (hostFirewall: boolean): Pick<AgentStatus, 'config' | 'hostFirewall'> => ({
  config: { hostFirewall, masquerade: true, nflogGroup: 100 },
  hostFirewall: hostFirewall
    ? {
        enabled: true,
        audit: false,
        failsafe,
        ingress: 'enforce',
        egress: 'open',
        policies: [],
        hostNetworkPods: [],
        hostNetworkEgress: { enforced: true, by: 'socket cgroupv2', templates: [] },
        hostPolicyApi: { available: true },
        warnings: [],
      }
    : { enabled: false, audit: false, failsafe, policies: [], hostNetworkPods: [] },
});

const trace = (hostFirewall: boolean, from: string, to: string, port: number) =>
  new PolicyEvaluator(state, enforcedSemantics(statusWith(hostFirewall))).evaluate({
    src: parseEndpoint(from, '--from'),
    dst: parseEndpoint(to, '--to'),
    protocol: 'TCP',
    port,
  });

describe('trace with host-firewall mode', () => {
  it('denies a client the NetworkPolicy of a hostNetwork server does not admit, by pod name and by node address', () => {
    for (const to of ['hf/hostsrv', W2]) {
      const v = trace(true, 'hf/bad', to, 9099);
      expect(v.allowed, to).toBe(false);
      expect(v.ingress.allowed, to).toBe(false);
      expect(
        v.ingress.policies.map((p) => p.name),
        to,
      ).toEqual(['good-only']);
    }
  });

  it('allows the client it admits, and a failsafe port whatever the policy says', () => {
    expect(trace(true, 'hf/good', 'hf/hostsrv', 9099).allowed).toBe(true);
    expect(trace(true, 'hf/bad', W2, 10250).allowed).toBe(true);
  });

  it('without host-firewall mode the node is not a pod, and NetworkPolicy does not apply to it', () => {
    const v = trace(false, 'hf/bad', 'hf/hostsrv', 9099);
    expect(v.allowed).toBe(true);
    expect(v.ingress.reasons).toEqual([{ kind: 'not-a-pod' }]);
  });

  it("the source node's kernel sees only the egress half of a flow to another node's pod or address", () => {
    const v = trace(true, 'hf/bad', W2, 9099);
    expect(egressOnly(v, 'w1')).toBe(true);
    expect(egressOnly(v, 'w2')).toBe(false);
    expect(egressOnly(trace(true, 'hf/good', 'hf/bad', 80), 'w1')).toBe(false);
    expect(egressOnly(trace(true, 'hf/bad', '8.8.8.8', 53), 'w1')).toBe(false);
  });
});
