// The hand-off between the plugin and the node agent at pod start. After ADD
// has wired the pod, it tells the agent the pod's addresses over the agent's
// local socket and waits until the agent reports the pod's policy in force,
// so the pod's first packet already meets its NetworkPolicy. Until then the
// agent's table drops every address of the node's pod range it does not know,
// so a missing or slow agent means a pod without traffic, never a pod without
// policy.
import fs from 'node:fs';

export interface HandoffResult {
  /** The agent confirmed the pod's rules are applied. */
  applied: boolean;
  /** Why not, when not. */
  reason?: string;
}

/** POSTs JSON to the agent's unix socket; never throws. */
export async function tellAgent(socketPath: string, path: string, body: unknown, timeoutMs: number): Promise<HandoffResult> {
  if (!fs.existsSync(socketPath)) return { applied: false, reason: `no agent socket at ${socketPath}` };
  // Loaded only here: a plugin without an agent never pays for node:http.
  const http = await import('node:http');
  const data = JSON.stringify(body);
  return new Promise((resolve) => {
    const req = http.request(
      { socketPath, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) return resolve({ applied: false, reason: `agent answered ${res.statusCode}: ${text.slice(0, 200)}` });
          try {
            const o = JSON.parse(text) as { applied?: boolean; reason?: string };
            resolve({ applied: o.applied === true, ...(o.reason ? { reason: o.reason } : {}) });
          } catch {
            resolve({ applied: false, reason: 'agent answered with malformed JSON' });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`agent did not answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ applied: false, reason: e.message }));
    req.end(data);
  });
}
