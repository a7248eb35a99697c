// The Kubernetes objects the policy core reads, as the API serves them (plain
// JSON). Every field is optional where the API or @kubernetes/client-node 2.x
// makes it optional, and enumerations are open (`string`), so a V1Pod,
// V1Namespace or V1NetworkPolicy from client-node is assignable to these types
// unchanged. Nothing here is trusted: normalize.ts validates every field at
// run time and the evaluator ignores what it cannot use.

import type { ClusterNetworkPolicy } from './cnp-types.ts';

/** An open string union: autocompletes the known values but accepts any string. */
export type Open<T extends string> = T | (string & {});

export type LabelSelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type PolicyType = 'Ingress' | 'Egress';

export type Labels = Readonly<Record<string, string>>;

export interface LabelSelectorRequirement {
  key: string;
  operator: Open<LabelSelectorOperator>;
  values?: string[];
}

/** metav1.LabelSelector: matchLabels and matchExpressions are ANDed. */
export interface LabelSelector {
  matchLabels?: { [key: string]: string };
  matchExpressions?: LabelSelectorRequirement[];
}

export interface IPBlock {
  cidr: string;
  except?: string[];
}

/** networking/v1 NetworkPolicyPeer: a pod/namespace selector pair, or an ipBlock alone. */
export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

/** networking/v1 NetworkPolicyPort; `port` is an IntOrString (a number or a port name). */
export interface NetworkPolicyPort {
  protocol?: Open<Protocol>;
  port?: number | string;
  endPort?: number;
}

export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicySpec {
  podSelector?: LabelSelector;
  policyTypes?: Open<PolicyType>[];
  ingress?: NetworkPolicyIngressRule[];
  egress?: NetworkPolicyEgressRule[];
}

export interface ObjectMeta {
  namespace?: string;
  name?: string;
  labels?: { [key: string]: string };
  uid?: string;
  resourceVersion?: string;
}

export interface NetworkPolicy {
  metadata?: ObjectMeta;
  spec?: NetworkPolicySpec;
}

export interface ContainerPort {
  name?: string | undefined;
  containerPort: number;
  protocol?: Open<Protocol> | undefined;
  /** For a hostNetwork pod it must equal containerPort (the API enforces it). */
  hostPort?: number;
}

export interface Container {
  ports?: ContainerPort[];
  /** Only on init containers: `Always` makes it a sidecar that keeps running. */
  restartPolicy?: string;
}

export interface PodSpec {
  nodeName?: string;
  hostNetwork?: boolean;
  containers: Container[];
  initContainers?: Container[];
}

export interface PodStatus {
  phase?: Open<'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown'>;
  podIP?: string;
  podIPs?: { ip: string }[];
  hostIP?: string;
  hostIPs?: { ip: string }[];
}

export interface Pod {
  metadata?: ObjectMeta;
  spec?: PodSpec;
  status?: PodStatus;
}

export interface Namespace {
  metadata?: ObjectMeta;
}

/** A node as the evaluator needs it: its name and the addresses its traffic comes from. */
export interface NodeInfo {
  name: string;
  internalIPs: string[];
  /** The Node's labels: what HostFirewallPolicy node selectors match. */
  labels?: Labels;
}

export type HostFirewallMode = 'Enforce' | 'Audit';

/**
 * A HostFirewallPolicy peer: exactly one of ipBlock, nodeSelector, or a
 * namespaceSelector and/or podSelector. The policy is cluster-scoped, so a
 * podSelector alone selects pods in every namespace.
 */
export interface HostFirewallPeer extends NetworkPolicyPeer {
  nodeSelector?: LabelSelector;
}

export interface HostFirewallIngressRule {
  from?: HostFirewallPeer[];
  ports?: NetworkPolicyPort[];
}

export interface HostFirewallEgressRule {
  to?: HostFirewallPeer[];
  ports?: NetworkPolicyPort[];
}

export interface HostFirewallPolicySpec {
  /** The nodes the policy applies to (required; `{}` selects every node). */
  nodeSelector?: LabelSelector;
  mode?: Open<HostFirewallMode>;
  policyTypes?: Open<PolicyType>[];
  ingress?: HostFirewallIngressRule[];
  egress?: HostFirewallEgressRule[];
}

/** weir.dev/v1alpha1 HostFirewallPolicy (cluster-scoped): policy for the nodes themselves. */
export interface HostFirewallPolicy {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: HostFirewallPolicySpec;
}

/** A snapshot of everything NetworkPolicy depends on. */
export interface ClusterState {
  pods: readonly Pod[];
  namespaces: readonly Namespace[];
  policies: readonly NetworkPolicy[];
  nodes?: readonly NodeInfo[];
  /** HostFirewallPolicies; only read when the host firewall is on. */
  hostPolicies?: readonly HostFirewallPolicy[];
  /** ClusterNetworkPolicies (policy.networking.k8s.io), both tiers; absent: none. */
  clusterPolicies?: readonly ClusterNetworkPolicy[];
  /**
   * The addresses currently learned for domain names (lower case, no
   * trailing dot), for ClusterNetworkPolicy `domainNames` peers: a name's
   * addresses are allowed while they are listed here. Absent: none learned.
   * Replace the map (do not edit it) when it changes: compiles reuse work by
   * object identity.
   */
  domainAddresses?: ReadonlyMap<string, readonly string[]>;
}
