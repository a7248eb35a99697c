// A client of the agent's local status API (HTTP over its unix socket), for
// the plugin's hand-off and for weirctl. node:http is loaded on first use, so
// a plugin that never talks to an agent does not pay for it. It is looked up
// with process.getBuiltinModule, not import(): the plugin runs from a V8
// startup snapshot, where a dynamic import has no loader to call and fails.
import fs from 'node:fs';
import { CniCode, WeirError } from '../errors.ts';

export interface AgentReply {
  status: number;
  json: unknown;
  text: string;
}

/** Nobody answers on the agent's socket (or it does not exist). */
export class AgentUnavailableError extends WeirError {
  readonly code = 'WEIR_AGENT_UNAVAILABLE';
  readonly cniCode = CniCode.TryAgainLater;
}

export async function agentCall(socketPath: string, method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = 5000): Promise<AgentReply> {
  if (!fs.existsSync(socketPath)) throw new AgentUnavailableError(`no agent socket at ${socketPath} (is weir-agent running on this node?)`);
  const http = process.getBuiltinModule('node:http');
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath,
        path,
        method,
        timeout: timeoutMs,
        headers: data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
      },
    );
    req.on('timeout', () => req.destroy(new AgentUnavailableError(`the agent did not answer within ${timeoutMs} ms`)));
    req.on('error', (e) => reject(e instanceof AgentUnavailableError ? e : new AgentUnavailableError(`cannot reach the agent at ${socketPath}: ${e.message}`)));
    req.end(data);
  });
}
