// The hand-off between the plugin and the node agent at pod start. After ADD
// has wired the pod, it tells the agent the pod's addresses over the agent's
// local socket and waits until the agent reports the pod's policy in force,
// so the pod's first packet already meets its NetworkPolicy. Until then the
// agent's table drops every address of the node's pod range it does not know,
// so a missing or slow agent means a pod without traffic, never a pod without
// policy.
import { agentCall } from '../agent-api/client.ts';
import type { CniAddReply, CniAddRequest, CniDelRequest } from '../agent-api/types.ts';

export interface HandoffResult {
  /** The agent confirmed the pod's rules are applied. */
  applied: boolean;
  /** Why not, when not. */
  reason?: string;
}

/** POSTs to the agent; never throws. */
export async function tellAgent(socketPath: string, path: '/cni/add', body: CniAddRequest, timeoutMs: number): Promise<HandoffResult>;
export async function tellAgent(socketPath: string, path: '/cni/del', body: CniDelRequest, timeoutMs: number): Promise<HandoffResult>;
export async function tellAgent(socketPath: string, path: string, body: CniAddRequest | CniDelRequest, timeoutMs: number): Promise<HandoffResult> {
  try {
    const r = await agentCall(socketPath, 'POST', path, body, timeoutMs);
    if (r.status !== 200) return { applied: false, reason: `agent answered ${r.status}: ${r.text.slice(0, 200)}` };
    // /cni/add answers CniAddReply; /cni/del answers { ok: true }.
    const o = (r.json ?? {}) as Partial<CniAddReply> & { ok?: boolean };
    return { applied: o.applied === true || o.ok === true, ...(o.reason ? { reason: o.reason } : {}) };
  } catch (e) {
    return { applied: false, reason: e instanceof Error ? e.message : String(e) };
  }
}
