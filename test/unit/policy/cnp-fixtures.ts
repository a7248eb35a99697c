// The world of the network-policy-api v0.3.0 conformance suite
// (conformance/base/manifests.yaml), as a ClusterState: four houses of two
// pods each, every pod declaring `web` (TCP 80) and `dns` (UDP 53), and the
// hostNetwork `centaur` pods of forbidden-forrest, one per node. Plus
// builders for ClusterNetworkPolicy objects, shaped as the API serves them.
import type {
  ClusterNetworkPolicy,
  ClusterNetworkPolicyEgressRule,
  ClusterNetworkPolicyIngressRule,
  ClusterNetworkPolicySubject,
  CnpTier,
} from '../../../src/policy/cnp-types.ts';
import type { ClusterState, LabelSelector, NetworkPolicy } from '../../../src/policy/types.ts';
import { ns, pod } from './helpers.ts';

export const HOUSES = ['gryffindor', 'slytherin', 'hufflepuff', 'ravenclaw'] as const;
export type House = (typeof HOUSES)[number];
const PODS: Record<House, string> = { gryffindor: 'harry-potter', slytherin: 'draco-malfoy', hufflepuff: 'cedric-diggory', ravenclaw: 'luna-lovegood' };
export const NS = (h: House | 'forbidden-forrest'): string => `network-policy-conformance-${h}`;
/** `harry-potter-0` and so on, as `namespace/name`. */
export const P = (h: House, i: 0 | 1): string => `${NS(h)}/${PODS[h]}-${i}`;
export const CENTAUR = (i: 0 | 1): string => `${NS('forbidden-forrest')}/centaur-${i}`;

export const NODE_IPS = { n1: ['172.18.0.2', 'fc00:f853::2'], n2: ['172.18.0.3', 'fc00:f853::3'] } as const;
export const HOST_PORTS = [34567, 34568, 34569, 34570, 34571, 34572, 34573];

const webDns = [
  { name: 'web', containerPort: 80, protocol: 'TCP' },
  { name: 'dns', containerPort: 53, protocol: 'UDP' },
];

export function conformanceWorld(): ClusterState {
  const namespaces = [...HOUSES, 'forbidden-forrest' as const].map((h) => ns(NS(h), { 'conformance-house': h }));
  const pods = HOUSES.flatMap((h, hi) =>
    ([0, 1] as const).map((i) => {
      const node = i === 0 ? 'n1' : 'n2';
      return pod(P(h, i), {
        labels: { 'conformance-house': h },
        ips: [`10.244.${i + 1}.${10 + hi}`, `fd00:10:244:${i + 1}::${10 + hi}`],
        node,
        hostIPs: [...NODE_IPS[node]],
        ports: webDns,
      });
    }),
  );
  const centaurs = ([0, 1] as const).map((i) => {
    const node = i === 0 ? 'n1' : 'n2';
    const ports = [
      { name: `web-${HOST_PORTS[0]}`, containerPort: HOST_PORTS[0] as number, protocol: 'TCP' },
      { name: `web-${HOST_PORTS[1]}`, containerPort: HOST_PORTS[1] as number, protocol: 'TCP' },
      { name: `dns-${HOST_PORTS[2]}`, containerPort: HOST_PORTS[2] as number, protocol: 'UDP' },
    ];
    return pod(CENTAUR(i), {
      labels: { 'conformance-house': 'forbidden-forrest' },
      ips: [...NODE_IPS[node]],
      node,
      hostIPs: [...NODE_IPS[node]],
      hostNetwork: true,
      ports,
    });
  });
  const nodes = (['n1', 'n2'] as const).map((n) => ({
    name: n,
    internalIPs: [...NODE_IPS[n]],
    labels: { 'kubernetes.io/os': 'linux', 'kubernetes.io/hostname': n },
  }));
  return { namespaces, pods: [...pods, ...centaurs], nodes, policies: [] };
}

export const house = (h: House): LabelSelector => ({ matchLabels: { 'conformance-house': h } });
export const nsName = (h: House): LabelSelector => ({ matchLabels: { 'kubernetes.io/metadata.name': NS(h) } });

export interface CnpBody {
  ingress?: ClusterNetworkPolicyIngressRule[];
  egress?: ClusterNetworkPolicyEgressRule[];
}

export function cnp(name: string, tier: CnpTier, priority: number, subject: ClusterNetworkPolicySubject, body: CnpBody): ClusterNetworkPolicy {
  return { apiVersion: 'policy.networking.k8s.io/v1beta1', kind: 'ClusterNetworkPolicy', metadata: { name }, spec: { tier, priority, subject, ...body } };
}

/** The same world with these policies. */
export const withPolicies = (
  world: ClusterState,
  clusterPolicies: ClusterNetworkPolicy[],
  policies: NetworkPolicy[] = [],
  extra: Partial<ClusterState> = {},
): ClusterState => ({
  ...world,
  policies,
  clusterPolicies,
  ...extra,
});
