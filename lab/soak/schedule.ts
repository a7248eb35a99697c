// The fault plan (pure): which fault, when, on which node, for how long;
// drawn from the seed. Faults run one at a time (faults.ts): a planned time
// is "not before", so one that overruns delays the next, never overlaps it.
import type { Rng } from './rng.ts';

export const FAULT_KINDS = ['agent-kill', 'apiserver-stop', 'etcd-compact', 'agent-starve', 'cni-kill-add', 'cni-kill-del'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface PlannedFault {
  /** Offset from the start of the churn, ms. */
  at: number;
  kind: FaultKind;
  node: string;
  /** How long a stop lasts (apiserver-stop, agent-starve). */
  durationMs: number;
  /** How long after the plugin process appears it is killed (cni-kill-*): lands in different stages of ADD/DEL. */
  killDelayMs: number;
}

export interface PlanOptions {
  durationMs: number;
  perKind: number;
  nodes: readonly string[];
  /** The control-plane node (the API server's and etcd's). */
  controlPlane: string;
  /** No fault before this (probes and watches start first) nor in the last cooldownMs. */
  warmupMs: number;
  cooldownMs: number;
}

/** How many of each kind a run of this length injects: 6 per hour (the issue asks ≥ 5), at least one. */
export const faultsPerKind = (minutes: number): number => Math.max(1, Math.ceil((6 * minutes) / 60));
/** How many of each kind a run must have injected to pass: 5 per hour, at least one. */
export const faultsRequired = (minutes: number): number => Math.max(1, Math.floor((5 * minutes) / 60));

/** Kinds in a random order, no kind twice in a row where that can be avoided. */
function order(rng: Rng, perKind: number): FaultKind[] {
  const left = new Map<FaultKind, number>(FAULT_KINDS.map((k) => [k, perKind]));
  const out: FaultKind[] = [];
  while (out.length < perKind * FAULT_KINDS.length) {
    const prev = out[out.length - 1];
    const open = [...left].filter(([k, n]) => n > 0 && k !== prev).map(([k]) => k);
    const pool = open.length > 0 ? open : [...left].filter(([, n]) => n > 0).map(([k]) => k);
    // Prefer the kinds with the most left, so the last slots do not repeat one kind.
    const most = Math.max(...pool.map((k) => left.get(k) ?? 0));
    const k = rng.pick(pool.filter((x) => (left.get(x) ?? 0) === most));
    left.set(k, (left.get(k) ?? 0) - 1);
    out.push(k);
  }
  return out;
}

export function planFaults(rng: Rng, o: PlanOptions): PlannedFault[] {
  const kinds = order(rng, o.perKind);
  const span = Math.max(0, o.durationMs - o.warmupMs - o.cooldownMs);
  const slot = span / kinds.length;
  // Agent faults walk the nodes in turn: killing one agent twice in a row would put it in CrashLoopBackOff.
  const agentNodes = rng.shuffle(o.nodes);
  let agentTurn = 0;
  return kinds.map((kind, i) => {
    const at = Math.round(o.warmupMs + slot * i + rng.next() * slot * 0.5);
    let node: string;
    if (kind === 'apiserver-stop' || kind === 'etcd-compact') node = o.controlPlane;
    else if (kind === 'agent-kill' || kind === 'agent-starve') node = agentNodes[agentTurn++ % agentNodes.length] as string;
    else node = rng.pick(o.nodes);
    const durationMs = kind === 'apiserver-stop' ? rng.int(5000, 12_000) : kind === 'agent-starve' ? rng.int(8000, 20_000) : 0;
    const killDelayMs = kind.startsWith('cni-') ? rng.int(0, 200) : 0;
    return { at, kind, node, durationMs, killDelayMs };
  });
}
