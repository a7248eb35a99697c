// Brings the node in line with the cluster: after a burst of API events (or a
// CNI ADD), one sync writes the CNI config, reconciles the routes to the other
// nodes, and applies the policy table in one nftables transaction. Each sync
// records which API state (resourceVersions) it applied, for /status and for
// callers waiting on it (the CNI plugin's hand-off at pod start). When a sync
// runs, and when it replaces the table whole: see resync.ts.

import type { LocalEndpoint } from '../policy/compile.ts';
import type { PolicyEngine, SyncReport } from '../policy/engine.ts';
import type { PolicyError } from '../policy/errors.ts';
import { ipEndpoint, PolicyEvaluator } from '../policy/evaluator.ts';
import type { HostCgroup, HostFirewallOptions } from '../policy/host-compile.ts';
import type { MetadataGuardSetting } from '../policy/metadata-guard.ts';
import { addMasquerade } from '../policy/node-rules.ts';
import type { ClusterState, Protocol } from '../policy/types.ts';
import type { ClusterCache, NodeFacts } from './cache.ts';
import { SYNC_RETRY_MAX_MS } from './resync.ts';

/** The node's effects besides nftables; an interface so tests can watch them. */
export interface NodeNetworking {
  /** Writes the CNI conflist for these pod CIDRs; true when the file changed. */
  writeCniConfig(podCIDRs: string[]): boolean;
  /** Routes to the other nodes' pod CIDRs; returns what failed, per node. */
  reconcileRoutes(nodes: NodeFacts[], self: string): { changed: number; errors: string[] };
  /**
   * Ends established connections the policy no longer allows: `stillAllowed`
   * judges each tracked connection that involves one of `addresses`.
   */
  purgeConnections?(addresses: Set<string>, stillAllowed: (c: { src: string; dst: string; proto: number; dport?: number }) => boolean): number;
}

export interface ReconcilerOptions {
  nodeName: string;
  /** Wait this long after the first event of a burst before syncing. */
  debounceMs: number;
  masquerade: boolean;
  /** Destinations besides the cluster's pod CIDRs that see pod addresses unchanged. */
  nonMasqueradeCIDRs: string[];
  /**
   * Host-firewall mode, when on: the options compiled into every sync, and
   * how to find a local hostNetwork pod's cgroup (looked up at each sync,
   * since the cgroup appears when the pod starts).
   */
  hostFirewall?: { options: Omit<HostFirewallOptions, 'cgroups'>; cgroupOf?: (uid: string) => HostCgroup | undefined };
  /** The cloud metadata guard (metadata-guard.ts), compiled into every sync and known to the purge's judge; absent: on, default label. */
  metadataGuard?: MetadataGuardSetting;
  /** Called after every sync (metrics, logs). */
  onSync?: (s: SyncSummary) => void;
  /** Called after the conntrack purge that follows a sync: the connections it ended, or why it failed. */
  onPurge?: (r: { connections: number } | { error: unknown }) => void;
  onError?: (e: unknown) => void;
}

export interface SyncSummary {
  generation: number;
  at: Date;
  durationMs: number;
  full: boolean;
  operations: number;
  versions: Record<string, string>;
  policyErrors: PolicyError[];
  routeErrors: string[];
  cniConfigWritten: boolean;
  /** Time from the oldest event of the burst to the rules being applied. */
  eventToAppliedMs: number | undefined;
  /**
   * The engine's report, without the ruleset: the engine keeps the one last
   * applied (PolicyEngine.applied), and a summary holding it too would keep
   * a superseded table alive through the next compile.
   */
  report: SummaryReport;
}

export type SummaryReport = Omit<SyncReport, 'result'> & { result: Omit<SyncReport['result'], 'ruleset'> };

export class Reconciler {
  readonly #cache: ClusterCache;
  readonly #engine: PolicyEngine;
  readonly #net: NodeNetworking;
  readonly #opts: ReconcilerOptions;
  #timer: NodeJS.Timeout | undefined;
  #firstEventAt: number | undefined;
  #waiters: Array<{ generation: number; resolve: (ok: boolean) => void }> = [];
  #last: SyncSummary | undefined;
  #lastError: string | undefined;
  #endpoints: LocalEndpoint[] = [];
  #failures = 0;

  constructor(cache: ClusterCache, engine: PolicyEngine, net: NodeNetworking, opts: ReconcilerOptions) {
    this.#cache = cache;
    this.#engine = engine;
    this.#net = net;
    this.#opts = opts;
  }

  get last(): SyncSummary | undefined {
    return this.#last;
  }
  get lastError(): string | undefined {
    return this.#lastError;
  }
  get endpoints(): LocalEndpoint[] {
    return this.#endpoints;
  }
  /** Ready once a sync has applied a complete first list of every kind. */
  get ready(): boolean {
    return this.#last !== undefined;
  }

  /** Something changed: sync after the debounce interval (one sync per burst; see resync.ts). */
  schedule(): void {
    this.#firstEventAt ??= performance.now();
    if (this.#timer) return;
    const delay = Math.min(SYNC_RETRY_MAX_MS, this.#opts.debounceMs * 2 ** this.#failures);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.syncNow();
    }, delay);
  }

  /** Resolves true once a sync has applied cache generation `generation` or later (false on timeout). */
  waitApplied(generation: number, timeoutMs: number): Promise<boolean> {
    if (this.#last && this.#last.generation >= generation) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = { generation, resolve };
      this.#waiters.push(w);
      setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        resolve(false);
      }, timeoutMs).unref();
    });
  }

  /** One sync; nothing is applied until every kind has been listed once (resync.ts). */
  syncNow(): SyncSummary | undefined {
    if (!this.#cache.allSynced) return undefined;
    const t0 = performance.now();
    const generation = this.#cache.generation;
    const firstEventAt = this.#firstEventAt;
    this.#firstEventAt = undefined;
    try {
      const snap = this.#cache.snapshot();
      const self = snap.nodeFacts.find((n) => n.name === this.#opts.nodeName);
      const podCIDRs = self?.podCIDRs ?? [];
      const cniConfigWritten = podCIDRs.length > 0 ? this.#net.writeCniConfig(podCIDRs) : false;
      const routes = this.#net.reconcileRoutes(snap.nodeFacts, this.#opts.nodeName);
      const previous = new Map(this.#endpoints.map((e) => [`${e.namespace}/${e.name}`, e]));
      const hf = this.#opts.hostFirewall;
      const report = this.#engine.sync(snap, {
        options: { guardCIDRs: podCIDRs, metadataGuard: this.#opts.metadataGuard, ...(hf ? { hostFirewall: this.#hostOptions(hf, snap.pods) } : {}) },
        decorate: (rs) => {
          if (!this.#opts.masquerade || podCIDRs.length === 0) return;
          const cluster = snap.nodeFacts.flatMap((n) => n.podCIDRs);
          // With the host firewall on, pods reach other nodes with their own
          // address, so a HostFirewallPolicy there can tell them apart.
          const nodes = hf ? snap.nodeFacts.flatMap((n) => n.internalIPs.map((ip) => `${ip}/${ip.includes(':') ? 128 : 32}`)) : [];
          addMasquerade(rs, { podCIDRs, nonMasqueradeCIDRs: [...cluster, ...nodes, ...this.#opts.nonMasqueradeCIDRs] });
        },
      });
      this.#endpoints = report.result.endpoints;
      // The rules are in force once the transaction is in; ending the
      // established connections they no longer allow follows at once, but
      // after the sync is reported applied: a conntrack dump costs ~1 ms per
      // thousand tracked connections and must not sit on every change's latency.
      if (!(report.full && previous.size === 0)) {
        setImmediate(() => {
          let r: { connections: number } | { error: unknown };
          try {
            r = { connections: this.#purge(report, previous, snap) };
          } catch (error) {
            r = { error };
          }
          this.#opts.onPurge?.(r);
        });
      }
      const summary: SyncSummary = {
        generation,
        at: new Date(),
        durationMs: performance.now() - t0,
        full: report.full,
        operations: report.operations,
        versions: { ...this.#cache.versions },
        policyErrors: report.result.errors,
        routeErrors: routes.errors,
        cniConfigWritten,
        eventToAppliedMs: firstEventAt === undefined ? undefined : performance.now() - firstEventAt,
        report: withoutRuleset(report),
      };
      this.#last = summary;
      this.#lastError = undefined;
      this.#failures = 0;
      this.#opts.onSync?.(summary);
      const done = this.#waiters.filter((w) => w.generation <= generation);
      this.#waiters = this.#waiters.filter((w) => w.generation > generation);
      for (const w of done) w.resolve(true);
      // Events that arrived during this sync need another one.
      if (this.#cache.generation > generation) this.schedule();
      return summary;
    } catch (e) {
      this.#lastError = e instanceof Error ? e.message : String(e);
      this.#failures = Math.min(this.#failures + 1, 20);
      this.#opts.onError?.(e);
      // The previous table stays in force; try again after the next interval.
      this.#firstEventAt ??= firstEventAt;
      this.schedule();
      return undefined;
    }
  }

  /**
   * Every tracked connection of a local pod judged again, after a repair
   * (resync.ts): `ct state established` would keep accepting those let in
   * while the table was edited or gone. Returns how many were ended.
   */
  purgeAll(): number {
    const ips = new Set(this.#endpoints.flatMap((e) => e.ips));
    if (!this.#net.purgeConnections || ips.size === 0) return 0;
    return this.#net.purgeConnections(ips, connectionJudge(this.#cache.snapshot(), this.#opts.metadataGuard));
  }

  /** The host-firewall options of one sync: the configured ones, plus the cgroups of this node's hostNetwork pods found now. */
  #hostOptions(hf: NonNullable<ReconcilerOptions['hostFirewall']>, pods: ClusterState['pods']): HostFirewallOptions {
    const cgroups = new Map<string, HostCgroup>();
    if (hf.cgroupOf) {
      for (const p of pods) {
        if (p.spec?.hostNetwork !== true || p.spec?.nodeName !== this.#opts.nodeName || !p.metadata?.uid) continue;
        const cg = hf.cgroupOf(p.metadata.uid);
        if (cg) cgroups.set(`${p.metadata.namespace}/${p.metadata.name}`, cg);
      }
    }
    return { ...hf.options, cgroups };
  }

  /**
   * After a change, connections tracked before it are judged again: those of
   * local pods whose isolation or policies' rules changed, and that the new
   * rules would refuse as new connections, are deleted from conntrack.
   */
  #purge(report: SyncReport, previous: Map<string, LocalEndpoint>, state: ClusterState): number {
    if (!this.#net.purgeConnections || report.operations === 0) return 0;
    const touched = new Set<string>();
    const rewritten = (report.stats?.chainsRewritten ?? 0) > 0 || (report.stats?.elementsRemoved ?? 0) > 0 || (report.stats?.chainsRemoved ?? 0) > 0;
    for (const ep of report.result.endpoints) {
      const before = previous.get(`${ep.namespace}/${ep.name}`);
      if ((!before || profilesChanged(before, ep) || rewritten) && (policed(ep) || (before !== undefined && policed(before))))
        for (const ip of ep.ips) touched.add(ip);
    }
    if (touched.size === 0) return 0;
    return this.#net.purgeConnections(touched, connectionJudge(state, this.#opts.metadataGuard));
  }
}

const PROTOCOLS: Record<number, Protocol> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };

/** Whether any policy judges the pod's traffic: a NetworkPolicy profile, or a ClusterNetworkPolicy tier profile. */
const policed = (ep: LocalEndpoint): boolean => !!(ep.ingress || ep.egress || (ep.tiers && (ep.tiers.admin || ep.tiers.baseline)));

/**
 * Whether the chains that judge the pod changed: its NetworkPolicy profiles,
 * or its ClusterNetworkPolicy tier profiles (a new Admin Deny selecting it
 * moves it into a tier map without touching its NetworkPolicy profile).
 */
function profilesChanged(a: LocalEndpoint, b: LocalEndpoint): boolean {
  if (a.ingress?.chain !== b.ingress?.chain || a.egress?.chain !== b.egress?.chain) return true;
  for (const tier of ['admin', 'baseline'] as const) {
    for (const d of ['ingress', 'egress'] as const) if (a.tiers?.[tier]?.[d]?.chain !== b.tiers?.[tier]?.[d]?.chain) return true;
  }
  return false;
}

function withoutRuleset(report: SyncReport): SummaryReport {
  const { ruleset: _ruleset, ...result } = report.result;
  return { ...report, result };
}

/**
 * Would the state allow this tracked connection if it were new? The
 * reference evaluator answers from the Kubernetes objects. Protocols
 * NetworkPolicy has no port rules for (ICMP) are left alone; a state the
 * evaluator refuses (a policy weir enforces fail-closed) allows nothing.
 */
function connectionJudge(
  state: ClusterState,
  metadataGuard: MetadataGuardSetting,
): (c: { src: string; dst: string; proto: number; dport?: number }) => boolean {
  // Built on the first connection to judge: the purge lists conntrack first,
  // and most syncs touch addresses with no tracked connection at all, so the
  // whole-cluster evaluator is usually never needed.
  let evaluator: PolicyEvaluator | null | undefined;
  const get = (): PolicyEvaluator | null => {
    if (evaluator === undefined) {
      try {
        evaluator = new PolicyEvaluator(state, { metadataGuard });
      } catch {
        evaluator = null;
      }
    }
    return evaluator;
  };
  return (c) => {
    const ev = get();
    if (ev === null) return false;
    const protocol = PROTOCOLS[c.proto];
    if (!protocol || c.dport === undefined) return true;
    try {
      return ev.evaluate({ src: ipEndpoint(c.src), dst: ipEndpoint(c.dst), protocol, port: c.dport }).allowed;
    } catch {
      return false;
    }
  };
}
