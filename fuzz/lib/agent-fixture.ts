// The agent's real local API (server.ts + status-api.ts) on a temp unix
// socket, in-process, over a real ClusterCache and policy engine (fake nft).
// The reconciler is a stand-in that never applies anything: /cni/add then
// answers at once ("not applied") instead of waiting 4 s for a sync, which
// would starve the fuzzer. The drop log and self-checks are absent (503).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { AgentMetrics } from '../../src/agent/agent-metrics.ts';
import { ClusterCache } from '../../src/agent/cache.ts';
import { agentOptions, toConfig } from '../../src/agent/config.ts';
import type { Reconciler } from '../../src/agent/reconciler.ts';
import { type RunningServers, startServers } from '../../src/agent/server.ts';
import { statusRoutes } from '../../src/agent/status-api.ts';
import { FakeNft } from '../../src/nft/fake.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';

export interface AgentFixture {
  socketPath: string;
  /** Everything a request could change, as text: equal before and after means untouched. */
  fingerprint(): string;
  close(): Promise<void>;
}

export async function startAgentFixture(): Promise<AgentFixture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-fuzz-agent-'));
  const socketPath = path.join(dir, 'agent.sock');
  const argv = (await agentOptions(yargs(['--node-name=n1']))
    .exitProcess(false)
    .parseAsync()) as Record<string, unknown>;
  const config = toConfig(argv);
  const cache = new ClusterCache();
  cache.replace('nodes', [{ metadata: { name: 'n1', uid: 'u-n1', resourceVersion: '1' }, spec: { podCIDRs: ['10.244.1.0/24'] } }], '1');
  cache.replace('namespaces', [{ metadata: { name: 'ns', uid: 'u-ns', resourceVersion: '2', labels: { a: 'b' } } }], '2');
  cache.replace(
    'pods',
    [{ metadata: { namespace: 'ns', name: 'pod', uid: 'u-pod', resourceVersion: '3' }, spec: { nodeName: 'n1' }, status: { podIPs: [{ ip: '10.244.1.2' }] } }],
    '3',
  );
  let scheduled = 0;
  const reconciler = {
    ready: true,
    last: undefined,
    lastError: undefined,
    endpoints: [],
    schedule: () => void scheduled++,
    waitApplied: async () => false,
  } as unknown as Reconciler;
  const engine = new PolicyEngine(new FakeNft(), { nodeName: 'n1' });
  const routes = statusRoutes({ cache, reconciler, engine, metrics: new AgentMetrics(), config });
  const servers: RunningServers = await startServers({ socketPath, routes });
  return {
    socketPath,
    fingerprint: () => JSON.stringify({ g: cache.generation, scheduled, cni: [...cache.cni], snap: cache.snapshot(), digest: cache.digestView(true) }),
    close: async () => {
      await servers.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
