// What the agent shows of itself: the denied packets it reads from nflog, and
// the servers (health and metrics over TCP, the local status API on the
// socket weirctl and the plugin use).
import type { Logger } from 'pino';
import { type NflogWatch, watchNflog } from '../../netlink/nflog-handle.ts';
import type { AgentMetrics } from '../agent-metrics.ts';
import type { ClusterCache } from '../cache.ts';
import { type AgentConfig, agentSocketPath } from '../config.ts';
import type { DnsAgent } from '../dns-agent.ts';
import { DropLog } from '../drops.ts';
import type { Invariants } from '../invariants.ts';
import type { Reconciler } from '../reconciler.ts';
import { type RunningServers, startServers } from '../server.ts';
import { statusRoutes } from '../status-api.ts';
import type { ClusterMirror } from './cluster.ts';
import type { NodeKernel } from './node.ts';
import type { HostFirewallFacts } from './sync.ts';

export interface DropWatch {
  /** The drop log, when nflog could be read. */
  readonly drops: DropLog | undefined;
  stop(): Promise<void>;
}

/**
 * Denied packets: counted and kept for weirctl. The group is per network
 * namespace and one socket may own it; without it the rest still runs.
 */
export function watchDrops(cfg: AgentConfig, metrics: AgentMetrics, log: Logger): DropWatch {
  const drops = new DropLog();
  let nflog: NflogWatch | undefined;
  try {
    nflog = watchNflog(
      cfg.nflogGroup,
      undefined,
      (p) => {
        const r = drops.add(p);
        if (r) metrics.denied.labels({ direction: r.direction, action: r.audit ? 'audit' : 'drop' }).inc();
        metrics.nflogOverruns.set(nflog?.droppedBatches() ?? 0);
      },
      (e) => log.warn({ err: (e as Error).message }, 'nflog reader error'),
    );
  } catch (e) {
    log.warn({ err: (e as Error).message, group: cfg.nflogGroup }, 'cannot read denied packets from nflog; weirctl drops will be empty');
  }
  return { drops: nflog ? drops : undefined, stop: async () => nflog?.stop() };
}

export interface ServeDeps {
  readonly cfg: AgentConfig;
  readonly log: Logger;
  readonly cache: ClusterCache;
  readonly reconciler: Reconciler;
  readonly node: NodeKernel;
  readonly metrics: AgentMetrics;
  readonly mirror: ClusterMirror;
  readonly host: HostFirewallFacts;
  readonly invariants: Invariants;
  readonly dns: DnsAgent | undefined;
  readonly drops: DropLog | undefined;
}

export function serve(d: ServeDeps): Promise<RunningServers> {
  const { cfg, log, dns, drops } = d;
  const [host, port] = cfg.healthAddress.split(/:(?=\d+$)/) as [string, string];
  return startServers({
    http: { host, port: Number(port) },
    socketPath: agentSocketPath(cfg.runDir),
    routes: statusRoutes({
      cache: d.cache,
      reconciler: d.reconciler,
      engine: d.node.engine,
      metrics: d.metrics,
      config: cfg,
      hostPolicies: d.mirror.hostPolicies,
      clusterPolicies: d.mirror.clusterPolicies,
      egressUnsupported: d.host.cgroups.unsupported,
      invariants: d.invariants,
      domainAddresses: () => dns?.path.domainAddresses() ?? new Map(),
      ...(drops ? { drops } : {}),
    }),
    log: (msg, fields) => log.info(fields ?? {}, msg),
  });
}
