// The cluster as the agent mirrors it: the cache, seeded from the plugin's
// IPAM records, and one reflector per kind the agent watches, whose lists and
// events schedule a sync (when, and what a relist leads to: see resync.ts).
// ClusterNetworkPolicies' reflector runs behind the watch of their CRD
// (cluster-policies.ts).
import fs from 'node:fs';
import type { Logger } from 'pino';
import { DiskStore } from '../../ipam/disk-store.ts';
import { CNP_PATH } from '../../policy/cnp-types.ts';
import { HFP_PATH } from '../../policy/host-normalize.ts';
import type { AgentMetrics } from '../agent-metrics.ts';
import { apiListWatch, jsonLister } from '../api-list.ts';
import { ClusterCache, type Kind } from '../cache.ts';
// Deep imports: the package index pulls in every API group's generated client.
import { type KubeConfig, Watch } from '../client-node.ts';
import { DEFAULT_NETWORK_NAME } from '../cniconf.ts';
import type { AgentConfig } from '../config.ts';
import { type HostPolicyAvailability, hostPolicyLister } from '../hostfw.ts';
import { type ApiAvailability, CLUSTER_POLICY_KIND, isUnavailable, type OptionalLister, optionalLister } from '../optional-api.ts';
import { type Lister, type ListWatch, Reflector, type ReflectorOptions } from '../reflector.ts';
import { clusterPolicyGate } from './cluster-policies.ts';

type Obj = { metadata?: { resourceVersion?: string } };

/** What the agent lists and watches: always these, and the optional kinds after them. */
const PATHS: ReadonlyArray<readonly [Kind, string]> = [
  ['pods', '/api/v1/pods'],
  ['namespaces', '/api/v1/namespaces'],
  ['nodes', '/api/v1/nodes'],
  ['policies', '/apis/networking.k8s.io/v1/networkpolicies'],
];
const OPTIONAL = new Set<Kind>(['clusterpolicies', 'hostpolicies']);

export interface ClusterMirror {
  /** Each kind's lister, for the cache = API check. */
  readonly listers: ReadonlyMap<Kind, Lister<unknown>>;
  /** Whether the optional kinds' CRDs are served (for /status). */
  readonly clusterPolicies: ApiAvailability;
  readonly hostPolicies: HostPolicyAvailability;
  /** Starts every reflector; resolves once all have stopped. */
  run(): Promise<unknown>;
  stop(): void;
}

export interface MirrorDeps {
  readonly cfg: AgentConfig;
  readonly log: Logger;
  readonly kc: KubeConfig;
  readonly cache: ClusterCache;
  readonly metrics: AgentMetrics;
  /** The cache took a list or an event. */
  readonly changed: () => void;
  /** Every reflector's options; the agent keeps the defaults (tests force a back-off). */
  readonly reflectorOptions?: ReflectorOptions;
}

/** The cache, with this node's pods known from the IPAM records before the API shows them. */
export function clusterCache(cfg: AgentConfig, log: Logger): ClusterCache {
  const cache = new ClusterCache({ hostFirewall: cfg.hostFirewall });
  seedFromIpam(cache, cfg.dataDir, log);
  return cache;
}

/**
 * A restarted agent learns the addresses of this node's pods from the
 * plugin's IPAM records before the API has shown them all: a pod whose
 * status the kubelet has not yet updated stays policed rather than blocked.
 */
function seedFromIpam(cache: ClusterCache, dataDir: string, log: Logger): void {
  try {
    const store = new DiskStore(dataDir, DEFAULT_NETWORK_NAME);
    if (!fs.existsSync(store.dir)) return;
    for (const r of store.withLock(() => store.list())) {
      if (!r.podNamespace || !r.podName) continue;
      cache.reportCni({ namespace: r.podNamespace, name: r.podName, containerID: r.containerID, ips: r.addresses, ...(r.podUid ? { uid: r.podUid } : {}) });
    }
  } catch (e) {
    log.warn({ err: (e as Error).message }, 'cannot read the IPAM records; pods are known once the API shows their addresses');
  }
}

/** The reflectors, built and not yet running. */
export function mirrorCluster(d: MirrorDeps): ClusterMirror {
  const clusterPolicies: ApiAvailability = { available: undefined, reason: undefined };
  const hostPolicies: HostPolicyAvailability = { available: undefined, reason: undefined };
  const cnpLister = optionalLister(jsonLister<Obj>(d.kc, CNP_PATH), clusterPolicies, CLUSTER_POLICY_KIND, availabilityLog(d.log, 'clusterpolicies'));
  const kinds = watchedKinds(d, cnpLister, hostPolicies);
  const watch = new Watch(d.kc);
  const reflectors = kinds.map(([kind, p, list]) => {
    const make = () => reflectorOf(d, kind, apiListWatch(watch, p, list));
    return kind === 'clusterpolicies' ? clusterPolicyGate(d, watch, cnpLister, clusterPolicies, make) : make();
  });
  return {
    listers: new Map(kinds.map(([kind, , list]) => [kind, list as Lister<unknown>])),
    clusterPolicies,
    hostPolicies,
    run: () => Promise.allSettled(reflectors.map((r) => r.run())),
    stop() {
      for (const r of reflectors) r.stop();
    },
  };
}

/** Every kind with its path and lister; the optional kinds' listers record their availability. */
function watchedKinds(d: MirrorDeps, clusterPolicies: OptionalLister<Obj>, hostPolicies: HostPolicyAvailability): Array<readonly [Kind, string, Lister<Obj>]> {
  const { kc, log } = d;
  const kinds: Array<readonly [Kind, string, Lister<Obj>]> = PATHS.map(([kind, p]) => [kind, p, jsonLister<Obj>(kc, p)] as const);
  kinds.push(['clusterpolicies', CNP_PATH, clusterPolicies]);
  if (d.cfg.hostFirewall)
    kinds.push(['hostpolicies', HFP_PATH, hostPolicyLister(jsonLister<Obj>(kc, HFP_PATH), hostPolicies, availabilityLog(log, 'hostpolicies'))]);
  return kinds;
}

/**
 * Optional kinds: each change of availability is logged once (not every
 * retry), and /status says which is missing and why.
 */
const availabilityLog = (log: Logger, kind: Kind) => (s: ApiAvailability, was: boolean | undefined) => {
  if (!s.available) log.warn({ kind }, `${s.reason ?? `${kind} unavailable`}; mirrored once the API serves it`);
  else if (was === false) log.info({ kind }, `${kind}: the API serves it now; mirrored from here on`);
};

function reflectorOf(d: MirrorDeps, kind: Kind, api: ListWatch<Obj>): Reflector<Obj> {
  const { log, metrics } = d;
  return new Reflector(
    kind,
    api,
    {
      ...d.cache.mirror(kind, (how) => {
        if (how === 'list') metrics.apiConnected.labels({ kind }).set(1);
        d.changed();
      }),
      error: (err, attempt) => {
        // Not an outage: the CRD is absent (or not readable), and the
        // lister has logged the change of availability.
        if (OPTIONAL.has(kind) && isUnavailable(err)) return;
        metrics.apiErrors.labels({ kind }).inc();
        metrics.apiConnected.labels({ kind }).set(0);
        if (attempt === 1 || attempt % 10 === 0)
          log.warn({ kind, attempt, err: (err as Error)?.message ?? String(err) }, 'API watch failed; retrying, last rules stay in force');
      },
      expired: (err) => log.info({ kind, err: err.message }, 'resourceVersion expired; relisting'),
    },
    d.reflectorOptions,
  );
}
