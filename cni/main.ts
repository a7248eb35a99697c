// The `weir` CNI plugin executable: parse, dispatch, print. Everything else
// lives in src/. stdout carries only the result or the error JSON; logs go to
// stderr, which runtimes capture.
import fs from 'node:fs';
import { startupSnapshot } from 'node:v8';
import type { WeirNetConf } from '../src/cni/config.ts';
import { cmdAdd } from '../src/plugin/add.ts';
import { tellAgent } from '../src/plugin/agent-handoff.ts';
import { cmdCheck } from '../src/plugin/check.ts';
import { cmdDel } from '../src/plugin/del.ts';
import { cmdGc } from '../src/plugin/gc.ts';
import { invoke, type Verbs } from '../src/plugin/invoke.ts';
import { cmdStatus } from '../src/plugin/status.ts';

function readStdin(): string {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

// How long ADD waits for the agent to put the pod's policy in force. Past it
// the pod still starts, held by the agent's default drop until the agent
// catches up: a slow agent delays traffic, it never opens a hole.
const AGENT_WAIT_MS = 5000;

function log(level: 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ level, time: Date.now(), name: 'weir', msg, ...fields })}\n`);
}

const verbs: Verbs = {
  async add(env, conf: WeirNetConf) {
    const result = cmdAdd(env, conf);
    const { namespace, name, uid } = env.args.k8s;
    // Without the pod's name (a runtime that passes no K8S_POD_* arguments) the
    // agent cannot tell which pod this is: it keeps dropping the address until
    // the pod appears in the API, so there is nothing to wait for.
    if (conf.agentSocket && namespace && name) {
      const ips = result.ips.map((ip) => ip.address.split('/')[0] ?? ip.address);
      const r = await tellAgent(conf.agentSocket, '/cni/add', { containerID: env.containerId, ifname: env.ifname, namespace, name, uid, ips }, AGENT_WAIT_MS);
      if (!r.applied)
        log('warn', 'pod started before the agent confirmed its policy; the agent holds its traffic until it does', {
          reason: r.reason,
          containerID: env.containerId,
        });
    }
    return result;
  },
  async del(env, conf) {
    cmdDel(env, conf);
    if (conf.agentSocket) await tellAgent(conf.agentSocket, '/cni/del', { containerID: env.containerId, ifname: env.ifname }, 1000);
  },
  async check(env, conf) {
    cmdCheck(env, conf);
  },
  async status(conf) {
    cmdStatus(conf);
  },
  async gc(conf) {
    cmdGc(conf);
  },
};

function main(): void {
  void invoke(process.env, readStdin(), verbs).then(({ code, stdout }) => {
    process.stdout.write(stdout);
    // Exit at once rather than let the loop drain and the heap be torn down:
    // nothing is left to wait for, and the teardown is a measurable part of a
    // start (docs/cni-start.md). Writes to a pipe or file are synchronous on
    // Linux, so stdout and stderr are complete when it returns.
    process.exit(code);
  });
}

// The build evaluates this bundle once and keeps the heap as the executable's
// startup snapshot, so an invocation skips loading the code and only runs main.
// Everything that depends on the invocation (environment, stdin, the netns,
// koffi's native addon) is read inside main, never at module load. The bundle
// run by plain node (no snapshot being built) runs main at once.
if (startupSnapshot.isBuildingSnapshot()) startupSnapshot.setDeserializeMainFunction(main);
else main();
