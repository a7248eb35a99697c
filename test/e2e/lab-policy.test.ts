import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agnhostPath, inNetns, labState, type RunResult, run } from '../../lab/commands/common.ts';
import type { LabState } from '../../lab/state.ts';
import { PolicyEvaluator, podEndpoint } from '../../src/policy/evaluator.ts';
import type { ClusterState, Namespace, NetworkPolicy, Pod } from '../../src/policy/types.ts';
import { DOWN_TIMEOUT_MS, itKeepsInvariants, lab, labKubectl, labOk, runningLabPod, UP_TIMEOUT_MS } from '../helpers/lab.ts';
import { clientPod, httpPod, netprobePod, nsYaml, policyYaml } from '../helpers/lab-manifests.ts';
import { itRetriedRarely, RetryLedger } from '../helpers/retries.ts';

const TEST_NAMESPACES = ['e2e-pol-conn', 'e2e-pol-svc', 'e2e-pol-lat', 'e2e-pol-lbl-srv', 'e2e-pol-lbl-cli', 'e2e-pol-new', 'e2e-pol-json', 'x', 'y', 'z'];
/** Generous bound on a policy change's effect (the real figures are printed). */
const EFFECT_BOUND_MS = 10_000;

let state: LabState;

const k = (args: string[], input?: string, timeoutMs?: number): Promise<string> => labKubectl(state, args, input, timeoutMs);
const kJson = async <T>(args: string[]): Promise<T> => JSON.parse(await k([...args, '-o', 'json'])) as T;
const apply = (yaml: string): Promise<string> => k(['apply', '-f', '-'], yaml);

/** `scripts/lab wait`, which must settle. */
async function labWait(): Promise<number> {
  const r = await lab(['wait', '--timeout', '90'], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`scripts/lab wait: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  const m = /settled in ([\d.]+) s/.exec(r.stdout);
  return m ? Number(m[1]) * 1000 : r.ms;
}

async function deleteNamespaces(names: string[]): Promise<void> {
  await k(['delete', 'namespace', ...names, '--ignore-not-found', '--wait=true', '--timeout=180s'], undefined, 200_000);
}

// ---- manifests ----
// ---- pods and probes ----
interface PodRef {
  id: string;
  netnsPath: string;
  ip: string;
  node: string;
}

async function waitReady(ns: string, names: string[]): Promise<void> {
  await k(['-n', ns, 'wait', '--for=condition=Ready', ...names.map((n) => `pod/${n}`), '--timeout=120s'], undefined, 150_000);
}

const pod = (ns: string, name: string): Promise<PodRef> => runningLabPod(state, ns, name, 30_000);

/** One `agnhost connect` from the pod's netns; true when connected. */
async function connect(
  from: PodRef,
  ip: string,
  port: number,
  protocol: 'tcp' | 'udp' = 'tcp',
  timeoutMs = 1000,
): Promise<{ connected: boolean; r: RunResult }> {
  const r = await run(inNetns(from.netnsPath, [agnhostPath(state), 'connect', `${ip}:${port}`, `--timeout=${timeoutMs}ms`, `--protocol=${protocol}`]), {
    timeoutMs: timeoutMs + 15_000,
  });
  return { connected: r.code === 0, r };
}

/**
 * Asserts a verdict: must-connect probes get up to 3 tries (a busy machine
 * can starve one past its deadline); must-be-blocked probes get one, and
 * must not connect.
 */
async function expectVerdict(from: PodRef, ip: string, port: number, want: boolean, what: string, protocol: 'tcp' | 'udp' = 'tcp'): Promise<void> {
  const tries = want ? 3 : 1;
  let last: { connected: boolean; r: RunResult } | undefined;
  for (let i = 0; i < tries; i++) {
    last = await connect(from, ip, port, protocol);
    if (last.connected === want) {
      if (i > 0) console.log(`  note: ${what} connected on try ${i + 1}`);
      return;
    }
  }
  expect.fail(
    `${what}: ${from.id} -> ${ip}:${port}/${protocol}: expected ${want ? 'connected' : 'blocked'}, got ${last?.connected ? 'connected' : `blocked (${last?.r.stdout.trim() || last?.r.stderr.trim()})`}`,
  );
}

interface Probe {
  from: string;
  to: string;
  port: number;
  protocol: string;
  connected: boolean;
}

async function matrixJson(args: string[]): Promise<{ probes: Probe[]; stdout: string; ms: number }> {
  const r = await lab(['matrix', ...args, '-o', 'json'], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`scripts/lab matrix ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return { ...(JSON.parse(r.stdout) as { probes: Probe[] }), stdout: r.stdout, ms: r.ms };
}

const probeKey = (p: Pick<Probe, 'from' | 'to' | 'port' | 'protocol'>): string => `${p.from}>${p.to}:${p.port}/${p.protocol}`;

const retries = new RetryLedger();

/**
 * Runs the matrix until it equals `expected(probe)`: a probe that connected
 * where it must be blocked fails at once; one blocked where it must connect
 * (a starved prober) lets the matrix run again, up to `runs` times.
 */
async function matrixEquals(args: string[], expected: (p: Probe) => boolean, runs = 3): Promise<{ probes: Probe[]; attempts: number; ms: number }> {
  let misses: string[] = [];
  for (let attempt = 1; attempt <= runs; attempt++) {
    const m = await matrixJson(args);
    const opened = m.probes.filter((p) => p.connected && !expected(p)).map(probeKey);
    expect(opened, `probes that connected but must be blocked (matrix ${args.join(' ')})`).toEqual([]);
    misses = m.probes.filter((p) => !p.connected && expected(p)).map(probeKey);
    if (misses.length === 0) {
      retries.record(`matrix ${args.join(' ')}`, attempt);
      return { probes: m.probes, attempts: attempt, ms: m.ms };
    }
    console.log(
      `  matrix ${args.join(' ')}: attempt ${attempt}: ${misses.length} probe(s) that must connect did not: ${misses.slice(0, 6).join(' ')}; running it again`,
    );
  }
  retries.record(`matrix ${args.join(' ')}`, runs);
  return expect.fail(`matrix ${args.join(' ')}: after ${runs} runs, probes that must connect did not: ${misses.join(' ')}`);
}

// ---- timing a policy change ----
interface Sample {
  start: number;
  end: number;
  connected: boolean;
}

/**
 * Probes `from` → ip:port every ~100 ms (each probe 1 s at most, at most
 * `maxMs` in all) while `change` runs, until `want` has held for 5 probes in a
 * row. Returns when the new verdict started to hold, measured from the start
 * of `change` (the kubectl apply), with the probes' figures.
 */
async function timeFlip(
  from: PodRef,
  ip: string,
  port: number,
  want: boolean,
  change: () => Promise<unknown>,
  maxMs = 20_000,
): Promise<{ effectMs: number; lastOldMs: number; changeMs: number; probes: number }> {
  const samples: Sample[] = [];
  const t0 = performance.now();
  let changeMs = -1;
  const changing = change().then(() => (changeMs = performance.now() - t0));
  const inflight = new Set<Promise<void>>();
  const stable = (): boolean => {
    const done = samples.filter((s) => s.end > 0).sort((a, b) => a.start - b.start);
    return done.length >= 5 && done.slice(-5).every((s) => s.connected === want) && changeMs >= 0;
  };
  while (!stable() && performance.now() - t0 < maxMs) {
    const s: Sample = { start: performance.now() - t0, end: 0, connected: false };
    samples.push(s);
    const p = connect(from, ip, port, 'tcp', 1000).then((r) => {
      s.connected = r.connected;
      s.end = performance.now() - t0;
    });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
    await new Promise((r) => setTimeout(r, 100));
  }
  await changing;
  await Promise.all(inflight);
  const done = samples.sort((a, b) => a.start - b.start);
  // The new verdict holds from the first probe after the last one that saw the old verdict.
  let lastOld = -1;
  for (let i = 0; i < done.length; i++) if ((done[i] as Sample).connected !== want) lastOld = i;
  const first = done[lastOld + 1];
  if (!first)
    return expect.fail(`the verdict ${from.id} -> ${ip}:${port} did not become ${want ? 'connected' : 'blocked'} within ${maxMs} ms (${done.length} probes)`);
  // A connected verdict is known when the probe ends; a blocked one when its SYN went out (just after it started).
  const effectMs = want ? first.end : first.start;
  return { effectMs, lastOldMs: lastOld >= 0 ? (done[lastOld] as Sample).start : 0, changeMs, probes: done.length };
}

// ---- the suite ----
describe('scripts/lab: NetworkPolicy end to end', { timeout: 300_000 }, () => {
  let nodes: string[] = [];

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces)');
    const r = await lab(['up'], { timeoutMs: UP_TIMEOUT_MS });
    if (r.code !== 0) throw new Error(`scripts/lab up failed (exit ${r.code})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
    console.log(/already up/.test(r.stdout) ? 'scripts/lab up: reusing the running lab' : `scripts/lab up: started the lab in ${(r.ms / 1000).toFixed(1)} s`);
    state = labState();
    nodes = state.nodes.map((n) => n.name);
    await deleteNamespaces(TEST_NAMESPACES);
  }, UP_TIMEOUT_MS + 300_000);

  afterAll(async () => {
    if (!state) return;
    try {
      await deleteNamespaces([...TEST_NAMESPACES, 'netpol-demo']);
      await k(['delete', 'pod', 'client', '-n', 'default', '--ignore-not-found', '--wait=true', '--timeout=60s'], undefined, 90_000);
      await k(['label', 'namespace', 'default', 'purpose-']).catch(() => '');
    } catch (e) {
      console.error(`cleanup: ${(e as Error).message}`);
    }
    // The lab stays up for the tier's next file (the last one, lab-basic, takes it down).
  }, DOWN_TIMEOUT_MS + 300_000);

  it('the demo: every step as the design notes say, checked probe by probe', async () => {
    const r = await lab(['demo'], { timeoutMs: 600_000 });
    console.log(`scripts/lab demo: exit ${r.code} in ${(r.ms / 1000).toFixed(1)} s`);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    const out = r.stdout;
    expect(out).not.toMatch(/MISMATCH/);
    expect(out).toMatch(/== Result: all \d+ probes as expected/);
    const step = (n: number): string =>
      out.slice(out.indexOf(`== Step ${n}:`), out.indexOf(`== Step ${n + 1}:`) >= 0 ? out.indexOf(`== Step ${n + 1}:`) : out.indexOf('== Result'));
    // 1: no policy, everything connects, through the Services and to the pods.
    expect(step(1)).toMatch(/\[ok\]\s+client -> Service web-app \S+:80\/TCP: expected connects, observed connects \(answered by web-app-/);
    expect(step(1)).toMatch(/\[ok\]\s+web web-app-\S+ -> db pod database-\S+ \S+:5432\/TCP: expected connects, observed connects/);
    // 2: default-deny-ingress cuts the client off from web, and web from db.
    expect(step(2)).toMatch(/default-deny-ingress created/);
    expect(step(2)).toMatch(/\[ok\]\s+client -> Service web-app \S+:80\/TCP: expected blocked, observed blocked/);
    expect(step(2)).toMatch(/\[ok\]\s+web web-app-\S+ -> Service postgres \S+:5432\/TCP: expected blocked, observed blocked/);
    // 3: web-allow-frontend + the purpose=frontend label on default: the client reaches web, not db.
    expect(step(3)).toMatch(/namespace\/default labeled/);
    expect(step(3)).toMatch(/\[ok\]\s+client -> web pod web-app-\S+ \S+:80\/TCP: expected connects, observed connects/);
    expect(step(3)).toMatch(/\[ok\]\s+client -> db pod database-\S+ \S+:5432\/TCP: expected blocked, observed blocked/);
    // 4: db-policy: web reaches db, the client does not.
    expect(step(4)).toMatch(/\[ok\]\s+web web-app-\S+ -> db pod database-\S+ \S+:5432\/TCP: expected connects, observed connects/);
    expect(step(4)).toMatch(/\[ok\]\s+client -> Service postgres \S+:5432\/TCP: expected blocked, observed blocked/);
    expect(out).toMatch(/scripts\/lab kubectl delete namespace netpol-demo/);
    // After every policy change it waited for the agents, the way `scripts/lab wait` does.
    expect(out.match(/lab settled in/g)?.length ?? 0).toBeGreaterThanOrEqual(5);
    // The objects are left in place.
    const pols = await kJson<{ items: { metadata: { name: string } }[] }>(['-n', 'netpol-demo', 'get', 'networkpolicies']);
    expect(pols.items.map((p) => p.metadata.name).sort()).toEqual(['db-policy', 'default-deny-ingress', 'web-allow-frontend']);
  }, 660_000);

  it('same-node and cross-node pod pairs connect (TCP, UDP, SCTP)', async () => {
    const ns = 'e2e-pol-conn';
    const a = nodes[1] ?? (nodes[0] as string);
    const b = nodes[2] ?? (nodes[0] as string);
    await apply(
      [
        nsYaml(ns),
        netprobePod(ns, 'p1', { app: 'p' }, { node: a }),
        netprobePod(ns, 'p2', { app: 'p' }, { node: a }),
        netprobePod(ns, 'p3', { app: 'p' }, { node: b }),
      ].join('---\n'),
    );
    await waitReady(ns, ['p1', 'p2', 'p3']);
    await labWait();
    const pods = await Promise.all(['p1', 'p2', 'p3'].map((n) => pod(ns, n)));
    const nodeOf = new Map(pods.map((p) => [p.id, p.node]));
    const same = pods.filter((p) => p.node === a);
    expect(same.length, 'two pods on one node').toBe(2);
    if (a !== b) expect(nodeOf.get(`${ns}/p3`)).not.toBe(a);
    const m = await matrixEquals(['--namespaces', ns, '--ports', '80'], () => true);
    expect(m.probes).toHaveLength(3 * 2 * 3);
    const kinds = new Set(m.probes.map((p) => (nodeOf.get(p.from) === nodeOf.get(p.to) ? 'same-node' : 'cross-node')));
    expect([...kinds].sort()).toEqual(a === b ? ['same-node'] : ['cross-node', 'same-node']);
    console.log(
      `same/cross-node: ${m.probes.length} probes all connected (matrix ${(m.ms / 1000).toFixed(1)} s, ${m.attempts} run(s)); pods on ${pods.map((p) => `${p.id}@${p.node}`).join(', ')}`,
    );
  }, 300_000);

  it('a Service through kube-proxy: policy judged at the backend pod on the targetPort, through the ClusterIP too', async () => {
    const ns = 'e2e-pol-svc';
    const srvNode = nodes[1] ?? (nodes[0] as string);
    const cliNode = nodes[2] ?? (nodes[0] as string);
    await apply(
      [
        nsYaml(ns),
        httpPod(ns, 'server', { app: 'server' }, 80, srvNode),
        clientPod(ns, 'allowed', { role: 'allowed' }, cliNode),
        clientPod(ns, 'denied', { role: 'denied' }, cliNode),
        clientPod(ns, 'local-denied', { role: 'denied' }, srvNode),
        `apiVersion: v1\nkind: Service\nmetadata: {name: server, namespace: ${ns}}\nspec:\n  selector: {app: server}\n  ports: [{port: 8080, targetPort: 80, protocol: TCP}]\n`,
      ].join('---\n'),
    );
    await waitReady(ns, ['server', 'allowed', 'denied', 'local-denied']);
    const svc = await kJson<{ spec: { clusterIP: string } }>(['-n', ns, 'get', 'service', 'server']);
    const [server, allowed, denied, localDenied] = (await Promise.all(['server', 'allowed', 'denied', 'local-denied'].map((n) => pod(ns, n)))) as [
      PodRef,
      PodRef,
      PodRef,
      PodRef,
    ];
    const cip = svc.spec.clusterIP;
    // Before any policy: the Service works once kube-proxy has programmed it (poll, bounded).
    const deadline = Date.now() + 60_000;
    while (!(await connect(allowed, cip, 8080)).connected) {
      if (Date.now() > deadline) expect.fail(`the ClusterIP ${cip}:8080 never answered without a policy`);
    }
    await expectVerdict(denied, cip, 8080, true, 'no policy yet: denied -> ClusterIP');
    // Allow role=allowed on the pod's port 80 (the targetPort), nothing else.
    await apply(
      policyYaml(
        ns,
        'server-allow',
        `  podSelector: {matchLabels: {app: server}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{podSelector: {matchLabels: {role: allowed}}}]\n      ports: [{protocol: TCP, port: 80}]\n`,
      ),
    );
    await labWait();
    await expectVerdict(allowed, cip, 8080, true, 'allowed -> ClusterIP:8080 (targetPort 80 allowed)');
    await expectVerdict(allowed, server.ip, 80, true, 'allowed -> pod:80');
    await expectVerdict(denied, cip, 8080, false, 'denied -> ClusterIP:8080');
    await expectVerdict(denied, server.ip, 80, false, 'denied -> pod:80');
    await expectVerdict(localDenied, cip, 8080, false, 'denied (same node as the server) -> ClusterIP:8080');
    // A policy on the Service port (8080) does not match: the packet reaches the pod on 80.
    await apply(
      policyYaml(
        ns,
        'server-allow',
        `  podSelector: {matchLabels: {app: server}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{podSelector: {matchLabels: {role: allowed}}}]\n      ports: [{protocol: TCP, port: 8080}]\n`,
      ),
    );
    await labWait();
    await expectVerdict(allowed, cip, 8080, false, 'policy on port 8080 (the Service port): allowed -> ClusterIP:8080');
    await expectVerdict(allowed, server.ip, 80, false, 'policy on port 8080: allowed -> pod:80');
    console.log(`Service ${cip}:8080 → ${server.ip}:80 on ${server.node}: policy judged at the backend on the targetPort`);
  }, 300_000);

  it('a policy created, changed and deleted takes effect within a bounded time (apply → probes and matrix flip)', async () => {
    const ns = 'e2e-pol-lat';
    const srvNode = nodes[1] ?? (nodes[0] as string);
    const cliNode = nodes[2] ?? (nodes[0] as string);
    // Every pod serves TCP 80, so the whole matrix means something (not only the probes to the server).
    await apply(
      [
        nsYaml(ns),
        netprobePod(ns, 'server', { app: 'server' }, { node: srvNode, protocols: ['TCP'] }),
        netprobePod(ns, 'client', { role: 'client' }, { node: cliNode, protocols: ['TCP'] }),
        netprobePod(ns, 'other', { role: 'other' }, { node: cliNode, protocols: ['TCP'] }),
      ].join('---\n'),
    );
    await waitReady(ns, ['server', 'client', 'other']);
    await labWait();
    const [server, client, other] = (await Promise.all(['server', 'client', 'other'].map((n) => pod(ns, n)))) as [PodRef, PodRef, PodRef];
    await expectVerdict(client, server.ip, 80, true, 'no policy: client -> server');
    await expectVerdict(other, server.ip, 80, true, 'no policy: other -> server');
    const matrixArgs = ['--namespaces', ns, '--ports', '80', '--protocols', 'TCP'];
    const toServer = (p: Probe): boolean => p.to === `${ns}/server`;
    const figures: string[] = [];
    const step = async (what: string, from: PodRef, want: boolean, change: () => Promise<unknown>, expected: (p: Probe) => boolean): Promise<void> => {
      const t0 = performance.now();
      const f = await timeFlip(from, server.ip, 80, want, change);
      const m = await matrixEquals(matrixArgs, expected);
      const matrixMs = performance.now() - t0;
      figures.push(
        `${what}: kubectl ${f.changeMs.toFixed(0)} ms; ${from.id} -> server ${want ? 'connects' : 'blocked'} from +${f.effectMs.toFixed(0)} ms (last old verdict at +${f.lastOldMs.toFixed(0)} ms, ${f.probes} probes); full matrix as expected at +${matrixMs.toFixed(0)} ms (${m.attempts} run(s))`,
      );
      expect(f.effectMs, what).toBeLessThan(EFFECT_BOUND_MS);
    };
    const denyAll = policyYaml(ns, 'server-policy', '  podSelector: {matchLabels: {app: server}}\n  policyTypes: [Ingress]\n');
    const allowClient = policyYaml(
      ns,
      'server-policy',
      '  podSelector: {matchLabels: {app: server}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{podSelector: {matchLabels: {role: client}}}]\n',
    );
    await step(
      'create (deny all ingress to server)',
      client,
      false,
      () => apply(denyAll),
      (p) => !toServer(p),
    );
    await step(
      'change (allow role=client)',
      client,
      true,
      () => apply(allowClient),
      (p) => !toServer(p) || p.from === `${ns}/client`,
    );
    await expectVerdict(other, server.ip, 80, false, 'after the change: other -> server');
    await step(
      'delete',
      other,
      true,
      () => k(['-n', ns, 'delete', 'networkpolicy', 'server-policy']),
      () => true,
    );
    console.log(`policy change → effect (bound ${EFFECT_BOUND_MS} ms):\n  ${figures.join('\n  ')}`);
  }, 300_000);

  it('pod and namespace label changes take effect', async () => {
    const srvNs = 'e2e-pol-lbl-srv';
    const cliNs = 'e2e-pol-lbl-cli';
    await apply(
      [
        nsYaml(srvNs),
        nsYaml(cliNs),
        netprobePod(srvNs, 'server', { app: 'server' }, { node: nodes[1] ?? nodes[0], protocols: ['TCP'] }),
        clientPod(cliNs, 'client', { role: 'none' }, nodes[2] ?? nodes[0]),
      ].join('---\n'),
    );
    await waitReady(srvNs, ['server']);
    await waitReady(cliNs, ['client']);
    // Only pods labelled role=client in namespaces labelled team=blue.
    await apply(
      policyYaml(
        srvNs,
        'blue-clients',
        '  podSelector: {matchLabels: {app: server}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{namespaceSelector: {matchLabels: {team: blue}}, podSelector: {matchLabels: {role: client}}}]\n',
      ),
    );
    await labWait();
    const [server, client] = (await Promise.all([pod(srvNs, 'server'), pod(cliNs, 'client')])) as [PodRef, PodRef];
    const times: string[] = [];
    const check = async (what: string, change: string[] | undefined, want: boolean): Promise<void> => {
      if (change) {
        await k(change);
        times.push(`${what}: settled in ${((await labWait()) / 1000).toFixed(1)} s`);
      }
      await expectVerdict(client, server.ip, 80, want, what);
    };
    await check('neither label', undefined, false);
    await check('namespace labelled team=blue, pod not role=client', ['label', 'namespace', cliNs, 'team=blue'], false);
    await check('pod labelled role=client too', ['-n', cliNs, 'label', 'pod', 'client', 'role=client', '--overwrite'], true);
    await check('namespace label removed', ['label', 'namespace', cliNs, 'team-'], false);
    await check('namespace labelled again', ['label', 'namespace', cliNs, 'team=blue'], true);
    await check('pod label changed to role=other', ['-n', cliNs, 'label', 'pod', 'client', 'role=other', '--overwrite'], false);
    console.log(`label changes: ${times.join('; ')}`);
  }, 300_000);

  it('new pods of a selected set: a new server is protected from its start, a new client gets in', async () => {
    const ns = 'e2e-pol-new';
    const n1 = nodes[1] ?? (nodes[0] as string);
    const n2 = nodes[2] ?? (nodes[0] as string);
    await apply(
      [
        nsYaml(ns),
        netprobePod(ns, 'server-1', { app: 'server' }, { node: n1, protocols: ['TCP'] }),
        clientPod(ns, 'client-1', { role: 'client' }, n2),
        clientPod(ns, 'stranger', { role: 'stranger' }, n2),
      ].join('---\n'),
    );
    await waitReady(ns, ['server-1', 'client-1', 'stranger']);
    await apply(
      policyYaml(
        ns,
        'servers',
        '  podSelector: {matchLabels: {app: server}}\n  policyTypes: [Ingress]\n  ingress:\n    - from: [{podSelector: {matchLabels: {role: client}}}]\n',
      ),
    );
    await labWait();
    const [client1, stranger] = (await Promise.all([pod(ns, 'client-1'), pod(ns, 'stranger')])) as [PodRef, PodRef];
    // A new server pod (on the other node): isolated from its first packet, no wait for the agents.
    await apply(netprobePod(ns, 'server-2', { app: 'server' }, { node: n2, protocols: ['TCP'] }));
    await waitReady(ns, ['server-2']);
    const server2 = await pod(ns, 'server-2');
    await expectVerdict(stranger, server2.ip, 80, false, 'stranger -> the new server, as soon as it runs');
    await labWait();
    await expectVerdict(client1, server2.ip, 80, true, 'client-1 -> the new server');
    // A new client pod (role=client) on the server's node: allowed once the agents know it.
    const server1 = await pod(ns, 'server-1');
    await apply(clientPod(ns, 'client-2', { role: 'client' }, n1));
    await waitReady(ns, ['client-2']);
    await labWait();
    const client2 = await pod(ns, 'client-2');
    await expectVerdict(client2, server1.ip, 80, true, 'the new client-2 -> server-1');
    await expectVerdict(client2, server2.ip, 80, true, 'the new client-2 -> server-2');
    await expectVerdict(stranger, server1.ip, 80, false, 'stranger -> server-1');
  }, 300_000);

  it('scripts/lab matrix -o json prints exactly {"probes":[{from,to,port,protocol,connected}...]}, one probe per ordered pair, port and protocol', async () => {
    const ns = 'e2e-pol-json';
    await apply(
      [
        nsYaml(ns),
        netprobePod(ns, 'a', { pod: 'a' }, { node: nodes[1] ?? nodes[0], ports: [80, 81] }),
        netprobePod(ns, 'b', { pod: 'b' }, { node: nodes[2] ?? nodes[0], ports: [80, 81] }),
      ].join('---\n'),
    );
    await waitReady(ns, ['a', 'b']);
    await labWait();
    const m = await matrixJson(['--namespaces', ns, '--ports', '80,81', '--protocols', 'TCP,UDP,SCTP']);
    // One line, no pretty-printing, only "probes" at the top.
    expect(m.stdout.endsWith('\n')).toBe(true);
    expect(m.stdout.trimEnd().includes('\n')).toBe(false);
    expect(m.stdout).toBe(`${JSON.stringify(JSON.parse(m.stdout))}\n`);
    expect(Object.keys(JSON.parse(m.stdout) as object)).toEqual(['probes']);
    expect(m.probes).toHaveLength(2 * 1 * 2 * 3);
    for (const p of m.probes) {
      expect(Object.keys(p)).toEqual(['from', 'to', 'port', 'protocol', 'connected']);
      expect(p.from).toMatch(/^e2e-pol-json\/[ab]$/);
      expect(p.to).toMatch(/^e2e-pol-json\/[ab]$/);
      expect(p.from).not.toBe(p.to);
      expect([80, 81]).toContain(p.port);
      expect(['TCP', 'UDP', 'SCTP']).toContain(p.protocol);
      expect(typeof p.connected).toBe('boolean');
    }
    expect(new Set(m.probes.map(probeKey)).size).toBe(m.probes.length);
    // The table form of the same matrix: `port/PROTOCOL` headings, `.`/`X` cells.
    const t = await labOk(['matrix', '--namespaces', ns, '--ports', '80', '--protocols', 'TCP'], { timeoutMs: 120_000 });
    expect(t).toMatch(/^80\/TCP\n-\s+e2e-pol-json\/a\s+e2e-pol-json\/b\n/);
    expect(t).toMatch(/e2e-pol-json\/a\s+-\s+[.X]\n/);
  }, 300_000);

  it('the upstream model (x, y, z × a, b, c; 80, 81; TCP, UDP, SCTP) with a default-deny policy equals the reference evaluator', async () => {
    const docs: string[] = [];
    for (const ns of ['x', 'y', 'z']) {
      docs.push(nsYaml(ns, { ns }));
      for (const [i, p] of ['a', 'b', 'c'].entries()) docs.push(netprobePod(ns, p, { pod: p }, { node: nodes[i % nodes.length], ports: [80, 81] }));
    }
    await apply(docs.join('---\n'));
    for (const ns of ['x', 'y', 'z']) await waitReady(ns, ['a', 'b', 'c']);
    // Upstream's "default-deny-ingress" in x: every pod of x isolated for ingress, nothing allowed.
    await apply(policyYaml('x', 'default-deny-ingress', '  podSelector: {}\n  policyTypes: [Ingress]\n'));
    await labWait();
    // The expectation, from the objects as the API has them.
    const api = await kJson<{ items: (Pod & Namespace & NetworkPolicy & { kind: string })[] }>(['get', 'pods,namespaces,networkpolicies', '-A']);
    const nodesJson = await kJson<{ items: { metadata: { name: string }; status: { addresses?: { type: string; address: string }[] } }[] }>(['get', 'nodes']);
    const cluster: ClusterState = {
      pods: api.items.filter((o) => o.kind === 'Pod') as Pod[],
      namespaces: api.items.filter((o) => o.kind === 'Namespace') as Namespace[],
      policies: api.items.filter((o) => o.kind === 'NetworkPolicy') as NetworkPolicy[],
      nodes: nodesJson.items.map((n) => ({
        name: n.metadata.name,
        internalIPs: (n.status.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address),
      })),
    };
    const judge = new PolicyEvaluator(cluster);
    const split = (id: string): [string, string] => id.split('/') as [string, string];
    const expected = (p: Probe): boolean =>
      judge.evaluate({ src: podEndpoint(...split(p.from)), dst: podEndpoint(...split(p.to)), protocol: p.protocol as 'TCP', port: p.port }).allowed;
    const m = await matrixEquals(['--namespaces', 'x,y,z'], expected);
    expect(m.probes).toHaveLength(9 * 8 * 2 * 3);
    const blocked = m.probes.filter((p) => !p.connected);
    expect(blocked.length).toBe(3 * 8 * 2 * 3);
    expect(blocked.every((p) => p.to.startsWith('x/'))).toBe(true);
    const table = await labOk(['matrix', '--namespaces', 'x,y,z', '--ports', '80', '--protocols', 'TCP'], { timeoutMs: 120_000 });
    console.log(
      `upstream model, default-deny-ingress in x: ${m.probes.length} probes equal the reference evaluator (${blocked.length} blocked; matrix ${(m.ms / 1000).toFixed(1)} s, ${m.attempts} run(s))\n${table}`,
    );
  }, 600_000);

  itRetriedRarely(retries);
  itKeepsInvariants();
});
