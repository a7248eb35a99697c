// weir-agent, wired: reflectors feed the cache, the cache wakes the
// reconciler, and the servers expose health, metrics and the local status API.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { DiskStore } from '../ipam/disk-store.ts';
import { ConntrackHandle } from '../netlink/conntrack-handle.ts';
import { type NflogWatch, watchNflog } from '../netlink/nflog-handle.ts';
import { NetlinkHandle } from '../netlink/rtnl-handle.ts';
import { LibNftables } from '../nft/libnftables.ts';
import { NetlinkElementWriter } from '../nft/netlink-elements.ts';
import { CNP_PATH } from '../policy/cnp-types.ts';
import { PolicyEngine } from '../policy/engine.ts';
import { HFP_PATH } from '../policy/host-normalize.ts';
import { releaseMemory, trimMalloc } from '../sys/memory.ts';
import { AgentMetrics, fallbackReason } from './agent-metrics.ts';
import { apiListWatch, jsonLister } from './api-list.ts';
import { ClusterCache, type Kind } from './cache.ts';
// Deep imports: the package index pulls in every API group's generated client.
import { KubeConfig, Watch } from './client-node.ts';
import { DEFAULT_NETWORK_NAME, installFile, renderConflist, writeFileAtomic } from './cniconf.ts';
import { type AgentConfig, agentSocketPath } from './config.ts';
import { type DnsAgent, startDnsAgent } from './dns-agent.ts';
import { DropLog } from './drops.ts';
import { apiServerEndpoints, cgroupResolver, type HostPolicyAvailability, hostPolicyLister } from './hostfw.ts';
import { type Invariants, startInvariants } from './invariants.ts';
import { type ApiAvailability, CLUSTER_POLICY_KIND, isUnavailable, optionalLister } from './optional-api.ts';
import { type NodeNetworking, Reconciler } from './reconciler.ts';
import { type Lister, Reflector } from './reflector.ts';
import { desiredNodeRoutes, reconcileNodeRoutes } from './routes.ts';
import { startServers } from './server.ts';
import { statusRoutes } from './status-api.ts';

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

export async function runAgent(cfg: AgentConfig, log: Logger): Promise<RunningAgent> {
  if (cfg.installCniFrom) log.info({ changed: installCni(cfg.installCniFrom, cfg.cniBinDir) }, 'CNI plugin installed');
  const kc = kubeConfig(cfg);
  const watch = new Watch(kc);

  const cache = new ClusterCache({ hostFirewall: cfg.hostFirewall });
  seedFromIpam(cache, cfg.dataDir, log);
  const metrics = new AgentMetrics();
  metrics.watchCache(cache);
  const netlink = NetlinkHandle.open();
  let conntrack: ConntrackHandle | undefined;
  // Element-only changes (pods coming, going, relabelled) go to nf_tables over netlink, the rest through libnftables.
  const nft = new LibNftables();
  const elements = NetlinkElementWriter.open();
  const engine = new PolicyEngine(nft, { nodeName: cfg.nodeName, nflogGroup: cfg.nflogGroup, logRate: cfg.denyLogRate }, elements);
  // Set once the reconciler exists; its syncs tell the kernel check which commits were the agent's own.
  let invariants: Invariants | undefined;
  const socket = agentSocketPath(cfg.runDir);
  // DNS answers for ClusterNetworkPolicy domainNames peers (dns-agent.ts); set before the first sync.
  let dns: DnsAgent | undefined;

  const net: NodeNetworking = {
    writeCniConfig: (podCIDRs) =>
      writeFileAtomic(
        path.join(cfg.cniConfDir, cfg.cniConfName),
        renderConflist({ podCIDRs, dataDir: cfg.dataDir, agentSocket: socket, ...(cfg.mtu ? { mtu: cfg.mtu } : {}) }),
      ),
    reconcileRoutes: (nodes, self) => {
      const r = reconcileNodeRoutes(netlink, desiredNodeRoutes(nodes, self));
      return {
        changed: r.added.length + r.replaced.length + r.removed.length,
        errors: r.errors.map((e) => `${e.op} ${e.dst}${e.node ? ` (node ${e.node})` : ''}: ${e.reason}`),
      };
    },
    purgeConnections: (addresses, judge) => {
      const stillAllowed = dns ? dns.judge(judge) : judge;
      conntrack ??= ConntrackHandle.open();
      return conntrack.deleteWhere((e) => {
        // Policy judges the connection after DNAT (kube-proxy's Service
        // translation): the real destination is the source of the reply.
        const src = e.orig.src;
        const dst = e.reply.src;
        const dport = e.reply.sport;
        if (!addresses.has(src) && !addresses.has(dst)) return false;
        return !stillAllowed({ src, dst, proto: e.orig.proto, ...(dport !== undefined ? { dport } : {}) });
      });
    },
  };

  // Host-firewall mode: the failsafes, the API server the agent itself
  // needs, and hostNetwork pods' cgroups (for their egress).
  const hostPolicies: HostPolicyAvailability = { available: undefined, reason: undefined };
  const clusterPolicies: ApiAvailability = { available: undefined, reason: undefined };
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

  // Memory a big sync used (the first one above all) goes back to the system
  // once the agent is quiet again, instead of staying resident for good.
  // libnftables' context keeps its cache of the whole table after a full
  // sync (MiBs at 100k elements); the next structural change makes a new one.
  const memory = memoryKeeper(
    () => nft.close(),
    (r) => log.debug({ rssBeforeMiB: Math.round(r.before / 2 ** 20), rssAfterMiB: Math.round(r.after / 2 ** 20) }, 'memory released'),
  );

  const reconciler = new Reconciler(cache, engine, net, {
    nodeName: cfg.nodeName,
    debounceMs: cfg.debounceMs,
    masquerade: cfg.masquerade,
    nonMasqueradeCIDRs: cfg.nonMasqueradeCidr,
    ...(cfg.hostFirewall
      ? {
          hostFirewall: {
            options: {
              audit: cfg.hostFirewallAudit,
              failsafeInbound: cfg.failsafeInbound,
              failsafeOutbound: cfg.failsafeOutbound,
              apiServers,
              ...(cgroups.unsupported ? { egressUnsupported: cgroups.unsupported } : {}),
            },
            cgroupOf: cgroups.of,
          },
        }
      : {}),
    onSync: (s) => {
      metrics.observeSync(s, engine.applied);
      invariants?.kernel.afterSync(s.operations, s.full);
      dns?.afterSync(s.full);
      const fb = s.report.fallback;
      if (fb)
        log.warn(
          { err: fb.message, reason: fallbackReason(fb) },
          'incremental sync failed, table replaced whole: the kernel did not hold what was last applied',
        );
      memory.afterSync(s.full);
      for (const e of s.policyErrors) log.warn({ policy: e.policy, field: e.field }, `policy enforced as deny-all: ${e.message}`);
      for (const e of s.routeErrors) log.warn(`route: ${e}`);
      log.debug({ generation: s.generation, full: s.full, operations: s.operations, ms: Math.round(s.durationMs * 10) / 10 }, 'synced');
    },
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

  type Obj = { metadata?: { resourceVersion?: string } };
  const paths: Array<readonly [Kind, string]> = [
    ['pods', '/api/v1/pods'],
    ['namespaces', '/api/v1/namespaces'],
    ['nodes', '/api/v1/nodes'],
    ['policies', '/apis/networking.k8s.io/v1/networkpolicies'],
  ];
  const kinds: Array<readonly [Kind, string, Lister<Obj>]> = paths.map(([kind, p]) => [kind, p, jsonLister<Obj>(kc, p)] as const);
  // Optional kinds: each change of availability is logged once (not every
  // retry), and /status says which is missing and why.
  const availability = (kind: Kind) => (s: ApiAvailability, was: boolean | undefined) => {
    if (!s.available) log.warn({ kind }, `${s.reason ?? `${kind} unavailable`}; retrying`);
    else if (was === false) log.info({ kind }, `${kind}: the API serves it now; mirrored from here on`);
  };
  kinds.push([
    'clusterpolicies',
    CNP_PATH,
    optionalLister(jsonLister<Obj>(kc, CNP_PATH), clusterPolicies, CLUSTER_POLICY_KIND, availability('clusterpolicies')),
  ]);
  if (cfg.hostFirewall) kinds.push(['hostpolicies', HFP_PATH, hostPolicyLister(jsonLister<Obj>(kc, HFP_PATH), hostPolicies, availability('hostpolicies'))]);
  const optional = new Set<Kind>(['clusterpolicies', 'hostpolicies']);
  const reflectors = kinds.map(
    ([kind, p, list]) =>
      new Reflector(kind, apiListWatch(watch, p, list), {
        ...cache.mirror(kind, (how) => {
          if (how === 'list') metrics.apiConnected.labels({ kind }).set(1);
          reconciler.schedule();
        }),
        error: (err, attempt) => {
          // Not an outage: the CRD is absent (or not readable), and the
          // lister has logged the change of availability.
          if (optional.has(kind) && isUnavailable(err)) return;
          metrics.apiErrors.labels({ kind }).inc();
          metrics.apiConnected.labels({ kind }).set(0);
          if (attempt === 1 || attempt % 10 === 0)
            log.warn({ kind, attempt, err: (err as Error)?.message ?? String(err) }, 'API watch failed; retrying, last rules stay in force');
        },
        expired: (err) => log.info({ kind, err: err.message }, 'resourceVersion expired; relisting'),
      }),
  );
  dns = startDnsAgent({ registry: metrics.registry, log, state: () => cache.snapshot(), endpoints: () => reconciler.endpoints, applied: () => engine.applied });
  const running = reflectors.map((r) => r.run());
  invariants = startInvariants({
    cfg,
    log,
    cache,
    engine,
    reconciler,
    metrics,
    elements,
    netlink,
    listers: new Map(kinds.map(([kind, , list]) => [kind, list as Lister<unknown>])),
  });

  // Denied packets: counted and kept for weirctl. The group is per network
  // namespace and one socket may own it; without it the rest still runs.
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

  const [host, port] = cfg.healthAddress.split(/:(?=\d+$)/) as [string, string];
  const servers = await startServers({
    http: { host, port: Number(port) },
    socketPath: socket,
    routes: statusRoutes({
      cache,
      reconciler,
      engine,
      metrics,
      config: cfg,
      hostPolicies,
      clusterPolicies,
      egressUnsupported: cgroups.unsupported,
      invariants,
      domainAddresses: () => dns?.path.domainAddresses() ?? new Map(),
      ...(nflog ? { drops } : {}),
    }),
    log: (msg, fields) => log.info(fields ?? {}, msg),
  });
  log.info({ node: cfg.nodeName, socket, health: cfg.healthAddress }, 'weir-agent started');

  return {
    async stop() {
      for (const r of reflectors) r.stop();
      invariants?.stop();
      await Promise.allSettled(running);
      await servers.close();
      await nflog?.stop();
      await dns?.stop();
      netlink.close();
      conntrack?.close();
      // The nftables table, routes and CNI config stay: enforcement and
      // connectivity outlive the agent; the next agent replaces them atomically.
    },
  };
}

/**
 * Releases memory (sys/memory.ts) right after a full sync (the first sync's
 * garbage is most of what the agent ever allocates, and readiness is only
 * reported once the sync returns), and after a burst of changes once the
 * agent has been quiet for 5 s with RSS 16 MiB above what the last release
 * left. A full collection costs tens of milliseconds, so it never runs in
 * the middle of a burst, where it would delay the next change; glibc's
 * free memory (malloc_trim, ~2 ms) is handed back right after each sync,
 * at most once a second.
 */
function memoryKeeper(beforeRelease: () => void, onRelease: (r: { before: number; after: number }) => void): { afterSync(full: boolean): void } {
  let floor = 0;
  let timer: NodeJS.Timeout | undefined;
  let trimmedAt = 0;
  const release = (): void => {
    beforeRelease();
    const r = releaseMemory();
    floor = r.after;
    onRelease(r);
  };
  return {
    afterSync(full) {
      clearTimeout(timer);
      if (full) return release();
      if (performance.now() - trimmedAt >= 1000) {
        trimmedAt = performance.now();
        setImmediate(trimMalloc);
      }
      timer = setTimeout(() => {
        if (process.memoryUsage.rss() > floor + 16 * 2 ** 20) release();
      }, 5000).unref();
    },
  };
}
