// Host-firewall mode end to end in the lab (scripts/lab up --host-firewall):
//
//   - the node's table has the host_input/host_output chains;
//   - a hostNetwork server pod protected by a NetworkPolicy: allowed and
//     denied clients, on the same node and on another node;
//   - a HostFirewallPolicy that denies all ingress to a node still leaves the
//     failsafe ports (tcp 22, tcp 10250) open, and closes another port;
//   - the same policy in mode Audit: the port connects again, and the drop log
//     (weirctl drops -o json on the node) has an audit record, direction host;
//   - host-firewall mode turned off (DaemonSet env WEIR_HOST_FIREWALL=false):
//     no host_input/host_output chain remains.
//
// Only one lab runs per machine: a running lab without host firewall is taken
// down first; a running one with it is reused. The lab is always taken down at
// the end (the last step changes its mode). Needs root.
import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agnhostPath, inNetns, labState, run } from '../../lab/commands/common.ts';
import { AGNHOST_IMAGE } from '../../lab/kind.ts';
import { type LabState, labDir, readState } from '../../lab/state.ts';
import { DOWN_TIMEOUT_MS, itKeepsInvariants, lab, labKubectl, labOk, runningLabPod, UP_TIMEOUT_MS } from '../helpers/lab.ts';
import { itRetriedRarely, RetryLedger } from '../helpers/retries.ts';

const AGNHOST = AGNHOST_IMAGE;
const NS = 'e2e-hostfw';
const HFP = 'e2e-hostfw-deny-all';
const WORKER = 'weir-worker';
const WORKER2 = 'weir-worker2';

let state: LabState | undefined;

const k = (args: string[], input?: string, timeoutMs?: number): Promise<string> => labKubectl(state, args, input, timeoutMs);
const apply = (yaml: string): Promise<string> => k(['apply', '-f', '-'], yaml);

async function labWait(): Promise<void> {
  await labOk(['wait', '--timeout', '90'], { timeoutMs: 120_000 });
}

const nftTable = (node: string): Promise<string> => labOk(['node', node, '--', 'nft', 'list', 'table', 'inet', 'weir']);
const hasHostChains = (t: string): { input: boolean; output: boolean } => ({ input: /\bchain host_input\b/.test(t), output: /\bchain host_output\b/.test(t) });

function clientPod(name: string, role: string, node: string): string {
  return `apiVersion: v1
kind: Pod
metadata: {name: ${name}, namespace: ${NS}, labels: {role: ${role}}}
spec:
  nodeName: ${node}
  containers:
    - name: client
      image: ${AGNHOST}
      args: [pause]
`;
}

interface PodRef {
  id: string;
  netnsPath: string;
  ip: string;
}

const pod = (ns: string, name: string): Promise<PodRef> => runningLabPod(state, ns, name, 60_000);

type Outcome = 'connected' | 'refused' | 'timeout' | 'error';

/** One TCP `agnhost connect` from the pod's netns (as scripts/lab matrix probes): connected, refused (RST: nothing listens) or timeout (dropped). */
async function probe(from: PodRef, ip: string, port: number, timeoutMs = 1000): Promise<Outcome> {
  if (!state) throw new Error('no lab');
  const r = await run(inNetns(from.netnsPath, [agnhostPath(state), 'connect', `${ip}:${port}`, `--timeout=${timeoutMs}ms`, '--protocol=tcp']), {
    timeoutMs: timeoutMs + 15_000,
  });
  if (r.code === 0) return 'connected';
  const out = `${r.stdout}${r.stderr}`;
  return /REFUSED/.test(out) ? 'refused' : /TIMEOUT/.test(out) ? 'timeout' : 'error';
}
const connects = async (from: PodRef, ip: string, port: number): Promise<boolean> => (await probe(from, ip, port)) === 'connected';

const retries = new RetryLedger();

/**
 * Must-connect probes get 3 tries (a busy machine starves a prober);
 * must-be-blocked ones get exactly one, and must time out (dropped), not be
 * refused (which would only mean nothing listens).
 */
async function expectConnect(from: PodRef, ip: string, port: number, want: boolean, what: string): Promise<void> {
  const tries = want ? 3 : 1;
  let got: Outcome = 'error';
  let i = 0;
  while (i < tries) {
    got = await probe(from, ip, port);
    i++;
    if (got === 'connected') break;
  }
  if (want) retries.record(`${what}: ${from.id} -> ${ip}:${port}/tcp`, i);
  expect(got, `${what}: ${from.id} -> ${ip}:${port}/tcp`).toBe(want ? 'connected' : 'timeout');
}

/** Polls until the probe gives `want` (a policy change reaching the agent), or fails after `ms`. */
async function eventually(from: PodRef, ip: string, port: number, want: boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  let got: Outcome = 'error';
  for (;;) {
    got = await probe(from, ip, port);
    if (want ? got === 'connected' : got === 'timeout') return;
    if (Date.now() > deadline) expect.fail(`${what}: ${from.id} -> ${ip}:${port}/tcp: still ${got} after ${ms} ms`);
    await sleep(500);
  }
}

/** TCP listeners in a node's netns (node -e), started by the test and killed by it. */
const listeners: ChildProcess[] = [];
function listenInNode(netns: string, ports: number[]): Promise<void> {
  const script = `const net=require('net');for(const p of ${JSON.stringify(ports)}){const s=net.createServer(c=>{c.on('error',()=>{});c.end('hostfw-'+p+'\\n')});s.on('error',e=>console.log('port '+p+': '+e.code));s.listen(p,()=>console.log('listening '+p));}`;
  const child = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  listeners.push(child);
  child.on('exit', (code, sig) => console.log(`  listener in ${netns} (${ports.join(',')}) exited: code ${code} signal ${sig}`));
  child.stderr?.on('data', (b: Buffer) => console.log(`  listener in ${netns} stderr: ${b.toString().trim()}`));
  // Ready when every port has answered: "listening P", or "port P: CODE" (already served, e.g. by the node).
  return new Promise((resolve, reject) => {
    let seen = 0;
    const timer = setTimeout(() => reject(new Error(`listeners in ${netns} (${ports.join(',')}): ${seen} of ${ports.length} ready after 30 s`)), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`listeners in ${netns} exited (code ${code}) before all of ${ports.join(',')} were ready`));
    });
    child.stdout?.on('data', (b: Buffer) => {
      seen += (b.toString().match(/listening|port \d+:/g) ?? []).length;
      console.log(`  listener in ${netns}: ${b.toString().trim()}`);
      if (seen >= ports.length) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

function hfpYaml(mode: 'Enforce' | 'Audit'): string {
  return `apiVersion: weir.dev/v1alpha1
kind: HostFirewallPolicy
metadata: {name: ${HFP}}
spec:
  nodeSelector: {matchLabels: {kubernetes.io/hostname: ${WORKER}}}
  mode: ${mode}
  policyTypes: [Ingress]
  ingress: []
`;
}

describe('host firewall in the lab', () => {
  let workerIP = '';
  let workerNetns = '';
  const clients: Record<string, PodRef> = {};

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces)');
    const running = readState(labDir());
    if (running && !running.hostFirewall) {
      console.log('a lab without host firewall is running: taking it down');
      await labOk(['down'], { timeoutMs: DOWN_TIMEOUT_MS });
    }
    const r = await lab(['up', '--host-firewall'], { timeoutMs: UP_TIMEOUT_MS });
    if (r.code !== 0) throw new Error(`scripts/lab up --host-firewall failed (exit ${r.code})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    state = labState();
    expect(state.hostFirewall).toBe(true);
    const w = state.nodes.find((n) => n.name === WORKER);
    if (!w) throw new Error(`no node ${WORKER} in the lab`);
    workerIP = w.ip;
    workerNetns = w.netns;
    await k(['delete', 'hostfirewallpolicy', HFP, '--ignore-not-found']);
    await k(['delete', 'namespace', NS, '--ignore-not-found', '--wait=true', '--timeout=120s'], undefined, 150_000);
  }, UP_TIMEOUT_MS + 300_000);

  afterAll(async () => {
    for (const c of listeners) c.kill('SIGKILL');
    try {
      if (state) await k(['delete', 'hostfirewallpolicy', HFP, '--ignore-not-found']).catch(() => '');
    } finally {
      const r = await lab(['down'], { timeoutMs: DOWN_TIMEOUT_MS });
      if (r.code !== 0) console.error(`scripts/lab down (afterAll): exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    }
  }, DOWN_TIMEOUT_MS + 120_000);

  it('has the host_input and host_output chains on the node', async () => {
    const t = await nftTable(WORKER);
    expect(hasHostChains(t)).toEqual({ input: true, output: true });
  });

  it('enforces a NetworkPolicy on a hostNetwork server pod, for clients on the same and on another node', async () => {
    await k(['create', 'namespace', NS]);
    await apply(`apiVersion: v1
kind: Pod
metadata: {name: hostsrv, namespace: ${NS}, labels: {app: hostsrv}}
spec:
  nodeName: ${WORKER}
  hostNetwork: true
  containers:
    - name: server
      image: ${AGNHOST}
      # porter answers HTTP on each SERVE_PORT_<n> with that variable's value.
      args: [porter]
      env: [{name: SERVE_PORT_8080, value: hostsrv}]
      ports: [{containerPort: 8080, protocol: TCP}]
`);
    await apply(`apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: hostsrv-allowed-only, namespace: ${NS}}
spec:
  podSelector: {matchLabels: {app: hostsrv}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {role: allowed}}}]
`);
    await apply(
      [
        clientPod('allowed-same', 'allowed', WORKER),
        clientPod('denied-same', 'denied', WORKER),
        clientPod('allowed-other', 'allowed', WORKER2),
        clientPod('denied-other', 'denied', WORKER2),
      ].join('---\n'),
    );
    await k(
      [
        '-n',
        NS,
        'wait',
        '--for=condition=Ready',
        'pod/hostsrv',
        'pod/allowed-same',
        'pod/denied-same',
        'pod/allowed-other',
        'pod/denied-other',
        '--timeout=120s',
      ],
      undefined,
      150_000,
    );
    await labWait();
    for (const n of ['allowed-same', 'denied-same', 'allowed-other', 'denied-other']) clients[n] = await pod(NS, n);

    // The server answers with its pod name (a client on the node itself is always allowed).
    const r = await lab(['node', WORKER, '--', 'curl', '-s', '--max-time', '3', `http://${workerIP}:8080/`]);
    expect(r.stdout).toContain('hostsrv');

    await expectConnect(clients['allowed-same'] as PodRef, workerIP, 8080, true, 'allowed client, same node');
    await expectConnect(clients['allowed-other'] as PodRef, workerIP, 8080, true, 'allowed client, other node');
    await expectConnect(clients['denied-same'] as PodRef, workerIP, 8080, false, 'denied client, same node');
    await expectConnect(clients['denied-other'] as PodRef, workerIP, 8080, false, 'denied client, other node');
  }, 300_000);

  it('weirctl trace judges a flow to the hostNetwork server as host-firewall mode enforces it, and the kernel agrees', async () => {
    interface Trace {
      verdict: string;
      ingress: { policies: string[] };
      kernel: { verdict?: string; scope?: string };
      agree: boolean | null;
    }
    const trace = async (node: string, from: string, to: string): Promise<Trace> =>
      JSON.parse(await labOk(['node', node, '--', 'weirctl', 'trace', '--from', `${NS}/${from}`, '--to', to, '--port', '8080', '-o', 'json'])) as Trace;
    // Same node: the kernel judges both halves (pod egress, host input).
    for (const to of [`${NS}/hostsrv`, workerIP]) {
      const denied = await trace(WORKER, 'denied-same', to);
      expect(denied, `denied-same -> ${to}`).toMatchObject({
        verdict: 'deny',
        ingress: { policies: [`${NS}/hostsrv-allowed-only`] },
        kernel: { verdict: 'deny', scope: 'both' },
        agree: true,
      });
      expect(await trace(WORKER, 'allowed-same', to), `allowed-same -> ${to}`).toMatchObject({ verdict: 'allow', kernel: { verdict: 'allow' }, agree: true });
    }
    // Another node: the evaluator denies; the source node's kernel passes its egress half, and says so.
    expect(await trace(WORKER2, 'denied-other', workerIP)).toMatchObject({ verdict: 'deny', kernel: { verdict: 'allow', scope: 'egress' }, agree: true });
  }, 120_000);

  it('a deny-all HostFirewallPolicy leaves the failsafe ports (22, 10250) open and closes 9999', async () => {
    const from = clients['denied-other'] ?? (await pod(NS, 'denied-other'));
    // Listeners for the probed ports (22 and 10250 may have none in the lab: EADDRINUSE is fine, one is there).
    await listenInNode(workerNetns, [22, 10250, 9999]);
    await expectConnect(from, workerIP, 9999, true, 'no host policy yet: 9999 open');

    await apply(hfpYaml('Enforce'));
    await eventually(from, workerIP, 9999, false, 'deny-all host policy: 9999 blocked');
    await labWait();
    await expectConnect(from, workerIP, 22, true, 'failsafe tcp 22');
    await expectConnect(from, workerIP, 10250, true, 'failsafe tcp 10250');
    await expectConnect(from, workerIP, 9999, false, 'non-failsafe 9999');
    const t = await nftTable(WORKER);
    expect(t).toMatch(/host_failsafe_in/);
  }, 180_000);

  it('mode Audit: the port connects again and the drop log has an audit record (direction host)', async () => {
    const from = clients['denied-other'] ?? (await pod(NS, 'denied-other'));
    await apply(hfpYaml('Audit'));
    await eventually(from, workerIP, 9999, true, 'audit host policy: 9999 open again');
    await expectConnect(from, workerIP, 9999, true, 'audit: 9999');

    type Drop = { direction: string; audit: boolean; dport?: number; src?: string; dst?: string; chain?: string };
    let drops: Drop[] = [];
    const deadline = Date.now() + 15_000;
    for (;;) {
      const out = await labOk(['node', WORKER, '--', 'weirctl', 'drops', '--limit', '500', '-o', 'json']);
      drops = (JSON.parse(out) as { drops: Drop[] }).drops;
      if (drops.some((d) => d.audit && d.direction === 'host' && d.dport === 9999)) break;
      if (Date.now() > deadline) break;
      await connects(from, workerIP, 9999);
      await sleep(1000);
    }
    const rec = drops.find((d) => d.audit && d.direction === 'host' && d.dport === 9999);
    expect(rec, `an audit record for ${from.ip} -> ${workerIP}:9999 in ${JSON.stringify(drops.slice(0, 5))}`).toBeDefined();
    expect(rec?.src).toBe(from.ip);
    expect(rec?.dst).toBe(workerIP);
  }, 180_000);

  it('turning host-firewall mode off removes every host rule', async () => {
    const ds = JSON.parse(await k(['get', 'daemonset', '-A', '-l', 'app.kubernetes.io/name=weir', '-o', 'json'])) as {
      items: { metadata: { name: string; namespace: string } }[];
    };
    const d = ds.items[0];
    if (!d) throw new Error('no weir DaemonSet');
    await k(['-n', d.metadata.namespace, 'set', 'env', `daemonset/${d.metadata.name}`, 'WEIR_HOST_FIREWALL=false']);
    await k(['-n', d.metadata.namespace, 'rollout', 'status', `daemonset/${d.metadata.name}`, '--timeout=240s'], undefined, 260_000);
    await labWait();
    const deadline = Date.now() + 60_000;
    let chains: Record<string, { input: boolean; output: boolean }> = {};
    for (;;) {
      chains = {};
      for (const n of state?.nodes ?? []) chains[n.name] = hasHostChains(await nftTable(n.name));
      if (Object.values(chains).every((c) => !c.input && !c.output)) break;
      if (Date.now() > deadline) break;
      await sleep(1000);
    }
    for (const [n, c] of Object.entries(chains)) expect(c, `host chains on ${n}`).toEqual({ input: false, output: false });
    const t = await nftTable(WORKER);
    expect(t).not.toMatch(/host_/);
  }, 400_000);

  itRetriedRarely(retries);
  itKeepsInvariants();
});
