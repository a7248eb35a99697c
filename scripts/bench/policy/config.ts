// What one bench-policy run is set to measure (main.ts reads it from the
// command line), the agent's per-sync options that every part compiles with,
// and the short forms of counts and sizes the report prints.
import type { CompileOptions } from '../../../src/policy/compile.ts';
import { addMasquerade } from '../../../src/policy/node-rules.ts';
import type { Ruleset } from '../../../src/policy/ruleset.ts';
import { BENCH_NODE, BENCH_POD_CIDR, NODE_COUNT } from './cluster.ts';
import type { RunNamespaces } from './namespaces.ts';

export interface BenchConfig {
  /** The sync part's clusters, pods x policies. */
  sizes: Array<{ pods: number; policies: number }>;
  reps: number;
  adds: number;
  dpPods: number;
  dpPolicies: number[];
  rounds: number;
  requests: number;
  abPasses: number;
  concurrency: number;
  iperfSecs: number;
  seed: number;
  /** --cluster-policies: ClusterNetworkPolicies added to every cluster. */
  cnps: number;
  /** The agent's masquerade chain in weir's table. */
  masq: boolean;
}

/** The agent's per-sync options (reconciler.ts): the guard of this node's pod range, and masquerade. */
export interface SyncExtra {
  options: { guardCIDRs: string[] };
  decorate: (rs: Ruleset) => void;
}

export function agentSyncExtra(masq: boolean): SyncExtra {
  const nodeCidrs = Array.from({ length: NODE_COUNT }, (_, i) => `10.244.${i}.0/24`);
  return {
    options: { guardCIDRs: [BENCH_POD_CIDR] },
    decorate: (rs: Ruleset): void => {
      if (masq) addMasquerade(rs, { podCIDRs: [BENCH_POD_CIDR], nonMasqueradeCIDRs: nodeCidrs });
    },
  };
}

/** What both parts of a run work with. */
export interface RunContext {
  cfg: BenchConfig;
  ns: RunNamespaces;
  extra: SyncExtra;
  log: (s: string) => void;
  /** Gives a pending Ctrl-C its turn between measurements; throws once one came. */
  checkpoint: () => Promise<void>;
}

export const compileOpts: CompileOptions = { nodeName: BENCH_NODE };

export const kib = (b: number): string => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
export const k = (n: number): string => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : `${n}`);
