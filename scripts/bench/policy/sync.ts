// bench-policy, part 1: synthetic clusters (cluster.ts) compiled for one node
// and applied by the real engine (PolicyEngine over LibNftables) into a fresh
// network namespace: full-sync time and transaction size, then pods added one
// at a time, each an incremental sync whose diff transaction is measured
// alone (the kernel update) and end to end (compile + diff + apply). With
// --cluster-policies, edits of a NetworkPolicy and of a ClusterNetworkPolicy
// too (changes.ts).

import { LibNftables } from '../../../src/nft/libnftables.ts';
import { NetlinkElementWriter } from '../../../src/nft/netlink-elements.ts';
import type { CompileResult } from '../../../src/policy/compile.ts';
import { PolicyEngine, type SyncReport } from '../../../src/policy/engine.ts';
import type { ClusterState } from '../../../src/policy/types.ts';
import { Netns } from '../../../src/sys/netns.ts';
import { gc } from '../lib/host.ts';
import { type Change, newChange, policyChanges } from './changes.ts';
import { addedPod, type Cluster, makeCluster, snapshot } from './cluster.ts';
import { makeClusterPolicies } from './cluster-policies.ts';
import { compileOpts, k, type RunContext } from './config.ts';
import { TimedElements, TimedNft } from './timed.ts';

export interface SyncRow {
  pods: number;
  policies: number;
  local: number;
  full: {
    compile: number[];
    build: number[];
    render: number[];
    apply: number[];
    total: number[];
    ops: number;
    bytes: number;
    chains: number;
    sets: number;
    intervalSets: number;
    elements: number;
    distinctElements: number;
  };
  inc: { ops: number[]; bytes: number[]; compile: number[]; diff: number[]; apply: number[]; e2e: number[]; floor: number[]; netlink: number; stats: string };
  /** With --cluster-policies: one NetworkPolicy, then one ClusterNetworkPolicy edited, after the pods were added. */
  changes: { np: Change; cnp: Change };
}

const newRow = (size: { pods: number; policies: number }): SyncRow => ({
  pods: size.pods,
  policies: size.policies,
  local: 0,
  full: {
    compile: [],
    build: [],
    render: [],
    apply: [],
    total: [],
    ops: 0,
    bytes: 0,
    chains: 0,
    sets: 0,
    intervalSets: 0,
    elements: 0,
    distinctElements: 0,
  },
  inc: { ops: [], bytes: [], compile: [], diff: [], apply: [], e2e: [], floor: [], netlink: 0, stats: '' },
  changes: { np: newChange(), cnp: newChange() },
});

/** Every size, --reps times each; a row per size, added to `rows` as it starts. */
export async function syncPart(x: RunContext, rows: SyncRow[]): Promise<void> {
  for (const size of x.cfg.sizes) {
    const row = newRow(size);
    rows.push(row);
    const firstStats = new Set<string>();
    const laterStats = new Set<string>();
    for (let rep = 0; rep < x.cfg.reps; rep++) await syncRep(x, row, rep, { first: firstStats, later: laterStats });
    row.inc.stats = `first: ${[...firstStats].join(' or ')}${laterStats.size ? `; later: ${[...laterStats].join(' or ')}` : ''}`;
    x.log(`sync ${k(size.pods)} pods x ${k(size.policies)} policies: done`);
  }
}

/** What the incremental syncs changed in the table: after the first pod added, and after the later ones. */
interface AddStats {
  first: Set<string>;
  later: Set<string>;
}

/** One repetition: a fresh namespace, a full sync, the pods added, and with --cluster-policies the policy edits. */
async function syncRep(x: RunContext, row: SyncRow, rep: number, stats: AddStats): Promise<void> {
  const { cfg } = x;
  const c = makeCluster({ pods: row.pods, policies: row.policies, seed: cfg.seed });
  const cnps = makeClusterPolicies(cfg.cnps, c.namespaces, cfg.seed, { nodes: true });
  const state = (): ClusterState => (cfg.cnps > 0 ? { ...snapshot(c), clusterPolicies: cnps } : snapshot(c));
  row.local = c.localPods;
  const nsName = `${x.ns.tag}-sync${rep}`;
  x.ns.add(nsName);
  const netns = Netns.open(`/run/netns/${nsName}`);
  const nft = new TimedNft(new LibNftables({ netns }));
  const elements = new TimedElements(NetlinkElementWriter.open(netns));
  try {
    const engine = new PolicyEngine(nft, compileOpts, elements);
    const sync = (): SyncReport => {
      gc();
      return engine.sync(state(), x.extra);
    };
    const first = fullSync(row, sync, nft);
    await x.checkpoint();
    await addPods(x, { row, c, rep, stats, sync, nft, elements });
    if (cfg.cnps > 0) {
      await policyChanges({
        c,
        cnps,
        first,
        edits: cfg.adds,
        sync,
        last: (viaNetlink) => (viaNetlink ? { runMs: elements.last.runMs, overheadMs: 0 } : nft.last),
        checkpoint: x.checkpoint,
        into: row.changes,
      });
    }
  } finally {
    nft.close();
    elements.close();
    netns.close();
    x.ns.del(nsName);
  }
}

/** The first sync, a full one: its times and the table's size into the row. */
function fullSync(row: SyncRow, sync: () => SyncReport, nft: TimedNft): CompileResult {
  const full = sync();
  if (!full.full) throw new Error('first sync was not a full one');
  const rs = full.result.ruleset;
  row.full.compile.push(full.compileMs);
  const applyMs = full.applyMs - nft.last.overheadMs;
  row.full.build.push(applyMs - nft.last.runMs);
  row.full.render.push(nft.last.renderMs);
  row.full.apply.push(nft.last.runMs);
  row.full.total.push(full.compileMs + applyMs);
  const sets = [...rs.sets.values()];
  // Sets with the same type and elements (e.g. the same peers in two rules) counted once.
  const distinct = new Map(
    sets.map((x) => [`${x.def.type}|${x.def.kind === 'set' ? (x.def.flags ?? []).join() : 'map'}|${[...x.elements.keys()].sort().join(',')}`, x.elements.size]),
  );
  Object.assign(row.full, {
    ops: nft.last.ops,
    bytes: nft.last.bytes,
    chains: rs.chains.size,
    sets: sets.length,
    intervalSets: sets.filter((x) => x.def.kind === 'set' && x.def.flags?.includes('interval')).length,
    elements: sets.reduce((n, x) => n + x.elements.size, 0),
    distinctElements: [...distinct.values()].reduce((a, b) => a + b, 0),
  });
  return full.result;
}

interface Adds {
  row: SyncRow;
  c: Cluster;
  rep: number;
  stats: AddStats;
  sync: () => SyncReport;
  nft: TimedNft;
  elements: TimedElements;
}

/** --adds pods added one by one, each an incremental sync, with the floor of a one-element add before each. */
async function addPods(x: RunContext, { row, c, rep, stats, sync, nft, elements }: Adds): Promise<void> {
  const adds = x.cfg.adds;
  for (let i = 0; i < adds; i++) {
    // The floor: one element added to the table, straight through libnftables (then taken out again).
    const probe = `10.244.1.${250 + (i % 4)}`;
    const t0 = performance.now();
    nft.inner.runScript(`add element inet weir known4 { ${probe} }`);
    row.inc.floor.push(performance.now() - t0);
    nft.inner.runScript(`delete element inet weir known4 { ${probe} }`);
    const pod = addedPod(c, rep * adds + i);
    c.state.pods.push(pod);
    const r = sync();
    if (r.full) throw new Error('the incremental sync fell back to a full one');
    row.inc.ops.push(r.operations);
    row.inc.compile.push(r.compileMs);
    // Element-only diffs went to the netlink writer; anything else through libnftables.
    const ran = r.elementsOnly ? { runMs: elements.last.runMs, overheadMs: 0, bytes: 0 } : nft.last;
    if (r.elementsOnly) row.inc.netlink++;
    row.inc.bytes.push(ran.bytes);
    const applyMs = r.applyMs - ran.overheadMs;
    row.inc.diff.push(applyMs - ran.runMs);
    row.inc.apply.push(ran.runMs);
    row.inc.e2e.push(r.compileMs + applyMs);
    const s = r.stats;
    const into = i === 0 ? stats.first : stats.later;
    if (s)
      into.add(
        `+${s.elementsAdded} el${s.chainsAdded ? `, +${s.chainsAdded} chain` : ''}${s.elementsRemoved ? `, -${s.elementsRemoved} el` : ''}${s.chainsRewritten ? `, ${s.chainsRewritten} chain rewritten` : ''}`,
      );
    await x.checkpoint();
  }
}
