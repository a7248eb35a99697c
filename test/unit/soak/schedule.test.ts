// The fault plan: every kind the number of times asked, inside the run's
// window, in order, each on a node that makes sense for it.
import { describe, expect, it } from 'vitest';
import { Rng } from '../../../lab/soak/rng.ts';
import { FAULT_KINDS, faultsPerKind, faultsRequired, planFaults } from '../../../lab/soak/schedule.ts';

const NODES = ['weir-control-plane', 'weir-worker', 'weir-worker2'];
const opts = (minutes: number, perKind: number) => ({
  durationMs: minutes * 60_000,
  perKind,
  nodes: NODES,
  controlPlane: NODES[0] as string,
  warmupMs: 15_000,
  cooldownMs: 20_000,
});

describe('planFaults', () => {
  it('plans each kind perKind times, in time order, inside warm-up and cool-down', () => {
    for (const seed of [1, 2, 3, 1234567]) {
      const plan = planFaults(new Rng(seed), opts(60, 6));
      for (const k of FAULT_KINDS) expect(plan.filter((f) => f.kind === k)).toHaveLength(6);
      expect(plan.map((f) => f.at)).toEqual([...plan.map((f) => f.at)].sort((a, b) => a - b));
      expect(plan[0]?.at).toBeGreaterThanOrEqual(15_000);
      expect(plan.at(-1)?.at).toBeLessThanOrEqual(60 * 60_000 - 20_000);
    }
  });

  it('puts API server and etcd faults on the control plane and walks the agent faults over the nodes', () => {
    const plan = planFaults(new Rng(8), opts(60, 6));
    for (const f of plan.filter((x) => x.kind === 'apiserver-stop' || x.kind === 'etcd-compact')) expect(f.node).toBe('weir-control-plane');
    const agentNodes = plan.filter((x) => x.kind === 'agent-kill' || x.kind === 'agent-starve').map((f) => f.node);
    for (const n of NODES) expect(agentNodes.filter((x) => x === n)).toHaveLength(4);
    for (let i = 1; i < agentNodes.length; i++) expect(agentNodes[i]).not.toBe(agentNodes[i - 1]);
  });

  it('gives stops a duration and CNI kills a delay, in their bounds', () => {
    for (const f of planFaults(new Rng(3), opts(60, 6))) {
      if (f.kind === 'apiserver-stop') expect(f.durationMs).toBeGreaterThanOrEqual(5000);
      if (f.kind === 'agent-starve') expect(f.durationMs).toBeGreaterThanOrEqual(8000);
      if (f.kind.startsWith('cni-')) expect(f.killDelayMs).toBeLessThanOrEqual(200);
      else expect(f.killDelayMs).toBe(0);
    }
  });

  it('never plans one kind twice in a row', () => {
    for (const seed of [5, 6, 7, 8, 9]) {
      const kinds = planFaults(new Rng(seed), opts(60, 6)).map((f) => f.kind);
      for (let i = 1; i < kinds.length; i++) expect(kinds[i]).not.toBe(kinds[i - 1]);
    }
  });

  it('is a function of the seed', () => {
    expect(planFaults(new Rng(77), opts(10, 2))).toEqual(planFaults(new Rng(77), opts(10, 2)));
    expect(planFaults(new Rng(77), opts(10, 2))).not.toEqual(planFaults(new Rng(78), opts(10, 2)));
  });
});

describe('fault counts', () => {
  it('injects more of each kind than a run must have, and at least 5 per kind in an hour', () => {
    expect(faultsRequired(60)).toBe(5);
    expect(faultsPerKind(60)).toBeGreaterThan(faultsRequired(60));
    for (const m of [1, 3, 5, 10, 30, 60, 120]) {
      expect(faultsRequired(m)).toBeGreaterThanOrEqual(1);
      expect(faultsPerKind(m)).toBeGreaterThanOrEqual(faultsRequired(m));
    }
  });
});
