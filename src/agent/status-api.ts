// The local status API on /run/weir/agent.sock: what weirctl reads, and the
// plugin's hand-off at pod start. The public listener serves only health and
// metrics (server.ts keeps the rest off it).

import type { AgentStatus, CniAddReply, HostFirewallStatus } from '../agent-api/types.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import { formatPortRange } from '../policy/host-normalize.ts';
import { type AgentMetrics, rulesetCounts } from './agent-metrics.ts';
import type { ClusterCache } from './cache.ts';
import type { AgentConfig } from './config.ts';
import type { DropLog } from './drops.ts';
import type { HostPolicyAvailability } from './hostfw.ts';
import type { Invariants } from './invariants.ts';
import type { ApiAvailability } from './optional-api.ts';
import type { Reconciler } from './reconciler.ts';
import { type ApiRequest, type ApiResponse, type Handler, metricsHandler, type Routes } from './server.ts';

// How long /cni/add waits for the pod's policy; the plugin gives up a little later.
const HANDOFF_WAIT_MS = 4000;

export const AGENT_VERSION = '0.1.0';

interface Deps {
  drops?: DropLog;
  cache: ClusterCache;
  reconciler: Reconciler;
  engine: PolicyEngine;
  metrics: AgentMetrics;
  config: AgentConfig;
  /** Host firewall: whether HostFirewallPolicies can be read (CRD installed, allowed). */
  hostPolicies?: HostPolicyAvailability;
  /** Whether ClusterNetworkPolicies can be read (CRD installed, allowed); absent in tests that do not mirror them. */
  clusterPolicies?: ApiAvailability;
  /** Host firewall: why hostNetwork pods' egress cannot be attributed on this node, if so. */
  egressUnsupported?: string | undefined;
  /** The self-checks (cache = API, kernel = applied); absent in tests that do not run them. */
  invariants?: Invariants | undefined;
  /** Addresses learned from DNS answers for domainNames peers (agent/dns.ts), by name. */
  domainAddresses?: () => ReadonlyMap<string, readonly string[]>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export function statusRoutes(d: Deps): Routes {
  return {
    'GET /healthz': async () => ({ text: 'ok\n' }),
    'GET /readyz': async () => (d.reconciler.ready ? { text: 'ok\n' } : { status: 503, text: 'waiting for the first full sync\n' }),
    'GET /metrics': metricsHandler(d.metrics.registry),
    'GET /status': async () => ({ json: status(d) }),
    'GET /endpoints': async () => ({ json: { node: d.config.nodeName, endpoints: d.reconciler.endpoints } }),
    'GET /policies': async () => ({ json: policiesView(d) }),
    'GET /hostpolicies': async () => ({ json: hostPoliciesView(d) }),
    // Every cached object's key, uid and resourceVersion, per kind (cache-digest.ts cacheMatchesApi names differences from it).
    'GET /cache': async () => ({ json: d.cache.digestView(true) }),
    // Lists every kind from the API now and compares (read-only; takes a few seconds when something differs).
    'GET /verify/cache': selfCheck(d, (inv) => inv.verifyCache()),
    // Compares the kernel's table with the applied ruleset now; GET only reports, POST also repairs.
    'GET /verify/kernel': selfCheck(d, (inv) => inv.kernel.check({ repair: false })),
    'POST /verify/kernel': selfCheck(d, (inv) => inv.kernel.check({ repair: true })),
    'GET /state': async () => ({ json: stateView(d) }),
    'GET /drops': (req) => dropsRoute(d, req),
    'POST /cni/add': (req) => cniAdd(d, req),
    'POST /cni/del': (req) => cniDel(d, req),
  };
}

/** A self-check route: its result, or 503 while the self-checks are not running. */
function selfCheck(d: Deps, run: (inv: Invariants) => unknown): Handler {
  return async () => (d.invariants ? { json: await run(d.invariants) } : { status: 503, json: { error: 'self-checks are not running' } });
}

/** NetworkPolicies and ClusterNetworkPolicies as cached, with the chain compiled for each on this node and why one failed. */
function policiesView(d: Deps) {
  const last = d.reconciler.last;
  const chains = last?.report.result.policyChains ?? new Map<string, string>();
  const cnpChains = last?.report.result.clusterPolicyChains ?? new Map<string, string>();
  return {
    policies: [...d.cache.policies.values()].map((p) => {
      const ref = `${p.metadata?.namespace}/${p.metadata?.name}`;
      const err = last?.policyErrors.find((e) => e.policy && e.policy.kind === undefined && `${e.policy.namespace}/${e.policy.name}` === ref);
      return { ref, resourceVersion: p.metadata?.resourceVersion, chain: chains.get(ref), spec: p.spec, ...(err ? { error: err.message } : {}) };
    }),
    // Added beside `policies` (older readers ignore it): ClusterNetworkPolicies by name, with the chain base compiled on this node.
    clusterPolicies: [...d.cache.clusterpolicies.values()].map((p) => {
      const name = p.metadata?.name ?? '';
      const err = last?.policyErrors.find((e) => e.policy?.kind === 'ClusterNetworkPolicy' && e.policy.name === name);
      return {
        name,
        resourceVersion: p.metadata?.resourceVersion,
        tier: p.spec?.tier,
        priority: p.spec?.priority,
        chain: cnpChains.get(name),
        spec: p.spec,
        ...(err ? { error: err.message } : {}),
      };
    }),
  };
}

/** HostFirewallPolicies as this agent sees them, with whether they select this node. */
function hostPoliciesView(d: Deps) {
  const last = d.reconciler.last;
  const applied = new Map((last?.report.result.host?.policies ?? []).map((p) => [p.name, p]));
  return {
    enabled: d.config.hostFirewall,
    policies: [...d.cache.hostpolicies.values()].map((p) => {
      const name = p.metadata?.name ?? '';
      const err = last?.policyErrors.find((e) => e.policy?.kind === 'HostFirewallPolicy' && e.policy.name === name);
      const a = applied.get(name);
      return {
        name,
        resourceVersion: p.metadata?.resourceVersion,
        selectsThisNode: a !== undefined,
        ...(a ? { chain: a.chain, mode: a.mode } : {}),
        spec: p.spec,
        ...(err ? { error: err.message } : {}),
      };
    }),
  };
}

/** The cluster as this agent sees it, for weirctl's explanations. */
function stateView(d: Deps) {
  const { nodeFacts: _nf, ...snap } = d.cache.snapshot();
  // Learned addresses as [name, addresses] pairs (a Map has no JSON form): trace judges domainNames peers as the kernel does.
  const learned = d.domainAddresses?.();
  return learned && learned.size > 0 ? { ...snap, domainAddresses: [...learned] } : snap;
}

/** The drop log, newest first; `after=SEQ&wait=SECONDS` long-polls for newer ones (weirctl drops --follow). */
async function dropsRoute(d: Deps, { query }: ApiRequest): Promise<ApiResponse> {
  if (!d.drops) return { status: 503, json: { error: 'the drop log is not running (nflog group unavailable)' } };
  const after = Number(query.get('after') ?? 0) || 0;
  const wait = Math.min(60, Number(query.get('wait') ?? 0) || 0);
  const limit = Math.min(2000, Number(query.get('limit') ?? 200) || 200);
  if (wait > 0) await d.drops.wait(after, wait * 1000);
  return { json: { last: d.drops.lastSeq, drops: d.drops.since(after, limit) } };
}

/** The plugin's hand-off at pod start: notes the pod's addresses and waits for its policy to be in force. */
async function cniAdd(d: Deps, { body }: ApiRequest): Promise<ApiResponse> {
  const b = (body ?? {}) as Record<string, unknown>;
  const namespace = str(b['namespace']);
  const name = str(b['name']);
  const containerID = str(b['containerID']);
  const ips = Array.isArray(b['ips']) ? b['ips'].filter((x): x is string => typeof x === 'string') : [];
  if (!namespace || !name || !containerID || ips.length === 0) return { status: 400, json: { error: 'namespace, name, containerID and ips are required' } };
  const uid = str(b['uid']);
  d.cache.reportCni({ namespace, name, containerID, ips, ...(uid ? { uid } : {}) });
  return { json: await waitKnown(d, `${namespace}/${name}`, ips) };
}

/** The plugin's DEL: forgets the container's addresses. */
async function cniDel(d: Deps, { body }: ApiRequest): Promise<ApiResponse> {
  const containerID = str((body as Record<string, unknown> | undefined)?.['containerID']);
  if (!containerID) return { status: 400, json: { error: 'containerID is required' } };
  d.cache.forgetCni(containerID);
  d.reconciler.schedule();
  return { json: { ok: true } };
}

/**
 * Resolves once a sync has applied rules in which the pod is known with
 * these addresses (its policy in force), or says why not by the deadline:
 * typically that the API has not shown the pod to this agent yet.
 */
async function waitKnown(d: Deps, key: string, ips: string[]): Promise<CniAddReply> {
  const deadline = Date.now() + HANDOFF_WAIT_MS;
  d.reconciler.schedule();
  let generation = d.cache.generation;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    if (!(await d.reconciler.waitApplied(generation, remaining))) break;
    const ep = d.reconciler.endpoints.find((e) => `${e.namespace}/${e.name}` === key);
    if (ep && ips.every((ip) => ep.ips.includes(ip))) return { applied: true };
    // Not in the applied state yet: wait for the next change (the pod's watch event).
    generation = d.cache.generation + 1;
  }
  return { applied: false, reason: d.cache.pods.has(key) ? 'no sync applied the pod in time' : `pod ${key} not yet seen in the API` };
}

function status(d: Deps): AgentStatus {
  const last = d.reconciler.last;
  const applied = d.engine.applied;
  return {
    version: AGENT_VERSION,
    node: d.config.nodeName,
    ready: d.reconciler.ready,
    api: { synced: [...d.cache.synced], versions: d.cache.versions },
    /** Per kind: count and hash over uid/resourceVersion of the cached objects (cache-digest.ts). */
    cache: d.cache.digestView(),
    kernel: d.invariants
      ? { lastCheck: d.invariants.kernel.last ?? null, repairs: d.invariants.kernel.repairs, fullCheckSpacingMs: Math.round(d.invariants.kernel.fullSpacingMs) }
      : null,
    applied: last
      ? {
          generation: last.generation,
          at: last.at.toISOString(),
          durationMs: last.durationMs,
          full: last.full,
          operations: last.operations,
          versions: last.versions,
        }
      : null,
    counts: {
      localPods: d.reconciler.endpoints.length,
      pods: d.cache.pods.size,
      namespaces: d.cache.namespaces.size,
      policies: d.cache.policies.size,
      nodes: d.cache.nodes.size,
      clusterPolicies: d.cache.clusterpolicies.size,
      ...(applied ? rulesetCounts(applied) : {}),
    },
    errors: {
      sync: d.reconciler.lastError ?? null,
      policies: (last?.policyErrors ?? []).map((e) => e.message),
      routes: last?.routeErrors ?? [],
    },
    config: { hostFirewall: d.config.hostFirewall, masquerade: d.config.masquerade, nflogGroup: d.config.nflogGroup },
    hostFirewall: hostFirewallStatus(d),
    /** Whether the ClusterNetworkPolicy API can be read: null before the first list, false (with why) while its CRD is missing or forbidden. */
    clusterPolicyApi: { available: d.clusterPolicies?.available ?? null, ...(d.clusterPolicies?.reason ? { reason: d.clusterPolicies.reason } : {}) },
  };
}

/**
 * The host firewall as applied: on or off, audit, the failsafe ports (what
 * weirctl lists), the HostFirewallPolicies selecting this node, and the
 * hostNetwork pods with what isolates them (and whether their egress is
 * enforced).
 */
function hostFirewallStatus(d: Deps): HostFirewallStatus {
  const host = d.reconciler.last?.report.result.host;
  const failsafe = host?.failsafe ?? { inbound: d.config.failsafeInbound.map(formatPortRange), outbound: d.config.failsafeOutbound.map(formatPortRange) };
  if (!d.config.hostFirewall) return { enabled: false, audit: false, failsafe, policies: [], hostNetworkPods: [] };
  return {
    enabled: true,
    audit: d.config.hostFirewallAudit,
    failsafe,
    /** What becomes of node traffic no failsafe and no rule allows, per direction: open, enforce or audit. */
    ingress: host?.ingress ?? null,
    egress: host?.egress ?? null,
    policies: host?.policies ?? [],
    hostNetworkPods: host?.hostNetworkPods ?? [],
    hostNetworkEgress: d.egressUnsupported
      ? { enforced: false, reason: d.egressUnsupported }
      : { enforced: true, by: 'socket cgroupv2', templates: d.config.hostNetworkCgroupTemplates },
    hostPolicyApi: { available: d.hostPolicies?.available ?? null, ...(d.hostPolicies?.reason ? { reason: d.hostPolicies.reason } : {}) },
    warnings: host?.warnings ?? [],
  };
}
