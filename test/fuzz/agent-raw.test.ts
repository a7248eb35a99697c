// The agent's local API answering requests that never reach a route handler
// (refused by Node's HTTP parser, CONNECT, an unsupported Expect, no Host)
// with a status and a JSON {"error": ...}, and serving the next request
// afterwards. Over the real server and status routes on a temp unix socket.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AgentFixture, startAgentFixture } from '../../fuzz/lib/agent-fixture.ts';
import { jsonError, rawRequest } from '../../fuzz/lib/raw-http.ts';

let agent: AgentFixture;
beforeAll(async () => {
  agent = await startAgentFixture();
});
afterAll(async () => {
  await agent?.close();
});

const send = (text: string) => rawRequest(agent.socketPath, Buffer.from(text, 'latin1'), 5000);

const cases: { what: string; request: string; status: number; error: RegExp }[] = [
  { what: 'a method Node does not know', request: 'FROB /status HTTP/1.1\r\nhost: w\r\n\r\n', status: 400, error: /INVALID_METHOD/ },
  { what: 'CONNECT', request: 'CONNECT weir:1 HTTP/1.1\r\nhost: w\r\n\r\n', status: 405, error: /CONNECT/ },
  { what: 'a header name with a space', request: 'GET /status HTTP/1.1\r\nho st: w\r\n\r\n', status: 400, error: /bad request/ },
  {
    what: 'two different content-lengths',
    request: 'POST /cni/del HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}',
    status: 400,
    error: /CONTENT_LENGTH/,
  },
  { what: 'a bad chunk size', request: 'POST /cni/del HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', status: 400, error: /CHUNK/ },
  { what: 'a body cut short by EOF', request: 'POST /cni/del HTTP/1.1\r\ncontent-length: 10\r\n\r\n{}', status: 400, error: /EOF/ },
  { what: 'headers cut short by EOF', request: 'GET /status HTTP/1.1\r\nhost: w\r\n', status: 400, error: /EOF/ },
  { what: 'the HTTP/2 preface', request: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 400, error: /H2/ },
  { what: 'headers over 16 KiB', request: `GET /status HTTP/1.1\r\nx: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431, error: /too large/ },
  { what: 'an Expect other than 100-continue', request: 'GET /status HTTP/1.1\r\nhost: w\r\nexpect: tea\r\n\r\n', status: 417, error: /expectation.*tea/ },
];

describe('agent API: requests refused before any route', () => {
  it.each(cases)('$what: $status with a JSON error, and the agent serves on', async ({ request, status, error }) => {
    const before = agent.fingerprint();
    const r = await send(request);
    if (typeof r === 'string') throw new Error(`no HTTP answer (${r})`);
    expect(r.status).toBe(status);
    expect(r.headers).toMatch(/content-type: application\/json/i);
    const e = jsonError(r);
    expect(e).toEqual({ error: expect.stringMatching(error) });
    expect(agent.fingerprint()).toBe(before);
    const next = await send('GET /healthz HTTP/1.1\r\nhost: w\r\n\r\n');
    expect(typeof next === 'string' ? next : next.status).toBe(200);
  });

  it('an HTTP/1.1 request without Host is served like any other (the socket has no hosts)', async () => {
    const r = await send('GET /status HTTP/1.1\r\n\r\n');
    if (typeof r === 'string') throw new Error(`no HTTP answer (${r})`);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body.toString('utf8'))).toHaveProperty('ready');
  });

  it('Expect: 100-continue still gets its 100 and then the answer', async () => {
    const r = await send('POST /cni/del HTTP/1.1\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n[]');
    if (typeof r === 'string') throw new Error(`no HTTP answer (${r})`);
    expect(r.status).toBe(400);
    expect(jsonError(r)).toEqual({ error: expect.any(String) });
  });
});
