// What one policy object compiles to on a node, kept across compiles: its
// chains and the sets its rules use. It depends on the policy alone (the
// node is fixed per indexer, sets are named by their definitions, and which
// pods are in them is the pod sets' business), so it is made once per
// normalized policy object and replayed by later compiles: an event that
// does not touch a policy costs it a few map insertions, and its chains keep
// their identity, which the diff compares first. Used for NetworkPolicy
// (compile.ts) and ClusterNetworkPolicy (cnp-compile.ts). Pure.
import type { NftSet } from '../nft/types.ts';
import type { ClusterIndexer } from './cluster-index.ts';
import type { Direction } from './normalize.ts';
import type { PodSets, SetMembership } from './pod-sets.ts';
import type { RuleContext } from './rule-compile.ts';
import { type DesiredChain, type DesiredSet, RulesetBuilder } from './ruleset.ts';

export class PolicyOutput {
  readonly chains: { d: Direction; chain: DesiredChain }[] = [];
  readonly sets: DesiredSet[] = [];
  readonly live: { def: NftSet; m: SetMembership }[] = [];

  /** Puts the chains and sets into `b` (sets another policy already put there are shared); the chain names by direction. */
  replay(b: RulesetBuilder, sets: PodSets): [Direction, string][] {
    for (const s of this.sets) if (!b.ruleset.sets.has(s.def.name)) b.ruleset.sets.set(s.def.name, s);
    for (const l of this.live) if (!b.ruleset.sets.has(l.def.name)) b.live(l.def, sets.declare(l.def, l.m));
    return this.chains.map(({ d, chain }) => {
      b.ruleset.chains.set(chain.def.name, chain);
      return [d, chain.def.name];
    });
  }
}

/**
 * Builds one policy's output in a builder of its own: `build` adds its
 * chains (returning them by direction) through the rule context given, whose
 * pod-dependent sets are recorded for replay. `extra` adds to the context
 * (node and domain addresses).
 */
export function buildOutput(indexer: ClusterIndexer, extra: Omit<RuleContext, 'b' | 'sets'>, build: (ctx: RuleContext) => [Direction, string][]): PolicyOutput {
  const out = new PolicyOutput();
  const b = new RulesetBuilder(indexer.table);
  const ctx: RuleContext = {
    ...extra,
    b,
    sets: {
      declare: (def: NftSet, m: SetMembership) => {
        out.live.push({ def, m });
        return indexer.sets.declare(def, m);
      },
    },
  };
  for (const [d, name] of build(ctx)) out.chains.push({ d, chain: b.ruleset.chains.get(name) as DesiredChain });
  const liveNames = new Set(out.live.map((l) => l.def.name));
  for (const s of b.ruleset.sets.values()) if (!liveNames.has(s.def.name)) out.sets.push(s);
  return out;
}
