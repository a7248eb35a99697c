// The plugin's verbs as the executable runs them: each verb's work (src/plugin/<verb>.ts)
// and, for ADD and DEL, the hand-off to the node's agent that follows it.
import type { WeirNetConf } from '../cni/config.ts';
import { cmdAdd } from './add.ts';
import { tellAgent } from './agent-handoff.ts';
import { cmdCheck } from './check.ts';
import { cmdDel } from './del.ts';
import { cmdGc } from './gc.ts';
import type { Verbs } from './invoke.ts';
import { cmdStatus } from './status.ts';

// How long ADD waits for the agent to put the pod's policy in force. Past it
// the pod still starts, held by the agent's default drop until the agent
// catches up: a slow agent delays traffic, it never opens a hole.
const AGENT_WAIT_MS = 5000;

function log(level: 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ level, time: Date.now(), name: 'weir', msg, ...fields })}\n`);
}

export const verbs: Verbs = {
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
