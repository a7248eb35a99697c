// A small cluster for the host-firewall tests: node n1 (this node, a
// worker) and n2 (control plane), a hostNetwork server on n1, ordinary pods
// on both nodes.
import type { CompileOptions, CompileResult } from '../../../src/policy/compile.ts';
import { compilePolicies } from '../../../src/policy/compile.ts';
import type { HostFirewallOptions } from '../../../src/policy/host-compile.ts';
import type { Ruleset } from '../../../src/policy/ruleset.ts';
import type { ClusterState, HostFirewallPolicy, HostFirewallPolicySpec, NetworkPolicy, NodeInfo } from '../../../src/policy/types.ts';
import { ns, pod } from '../policy/helpers.ts';

export const N1 = '192.168.0.1';
export const N1_6 = 'fd01::1';
export const N2 = '192.168.0.2';
export const NODES: NodeInfo[] = [
  { name: 'n1', internalIPs: [N1, N1_6], labels: { role: 'worker', 'kubernetes.io/hostname': 'n1' } },
  { name: 'n2', internalIPs: [N2], labels: { role: 'cp', 'kubernetes.io/hostname': 'n2' } },
];
const n1 = { node: 'n1', hostIPs: [N1, N1_6] };
const n2 = { node: 'n2', hostIPs: [N2] };

export const PODS = [
  // hostNetwork: the node's addresses; declared ports are the node's
  pod('x/hn', {
    labels: { app: 'hn' },
    ips: [N1, N1_6],
    hostNetwork: true,
    ...n1,
    ports: [
      { name: 'http', containerPort: 8080, hostPort: 8080 },
      { name: 'dns', containerPort: 5353, protocol: 'UDP' },
    ],
  }),
  pod('x/hn2', { labels: { app: 'hn2' }, ips: [N1, N1_6], hostNetwork: true, ...n1, ports: [{ name: 'metrics', containerPort: 9100 }] }),
  pod('y/remote-hn', { labels: { app: 'hn' }, ips: [N2], hostNetwork: true, ...n2, ports: [{ name: 'http', containerPort: 8080 }] }),
  pod('x/client', { labels: { app: 'client' }, ips: ['10.1.0.5', 'fd00:1::5'], ...n1 }),
  pod('x/other', { labels: { app: 'other' }, ips: ['10.1.0.6'], ...n1, ports: [{ name: 'http', containerPort: 80 }] }),
  pod('y/far-client', { labels: { app: 'client' }, ips: ['10.2.0.5'], ...n2 }),
  pod('y/far-other', { labels: { app: 'other' }, ips: ['10.2.0.6'], ...n2 }),
];

export const hfp = (name: string, spec: HostFirewallPolicySpec): HostFirewallPolicy => ({
  apiVersion: 'weir.dev/v1alpha1',
  kind: 'HostFirewallPolicy',
  metadata: { name },
  spec,
});

export const state = (policies: NetworkPolicy[] = [], hostPolicies: HostFirewallPolicy[] = []): ClusterState => ({
  namespaces: [ns('x'), ns('y', { team: 'ops' })],
  nodes: NODES,
  pods: PODS,
  policies,
  hostPolicies,
});

export const compileHostOn = (s: ClusterState, host: HostFirewallOptions = {}, extra: Partial<CompileOptions> = {}): CompileResult =>
  compilePolicies(s, { nodeName: 'n1', hostFirewall: host, ...extra });

export const rules = (rs: Ruleset, chain: string): string[] => {
  const c = rs.chains.get(chain);
  if (!c) throw new Error(`no chain ${chain}; have ${[...rs.chains.keys()].join(', ')}`);
  return c.rules.map((r) => r.rule);
};

export const elems = (rs: Ruleset, name: string): string[] => {
  const s = rs.sets.get(name);
  if (!s) throw new Error(`no set ${name}; have ${[...rs.sets.keys()].join(', ')}`);
  return [...s.elements.values()].map((e) => e.key.join(' . ') + (e.value === undefined ? '' : ` : ${e.value}`)).sort();
};
