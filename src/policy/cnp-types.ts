// ClusterNetworkPolicy (sigs.k8s.io/network-policy-api v0.3.0,
// policy.networking.k8s.io/v1beta1, the storage version; v1alpha2 is served
// with the same schema) as the API serves it: plain JSON. As in types.ts,
// every field is optional and enumerations are open, because nothing here is
// trusted: cnp-normalize.ts validates every field at run time.
import type { LabelSelector, ObjectMeta, Open } from './types.ts';

export const CNP_GROUP = 'policy.networking.k8s.io';
export const CNP_VERSION = 'v1beta1';
export const CNP_KIND = 'ClusterNetworkPolicy';
export const CNP_PLURAL = 'clusternetworkpolicies';
/** The API path the agent lists and watches (cluster-scoped). */
export const CNP_PATH = `/apis/${CNP_GROUP}/${CNP_VERSION}/${CNP_PLURAL}`;

export type CnpTier = 'Admin' | 'Baseline';
export type CnpAction = 'Accept' | 'Deny' | 'Pass';

/** Pods selected by a namespace selector AND a pod selector. */
export interface NamespacedPod {
  /** Not required by the CRD; absent (Go's zero value) is the empty selector: every namespace. */
  namespaceSelector?: LabelSelector;
  podSelector?: LabelSelector;
}

/** Exactly one field. hostNetwork pods are never subjects. */
export interface ClusterNetworkPolicySubject {
  namespaces?: LabelSelector;
  pods?: NamespacedPod;
}

/** Exactly one field. hostNetwork pods are never peers. */
export interface ClusterNetworkPolicyIngressPeer {
  namespaces?: LabelSelector;
  pods?: NamespacedPod;
}

/** Exactly one field; `nodes` and `domainNames` are in the experimental channel. */
export interface ClusterNetworkPolicyEgressPeer extends ClusterNetworkPolicyIngressPeer {
  /** The nodes' addresses (weir: their InternalIPs). */
  nodes?: LabelSelector;
  /** CIDRs, masked (`10.0.0.0/8`), IPv4 or IPv6; pod traffic is matched too. */
  networks?: string[];
  /** Exact names or `*.` wildcards; Accept rules only. */
  domainNames?: string[];
}

/** Exactly one of `number` or `range`. */
export interface CnpPort {
  number?: number;
  range?: { start: number; end: number };
}

/** Exactly one field. */
export interface ClusterNetworkPolicyProtocol {
  tcp?: { destinationPort?: CnpPort };
  udp?: { destinationPort?: CnpPort };
  sctp?: { destinationPort?: CnpPort };
  /** A container port name of the destination pod, any protocol (experimental). */
  destinationNamedPort?: string;
}

export interface ClusterNetworkPolicyIngressRule {
  /** For observability only; up to 100 characters. */
  name?: string;
  action?: Open<CnpAction>;
  from?: ClusterNetworkPolicyIngressPeer[];
  protocols?: ClusterNetworkPolicyProtocol[];
}

export interface ClusterNetworkPolicyEgressRule {
  name?: string;
  action?: Open<CnpAction>;
  to?: ClusterNetworkPolicyEgressPeer[];
  protocols?: ClusterNetworkPolicyProtocol[];
}

export interface ClusterNetworkPolicySpec {
  tier?: Open<CnpTier>;
  /** 0-1000; lower values are evaluated first within the tier. */
  priority?: number;
  subject?: ClusterNetworkPolicySubject;
  ingress?: ClusterNetworkPolicyIngressRule[];
  egress?: ClusterNetworkPolicyEgressRule[];
}

/** policy.networking.k8s.io/v1beta1 ClusterNetworkPolicy (cluster-scoped). */
export interface ClusterNetworkPolicy {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: ClusterNetworkPolicySpec;
}
