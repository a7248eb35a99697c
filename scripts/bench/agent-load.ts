// The API side of the agent benchmark (scripts/bench-agent): runs inside the
// control plane's network namespace (the apiserver listens on 127.0.0.1
// there), started by scripts/bench/agent.ts as
//
//   ip netns exec NS node scripts/bench/agent-load.ts MODE --kubeconfig F ...
//
// Modes, each deterministic from (--pods, --nodes, --policies,
// --cluster-policies, --seed), the synthetic cluster of the policy benchmark
// (scripts/bench/policy/cluster.ts) and its ClusterNetworkPolicies
// (policy/cluster-policies.ts):
//   base     namespaces (with a `default` ServiceAccount each: there is no
//            controller manager), the Nodes (spec.podCIDRs and an InternalIP
//            in status), the NetworkPolicies and the ClusterNetworkPolicies;
//   load     the pods (created with spec.nodeName, then status patched with
//            their IPs, as a kubelet would), and a paged list of them all;
//   verify   the agent's view of every NetworkPolicy (its /policies) against
//            the API's, spec by spec;
//   changes  --changes writes alternating between a NetworkPolicy and a Pod,
//            each followed by polling the agent's socket until it has applied
//            the write's resourceVersion; per-change timings out, and what
//            a client watching what the agent watches received meanwhile
//            (agent/changes.ts, agent/watch-traffic.ts).
// Requests go straight over HTTPS with a keep-alive pool (credentials from
// the kubeconfig via @kubernetes/client-node; agent/api.ts), --concurrency in
// flight.
// Progress on stderr; one JSON result line on stdout.
import { parseArgs } from 'node:util';
import { CNP_PATH } from '../../src/policy/cnp-types.ts';
import type { NetworkPolicy, NetworkPolicySpec } from '../../src/policy/types.ts';
import { agentSocket, connectApi } from './agent/api.ts';
import { podObject, podStatus, policyObject } from './agent/api-objects.ts';
import { changes } from './agent/changes.ts';
import { logger } from './lib/host.ts';
import { makeCluster, NODE_COUNT, nodeIP, nodeName, podCIDR } from './policy/cluster.ts';
import { makeClusterPolicies } from './policy/cluster-policies.ts';

const log = logger('bench-agent');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    kubeconfig: { type: 'string' },
    socket: { type: 'string' },
    pods: { type: 'string', default: '10000' },
    policies: { type: 'string', default: '1000' },
    nodes: { type: 'string', default: String(NODE_COUNT) },
    'cluster-policies': { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '32' },
    changes: { type: 'string', default: '200' },
    'poll-ms': { type: 'string', default: '5' },
    'gap-ms': { type: 'string', default: '50' },
    'apply-timeout-s': { type: 'string', default: '10' },
  },
});
const MODE = positionals[0];
const PODS = Number(opt.pods);
const POLICIES = Number(opt.policies);
const NODES = Number(opt.nodes);
const CNPS = Number(opt['cluster-policies']);
const SEED = Number(opt.seed);
const CONCURRENCY = Number(opt.concurrency);
/** How long a change may take to be applied, and the agent's socket to answer (a sync blocks it). */
const APPLY_TIMEOUT_MS = 1000 * Number(opt['apply-timeout-s']);
if (!opt.kubeconfig || !['base', 'load', 'verify', 'changes'].includes(MODE ?? '')) {
  log('usage: agent-load.ts base|load|verify|changes --kubeconfig F [--socket S] [--pods N] [--policies N] [--seed N] ...');
  process.exit(2);
}

// ---- the API, over a keep-alive pool --------------------------------------------
const { api, endpoint, destroy: destroyApi } = await connectApi(opt.kubeconfig, CONCURRENCY + 4);
const { get: agentGet, destroy: destroyAgentSocket } = agentSocket(opt.socket, APPLY_TIMEOUT_MS);

/** Runs fn over items with at most `n` in flight; fails on the first error. */
async function inParallel<T>(items: readonly T[], n: number, fn: (x: T, i: number) => Promise<void>, progress?: (done: number) => void): Promise<void> {
  let next = 0;
  let done = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        await fn(items[i] as T, i);
      } catch (e) {
        failed ??= e;
      }
      done++;
      progress?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

// ---- the cluster (agent/api-objects.ts: its objects as written) ------------------------------------------------------
const cluster = makeCluster({ pods: PODS, policies: POLICIES, nodes: NODES, seed: SEED });
const clusterPolicies = makeClusterPolicies(CNPS, cluster.namespaces, SEED);
const rate = (n: number, ms: number): string => `${n} in ${(ms / 1000).toFixed(1)} s (${Math.round((n * 1000) / ms)}/s)`;
const out = (x: unknown): void => void process.stdout.write(`${JSON.stringify(x)}\n`);

// ---- base: namespaces and nodes ------------------------------------------------------------
async function base(): Promise<void> {
  const t0 = performance.now();
  await inParallel(cluster.state.namespaces, CONCURRENCY, async (ns) => {
    await api('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: ns.metadata });
    await api('POST', `/api/v1/namespaces/${ns.metadata?.name}/serviceaccounts`, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
  });
  const t1 = performance.now();
  await inParallel(
    Array.from({ length: NODES }, (_, k) => k),
    CONCURRENCY,
    async (k) => {
      const name = nodeName(k);
      const cidr = podCIDR(k);
      await api('POST', '/api/v1/nodes', {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' } },
        spec: { podCIDR: cidr, podCIDRs: [cidr] },
      });
      await api(
        'PATCH',
        `/api/v1/nodes/${name}/status`,
        {
          status: {
            addresses: [
              { type: 'InternalIP', address: nodeIP(k) },
              { type: 'Hostname', address: name },
            ],
          },
        },
        'application/merge-patch+json',
      );
    },
  );
  const t2 = performance.now();
  log(
    `base: ${cluster.state.namespaces.length} namespaces (+ServiceAccount) in ${((t1 - t0) / 1000).toFixed(1)} s, ${NODES} nodes (+status) in ${((t2 - t1) / 1000).toFixed(1)} s`,
  );
  await inParallel(
    cluster.state.policies,
    CONCURRENCY,
    async (np) => void (await api('POST', `/apis/networking.k8s.io/v1/namespaces/${np.metadata?.namespace}/networkpolicies`, policyObject(np))),
  );
  const t3 = performance.now();
  log(`base: policies ${rate(cluster.state.policies.length, t3 - t2)}`);
  await inParallel(clusterPolicies, CONCURRENCY, async (cnp) => void (await api('POST', CNP_PATH, { ...cnp, metadata: { name: cnp.metadata?.name } })));
  const t4 = performance.now();
  if (CNPS) log(`base: cluster policies ${rate(CNPS, t4 - t3)}`);
  out({
    namespaces: cluster.state.namespaces.length,
    nodes: NODES,
    policies: cluster.state.policies.length,
    clusterPolicies: CNPS,
    namespacesMs: t1 - t0,
    nodesMs: t2 - t1,
    policiesMs: t3 - t2,
    clusterPoliciesMs: t4 - t3,
  });
}

// ---- load: pods ---------------------------------------------------------------
async function load(): Promise<void> {
  const pods = cluster.state.pods;
  const t0 = performance.now();
  let lastLog = t0;
  await inParallel(
    pods,
    CONCURRENCY,
    async (p) => {
      const ns = p.metadata?.namespace;
      await api('POST', `/api/v1/namespaces/${ns}/pods`, podObject(p));
      await api('PATCH', `/api/v1/namespaces/${ns}/pods/${p.metadata?.name}/status`, podStatus(p), 'application/merge-patch+json');
    },
    (done) => {
      const now = performance.now();
      if (now - lastLog > 10_000 || done === pods.length) {
        lastLog = now;
        log(`load: pods ${rate(done, now - t0)}, 2 writes each`);
      }
    },
  );
  const t1 = performance.now();
  // What the API holds now, as a list (the way the agent will read it).
  const l0 = performance.now();
  let listed = 0;
  let bytes = 0;
  let cont = '';
  do {
    const r = await api('GET', `/api/v1/pods?limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
    listed += r.json.items.length;
    bytes += Buffer.byteLength(JSON.stringify(r.json));
    cont = r.json.metadata?.continue ?? '';
  } while (cont);
  const l1 = performance.now();
  out({ pods: pods.length, localPods: cluster.localPods, podsMs: t1 - t0, listedPods: listed, podListBytes: bytes, podListMs: l1 - l0 });
}

// ---- verify: the agent's policies against the API's ------------------------------------------
/** JSON with sorted keys. */
const canon = (v: unknown): string =>
  Array.isArray(v)
    ? `[${v.map(canon).join(',')}]`
    : v && typeof v === 'object'
      ? `{${Object.keys(v)
          .sort()
          .map((k) => `${JSON.stringify(k)}:${canon((v as Record<string, unknown>)[k])}`)
          .join(',')}}`
      : JSON.stringify(v);

async function verify(): Promise<void> {
  if (!opt.socket) throw new Error('verify needs --socket');
  const api_ = (await api('GET', '/apis/networking.k8s.io/v1/networkpolicies')).json.items as NetworkPolicy[];
  const agent = (JSON.parse(await agentGet('/policies')) as { policies: Array<{ ref: string; spec: unknown }> }).policies;
  const held = new Map(agent.map((p) => [p.ref, canon(p.spec)]));
  const differ: string[] = [];
  let missing = 0;
  for (const np of api_) {
    const ref = `${np.metadata?.namespace}/${np.metadata?.name}`;
    const mine = held.get(ref);
    if (mine === undefined) missing++;
    else if (mine !== canon(np.spec)) differ.push(ref);
  }
  // What differs, for the first one: the top-level keys of its rules on each side.
  let example = '';
  const first = differ[0];
  if (first) {
    const a = JSON.parse(held.get(first) as string) as NetworkPolicySpec;
    const b = api_.find((np) => `${np.metadata?.namespace}/${np.metadata?.name}` === first)?.spec as NetworkPolicySpec;
    const keys = (s: NetworkPolicySpec | undefined): string =>
      JSON.stringify({ ingress: (s?.ingress ?? []).map((r) => Object.keys(r)), egress: (s?.egress ?? []).map((r) => Object.keys(r)) });
    example = `${first}: rule keys in the API ${keys(b)}, in the agent ${keys(a)}`;
  }
  out({ policies: api_.length, agentPolicies: agent.length, missing, differ: differ.length, example });
}

try {
  if (MODE === 'base') await base();
  else if (MODE === 'load') await load();
  else if (MODE === 'verify') await verify();
  else {
    if (!opt.socket) throw new Error('changes needs --socket');
    await changes({
      api,
      endpoint,
      agentGet,
      cluster,
      clusterPolicies,
      total: Number(opt.changes),
      pollMs: Number(opt['poll-ms']),
      gapMs: Number(opt['gap-ms']),
      applyTimeoutMs: APPLY_TIMEOUT_MS,
      log,
      out,
    });
  }
  destroyApi();
  destroyAgentSocket();
} catch (e) {
  log(`${MODE}: ${(e as Error).message}`);
  process.exit(1);
}
