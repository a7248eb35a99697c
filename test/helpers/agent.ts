// Runs the real dist/bin/weir-agent inside a test namespace, and talks to it
// over its local socket (a unix socket is a file, so the test process reaches
// it from any namespace).
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { agentCall } from '../../src/agent-api/client.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
export const AGENT_BIN = path.join(REPO, 'dist/bin/weir-agent');
export const WEIR_BIN = path.join(REPO, 'dist/bin/weir');
export const WEIRCTL_BIN = path.join(REPO, 'dist/bin/weirctl');

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly socket: string;
  /** stderr so far (JSON log lines). */
  log(): string;
  /** SIGTERM and wait for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface AgentDirs {
  cniConfDir: string;
  runDir: string;
  dataDir: string;
}

export function agentDirs(root: string): AgentDirs {
  const d = { cniConfDir: path.join(root, 'net.d'), runDir: path.join(root, 'run'), dataDir: path.join(root, 'data') };
  for (const p of Object.values(d)) fs.mkdirSync(p, { recursive: true });
  return d;
}

export function startAgent(netns: string, nodeName: string, kubeconfig: string, dirs: AgentDirs, extra: string[] = []): AgentProcess {
  if (!fs.existsSync(AGENT_BIN)) throw new Error(`${AGENT_BIN} is missing: run \`npm run build\``);
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      netns,
      AGENT_BIN,
      `--node-name=${nodeName}`,
      `--kubeconfig=${kubeconfig}`,
      `--cni-conf-dir=${dirs.cniConfDir}`,
      `--run-dir=${dirs.runDir}`,
      `--data-dir=${dirs.dataDir}`,
      '--health-address=127.0.0.1:0',
      '--debounce-ms=5',
      '--log-level=debug',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    socket: path.join(dirs.runDir, 'agent.sock'),
    log: () => err,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface Reply {
  status: number;
  body: string;
  json: unknown;
}

/** One request to the agent's socket (the project's own client); rejects when nobody answers. */
export async function agentRequest(socket: string, method: 'GET' | 'POST', p: string, body?: unknown, timeoutMs = 10_000): Promise<Reply> {
  const r = await agentCall(socket, method, p, body, timeoutMs);
  return { status: r.status, body: r.text, json: r.json };
}

export { eventually } from './wait.ts';
