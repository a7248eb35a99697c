// The compile that continues from the last one (a persistent ClusterIndexer,
// as the engine keeps it) against a compile from scratch. The agent's cache
// replaces an object when it changes and keeps it otherwise, so the states
// here keep unchanged objects by identity too; the pod sets' journals then
// carry each diff, and the kernel stand-in (FakeNft) must end up holding
// exactly the table a fresh engine makes of the same state.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeNft } from '../../../src/nft/fake.ts';
import type { Element, NftSet } from '../../../src/nft/types.ts';
import type { PodFacts } from '../../../src/policy/cluster-index.ts';
import { type CompileOptions, compilePolicies, indexerFor } from '../../../src/policy/compile.ts';
import { PolicyEngine } from '../../../src/policy/engine.ts';
import type { ClusterState, Labels } from '../../../src/policy/index.ts';
import { PodSets } from '../../../src/policy/pod-sets.ts';
import { changeArb, clusterArb, NODES, statesOf } from './cluster.ts';
import { tieredChangeArb, tieredClusterArb } from './cnp-arb.ts';

/** `next` with every object equal (as JSON) to the previous state's object of the same key replaced by that object. */
function keepIdentity(prev: ClusterState, next: ClusterState): ClusterState {
  const reuse = <T extends { metadata?: { namespace?: string; name?: string } }>(old: readonly T[], now: readonly T[]): T[] => {
    const byKey = new Map(old.map((o) => [`${o.metadata?.namespace}/${o.metadata?.name}`, o]));
    return now.map((o) => {
      const was = byKey.get(`${o.metadata?.namespace}/${o.metadata?.name}`);
      return was && JSON.stringify(was) === JSON.stringify(o) ? was : o;
    });
  };
  const sameMap = (a: ClusterState['domainAddresses'], b: ClusterState['domainAddresses']): boolean =>
    JSON.stringify([...(a ?? [])]) === JSON.stringify([...(b ?? [])]);
  return {
    ...next,
    pods: reuse(prev.pods, next.pods),
    namespaces: reuse(prev.namespaces, next.namespaces),
    policies: reuse(prev.policies, next.policies),
    ...(next.clusterPolicies ? { clusterPolicies: reuse(prev.clusterPolicies ?? [], next.clusterPolicies) } : {}),
    ...(next.domainAddresses
      ? { domainAddresses: prev.domainAddresses && sameMap(prev.domainAddresses, next.domainAddresses) ? prev.domainAddresses : next.domainAddresses }
      : {}),
  };
}

const seqArb = fc.record({
  start: clusterArb,
  steps: fc.array(fc.array(changeArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 8 }),
});
/** With ClusterNetworkPolicies of both tiers and learned domain names, and events changing them. */
const tieredSeqArb = fc.record({
  start: tieredClusterArb,
  steps: fc.array(fc.array(tieredChangeArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 8 }),
});

const setContents = (s: ClusterState, opts: CompileOptions): string =>
  [...compilePolicies(s, opts).ruleset.sets.values()]
    .map((x) => `${x.def.name}: ${[...x.elements.keys()].sort().join(', ')}`)
    .sort()
    .join('\n');

describe('incremental compile (ClusterIndexer kept across syncs) equals a compile from scratch', () => {
  for (const [hostFirewall, tiers] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    it(`every diff lands the table a fresh engine makes${hostFirewall ? ' (host firewall on)' : ''}${tiers ? ' (ClusterNetworkPolicy events)' : ''}`, () => {
      fc.assert(
        fc.property(tiers ? tieredSeqArb : seqArb, ({ start, steps }) => {
          for (const node of NODES) {
            const opts: CompileOptions = { nodeName: node, guardCIDRs: ['10.1.0.0/24', 'fd00:1::/64'], ...(hostFirewall ? { hostFirewall: {} } : {}) };
            const kernel = new FakeNft();
            const engine = new PolicyEngine(kernel, opts);
            statesOf(start, steps, keepIdentity).forEach((s, i) => {
              expect(engine.sync(s).full).toBe(i === 0);
              const fresh = new FakeNft();
              new PolicyEngine(fresh, opts).sync(s);
              expect(kernel.dump()).toBe(fresh.dump());
            });
          }
        }),
        { numRuns: 150 },
      );
    });
  }

  it('the indexer kept by hand gives the same sets as a fresh compile at every step', () => {
    fc.assert(
      fc.property(fc.oneof(seqArb, tieredSeqArb), ({ start, steps }) => {
        const opts: CompileOptions = { nodeName: 'n1' };
        const states = statesOf(start, steps, keepIdentity);
        const indexer = indexerFor(states[0] as ClusterState, opts);
        for (const s of states) {
          const r = compilePolicies(s, opts, indexer);
          indexer.sets.commit();
          expect(
            [...r.ruleset.sets.values()]
              .map((x) => `${x.def.name}: ${[...x.elements.keys()].sort().join(', ')}`)
              .sort()
              .join('\n'),
          ).toBe(setContents(s, opts));
        }
      }),
      { numRuns: 100 },
    );
  });
});

// ---- PodSets on its own ----

const table = { family: 'inet', name: 't' } as const;
const facts = (namespace: string, name: string, ip: string, labels: Labels = {}): PodFacts => ({
  namespace,
  name,
  labels,
  nodeName: 'n1',
  ips: new Map([[4, ip]]),
  named: new Map(),
});
const def = (name: string): NftSet => ({ kind: 'set', table, name, type: 'ipv4_addr' });

function universe(pods: PodFacts[], ns: Map<string, Labels>) {
  return {
    namespaces: () => new Set(pods.map((p) => p.namespace)),
    pods: (namespace: string) => pods.filter((p) => p.namespace === namespace),
    labelsOfNs: (n: string) => ns.get(n) ?? {},
  };
}
const keys = (m: Map<string, Element | undefined>): string[] => [...m.keys()].sort();

describe('PodSets', () => {
  const webByTeam = {
    member: (p: PodFacts, nsl: Labels) => (p.labels.app === 'web' && nsl.team === 'red' ? [[p.ips.get(4) as string]] : []),
    nsDependent: true,
  };

  it('fills a new set from every pod, and journals nothing for it', () => {
    const pods = [facts('a', 'w1', '10.0.0.1', { app: 'web' }), facts('b', 'w2', '10.0.0.2', { app: 'web' }), facts('a', 'd', '10.0.0.3', { app: 'db' })];
    const sets = new PodSets(table, universe(pods, new Map([['a', { team: 'red' }]])));
    const live = sets.declare(def('s'), webByTeam);
    expect([...live.elements.keys()]).toEqual(['10.0.0.1']);
    expect(live.changed.size).toBe(0);
  });

  it('a pod change moves its elements and journals the state before; commit starts a new journal', () => {
    const w1 = facts('a', 'w1', '10.0.0.1', { app: 'web' });
    const sets = new PodSets(table, universe([w1], new Map([['a', { team: 'red' }]])));
    const live = sets.declare(def('s'), webByTeam);
    const before = live.elements.get('10.0.0.1');
    sets.podChanged(w1, { ...w1, labels: { app: 'db' } });
    sets.podChanged(undefined, facts('a', 'w3', '10.0.0.4', { app: 'web' }));
    expect([...live.elements.keys()]).toEqual(['10.0.0.4']);
    expect(keys(live.changed)).toEqual(['10.0.0.1', '10.0.0.4']);
    expect(live.changed.get('10.0.0.1')).toEqual(before);
    expect(live.changed.get('10.0.0.4')).toBeUndefined();
    sets.commit();
    expect(live.changed.size).toBe(0);
  });

  it('an address two pod objects hold stays until both let go', () => {
    const a = facts('a', 'old', '10.0.0.9', { app: 'web' });
    const b = facts('a', 'new', '10.0.0.9', { app: 'web' });
    const sets = new PodSets(table, universe([a, b], new Map([['a', { team: 'red' }]])));
    const live = sets.declare(def('s'), webByTeam);
    sets.podChanged(a, undefined);
    expect(live.elements.has('10.0.0.9')).toBe(true);
    sets.podChanged(b, undefined);
    expect(live.elements.has('10.0.0.9')).toBe(false);
  });

  it('a namespace relabel re-asks its pods, only for sets that read namespace labels', () => {
    const pods = [facts('a', 'w1', '10.0.0.1', { app: 'web' }), facts('b', 'w2', '10.0.0.2', { app: 'web' })];
    const nsl = new Map([['a', { team: 'red' }]]);
    const sets = new PodSets(table, universe(pods, nsl));
    const byTeam = sets.declare(def('s'), webByTeam);
    const inA = sets.declare(def('own'), { member: (p) => (p.labels.app === 'web' ? [[p.ips.get(4) as string]] : []), namespace: 'a', nsDependent: false });
    sets.namespaceChanged([pods[1] as PodFacts], {}, { team: 'red' });
    expect([...byTeam.elements.keys()].sort()).toEqual(['10.0.0.1', '10.0.0.2']);
    expect([...inA.elements.keys()]).toEqual(['10.0.0.1']);
  });

  it('sweep drops the sets the last compile did not declare', () => {
    const sets = new PodSets(table, universe([], new Map()));
    sets.declare(def('kept'), webByTeam);
    sets.declare(def('gone'), webByTeam);
    sets.beginCompile();
    sets.declare(def('kept'), webByTeam);
    sets.sweep();
    expect(sets.size).toBe(1);
  });
});
