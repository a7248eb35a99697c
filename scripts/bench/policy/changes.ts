// bench-policy --cluster-policies, sync part: after the pods are added, a
// NetworkPolicy and then a ClusterNetworkPolicy edited in turn (a rule's
// ports made one new port), each an incremental sync timed like a pod's.
import type { ClusterNetworkPolicy } from '../../../src/policy/cnp-types.ts';
import type { CompileResult } from '../../../src/policy/compile.ts';
import type { SyncReport } from '../../../src/policy/engine.ts';
import type { NetworkPolicy } from '../../../src/policy/types.ts';
import type { Cluster } from './cluster.ts';
import { changedClusterPolicy, changedPolicy } from './pair-tiers.ts';

/** The incremental syncs of one kind of change. */
export interface Change {
  ops: number[];
  compile: number[];
  diff: number[];
  apply: number[];
  e2e: number[];
  netlink: number;
  stats: Set<string>;
}
export const newChange = (): Change => ({ ops: [], compile: [], diff: [], apply: [], e2e: [], netlink: 0, stats: new Set() });

export interface ChangeRun {
  c: Cluster;
  /** The cluster's ClusterNetworkPolicies, edited in place. */
  cnps: ClusterNetworkPolicy[];
  /** The full sync's result: which policies select pods of this node. */
  first: CompileResult;
  /** Edits of each kind. */
  edits: number;
  /** One incremental sync of the cluster as it is now. */
  sync: () => SyncReport;
  /** What the last apply took in the kernel (runMs) and what the benchmark's wrapper added to applyMs (overheadMs), by path. */
  last: (viaNetlink: boolean) => { runMs: number; overheadMs: number };
  checkpoint: () => Promise<void>;
  into: { np: Change; cnp: Change };
}

/** The policies that select pods of this node are taken in name order, one edit each, round robin. */
export async function policyChanges(x: ChangeRun): Promise<void> {
  const local = x.first.endpoints;
  // A default deny has no rule to edit.
  const editable = new Set(
    x.c.state.policies.filter((p) => p.spec?.ingress?.length || p.spec?.egress?.length).map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`),
  );
  const nps = [...new Set(local.flatMap((e) => [...(e.ingress?.policies ?? []), ...(e.egress?.policies ?? [])]))].filter((n) => editable.has(n)).sort();
  const cnps = [...new Set(local.flatMap((e) => Object.values(e.tiers ?? {}).flatMap((t) => Object.values(t ?? {}).flatMap((p) => p?.policies ?? []))))].sort();
  if (nps.length === 0 || cnps.length === 0) throw new Error('no NetworkPolicy or no ClusterNetworkPolicy selects a pod of this node: nothing to change');
  for (let i = 0; i < x.edits; i++) {
    // A port none of the generators uses: every edit changes the table.
    const port = 10_000 + i;
    const np = nps[i % nps.length];
    const at = x.c.state.policies.findIndex((p) => `${p.metadata?.namespace}/${p.metadata?.name}` === np);
    x.c.state.policies[at] = changedPolicy(x.c.state.policies[at] as NetworkPolicy, port);
    timedChange(x.into.np, x.sync(), x.last);
    await x.checkpoint();
    const cnp = cnps[i % cnps.length];
    const j = x.cnps.findIndex((p) => p.metadata?.name === cnp);
    x.cnps[j] = changedClusterPolicy(x.cnps[j] as ClusterNetworkPolicy, port);
    timedChange(x.into.cnp, x.sync(), x.last);
    await x.checkpoint();
  }
}

function timedChange(ch: Change, r: SyncReport, last: ChangeRun['last']): void {
  if (r.full) throw new Error('the incremental sync fell back to a full one');
  if (r.operations === 0) throw new Error('a policy change changed nothing in the table');
  const ran = last(r.elementsOnly);
  if (r.elementsOnly) ch.netlink++;
  const applyMs = r.applyMs - ran.overheadMs;
  ch.ops.push(r.operations);
  ch.compile.push(r.compileMs);
  ch.diff.push(applyMs - ran.runMs);
  ch.apply.push(ran.runMs);
  ch.e2e.push(r.compileMs + applyMs);
  const s = r.stats;
  if (!s) return;
  const parts = [
    ['chain', s.chainsAdded, '+'],
    ['chain rewritten', s.chainsRewritten, ''],
    ['chain', s.chainsRemoved, '-'],
    ['set', s.setsAdded, '+'],
    ['set', s.setsRemoved, '-'],
    ['el', s.elementsAdded, '+'],
    ['el', s.elementsRemoved, '-'],
  ] as const;
  ch.stats.add(
    parts
      .filter(([, n]) => n > 0)
      .map(([what, n, sign]) => `${sign}${n} ${what}`)
      .join(', '),
  );
}
