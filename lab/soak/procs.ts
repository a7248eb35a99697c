// The lab's processes as this machine sees them: kind's nodes are
// containers, so their kubelets, static pods, agents and CNI plugin runs
// are processes of this machine's /proc. Faults are signals sent to them;
// a process is told to be a given node's by its namespaces.
//
// Shared by the soak and test/e2e/lab-resilience.test.ts.
import fs from 'node:fs';
import path from 'node:path';
import type { LabState, LabStateNode } from '../state.ts';

export function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

export function pids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

export const netnsInode = (file: string): string => `net:[${fs.statSync(file).ino}]`;

/** A process's namespace of this type (`net`, `pid`), as readlink shows it; undefined once it is gone. */
export function pidNs(pid: number, type: 'net' | 'pid' = 'net'): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/${type}`);
  } catch {
    return undefined;
  }
}

/** The network namespace of a process (kept under its old name for the resilience test). */
export const pidNetns = (pid: number): string | undefined => pidNs(pid, 'net');

/** One environment variable of a process (root reads any); undefined when gone or unset. */
export function processEnv(pid: number, name: string): string | undefined {
  try {
    const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const hit = env.find((e) => e.startsWith(`${name}=`));
    return hit?.slice(name.length + 1);
  } catch {
    return undefined;
  }
}

function labNode(state: LabState, node: string): LabStateNode {
  const n = state.nodes.find((x) => x.name === node);
  if (!n) throw new Error(`no node ${node}`);
  return n;
}

/** Processes named `binary` (argv[0]'s base name) in a node's network namespace (host-network pods: the agent, static pods). */
function inNodeNetns(state: LabState, node: string, binary: string, skip: (args: string[]) => boolean = () => false): number[] {
  const ns = netnsInode(labNode(state, node).netns);
  return pids().filter((pid) => {
    const args = cmdline(pid);
    return path.basename(args[0] ?? '') === binary && !skip(args) && pidNetns(pid) === ns;
  });
}

/** The weir agent of a lab node: the weir-agent binary (not its install-cni run) in that node's namespace. */
export function agentPid(state: LabState, node: string): number | undefined {
  const found = inNodeNetns(state, node, 'weir-agent', (args) => args.includes('install-cni'));
  if (found.length > 1) throw new Error(`more than one weir-agent on ${node}: ${found.join(' ')}`);
  return found[0];
}

/** The lab's kube-apiserver: the static pod's process, in the control-plane node's namespace (host network). */
export function apiserverPid(state: LabState): number {
  const cp = state.nodes[0];
  if (!cp) throw new Error('no control-plane node');
  const found = inNodeNetns(state, cp.name, 'kube-apiserver');
  if (found.length !== 1) throw new Error(`expected one lab kube-apiserver, found ${found.length}: ${found.join(' ')}`);
  return found[0] as number;
}

/** The pid namespace of a node container's init: containerd and what it runs directly (CNI plugins) share it. */
export const nodePidNs = (node: LabStateNode): string | undefined => pidNs(node.pid, 'pid');
