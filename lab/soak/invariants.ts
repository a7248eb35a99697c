// The end of a soak: every invariant on every node, against the API as it
// is then.
//
//   cache = API      `weirctl doctor -o json`'s 'agent cache = API' (the agent lists every kind and compares)
//   kernel = applied `weirctl doctor -o json`'s 'table inet weir' (its table vs what it applied)
//   IPAM = pods      `weirctl ipam -o json` on the node: no leaked record or
//                    veth, every record's pod present, every pod there has a record
//   no leaked veth   every host veth's alias (weir/<net>/<ns>/<pod>/<cid>) names a pod of the node
//   no leaked route  every pod route (protocol 87) goes to an address of a pod of the node
//   no leaked conntrack entry: none of an address a deleted soak pod had
//                    (and no live pod has now) that would outlive the kernel's
//                    transient timeouts (see LONG_LIVED_S)
//
// Checked again every few seconds until clean, for at most the agent's IPAM
// sweep interval plus a margin: a record freed by the sweep, or a DEL that
// kubelet retries after a killed one, is repaired by the product on its own
// schedule, and the check waits for that instead of a fixed time.

import path from 'node:path';
import { kubectlJson, run, sleep } from '../commands/common.ts';
import { REPO } from '../kind.ts';
import type { LabState, LabStateNode } from '../state.ts';

/** The agent's --ipam-sweep-interval default (deploy/weir.yaml leaves it), plus a margin. */
export const INVARIANT_DEADLINE_MS = 60_000 + 45_000;
/** Conntrack entries in closing or unanswered states expire within 120 s on their own (nf_conntrack's timeouts); longer ones are established. */
export const LONG_LIVED_S = 300;

interface ApiPod {
  metadata: { namespace: string; name: string; deletionTimestamp?: string };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status?: { podIPs?: { ip: string }[] };
}

export interface CtEntry {
  proto: string;
  timeout: number;
  state: string;
  addrs: string[];
}

/** `conntrack -L` lines: "tcp 6 117 TIME_WAIT src=… dst=… sport=… dport=… src=… dst=… …". */
export function parseConntrack(text: string): CtEntry[] {
  return text
    .split('\n')
    .filter((l) => /src=/.test(l))
    .map((l) => {
      const f = l.trim().split(/\s+/);
      const i = f[0] === 'ipv4' || f[0] === 'ipv6' ? 2 : 0;
      const timeout = Number(f[i + 2]);
      const state = /^[A-Z_]+$/.test(f[i + 3] ?? '') ? (f[i + 3] as string) : '';
      const addrs = [...l.matchAll(/\b(?:src|dst)=(\S+)/g)].map((m) => m[1] as string);
      return { proto: f[i] ?? '', timeout, state, addrs };
    });
}

async function inNode(n: LabStateNode, argv: string[]): Promise<string> {
  const r = await run(['nsenter', `--net=${n.netns}`, '--', ...argv], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${argv.join(' ')} in ${n.name}: ${r.stderr.trim()}`);
  return r.stdout;
}

interface NodeView {
  pods: ApiPod[];
  liveIps: Set<string>;
  deletedIps: ReadonlySet<string>;
}

/** The self-checks of `weirctl doctor` that are invariants (the rest describe the node's setup). */
export const DOCTOR_INVARIANTS = ['agent cache = API', 'table inet weir'];

/** `weirctl doctor -o json` on the node: the agent's cache against a fresh list, the kernel's table against what it applied. */
async function doctorChecks(n: LabStateNode): Promise<string[]> {
  const r = await run([path.join(REPO, 'scripts/lab'), 'node', n.name, '--', 'weirctl', 'doctor', '-o', 'json'], { timeoutMs: 180_000 });
  let checks: { name: string; ok: boolean; detail: string }[];
  try {
    checks = (JSON.parse(r.stdout) as { checks: typeof checks }).checks;
  } catch {
    return [`${n.name}: weirctl doctor: exit ${r.code}, not JSON: ${(r.stderr.trim() || r.stdout.trim()).slice(0, 300)}`];
  }
  return DOCTOR_INVARIANTS.flatMap((name) => {
    const c = checks.find((x) => x.name === name);
    if (!c) return [`${n.name}: weirctl doctor did not report '${name}'`];
    return c.ok ? [] : [`${n.name}: ${name}: ${c.detail.slice(0, 400)}`];
  });
}

interface IpamJson {
  allocations: { addresses: string[]; pod?: string; podStatus: string; containerID: string }[];
  leaks: { records: { addresses: string[]; pod?: string }[]; veths: { name: string; alias?: string }[] };
}

async function ipamChecks(n: LabStateNode, v: NodeView): Promise<string[]> {
  const r = await run([path.join(REPO, 'scripts/lab'), 'node', n.name, '--', 'weirctl', 'ipam', '-o', 'json'], { timeoutMs: 60_000 });
  let rep: IpamJson;
  try {
    rep = JSON.parse(r.stdout) as IpamJson;
  } catch {
    return [`${n.name}: weirctl ipam: exit ${r.code}: ${r.stderr.trim().slice(0, 300)}`];
  }
  const out: string[] = [];
  for (const l of rep.leaks.records) out.push(`${n.name}: IPAM record leaked: ${l.addresses.join(',')} of ${l.pod ?? '?'}`);
  for (const l of rep.leaks.veths) out.push(`${n.name}: host veth without IPAM record: ${l.name} ${l.alias ?? ''}`);
  for (const a of rep.allocations)
    if (a.podStatus !== 'present')
      out.push(
        `${n.name}: IPAM record without its pod (${a.podStatus}): ${a.addresses.join(',')} of ${a.pod ?? '?'} (container ${a.containerID.slice(0, 12)})`,
      );
  const recorded = new Set(rep.allocations.flatMap((a) => a.addresses.map((x) => x.split('/')[0])));
  for (const p of v.pods)
    for (const { ip } of p.status?.podIPs ?? [])
      if (!recorded.has(ip)) out.push(`${n.name}: pod ${p.metadata.namespace}/${p.metadata.name} has ${ip} but no IPAM record holds it`);
  return out;
}

async function linkChecks(n: LabStateNode, v: NodeView): Promise<string[]> {
  const out: string[] = [];
  const names = new Set(v.pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`));
  const links = JSON.parse(await inNode(n, ['ip', '-j', '-d', 'link', 'show', 'type', 'veth'])) as { ifname: string; ifalias?: string }[];
  for (const l of links) {
    const parts = l.ifalias?.split('/');
    if (parts?.length !== 5 || parts[0] !== 'weir') continue;
    if (!names.has(`${parts[2]}/${parts[3]}`)) out.push(`${n.name}: leaked veth ${l.ifname} (${l.ifalias}): no such pod on the node`);
  }
  for (const fam of ['-4', '-6']) {
    const routes = JSON.parse(await inNode(n, ['ip', '-j', fam, 'route', 'show', 'proto', '87'])) as { dst: string; dev?: string }[];
    for (const r of routes)
      if (!v.liveIps.has(r.dst.split('/')[0] as string)) out.push(`${n.name}: leaked pod route ${r.dst} dev ${r.dev ?? '?'}: no pod of the node has it`);
  }
  return out;
}

async function conntrackChecks(n: LabStateNode, v: NodeView): Promise<{ violations: string[]; expiring: number }> {
  const out: string[] = [];
  let expiring = 0;
  for (const fam of ['ipv4', 'ipv6']) {
    const r = await run(['nsenter', `--net=${n.netns}`, '--', 'conntrack', '-L', '-f', fam], { timeoutMs: 30_000 });
    for (const e of parseConntrack(r.stdout)) {
      const dead = e.addrs.filter((a) => v.deletedIps.has(a) && !v.liveIps.has(a));
      if (dead.length === 0) continue;
      if (e.timeout > LONG_LIVED_S)
        out.push(
          `${n.name}: conntrack entry of a deleted pod's address ${dead.join(',')}: ${e.proto} ${e.state} timeout ${e.timeout} s (${e.addrs.join(' ')})`,
        );
      else expiring++;
    }
  }
  return { violations: out, expiring };
}

/** One pass over every node. */
async function checkOnce(state: LabState, deletedIps: ReadonlySet<string>): Promise<{ violations: string[]; notes: string[] }> {
  const all = (await kubectlJson<{ items: ApiPod[] }>(state, ['get', 'pods', '-A'])).items;
  const live = all.filter((p) => !p.spec.hostNetwork);
  const liveIps = new Set(live.flatMap((p) => (p.status?.podIPs ?? []).map((x) => x.ip)));
  const violations: string[] = [];
  const notes: string[] = [];
  for (const n of state.nodes) {
    const v: NodeView = {
      pods: live.filter((p) => p.spec.nodeName === n.name),
      liveIps: new Set(live.filter((p) => p.spec.nodeName === n.name).flatMap((p) => (p.status?.podIPs ?? []).map((x) => x.ip))),
      deletedIps,
    };
    const ct = await conntrackChecks(n, { ...v, liveIps });
    violations.push(...(await doctorChecks(n)), ...(await ipamChecks(n, v)), ...(await linkChecks(n, v)), ...ct.violations);
    if (ct.expiring > 0)
      notes.push(`${n.name}: ${ct.expiring} conntrack entries of deleted pods' addresses in transient states (expire by themselves within ${LONG_LIVED_S} s)`);
  }
  return { violations, notes };
}

/** Every invariant on every node, retried until clean or the deadline; the last pass's findings. */
export async function checkInvariants(
  state: LabState,
  deletedIps: ReadonlySet<string>,
  log: (l: string) => void,
): Promise<{ violations: string[]; notes: string[]; passes: number }> {
  const deadline = Date.now() + INVARIANT_DEADLINE_MS;
  for (let pass = 1; ; pass++) {
    let r: { violations: string[]; notes: string[] };
    try {
      r = await checkOnce(state, deletedIps);
    } catch (e) {
      r = { violations: [`invariant check failed: ${(e as Error).message}`], notes: [] };
    }
    if (r.violations.length === 0 || Date.now() > deadline) return { ...r, passes: pass };
    log(`invariants: pass ${pass}: ${r.violations.length} finding(s), checking again (the product repairs some on its own schedule): ${r.violations[0]}`);
    await sleep(5000);
  }
}
