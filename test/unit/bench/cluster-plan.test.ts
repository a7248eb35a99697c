// The benchmarks' synthetic cluster at Kubernetes' limits: every node's pod
// /24 and InternalIP distinct, clear of the service range and of each other,
// the default 100-node plan as it always was, and the ClusterNetworkPolicies
// deterministic and leaving the pods and NetworkPolicies unchanged.
import { describe, expect, it } from 'vitest';
import { BENCH_NODE, BENCH_POD_CIDR, MAX_NODES, makeCluster, nodeIP, podCIDR } from '../../../scripts/bench/policy/cluster.ts';
import { makeClusterPolicies } from '../../../scripts/bench/policy/cluster-policies.ts';
import { cidrContains, parseCidr, parseIp } from '../../../src/ip.ts';

describe('synthetic cluster address plan', () => {
  it('gives every node up to MAX_NODES its own pod /24 in 10.0.0.0/8, none in the service range, and its own InternalIP', () => {
    const cidrs = Array.from({ length: MAX_NODES }, (_, k) => podCIDR(k));
    expect(new Set(cidrs).size).toBe(MAX_NODES);
    const services = parseCidr('10.96.0.0/12');
    const ten = parseCidr('10.0.0.0/8');
    for (const c of cidrs) {
      const p = parseCidr(c);
      expect(p.prefix).toBe(24);
      expect(cidrContains(ten, p)).toBe(true);
      expect(cidrContains(services, p)).toBe(false);
    }
    const ips = Array.from({ length: MAX_NODES }, (_, k) => nodeIP(k));
    expect(new Set(ips).size).toBe(MAX_NODES);
    for (const ip of ips) expect(cidrContains(parseCidr('192.168.0.0/16'), parseIp(ip))).toBe(true);
    expect(() => podCIDR(MAX_NODES)).toThrow();
  });

  it('keeps the 100-node plan: node k on 10.244.k.0/24 at 192.168.0.k+1, the bench node on 10.244.1.0/24', () => {
    expect(BENCH_POD_CIDR).toBe('10.244.1.0/24');
    for (const k of [0, 1, 99]) {
      expect(podCIDR(k)).toBe(`10.244.${k}.0/24`);
      expect(nodeIP(k)).toBe(`192.168.0.${k + 1}`);
    }
    const c = makeCluster({ pods: 1000, policies: 10, seed: 1 });
    expect(c.state.nodes).toHaveLength(100);
    expect(c.localPods).toBe(10);
    for (const p of c.state.pods) {
      const k = Number(p.spec?.nodeName?.slice(5));
      expect(cidrContains(parseCidr(podCIDR(k)), parseIp(p.status?.podIP as string))).toBe(true);
    }
  });

  it("spreads 150k pods over 5k nodes, 30 each, every address inside its node's range and none twice", () => {
    const c = makeCluster({ pods: 150_000, policies: 1, nodes: 5000, seed: 1 });
    expect(c.state.nodes).toHaveLength(5000);
    expect(c.localPods).toBe(30);
    expect(c.state.pods.filter((p) => p.spec?.nodeName === BENCH_NODE)).toHaveLength(30);
    expect(new Set(c.state.pods.map((p) => p.status?.podIP)).size).toBe(150_000);
    const p = c.state.pods[149_999];
    expect(p?.status?.hostIP).toBe(nodeIP(4999));
    expect(cidrContains(parseCidr(podCIDR(4999)), parseIp(p?.status?.podIP as string))).toBe(true);
  });
});

describe('synthetic ClusterNetworkPolicies', () => {
  it('are deterministic, uniquely named, a third Admin, and leave the pods and NetworkPolicies as they were', () => {
    const a = makeClusterPolicies(100, 50, 1);
    expect(makeClusterPolicies(100, 50, 1)).toEqual(a);
    expect(new Set(a.map((c) => c.metadata?.name)).size).toBe(100);
    expect(a.filter((c) => c.spec?.tier === 'Admin')).toHaveLength(34);
    for (const c of a) expect(c.spec?.ingress?.length).toBeGreaterThan(0);
    expect(makeCluster({ pods: 500, policies: 20, seed: 1 })).toEqual(makeCluster({ pods: 500, policies: 20, seed: 1 }));
  });
});
