// Typed errors of the policy core. A PolicyError means "this policy cannot be
// expressed": the caller reports it (and decides how to fail) instead of
// enforcing a silently weakened policy. A PolicyQueryError means the question
// put to the evaluator does not make sense for the cluster state given.
import { CniCode, WeirError } from '../errors.ts';

/** Which policy an error is about. */
export interface PolicyRef {
  namespace: string;
  name: string;
  /** Absent for a NetworkPolicy; the cluster-scoped kinds have namespace ''. */
  kind?: 'HostFirewallPolicy' | 'ClusterNetworkPolicy';
}

export const formatPolicyRef = (p: PolicyRef): string => (p.kind === undefined ? `${p.namespace}/${p.name}` : p.name);
/** `NetworkPolicy ns/name`, `HostFirewallPolicy name` or `ClusterNetworkPolicy name`. */
export const describePolicyRef = (p: PolicyRef): string => `${p.kind ?? 'NetworkPolicy'} ${formatPolicyRef(p)}`;

export class PolicyError extends WeirError {
  readonly code = 'WEIR_POLICY_INVALID';
  readonly cniCode = CniCode.Internal;
  /** The policy, when known (a bare selector has none). */
  readonly policy: PolicyRef | undefined;
  /** JSON path of the offending field, e.g. `spec.ingress[0].ports[1].endPort`. */
  readonly field: string;
  /** What is wrong with it, without the policy and field prefix. */
  readonly problem: string;

  constructor(field: string, problem: string, policy?: PolicyRef) {
    super(`${policy ? `${describePolicyRef(policy)}: ` : ''}${field}: ${problem}`);
    this.field = field;
    this.problem = problem;
    this.policy = policy;
  }

  /** The same error, attributed to `policy` (used when a selector error surfaces from a policy). */
  withPolicy(policy: PolicyRef): PolicyError {
    return this.policy ? this : new PolicyError(this.field, this.problem, policy);
  }
}

export class PolicyQueryError extends WeirError {
  readonly code = 'WEIR_POLICY_QUERY';
  readonly cniCode = CniCode.Internal;
}

/** Short, bounded rendering of a bad input value for an error message. */
export function show(v: unknown): string {
  let s: string;
  try {
    s = v === undefined ? 'undefined' : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
