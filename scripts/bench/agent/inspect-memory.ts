// Where a running agent's memory is, through the V8 inspector (scripts/
// bench-agent, after its changes): SIGUSR1 opens the agent's inspector on
// 127.0.0.1:9229 in its network namespace, and this script, run in that
// namespace, asks it for process.memoryUsage() and V8's heap spaces before
// and after a full collection (HeapProfiler.collectGarbage). RSS minus V8's
// committed heap is native memory (glibc arenas: libnftables, netlink,
// buffers) plus code; committed minus used is V8's pooled free pages.
//
//   ip netns exec NS node scripts/bench/agent/inspect-memory.ts PID
//
// One JSON line on stdout.
import { setTimeout as sleep } from 'node:timers/promises';

const pid = Number(process.argv[2]);
if (!Number.isInteger(pid) || pid <= 0) {
  console.error('usage: inspect-memory.ts PID');
  process.exit(2);
}

process.kill(pid, 'SIGUSR1');
let url: string | undefined;
for (let i = 0; i < 100 && !url; i++) {
  try {
    const list = (await (await fetch('http://127.0.0.1:9229/json/list')).json()) as Array<{ webSocketDebuggerUrl?: string }>;
    url = list[0]?.webSocketDebuggerUrl;
  } catch {
    await sleep(100);
  }
}
if (!url) throw new Error('the agent did not open its inspector on 127.0.0.1:9229 within 10 s');

const ws = new WebSocket(url);
await new Promise((resolve, reject) => {
  ws.onopen = resolve;
  ws.onerror = reject;
});
let next = 1;
// biome-ignore lint/suspicious/noExplicitAny: the inspector protocol's replies, read field by field for the report.
const pending = new Map<number, (r: any) => void>();
ws.onmessage = (m) => {
  const msg = JSON.parse(String(m.data)) as { id?: number; result?: unknown; error?: unknown };
  if (msg.id !== undefined) pending.get(msg.id)?.(msg);
};
// biome-ignore lint/suspicious/noExplicitAny: the inspector protocol's replies, read field by field for the report.
const call = (method: string, params: object = {}): Promise<any> =>
  new Promise((resolve, reject) => {
    const id = next++;
    pending.set(id, (r) => (r.error ? reject(new Error(`${method}: ${JSON.stringify(r.error)}`)) : resolve(r.result)));
    ws.send(JSON.stringify({ id, method, params }));
  });
// biome-ignore lint/suspicious/noExplicitAny: the inspector protocol's replies, read field by field for the report.
const evaluate = async (expr: string): Promise<any> =>
  JSON.parse((await call('Runtime.evaluate', { expression: `JSON.stringify(${expr})`, returnByValue: true })).result.value);
// biome-ignore lint/suspicious/noExplicitAny: the inspector protocol's replies, read field by field for the report.
const reading = (): Promise<any> =>
  evaluate(
    `{ usage: process.memoryUsage(), spaces: require('v8').getHeapSpaceStatistics().map((s) => ({ name: s.space_name, size: s.space_size, used: s.space_used_size })) }`,
  ).catch(() => evaluate(`{ usage: process.memoryUsage(), spaces: [] }`));

const before = await reading();
await call('HeapProfiler.enable');
await call('HeapProfiler.collectGarbage');
const after = await reading();
ws.close();
process.stdout.write(`${JSON.stringify({ before, after })}\n`);
process.exit(0);
