// The invariants the agent checks itself, wired to its parts:
//   - cache = API: on demand (GET /verify/cache), a fresh list of every kind
//     compared with the cache's digests and entries (cache-digest.ts). The
//     agent does it, not weirctl: weirctl has no API client and no
//     credentials on the node, while the agent has both (its service
//     account, with exactly the list rights the comparison needs), and the
//     plugin's rule that the node-side tools load no Kubernetes client holds;
//   - kernel = applied: the KernelVerifier, periodically and on demand (when: resync.ts);
//   - IPAM = pods: the sweep of ipam-sweep.ts, every --ipam-sweep-interval.
import fs from 'node:fs';
import type { Logger } from 'pino';
import { DiskStore } from '../ipam/disk-store.ts';
import type { NetlinkHandle } from '../netlink/rtnl-handle.ts';
import { isNftNotFound } from '../nft/errors.ts';
import { LibNftables } from '../nft/libnftables.ts';
import type { NetlinkElementWriter } from '../nft/netlink-elements.ts';
import type { TableRef } from '../nft/types.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import type { AgentMetrics } from './agent-metrics.ts';
import type { ClusterCache, Kind } from './cache.ts';
import { type CacheComparison, cacheMatchesApi, describeDifferences } from './cache-digest.ts';
import { DEFAULT_NETWORK_NAME } from './cniconf.ts';
import type { AgentConfig } from './config.ts';
import { sweepIpam } from './ipam-sweep.ts';
import { type CheckResult, KernelVerifier } from './kernel-verifier.ts';
import type { Reconciler } from './reconciler.ts';
import type { Lister } from './reflector.ts';

export interface InvariantDeps {
  cfg: AgentConfig;
  log: Logger;
  cache: ClusterCache;
  engine: PolicyEngine;
  reconciler: Reconciler;
  metrics: AgentMetrics;
  elements: NetlinkElementWriter;
  netlink: NetlinkHandle;
  listers: ReadonlyMap<Kind, Lister<unknown>>;
}

export interface Invariants {
  readonly kernel: KernelVerifier;
  /** Lists every kind from the API and compares it with the cache (retried while events may be in flight). */
  verifyCache(): Promise<CacheComparison & { attempts: number }>;
  stop(): void;
}

const CACHE_ATTEMPTS = 3;
const CACHE_RETRY_MS = 1000;

export function startInvariants(d: InvariantDeps): Invariants {
  const kernel = kernelVerifier(d);
  kernel.start();
  const sweepEvery = (d.cfg.ipamSweepInterval ?? 60) * 1000;
  const sweep = sweepEvery > 0 ? setInterval(() => sweepOnce(d), sweepEvery).unref() : undefined;
  return {
    kernel,
    verifyCache: () => verifyCache(d),
    stop() {
      kernel.stop();
      clearInterval(sweep);
    },
  };
}

function kernelVerifier(d: InvariantDeps): KernelVerifier {
  const table = (): TableRef => d.engine.applied?.table ?? { family: 'inet', name: 'weir' };
  let lastError: string | undefined;
  return new KernelVerifier(
    {
      source: {
        list: () => {
          // Its own context, freed at once: the engine's keeps its cache small
          // (memory-keeper.ts), and a listing would fill it with the table.
          const nft = new LibNftables();
          try {
            return nft.list(table().family, table().name, { stateless: true });
          } catch (e) {
            if (isNftNotFound(e)) return undefined;
            throw e;
          } finally {
            nft.close();
          }
        },
        generation: () => d.elements.generation(),
        tableInfo: () => d.elements.tableInfo(table().family, table().name),
      },
      applied: () => d.engine.applied,
      repair: () => {
        d.engine.invalidate();
        if (d.reconciler.syncNow() === undefined) return false;
        try {
          const n = d.reconciler.purgeAll();
          if (n > 0) d.log.info({ connections: n }, 'ended connections the repaired table refuses (let in while it was edited)');
        } catch (e) {
          d.log.warn({ err: (e as Error).message }, 'conntrack purge after the repair failed');
        }
        return true;
      },
      onResult: (r) => {
        d.metrics.observeCheck(r);
        // A failure that repeats every tick is logged when it starts, not every second.
        if (r.error && r.error === lastError) return;
        lastError = r.error;
        logCheck(d.log, r);
      },
    },
    d.cfg.kernelCheckMinInterval !== undefined ? { minFullMs: d.cfg.kernelCheckMinInterval * 1000 } : {},
  );
}

function logCheck(log: Logger, r: CheckResult): void {
  if (r.error) {
    log.warn({ check: r.kind, err: r.error }, "cannot compare the kernel's table with the applied ruleset");
    return;
  }
  if (r.clean) {
    log.debug({ ms: Math.round(r.ms) }, 'kernel table matches the applied ruleset');
    return;
  }
  const fields = {
    check: r.kind,
    reasons: r.drift.counts,
    examples: r.drift.examples.slice(0, 5),
    repaired: r.repaired ?? false,
    afterRepair: r.afterRepair?.clean,
  };
  if (r.repaired && r.afterRepair?.clean)
    log.warn(fields, "the kernel's table drifted from the applied ruleset (edited behind weir's back?); replaced it whole");
  else log.error(fields, "the kernel's table differs from the applied ruleset and the repair did not make it match");
}

async function listAll(list: Lister<unknown>): Promise<unknown[]> {
  const items: unknown[] = [];
  let cont: string | undefined;
  do {
    const page = await list({ limit: 500, ...(cont ? { _continue: cont } : {}) });
    items.push(...page.items);
    cont = page.metadata?._continue;
  } while (cont);
  return items;
}

async function verifyCache(d: InvariantDeps): Promise<CacheComparison & { attempts: number }> {
  for (let attempt = 1; ; attempt++) {
    const lists: Partial<Record<Kind, unknown[]>> = {};
    for (const k of d.cache.kinds) {
      const lister = d.listers.get(k);
      if (lister) lists[k] = await listAll(lister);
    }
    const r = cacheMatchesApi(d.cache.digestView(true), lists);
    // A difference may be an event still on its way: look again before reporting it.
    if (r.ok || attempt >= CACHE_ATTEMPTS) {
      if (!r.ok) d.log.warn({ differences: describeDifferences(r) }, "the agent's cache differs from the API");
      return { ...r, attempts: attempt };
    }
    await new Promise((resolve) => setTimeout(resolve, CACHE_RETRY_MS));
  }
}

function sweepOnce(d: InvariantDeps): void {
  if (!d.cache.allSynced) return;
  try {
    const store = new DiskStore(d.cfg.dataDir, DEFAULT_NETWORK_NAME);
    if (!fs.existsSync(store.dir)) return;
    const pods = new Map<string, string | undefined>();
    for (const [k, p] of d.cache.pods) pods.set(k, p.metadata?.uid);
    const r = sweepIpam(store, DEFAULT_NETWORK_NAME, pods, d.netlink, { graceMs: (d.cfg.ipamSweepGrace ?? 120) * 1000 });
    for (const x of r.released) {
      d.metrics.ipamReleased.inc();
      d.log.info({ addresses: x.record.addresses, containerID: x.record.containerID, reason: x.reason }, 'IPAM record released: its container is gone');
    }
  } catch (e) {
    d.log.warn({ err: (e as Error).message }, 'IPAM sweep failed');
  }
}
