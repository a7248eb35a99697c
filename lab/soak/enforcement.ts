// When is a change enforced? When every node's agent reports, on its local
// socket (GET /status: applied.versions, the resourceVersion of each kind
// its last applied sync had), a version of that kind at least the change's.
// Polled every POLL_MS; a version is marked enforced at the poll that first
// sees it so on every node (so a latency is at most one poll late, never
// early).
//
// A node that does not answer (its agent killed or stopped by a fault)
// keeps the last versions it reported: what it applied is still in its
// kernel (the table outlives the agent), and a restarted agent reports its
// own first sync.
import { agentGet } from '../commands/common.ts';
import type { AgentStatus } from '../commands/wait.ts';
import { rvAtLeast } from '../commands/wait.ts';
import type { LabState } from '../state.ts';
import { KINDS, type Kind, type KindTimeline } from './timeline.ts';

/** The agent's name for each kind in /status. */
export const AGENT_KIND: Record<Kind, string> = { pods: 'pods', namespaces: 'namespaces', networkpolicies: 'policies' };

export const POLL_MS = 200;

/** The lowest version of a kind over the nodes; undefined when some node never reported one. */
export function lowestApplied(perNode: ReadonlyMap<string, Record<string, string>>, nodes: readonly string[], agentKind: string): string | undefined {
  let low: string | undefined;
  for (const n of nodes) {
    const rv = perNode.get(n)?.[agentKind];
    if (!rv) return undefined;
    if (low === undefined || !rvAtLeast(rv, low)) low = rv;
  }
  return low;
}

export class EnforcementTracker {
  readonly applied = new Map<string, Record<string, string>>();
  /** Polls where a node did not answer, per node (the faults' footprint). */
  readonly silent = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  readonly #state: LabState;
  readonly #timelines: Record<Kind, KindTimeline>;

  constructor(state: LabState, timelines: Record<Kind, KindTimeline>) {
    this.#state = state;
    this.#timelines = timelines;
  }

  start(): void {
    this.#timer = setInterval(() => void this.poll(), POLL_MS);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async poll(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      await Promise.all(
        this.#state.nodes.map(async (n) => {
          const st = await agentGet<AgentStatus>(n, '/status', 1000).catch(() => undefined);
          if (st?.ready && st.applied?.versions) this.applied.set(n.name, st.applied.versions);
          else this.silent.set(n.name, (this.silent.get(n.name) ?? 0) + 1);
        }),
      );
      const now = Date.now();
      const names = this.#state.nodes.map((n) => n.name);
      for (const k of KINDS) {
        const low = lowestApplied(this.applied, names, AGENT_KIND[k]);
        if (low) this.#timelines[k].markEnforced(low, now);
      }
    } finally {
      this.#busy = false;
    }
  }
}
