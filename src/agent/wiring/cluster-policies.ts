// ClusterNetworkPolicies as the agent mirrors them: their reflector behind the
// watch of their CRD (crd-gate.ts), so a CRD installed or deleted while the
// agent runs counts at once, and the log says once when the agent's
// ClusterRole does not let it watch the CRD.
import type { Watch } from '../client-node.ts';
import { CrdGate } from '../crd-gate.ts';
import { crdListWatch } from '../crd-watch.ts';
import { type ApiAvailability, CLUSTER_POLICY_KIND, type OptionalLister } from '../optional-api.ts';
import type { ObjectMeta, Reflector } from '../reflector.ts';
import { WATCH_RETRY_MAX_MS } from '../resync.ts';
import type { MirrorDeps } from './cluster.ts';

export function clusterPolicyGate<T extends ObjectMeta>(
  d: MirrorDeps,
  watch: Watch,
  lister: OptionalLister<T>,
  state: ApiAvailability,
  make: () => Reflector<T>,
): CrdGate<T> {
  const { log } = d;
  const crd = CLUSTER_POLICY_KIND.resource;
  const cache = d.cache.mirror<T>('clusterpolicies', () => d.changed());
  return new CrdGate<T>({
    crd,
    crdApi: crdListWatch(d.kc, watch, crd),
    make,
    available: () => state.available,
    absent: () => {
      lister.absent();
      cache.replace([], '');
    },
    readable: (ok, err) => {
      if (ok) return log.info({ crd }, 'the CRD watch works now: ClusterNetworkPolicies count as soon as their CRD is Established');
      log.warn(
        { crd, err: (err as Error)?.message ?? String(err) },
        `the agent may not watch customresourcedefinitions/${crd} (ClusterRole older than the agent?): ` +
          `a CRD installed later is found by the retry of the ClusterNetworkPolicy list, up to ${WATCH_RETRY_MAX_MS / 1000} s later`,
      );
    },
    error: (err, attempt) => {
      if (attempt === 1 || attempt % 10 === 0)
        log.warn({ crd, attempt, err: (err as Error)?.message ?? String(err) }, 'watch of the ClusterNetworkPolicy CRD failed; retrying');
    },
    ...(d.reflectorOptions ? { options: d.reflectorOptions } : {}),
  });
}
