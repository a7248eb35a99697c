// Public API of the policy core: the Kubernetes object shapes, label
// selectors, NetworkPolicy normalization, port matching and the reference
// evaluator, HostFirewallPolicy normalization and the failsafe port lists,
// ClusterNetworkPolicy normalization and tiers.
// Pure: no I/O, no clock, no kernel.
export type * from './types.ts';
export type * from './cnp-types.ts';
export { CNP_GROUP, CNP_KIND, CNP_PATH, CNP_PLURAL, CNP_VERSION } from './cnp-types.ts';
export {
  byPrecedence,
  canonicalDomain,
  cnpRef,
  domainMatches,
  failClosedClusterPolicy,
  normalizeClusterPolicies,
  normalizeClusterPolicy,
  type CnpPeer,
  type CnpRule,
  type DomainPeer,
  type NormalizedClusterPolicy,
} from './cnp-normalize.ts';
export { learnedAddresses, type ClusterRuleReason } from './tiers.ts';
export { PolicyError, PolicyQueryError, describePolicyRef, formatPolicyRef, type PolicyRef } from './errors.ts';
export {
  EVERYTHING,
  NOTHING,
  compileOptionalSelector,
  compileSelector,
  formatSelector,
  matchesLabelSelector,
  selectorMatches,
  type CompiledSelector,
  type Requirement,
} from './selector.ts';
export {
  effectivePolicyTypes,
  ipBlockContains,
  isValidPortName,
  normalizePolicies,
  normalizePolicy,
  type Direction,
  type IpBlockPeer,
  type NormalizeResult,
  type NormalizedPeer,
  type NormalizedPolicy,
  type NormalizedRule,
  type PodPeer,
} from './normalize.ts';
export { formatPortMatch, namedPortsOf, portMatches, portsMatch, resolveNamedPort, type NamedPorts, type PortMatch } from './ports.ts';
export {
  PolicyEvaluator,
  evaluate,
  ipEndpoint,
  podEndpoint,
  type Connection,
  type DirectionVerdict,
  type EvaluatorOptions,
  type HostFirewallEvalOptions,
  type Endpoint,
  type PodRef,
  type Reason,
  type ResolvedEndpoint,
  type Verdict,
} from './evaluator.ts';
export { formatEndpoint, formatReason, formatVerdict } from './explain.ts';
export {
  DEFAULT_FAILSAFE_INBOUND,
  DEFAULT_FAILSAFE_OUTBOUND,
  HFP_GROUP,
  HFP_KIND,
  HFP_PATH,
  HFP_PLURAL,
  HFP_VERSION,
  declaredPorts,
  failClosedHostPolicy,
  formatPortRange,
  hostPolicyRef,
  normalizeHostPolicies,
  normalizeHostPolicy,
  parsePortRanges,
  portRangesContain,
  type HostPeer,
  type HostRule,
  type L4Protocol,
  type NodePeer,
  type NormalizedHostPolicy,
  type PortRange,
} from './host-policy.ts';
