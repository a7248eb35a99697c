// Fuzzes the agent's local API (the unix socket the plugin and weirctl use):
// method, request target, headers and body, or the request's raw bytes.
// Every request must get an HTTP answer in bounded time; every 4xx/5xx must
// carry a JSON {"error": ...} body, and none may be a 500 (input the code
// did not expect: bad input is a 4xx); a rejected request, a GET or a HEAD must
// leave the agent's state as it was; and the agent must answer /healthz
// after every input.
import fs from 'node:fs';
import path from 'node:path';
import { FuzzedDataProvider } from '@jazzer.js/core';
import { type AgentFixture, startAgentFixture } from './lib/agent-fixture.ts';
import { FuzzFinding } from './lib/cni-checks.ts';
import { jsonError, rawRequest } from './lib/raw-http.ts';

// Jazzer.js ends a run that found nothing by letting the event loop drain,
// which a listening agent never does: the agent closes once no input has
// come for a while (the run is over) and starts again if one comes after all.
const IDLE_MS = 1000;
let agent: AgentFixture | undefined;
let idle: NodeJS.Timeout | undefined;
async function theAgent(): Promise<AgentFixture> {
  clearTimeout(idle);
  agent ??= await startAgentFixture();
  return agent;
}
// A finding ends the process at once: the socket's folder goes with it.
process.once('exit', () => {
  if (agent) fs.rmSync(path.dirname(agent.socketPath), { recursive: true, force: true });
});
function idleClose(): void {
  idle = setTimeout(() => {
    const a = agent;
    agent = undefined;
    void a?.close();
  }, IDLE_MS);
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'get', 'CONNECT', 'TRACE'];
const PATHS = [
  '/healthz',
  '/readyz',
  '/metrics',
  '/status',
  '/endpoints',
  '/policies',
  '/hostpolicies',
  '/cache',
  '/state',
  '/drops',
  '/verify/cache',
  '/verify/kernel',
  '/cni/add',
  '/cni/del',
  '/',
  '*',
  'http://x/status',
  '//status',
];
const HEADERS = ['host', 'content-length', 'transfer-encoding', 'connection', 'expect', 'upgrade', 'content-type', 'accept'];
const BODIES = [
  '{"containerID":"c1","ifname":"eth0","namespace":"ns","name":"pod","uid":"u-pod","ips":["10.244.1.2"]}',
  '{"containerID":"c1","ifname":"eth0"}',
  '{"namespace":"ns","name":"pod","containerID":"c2","ips":[1,"::1"]}',
  '[]',
];
/** A bound well above the slowest route here (none waits: no drop log, fake reconciler). */
const BOUND_MS = 3000;
const HEALTHZ = Buffer.from('GET /healthz HTTP/1.1\r\n\r\n');

const line = (s: string): string => s.replace(/[\r\n]/g, '');

/** A request built from parts; framing (content-length) is added unless the fuzzer wrote its own. */
function structured(p: FuzzedDataProvider): { bytes: Buffer; method: string; what: string } {
  const method = p.consumeBoolean() ? p.pickValue(METHODS) : line(p.consumeString(12));
  const target = line(
    p.consumeBoolean() ? p.pickValue(PATHS) + p.consumeString(p.consumeIntegralInRange(0, 40)) : p.consumeString(p.consumeIntegralInRange(0, 80)),
  );
  const headers: string[] = [];
  for (let n = p.consumeIntegralInRange(0, 4); n > 0; n--) {
    const name = p.consumeBoolean() ? p.pickValue(HEADERS) : line(p.consumeString(p.consumeIntegralInRange(0, 20)));
    headers.push(`${name}: ${line(p.consumeString(p.consumeIntegralInRange(0, 40)))}\r\n`);
  }
  const body = p.consumeBoolean() ? Buffer.from(p.pickValue(BODIES)) : Buffer.from(p.consumeRemainingAsBytes());
  const framed = headers.some((h) => /^(content-length|transfer-encoding)\s*:/i.test(h));
  const head = `${method} ${target} HTTP/1.1\r\n${headers.join('')}${framed ? '' : `content-length: ${body.length}\r\n`}\r\n`;
  return { bytes: Buffer.concat([Buffer.from(head, 'latin1'), body]), method, what: `${JSON.stringify(method)} ${JSON.stringify(target)}` };
}

export async function fuzz(data: Buffer): Promise<void> {
  const agent = await theAgent();
  try {
    await exchange(agent, data);
  } finally {
    idleClose();
  }
}

async function exchange(agent: AgentFixture, data: Buffer): Promise<void> {
  const p = new FuzzedDataProvider(data);
  const raw = p.consumeBoolean();
  const req = raw ? { bytes: Buffer.from(p.consumeRemainingAsBytes()), method: '', what: 'raw request' } : structured(p);

  const before = agent.fingerprint();
  const reply = await rawRequest(agent.socketPath, req.bytes, BOUND_MS);
  const what = `${req.what} (${JSON.stringify(req.bytes.toString('latin1').slice(0, 120))})`;
  if (reply === 'timeout') throw new FuzzFinding(`${what}: no answer within ${BOUND_MS} ms`);
  // A connection that carried no request line (nothing, or only blank lines) needs no answer.
  if (reply === 'closed' && !(raw && req.bytes.toString('latin1').trim() === '')) throw new FuzzFinding(`${what}: connection closed without an HTTP answer`);
  if (reply !== 'closed') {
    const isHead = /^HEAD /.test(req.bytes.toString('latin1', 0, 5));
    if (reply.status >= 400 && !isHead) {
      const e = jsonError(reply);
      if ('problem' in e) throw new FuzzFinding(`${what}: ${e.problem}`);
      // No route fails on its own here (fake reconciler and nft): a 500 is
      // bad input that reached code which does not expect it.
      if (reply.status >= 500 && reply.status !== 503) throw new FuzzFinding(`${what}: ${reply.status} ${e.error}`);
    }
    const readOnly = reply.status >= 400 || req.method === 'GET' || req.method === 'HEAD';
    if (readOnly && agent.fingerprint() !== before) throw new FuzzFinding(`${what}: answered ${reply.status} but changed the agent's state`);
  }
  const health = await rawRequest(agent.socketPath, HEALTHZ, BOUND_MS);
  if (typeof health === 'string' || health.status !== 200)
    throw new FuzzFinding(`${what}: afterwards /healthz answered ${typeof health === 'string' ? health : health.status}`);
}
