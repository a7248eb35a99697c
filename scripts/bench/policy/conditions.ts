// bench-policy, part 2: the conditions the datapath is measured under, each
// a table set up in the node namespace after `flush ruleset`: no weir table
// but conntrack on; weir with 0 and each --dp-policies count of policies;
// with --cluster-policies, weir with them and the pair's own Admin Pass
// policies (pair-tiers.ts); and the linear ruleset made from the same
// policies (linear.ts). Each knows what a probe to a port the pair's policies
// do not open must meet, by the reference evaluator or the chain's own order.
import type { LibNftables } from '../../../src/nft/libnftables.ts';
import type { Transaction } from '../../../src/nft/transaction.ts';
import { type CompileResult, compilePolicies } from '../../../src/policy/compile.ts';
import { evaluate, podEndpoint } from '../../../src/policy/evaluator.ts';
import { fullTransaction } from '../../../src/policy/ruleset.ts';
import type { ClusterState } from '../../../src/policy/types.ts';
import { addPair, BENCH_NODE, type Cluster, makeCluster, PAIR_PORTS, type PairPods, snapshot } from './cluster.ts';
import { makeClusterPolicies } from './cluster-policies.ts';
import { type BenchConfig, compileOpts, k, type SyncExtra } from './config.ts';
import { type LinearRuleset, linearRuleset, linearVerdict } from './linear.ts';
import { PAIR_PASS, pairPassPolicies, placePairPass } from './pair-tiers.ts';

export interface Condition {
  key: string;
  label: string;
  kind: 'ct' | 'weir' | 'linear';
  policies: number;
  /** What sets the table up (after `flush ruleset`). */
  apply: (nft: LibNftables) => void;
  /** Expected outcome of a probe to a port the pair's policies do not open (true: reaches the server). */
  probeAllowed: boolean;
  /** weir: the policies isolating the server for ingress, in the order its profile jumps to them. */
  serverPolicies?: string[];
  /** weir with ClusterNetworkPolicies: the chains of the pair's Admin Pass rules (server ingress, client egress), which must count its packets. */
  passChains?: { server: string; client: string };
  rules?: number;
  note?: string;
  rate: number[];
  bps: number[];
}

/** A port the pair's policies do not open: probed at each condition's first measurement. */
export const DENY_PROBE_PORT = 7;

/** The client and server pods the plugin made, as the policies see them. */
export interface Pair {
  pods: PairPods;
  clientIp: string;
  serverIp: string;
}

type NewCondition = Omit<Condition, 'rate' | 'bps'>;

/** Every condition, in the report's order: conntrack only, weir with 0 policies, per count weir (and weir with the ClusterNetworkPolicies), then the linear ones. */
export function makeConditions(cfg: BenchConfig, extra: SyncExtra, pair: Pair): Condition[] {
  const conditions: Condition[] = [];
  const cond = (c: NewCondition): void => void conditions.push({ ...c, rate: [], bps: [] });
  const clusterWith = (policies: number): Cluster => {
    const c = makeCluster({ pods: cfg.dpPods, policies, seed: cfg.seed });
    addPair(c, pair.pods);
    return c;
  };
  const ctScript =
    'add table inet weirbench_ct\nadd chain inet weirbench_ct conntrack_only { type filter hook forward priority 0; policy accept; }\nadd rule inet weirbench_ct conntrack_only ct state established accept\n';
  cond({
    key: 'ct',
    label: 'no weir table (conntrack on: one `ct state established accept`)',
    kind: 'ct',
    policies: 0,
    apply: (n) => n.runScript(ctScript),
    probeAllowed: true,
  });
  const c0 = clusterWith(0);
  const { tx: tx0 } = weirTable(extra, snapshot(c0));
  cond({
    key: 'w0',
    label: 'weir, 0 policies',
    kind: 'weir',
    policies: 0,
    apply: (n) => n.run(tx0),
    probeAllowed: allowed(snapshot(c0), pair.pods, DENY_PROBE_PORT),
    rules: tx0.operations.filter((o) => o.obj.kind === 'rule').length,
  });
  const linears: Array<{ p: number; l: LinearRuleset; allowed: boolean }> = [];
  for (const p of cfg.dpPolicies) {
    const c = clusterWith(p);
    cond(weirCondition(extra, c, p, pair.pods));
    if (!allowed(snapshot(c), pair.pods, 8080) || !allowed(snapshot(c), pair.pods, 5201))
      throw new Error('internal: the pair is not allowed by its own policies');
    if (cfg.cnps > 0) cond(tieredCondition(cfg, extra, clusterWith(p), p, pair.pods));
    const l = linearRuleset(snapshot(c), BENCH_NODE, { client: pair.clientIp, server: pair.serverIp, ports: PAIR_PORTS });
    linears.push({ p, l, allowed: linearVerdict(l, pair.clientIp, pair.serverIp, 'TCP', DENY_PROBE_PORT) });
  }
  for (const { p, l, allowed } of linears) {
    cond({
      key: `l${p}`,
      label: `linear, ${k(p)} policies`,
      kind: 'linear',
      policies: p,
      apply: (n) => n.runScript(l.script),
      probeAllowed: allowed,
      rules: l.accepts.length + l.dropDst.length + l.dropSrc.length + 1,
      note: `pair's accept at rule ${l.accepts.length - l.pairRules + 2} of ${l.accepts.length + l.dropDst.length + l.dropSrc.length + 1}`,
    });
  }
  return conditions;
}

/** weir's table for the state, as the agent would write it, and the compile it came from. */
function weirTable(extra: SyncExtra, s: ClusterState): { res: CompileResult; tx: Transaction } {
  const res = compilePolicies(s, { ...compileOpts, ...extra.options });
  extra.decorate(res.ruleset);
  if (res.errors.length) throw new Error(`policy errors: ${res.errors.map((e) => e.message).join('; ')}`);
  return { res, tx: fullTransaction(res.ruleset) };
}

/** The reference evaluator's verdict on a TCP connection from the client to the server's `port`. */
const allowed = (s: ClusterState, pair: PairPods, port: number): boolean =>
  evaluate(s, { src: podEndpoint(pair.client.namespace, pair.client.name), dst: podEndpoint(pair.server.namespace, pair.server.name), protocol: 'TCP', port })
    .allowed;

/** Where the policy made for the pair sits among those a profile jumps to. */
const place = (list: string[] | undefined, name: string): string => {
  const i = (list ?? []).findIndex((r) => r.endsWith(`/${name}`));
  return i < 0 ? 'missing' : i === (list ?? []).length - 1 ? 'last' : `${i + 1} of ${(list ?? []).length}`;
};

/** weir with the NetworkPolicies of `c`. */
function weirCondition(extra: SyncExtra, c: Cluster, p: number, pair: PairPods): NewCondition {
  const { res, tx } = weirTable(extra, snapshot(c));
  const server = res.endpoints.find((e) => e.name === pair.server.name);
  const client = res.endpoints.find((e) => e.name === pair.client.name);
  return {
    key: `w${p}`,
    label: `weir, ${k(p)} policies`,
    kind: 'weir',
    policies: p,
    apply: (n) => n.run(tx),
    probeAllowed: allowed(snapshot(c), pair, DENY_PROBE_PORT),
    serverPolicies: server?.ingress?.policies ?? [],
    rules: tx.operations.filter((o) => o.obj.kind === 'rule').length,
    note: `server isolated by ${server?.ingress?.policies.length ?? 0} ingress polic${server?.ingress?.policies.length === 1 ? 'y' : 'ies'}, the one made for the pair jumped to ${place(server?.ingress?.policies, 'zz-allow-bench-client')}; client by ${client?.egress?.policies.length ?? 0} egress`,
  };
}

/**
 * weir with the NetworkPolicies of `c` and --cluster-policies
 * ClusterNetworkPolicies, plus the pair's Admin Pass policies placed so that
 * the pair's packets cross every Admin rule of theirs that does not decide
 * them (pair-tiers.ts); the first measurement checks that the Pass rules counted them.
 */
function tieredCondition(cfg: BenchConfig, extra: SyncExtra, c: Cluster, p: number, pair: PairPods): NewCondition {
  const s = {
    ...snapshot(c),
    clusterPolicies: [...makeClusterPolicies(cfg.cnps, c.namespaces, cfg.seed, { nodes: true }), ...pairPassPolicies(pair, PAIR_PORTS)],
  };
  const prio = placePairPass(s, pair, PAIR_PORTS);
  const { res, tx } = weirTable(extra, s);
  const server = res.endpoints.find((e) => e.name === pair.server.name);
  const client = res.endpoints.find((e) => e.name === pair.client.name);
  const chain = (name: string): string => {
    const base = res.clusterPolicyChains.get(name);
    if (!base) throw new Error(`${name} has no chain on this node`);
    return base;
  };
  const adm = (list: string[] | undefined, name: string): string => {
    const i = (list ?? []).indexOf(name);
    return `${i < 0 ? 'missing' : `${i + 1}`} of ${(list ?? []).length}`;
  };
  const bl = (e: typeof server, d: 'ingress' | 'egress'): number => e?.tiers?.baseline?.[d]?.policies.length ?? 0;
  return {
    key: `c${p}`,
    label: `weir, ${k(p)} policies + ${cfg.cnps} ClusterNetworkPolicies (+2 the pair's)`,
    kind: 'weir',
    policies: p,
    apply: (n) => n.run(tx),
    probeAllowed: allowed(s, pair, DENY_PROBE_PORT),
    serverPolicies: server?.ingress?.policies ?? [],
    passChains: { server: `${chain(PAIR_PASS.server)}_in`, client: `${chain(PAIR_PASS.client)}_eg` },
    rules: tx.operations.filter((o) => o.obj.kind === 'rule').length,
    note: `Admin tier: the pair's Pass (priority ${prio.server}/${prio.client}) jumped to ${adm(server?.tiers?.admin?.ingress?.policies, PAIR_PASS.server)} server ingress, ${adm(client?.tiers?.admin?.egress?.policies, PAIR_PASS.client)} client egress policies; Baseline: ${bl(server, 'ingress')} server ingress, ${bl(client, 'egress')} client egress (not reached: NetworkPolicy isolates both); NetworkPolicy: the pair's allow jumped to ${place(server?.ingress?.policies, 'zz-allow-bench-client')}`,
  };
}
