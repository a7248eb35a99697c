// The question put to the reference evaluator (a connection between two
// endpoints) and its answer (a verdict per direction, with the reasons and
// the tier that decided). Types only, besides two endpoint builders; the
// evaluator is evaluator.ts.
import type { IpFamily } from '../ip.ts';
import type { CnpTier } from './cnp-types.ts';
import type { PolicyRef } from './errors.ts';
import type { PortRange } from './host-normalize.ts';
import type { MetadataGuardSetting } from './metadata-guard.ts';
import type { Direction } from './normalize.ts';
import type { ClusterRuleReason } from './tiers.ts';
import type { Protocol } from './types.ts';

export type Endpoint = { readonly kind: 'pod'; readonly namespace: string; readonly name: string } | { readonly kind: 'ip'; readonly ip: string };

export const podEndpoint = (namespace: string, name: string): Endpoint => ({ kind: 'pod', namespace, name });
export const ipEndpoint = (ip: string): Endpoint => ({ kind: 'ip', ip });

export interface Connection {
  readonly src: Endpoint;
  readonly dst: Endpoint;
  readonly protocol: Protocol;
  /** Destination port, 1-65535. */
  readonly port: number;
  /**
   * Address family. Implied by a bare-IP endpoint; between two pods it
   * defaults to the first family of the source pod's podIPs (its primary
   * family) that the destination pod also has.
   */
  readonly family?: IpFamily;
}

export interface PodRef {
  readonly namespace: string;
  readonly name: string;
}

/** What an endpoint turned out to be, with the address used in this family. */
export type ResolvedEndpoint =
  | { readonly kind: 'pod'; readonly pod: PodRef; readonly ip: string; readonly node: string | undefined }
  | { readonly kind: 'node'; readonly ip: string; readonly node: string | undefined; readonly hostNetworkPod?: PodRef }
  | { readonly kind: 'external'; readonly ip: string };

export type Reason =
  /** The end judged in this direction is not a pod (external address, node, hostNetwork pod). */
  | { readonly kind: 'not-a-pod' }
  /** No policy of this direction selects the pod. */
  | { readonly kind: 'not-isolated' }
  /** The connection is from a pod to itself. */
  | { readonly kind: 'self' }
  /** The peer is the pod's own node. */
  | { readonly kind: 'own-node' }
  /** Rule `rule` of spec.ingress/spec.egress of `policy` allows it. */
  | { readonly kind: 'rule'; readonly policy: PolicyRef; readonly rule: number }
  /** The pod is isolated and no rule of the selecting policies allows it. */
  | { readonly kind: 'no-rule-matched' }
  /** Host firewall: a failsafe port, open whatever the policies say. */
  | { readonly kind: 'failsafe' }
  /** Host firewall: no rule allows it, but audit mode (node-wide, or only Audit policies) logs it instead of dropping it. */
  | { readonly kind: 'audit' }
  /** A ClusterNetworkPolicy rule matched: Accept or Deny decided, or Pass sent it on to the next tier. */
  | ClusterRuleReason
  /** The cloud metadata guard denied it: the pod is not exempt (metadata-guard.ts), whatever the policies say. */
  | { readonly kind: 'metadata-guard' };

export interface DirectionVerdict {
  readonly direction: Direction;
  /** The pod this direction is judged at, if that end is a pod. */
  readonly subject: PodRef | undefined;
  /** True when at least one policy of this direction selects the subject. */
  readonly isolated: boolean;
  readonly allowed: boolean;
  /** The policies of this direction selecting the subject. */
  readonly policies: readonly PolicyRef[];
  /** Why: every allowing rule, or the single overriding/denying reason. */
  readonly reasons: readonly Reason[];
  /** Host firewall: the node this direction was judged at (the subject, when set, is a hostNetwork pod of it). */
  readonly host?: string;
  /** The ClusterNetworkPolicies of this direction selecting the subject, Admin tier first, in order; absent: none. */
  readonly clusterPolicies?: readonly PolicyRef[];
  /** The tier that decided, when ClusterNetworkPolicies select the subject; absent: none did (the default). */
  readonly tier?: CnpTier | 'NetworkPolicy';
}

export interface HostFirewallEvalOptions {
  /** The whole node in audit (--host-firewall-audit). */
  readonly audit?: boolean;
  /** Failsafe ports; default the agent's defaults. */
  readonly failsafeInbound?: readonly PortRange[];
  readonly failsafeOutbound?: readonly PortRange[];
  /**
   * Whether a hostNetwork pod's own egress is attributed to it (its cgroup is
   * known on its node), so that its NetworkPolicies judge it; otherwise its
   * traffic is the node's. Default false.
   */
  readonly hostNetworkEgress?: boolean | ((pod: PodRef) => boolean);
}

export interface EvaluatorOptions {
  /** Judge node traffic as host-firewall mode enforces it. */
  readonly hostFirewall?: HostFirewallEvalOptions;
  /** The cloud metadata guard as the agent runs it: absent, on with the default opt-in label; false, off. */
  readonly metadataGuard?: MetadataGuardSetting;
}

export interface Verdict {
  readonly allowed: boolean;
  readonly ingress: DirectionVerdict;
  readonly egress: DirectionVerdict;
  readonly src: ResolvedEndpoint;
  readonly dst: ResolvedEndpoint;
  readonly family: IpFamily;
}
