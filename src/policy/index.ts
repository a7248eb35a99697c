// Public API of the policy core: the Kubernetes object shapes, label
// selectors, NetworkPolicy normalization, port matching and the reference
// evaluator, HostFirewallPolicy normalization and the failsafe port lists,
// ClusterNetworkPolicy normalization and tiers.
// Pure: no I/O, no clock, no kernel.

export {
  byPrecedence,
  type CnpPeer,
  type CnpRule,
  canonicalDomain,
  cnpRef,
  type DomainPeer,
  domainMatches,
  failClosedClusterPolicy,
  type NormalizedClusterPolicy,
  normalizeClusterPolicies,
  normalizeClusterPolicy,
} from './cnp-normalize.ts';
export type * from './cnp-types.ts';
export { CNP_GROUP, CNP_KIND, CNP_PATH, CNP_PLURAL, CNP_VERSION } from './cnp-types.ts';
export { describePolicyRef, formatPolicyRef, PolicyError, PolicyQueryError, type PolicyRef } from './errors.ts';
export {
  type Connection,
  type DirectionVerdict,
  type Endpoint,
  type EvaluatorOptions,
  evaluate,
  type HostFirewallEvalOptions,
  ipEndpoint,
  type PodRef,
  PolicyEvaluator,
  podEndpoint,
  type Reason,
  type ResolvedEndpoint,
  type Verdict,
} from './evaluator.ts';
export { formatEndpoint, formatReason, formatVerdict } from './explain.ts';
export {
  DEFAULT_FAILSAFE_INBOUND,
  DEFAULT_FAILSAFE_OUTBOUND,
  declaredPorts,
  failClosedHostPolicy,
  formatPortRange,
  HFP_GROUP,
  HFP_KIND,
  HFP_PATH,
  HFP_PLURAL,
  HFP_VERSION,
  type HostPeer,
  type HostRule,
  hostPolicyRef,
  type L4Protocol,
  type NodePeer,
  type NormalizedHostPolicy,
  normalizeHostPolicies,
  normalizeHostPolicy,
  type PortRange,
  parsePortRanges,
  portRangesContain,
} from './host-normalize.ts';
export {
  type Direction,
  effectivePolicyTypes,
  type IpBlockPeer,
  ipBlockContains,
  isValidPortName,
  type NormalizedPeer,
  type NormalizedPolicy,
  type NormalizedRule,
  type NormalizeResult,
  normalizePolicies,
  normalizePolicy,
  type PodPeer,
} from './normalize.ts';
export { formatPortMatch, type NamedPorts, namedPortsOf, type PortMatch, portMatches, portsMatch, resolveNamedPort } from './ports.ts';
export {
  type CompiledSelector,
  compileOptionalSelector,
  compileSelector,
  EVERYTHING,
  formatSelector,
  matchesLabelSelector,
  NOTHING,
  type Requirement,
  selectorMatches,
} from './selector.ts';
export { type ClusterRuleReason, learnedAddresses } from './tiers.ts';
export type * from './types.ts';
