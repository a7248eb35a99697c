// weir-agent, wired: reflectors feed the cache, the cache wakes the
// reconciler, and the servers expose health, metrics and the local status API.
// Each part is built in src/agent/wiring; when the agent syncs, and which
// syncs replace the table whole: see resync.ts.
import path from 'node:path';
import type { Logger } from 'pino';
import { AgentMetrics } from './agent-metrics.ts';
// Deep imports: the package index pulls in every API group's generated client.
import { KubeConfig } from './client-node.ts';
import { installFile } from './cniconf.ts';
import { type AgentConfig, agentSocketPath } from './config.ts';
import { startDnsAgent } from './dns-agent.ts';
import { startInvariants } from './invariants.ts';
import { clusterCache, mirrorCluster } from './wiring/cluster.ts';
import { openNode } from './wiring/node.ts';
import { serve, watchDrops } from './wiring/serve.ts';
import { createReconciler, hostFirewallFacts, type StartedLater } from './wiring/sync.ts';

export interface RunningAgent {
  stop(): Promise<void>;
}

function kubeConfig(cfg: AgentConfig): KubeConfig {
  const kc = new KubeConfig();
  if (cfg.kubeconfig) kc.loadFromFile(cfg.kubeconfig);
  else kc.loadFromCluster();
  return kc;
}

/** Installs the plugin (DaemonSet init step): the executable and the FFI addon beside it. */
export function installCni(from: string, binDir: string): string[] {
  const changed: string[] = [];
  for (const name of ['weir', 'koffi.node']) if (installFile(path.join(from, name), binDir, name)) changed.push(name);
  return changed;
}

/**
 * The agent's life: the cache and the node's kernel side, the reconciler over
 * them, the reflectors that feed it, the DNS path, the self-checks, the drop
 * log and the servers, in that order; stop() ends them in about the reverse.
 */
export async function runAgent(cfg: AgentConfig, log: Logger): Promise<RunningAgent> {
  if (cfg.installCniFrom) log.info({ changed: installCni(cfg.installCniFrom, cfg.cniBinDir) }, 'CNI plugin installed');
  const kc = kubeConfig(cfg);
  const cache = clusterCache(cfg, log);
  const metrics = new AgentMetrics();
  metrics.watchCache(cache);
  // The DNS path and the self-checks start after the reconciler exists; its syncs reach them here.
  const later: StartedLater = {};
  const node = openNode(cfg, () => later.dns);
  const host = await hostFirewallFacts(cfg, kc, log);
  const reconciler = createReconciler({ cfg, log, cache, node, metrics, host, later });
  const mirror = mirrorCluster({ cfg, log, kc, cache, metrics, changed: () => reconciler.schedule() });
  const { engine, elements, netlink } = node;
  const state = () => cache.snapshot();
  // DNS answers for ClusterNetworkPolicy domainNames peers (dns-agent.ts): running before the first sync.
  const dns = startDnsAgent({ registry: metrics.registry, log, state, endpoints: () => reconciler.endpoints, applied: () => engine.applied });
  later.dns = dns;
  const running = mirror.run();
  const invariants = startInvariants({ cfg, log, cache, engine, reconciler, metrics, elements, netlink, listers: mirror.listers });
  later.invariants = invariants;
  const drops = watchDrops(cfg, metrics, log);
  const servers = await serve({ cfg, log, cache, reconciler, node, metrics, mirror, host, invariants, dns, drops: drops.drops });
  log.info({ node: cfg.nodeName, socket: agentSocketPath(cfg.runDir), health: cfg.healthAddress }, 'weir-agent started');

  return {
    async stop() {
      mirror.stop();
      invariants.stop();
      await running;
      await servers.close();
      await drops.stop();
      await dns?.stop();
      node.close();
      // The nftables table, routes and CNI config stay: enforcement and
      // connectivity outlive the agent; the next agent replaces them atomically.
    },
  };
}
