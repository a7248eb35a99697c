// The reconciler as the agent runs it: the host firewall's options when it is
// on, and what follows each sync (metrics, the kernel verifier, the DNS path,
// memory, logs). When syncs happen and which are full: see resync.ts.
import type { Logger } from 'pino';
import { DEFAULT_METADATA_OPTIN_LABEL } from '../../policy/metadata-guard.ts';
import { type AgentMetrics, fallbackReason } from '../agent-metrics.ts';
import type { ClusterCache } from '../cache.ts';
import type { KubeConfig } from '../client-node.ts';
import type { AgentConfig } from '../config.ts';
import type { DnsAgent } from '../dns-agent.ts';
import { apiServerEndpoints, type CgroupResolver, cgroupResolver } from '../hostfw.ts';
import type { Invariants } from '../invariants.ts';
import { type MemoryKeeper, memoryKeeper } from '../memory-keeper.ts';
import { Reconciler, type ReconcilerOptions, type SyncSummary } from '../reconciler.ts';
import type { NodeKernel } from './node.ts';

/** Host-firewall mode's facts about this node: how to find hostNetwork pods' cgroups, and the API server the agent itself needs. */
export interface HostFirewallFacts {
  readonly cgroups: CgroupResolver;
  readonly apiServers: { ip: string; port: number }[];
}

/** Parts the agent starts after the reconciler exists, which each sync reaches once they do. */
export interface StartedLater {
  /** Set before the first sync. */
  dns?: DnsAgent | undefined;
  /** Its kernel check learns from each sync which commits were the agent's own. */
  invariants?: Invariants;
}

export interface SyncDeps {
  readonly cfg: AgentConfig;
  readonly log: Logger;
  readonly cache: ClusterCache;
  readonly node: NodeKernel;
  readonly metrics: AgentMetrics;
  readonly host: HostFirewallFacts;
  readonly later: StartedLater;
}

/**
 * Host-firewall mode: the failsafes, the API server the agent itself needs,
 * and hostNetwork pods' cgroups (for their egress).
 */
export async function hostFirewallFacts(cfg: AgentConfig, kc: KubeConfig, log: Logger): Promise<HostFirewallFacts> {
  const cgroups = cgroupResolver(cfg.cgroupRoot, cfg.hostNetworkCgroupTemplates);
  const apiServers = cfg.hostFirewall ? await apiServerEndpoints(kc.getCurrentCluster()?.server) : [];
  if (cfg.hostFirewall) {
    log.info(
      {
        audit: cfg.hostFirewallAudit,
        apiServers,
        egressOfHostNetworkPods: cgroups.unsupported ?? `cgroup templates ${cfg.hostNetworkCgroupTemplates.join(', ')}`,
      },
      'host firewall on',
    );
  }
  return { cgroups, apiServers };
}

export function createReconciler(d: SyncDeps): Reconciler {
  const { cfg, log, metrics } = d;
  // Memory a big sync used goes back to the system once the agent is quiet
  // again, instead of staying resident for good. libnftables' context keeps
  // its cache of the whole table after a full sync; the next structural
  // change makes a new one.
  const memory = memoryKeeper(
    () => d.node.nft.close(),
    (r) => log.debug({ rssBeforeMiB: Math.round(r.before / 2 ** 20), rssAfterMiB: Math.round(r.after / 2 ** 20) }, 'memory released'),
  );
  return new Reconciler(d.cache, d.node.engine, d.node.net, {
    nodeName: cfg.nodeName,
    debounceMs: cfg.debounceMs,
    masquerade: cfg.masquerade,
    nonMasqueradeCIDRs: cfg.nonMasqueradeCidr,
    metadataGuard: cfg.metadataGuard === false ? false : { optInLabel: cfg.metadataGuardOptinLabel ?? DEFAULT_METADATA_OPTIN_LABEL },
    ...(cfg.hostFirewall ? { hostFirewall: hostFirewallOptions(cfg, d.host) } : {}),
    onSync: (s) => afterSync(d, memory, s),
    onPurge: (r) => {
      if ('error' in r) return log.warn({ err: r.error }, 'conntrack purge failed: connections the new rules refuse may live on until they end');
      metrics.purged.inc(r.connections);
      if (r.connections > 0) log.info({ connections: r.connections }, 'ended connections the new rules refuse');
    },
    onError: (e) => {
      metrics.syncErrors.inc();
      log.error({ err: e }, 'sync failed; the previous rules stay in force');
    },
  });
}

function hostFirewallOptions(cfg: AgentConfig, host: HostFirewallFacts): NonNullable<ReconcilerOptions['hostFirewall']> {
  return {
    options: {
      audit: cfg.hostFirewallAudit,
      failsafeInbound: cfg.failsafeInbound,
      failsafeOutbound: cfg.failsafeOutbound,
      apiServers: host.apiServers,
      ...(host.cgroups.unsupported ? { egressUnsupported: host.cgroups.unsupported } : {}),
    },
    cgroupOf: host.cgroups.of,
  };
}

function afterSync(d: SyncDeps, memory: MemoryKeeper, s: SyncSummary): void {
  const { log } = d;
  d.metrics.observeSync(s, d.node.engine.applied);
  d.later.invariants?.kernel.afterSync(s.operations, s.full);
  d.later.dns?.afterSync(s.full);
  const fb = s.report.fallback;
  if (fb)
    log.warn({ err: fb.message, reason: fallbackReason(fb) }, 'incremental sync failed, table replaced whole: the kernel did not hold what was last applied');
  memory.afterSync(s.full);
  for (const e of s.policyErrors) log.warn({ policy: e.policy, field: e.field }, `policy enforced as deny-all: ${e.message}`);
  for (const e of s.routeErrors) log.warn(`route: ${e}`);
  log.debug({ generation: s.generation, full: s.full, operations: s.operations, ms: Math.round(s.durationMs * 10) / 10 }, 'synced');
}
