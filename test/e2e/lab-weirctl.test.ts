// weirctl end to end in the lab: each command run on a node (scripts/lab node
// NODE -- weirctl … -o json) against a known situation, and its output checked:
//
//   a server pod (agnhost netexec on 80) on weir-worker, isolated by a
//   NetworkPolicy that allows TCP 80 from pods labelled role=client; a client
//   pod on the same node.
//
//   status    ready true, the node's name
//   endpoints the server with its host veth (present), isolated for ingress
//   policy    the server: ingress isolated, selected by the policy
//   trace     client → server: 80 allow, 81 deny; the kernel agrees (the
//             source is on the node the command runs on)
//   drops     a denied probe (client → server:81) resolved to the server pod
//   ipam      the server's allocation (its address, its pod)
//   doctor    ok true
//
// The lab is reused when `scripts/lab up` finds it up (and then left up); one
// this file started is taken down at the end. Needs root.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agnhostPath, inNetns, labState, run } from '../../lab/commands/common.ts';
import { AGNHOST_IMAGE } from '../../lab/kind.ts';
import type { LabState } from '../../lab/state.ts';
import { itKeepsInvariants, lab, labKubectl, runningLabPod, UP_TIMEOUT_MS } from '../helpers/lab.ts';

const AGNHOST = AGNHOST_IMAGE;
const NS = 'e2e-weirctl';
const NODE = 'weir-worker';
const POLICY = 'server-allow-client-80';

/** `weirctl ARGS -o json` on a node; parsed. Non-zero exits are returned too (doctor exits 1 when not ok). */
async function ctl<T>(node: string, args: string[]): Promise<{ code: number; json: T; stderr: string }> {
  const r = await lab(['node', node, '--', 'weirctl', ...args, '-o', 'json']);
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`weirctl ${args.join(' ')} on ${node}: exit ${r.code}, not JSON\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  }
  return { code: r.code, json, stderr: r.stderr };
}

let state: LabState | undefined;

const k = (args: string[], input?: string, timeoutMs?: number): Promise<string> => labKubectl(state, args, input, timeoutMs);

interface PodRef {
  netnsPath: string;
  ip: string;
}
const pod = (name: string): Promise<PodRef> => runningLabPod(state, NS, name, 60_000);
async function connects(from: PodRef, ip: string, port: number): Promise<boolean> {
  if (!state) throw new Error('no lab');
  const r = await run(inNetns(from.netnsPath, [agnhostPath(state), 'connect', `${ip}:${port}`, '--timeout=1000ms', '--protocol=tcp']), { timeoutMs: 16_000 });
  return r.code === 0;
}

describe('weirctl in the lab', () => {
  let server: PodRef;
  let client: PodRef;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces)');
    const r = await lab(['up'], { timeoutMs: UP_TIMEOUT_MS });
    if (r.code !== 0) throw new Error(`scripts/lab up failed (exit ${r.code})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    state = labState();
    await k(['delete', 'namespace', NS, '--ignore-not-found', '--wait=true', '--timeout=120s'], undefined, 150_000);
    await k(['create', 'namespace', NS]);
    await k(
      ['apply', '-f', '-'],
      `apiVersion: v1
kind: Pod
metadata: {name: server, namespace: ${NS}, labels: {app: server}}
spec:
  nodeName: ${NODE}
  containers:
    - name: web
      image: ${AGNHOST}
      args: [netexec, --http-port=80]
      ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: ${NS}, labels: {role: client}}
spec:
  nodeName: ${NODE}
  containers:
    - name: client
      image: ${AGNHOST}
      args: [pause]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ${POLICY}, namespace: ${NS}}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {role: client}}}]
      ports: [{port: 80, protocol: TCP}]
`,
    );
    await k(['-n', NS, 'wait', '--for=condition=Ready', 'pod/server', 'pod/client', '--timeout=120s'], undefined, 150_000);
    const w = await lab(['wait', '--timeout', '90'], { timeoutMs: 120_000 });
    if (w.code !== 0) throw new Error(`scripts/lab wait: exit ${w.code}\n${w.stdout}\n${w.stderr}`);
    server = await pod('server');
    client = await pod('client');
  }, UP_TIMEOUT_MS + 300_000);

  afterAll(async () => {
    // The lab stays up for the tier's next file (the last one, lab-basic, takes it down).
    if (state) await k(['delete', 'namespace', NS, '--ignore-not-found', '--wait=false']).catch(() => '');
  }, 60_000);

  it('status: ready', async () => {
    const { code, json } = await ctl<{ ready: boolean; node: string }>(NODE, ['status']);
    expect(code).toBe(0);
    expect(json.ready).toBe(true);
    expect(json.node).toBe(NODE);
  });

  it('endpoints: the server with its host veth, isolated for ingress', async () => {
    type Ep = {
      namespace: string;
      name: string;
      ips: string[];
      hostVeth?: string;
      hostVethPresent?: boolean;
      ingress: { isolated: boolean; policies: string[] };
      egress: { isolated: boolean };
    };
    const { json } = await ctl<{ endpoints: Ep[] }>(NODE, ['endpoints']);
    const ep = json.endpoints.find((e) => e.namespace === NS && e.name === 'server');
    expect(ep, JSON.stringify(json.endpoints.map((e) => `${e.namespace}/${e.name}`))).toBeDefined();
    expect(ep?.ips).toContain(server.ip);
    expect(ep?.hostVeth).toMatch(/^weir[0-9a-f]+$/);
    expect(ep?.hostVethPresent).toBe(true);
    expect(ep?.ingress.isolated).toBe(true);
    expect(ep?.ingress.policies.some((p) => p.includes(POLICY))).toBe(true);
    expect(ep?.egress.isolated).toBe(false);
    const c = json.endpoints.find((e) => e.namespace === NS && e.name === 'client');
    expect(c?.ingress.isolated).toBe(false);
  });

  it('policy: the server is selected by the policy for ingress', async () => {
    type Dir = { isolated: boolean; policies: string[] };
    const { json } = await ctl<{ pod: string; node: string; ingress: Dir; egress: Dir }>(NODE, ['policy', `${NS}/server`]);
    expect(json.pod).toBe(`${NS}/server`);
    expect(json.node).toBe(NODE);
    expect(json.ingress.isolated).toBe(true);
    expect(json.ingress.policies.some((p) => p.includes(POLICY))).toBe(true);
    expect(json.egress.isolated).toBe(false);
  });

  it('trace: allow on 80, deny on 81, and the kernel agrees', async () => {
    type T = { verdict: string; agree: boolean | null; kernel: unknown };
    const allow = await ctl<T>(NODE, ['trace', '--from', `${NS}/client`, '--to', `${NS}/server`, '--port', '80']);
    expect(allow.json.verdict, JSON.stringify(allow.json)).toBe('allow');
    expect(allow.json.agree, JSON.stringify(allow.json.kernel)).toBe(true);
    const deny = await ctl<T>(NODE, ['trace', '--from', `${NS}/client`, '--to', `${NS}/server`, '--port', '81']);
    expect(deny.json.verdict, JSON.stringify(deny.json)).toBe('deny');
    expect(deny.json.agree, JSON.stringify(deny.json.kernel)).toBe(true);
    // And the probes agree with it.
    let ok = false;
    for (let i = 0; i < 3 && !ok; i++) ok = await connects(client, server.ip, 80);
    expect(ok).toBe(true);
  });

  it('drops: a denied probe appears, resolved to the server pod', async () => {
    type D = {
      direction: string;
      audit: boolean;
      src?: string;
      dst?: string;
      dport?: number;
      srcPod?: string;
      dstPod?: string;
      pod?: string;
      policies: string[];
    };
    expect(await connects(client, server.ip, 81)).toBe(false);
    let hit: D | undefined;
    let last: D[] = [];
    const deadline = Date.now() + 15_000;
    while (!hit && Date.now() < deadline) {
      last = (await ctl<{ drops: D[] }>(NODE, ['drops', '--limit', '500'])).json.drops;
      hit = last.find((d) => d.dst === server.ip && d.dport === 81 && d.src === client.ip);
      if (!hit) await sleep(500);
    }
    expect(hit, JSON.stringify(last.slice(0, 5))).toBeDefined();
    expect(hit?.direction).toBe('ingress');
    expect(hit?.audit).toBe(false);
    expect(hit?.pod).toBe(`${NS}/server`);
    expect(hit?.dstPod).toBe(`${NS}/server`);
    expect(hit?.srcPod).toBe(`${NS}/client`);
    expect(hit?.policies.some((p) => p.includes(POLICY))).toBe(true);
  });

  it('ipam: the server allocation', async () => {
    type A = { addresses: string[]; pod?: string; hostVeth?: string; hostVethPresent?: boolean; podExists?: boolean };
    const { json } = await ctl<{ allocations: A[] }>(NODE, ['ipam']);
    const a = json.allocations.find((x) => x.pod === `${NS}/server`);
    expect(a, JSON.stringify(json.allocations.map((x) => x.pod))).toBeDefined();
    expect(a?.addresses).toContain(server.ip);
    expect(a?.hostVethPresent).toBe(true);
    expect(a?.podExists).toBe(true);
  });

  it('doctor: ok', async () => {
    const { code, json } = await ctl<{ ok: boolean; checks: { name: string; ok: boolean; detail: string }[] }>(NODE, ['doctor']);
    expect(json.checks.filter((c) => !c.ok)).toEqual([]);
    expect(json.ok).toBe(true);
    expect(code).toBe(0);
  });

  itKeepsInvariants();
});
