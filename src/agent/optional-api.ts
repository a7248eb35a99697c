// Kinds the agent mirrors from a CustomResourceDefinition that may not be
// installed (ClusterNetworkPolicy, HostFirewallPolicy) or that an older
// ClusterRole may not cover. A missing CRD must not keep the agent from
// syncing: NetworkPolicy is enforced regardless, so "not installed" (404)
// and "forbidden" (403) list as empty, the availability is kept for /status,
// and the reflector keeps retrying until the API serves the kind, at which
// point the first real list replaces the empty one. Once the API has served
// the kind, a 404 or 403 is an error for a grace period before it lists
// empty: why, and what each means for syncs, see resync.ts. The watch of the
// CRD itself (crd-gate.ts) makes both faster where the agent may read it: it
// starts the reflector afresh when the CRD is Established, and calls
// `absent()` when the CRD is gone, which is no outage and needs no grace.
import { CniCode, WeirError } from '../errors.ts';
import { CNP_GROUP, CNP_KIND, CNP_PLURAL } from '../policy/cnp-types.ts';
import { httpStatus, type Lister } from './reflector.ts';
import { OPTIONAL_KIND_GRACE_MS } from './resync.ts';

/** 404: the CRD is not installed; 403: the agent's role does not cover it (older manifests). */
export const isUnavailable = (e: unknown): boolean => httpStatus(e) === 404 || httpStatus(e) === 403;

export interface ApiAvailability {
  /** undefined until the first list; false while the CRD is missing or forbidden. */
  available: boolean | undefined;
  reason: string | undefined;
}

/** How to name an optional kind in reasons: its resource (`plural.group`) and what its absence means. */
export interface OptionalKind {
  resource: string;
  kindName: string;
  /** What enforcement looks like without it ("no host policies"). */
  without: string;
}

export const CLUSTER_POLICY_KIND: OptionalKind = {
  resource: `${CNP_PLURAL}.${CNP_GROUP}`,
  kindName: CNP_KIND,
  without: 'NetworkPolicy is enforced, ClusterNetworkPolicies are not known until it is',
};

export function unavailableReason(k: OptionalKind, code: number | undefined): string {
  return code === 404
    ? `the ${k.kindName} CRD (${k.resource}) is not installed: ${k.without}`
    : `the agent may not list ${k.resource} (ClusterRole too old?): ${k.without}`;
}

/** A 404 or 403 of a kind the API served before, within OPTIONAL_KIND_GRACE_MS: an outage, not an absence. */
export class NotServedYetError extends WeirError {
  readonly code = 'WEIR_NOT_SERVED_YET';
  // Agent-only, about the API server: TryAgainLater, by the rule at WeirError.cniCode.
  readonly cniCode = CniCode.TryAgainLater;
  constructor(kind: OptionalKind, code: number | undefined, cause: unknown) {
    super(
      `${kind.resource}: ${code} from the API that served it before (restarting?); the last list stays in force for up to ${OPTIONAL_KIND_GRACE_MS / 1000} s`,
      { cause },
    );
  }
}

/** An optional kind's Lister, which can also be told that the CRD is gone. */
export type OptionalLister<T> = Lister<T> & {
  /** The CRD was deleted: unavailable now, and its next 404 is an absence, not an outage. */
  absent(): void;
};

/**
 * A Lister for the reflector that turns 404 and 403 into an empty list and
 * records which in `state`; `changed` runs when availability changes, with
 * what it was (the agent logs each transition once, not each retry).
 */
export function optionalLister<T>(
  list: Lister<T>,
  state: ApiAvailability,
  kind: OptionalKind,
  changed?: (s: ApiAvailability, was: boolean | undefined) => void,
  clock: () => number = Date.now,
): OptionalLister<T> {
  const set = (available: boolean, reason: string | undefined): void => {
    const was = state.available;
    state.available = available;
    state.reason = reason;
    if (was !== available) changed?.(state, was);
  };
  let served = false;
  let failingSince: number | undefined;
  const lister: Lister<T> = async (o) => {
    try {
      const page = await list(o);
      served = true;
      failingSince = undefined;
      set(true, undefined);
      return page;
    } catch (e) {
      if (!isUnavailable(e)) throw e;
      const now = clock();
      failingSince ??= now;
      if (served && now - failingSince < OPTIONAL_KIND_GRACE_MS) throw new NotServedYetError(kind, httpStatus(e), e);
      set(false, unavailableReason(kind, httpStatus(e)));
      return { items: [], metadata: { resourceVersion: '' } };
    }
  };
  return Object.assign(lister, {
    absent() {
      served = false;
      failingSince = undefined;
      set(false, unavailableReason(kind, 404));
    },
  });
}
