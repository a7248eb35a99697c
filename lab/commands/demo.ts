// `scripts/lab demo`: the NetworkPolicy walk-through of the design notes,
// narrated and checked step by step against the lab.
//
//   netpol-demo   web-app: Deployment, 2 replicas, app=web, agnhost netexec on :80, Service web-app 80 → 80
//                 database: Deployment, 1 replica, app=db, agnhost netexec on :5432, Service postgres 5432 → 5432
//   default       client: a pod (agnhost pause) the probes start from
//
//   1. no policy: everything connects
//   2. default-deny-ingress (netpol-demo, every pod, Ingress): the client is cut off from web and db, web from db
//   3. web-allow-frontend (namespaces labelled purpose=frontend may reach app=web on TCP 80):
//      the client stays cut off until `default` is labelled purpose=frontend, then reaches web (only web)
//   4. db-policy (only app=web reaches app=db on TCP 5432): both web replicas reach the database, the client still not
//
// Every probe is a curl run in the source pod's netns (what `scripts/lab exec
// NS/POD -- curl ...` runs; the command is shown), through the Services'
// ClusterIPs (kube-proxy) and straight to the pod IPs, with one line saying
// what was expected and what was observed. After each change the demo waits
// the way `scripts/lab wait` does (every pod Running, every agent has applied
// the API state), and for kube-proxy to have programmed the Services; it
// never sleeps. Exit 1 on any mismatch.
//
// Idempotent: a previous run's objects are deleted first. The objects stay in
// place at the end; the last lines say how to remove them.
import { AGNHOST_IMAGE } from '../kind.ts';
import type { LabState } from '../state.ts';
import { inNetns, kubectl, kubectlJson, kubectlOk, LabCommandError, labState, podNetnsPath, run, runningPods, sleep } from './common.ts';
import { waitForLab } from './wait.ts';

export const DEMO_NAMESPACE = 'netpol-demo';
const AGNHOST = AGNHOST_IMAGE;
const STEP_TIMEOUT_MS = 180_000;

export const DEMO_APP = `apiVersion: v1
kind: Namespace
metadata:
  name: ${DEMO_NAMESPACE}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-app
  namespace: ${DEMO_NAMESPACE}
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: ${AGNHOST}
          args: [netexec, --http-port=80]
          ports:
            - containerPort: 80
          readinessProbe:
            httpGet: {path: /healthz, port: 80}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web-app
  namespace: ${DEMO_NAMESPACE}
spec:
  selector:
    app: web
  ports:
    - protocol: TCP
      port: 80
      targetPort: 80
  type: ClusterIP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: database
  namespace: ${DEMO_NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
        - name: postgres
          image: ${AGNHOST}
          args: [netexec, --http-port=5432]
          ports:
            - containerPort: 5432
          readinessProbe:
            httpGet: {path: /healthz, port: 5432}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: postgres
  namespace: ${DEMO_NAMESPACE}
spec:
  selector:
    app: db
  ports:
    - protocol: TCP
      port: 5432
      targetPort: 5432
  type: ClusterIP
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: default
  labels:
    app: client
spec:
  containers:
    - name: client
      image: ${AGNHOST}
      args: [pause]
`;

export const DEFAULT_DENY_INGRESS = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: default-deny-ingress
  namespace: ${DEMO_NAMESPACE}
spec:
  podSelector: {}
  policyTypes:
    - Ingress
`;

export const WEB_ALLOW_FRONTEND = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web-allow-frontend
  namespace: ${DEMO_NAMESPACE}
spec:
  podSelector:
    matchLabels:
      app: web
  policyTypes:
    - Ingress
  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              purpose: frontend
      ports:
        - protocol: TCP
          port: 80
`;

export const DB_POLICY = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: db-policy
  namespace: ${DEMO_NAMESPACE}
spec:
  podSelector:
    matchLabels:
      app: db
  policyTypes:
    - Ingress
  ingress:
    - from:
        - podSelector:
            matchLabels:
              app: web
      ports:
        - protocol: TCP
          port: 5432
`;

interface Endpoint {
  /** How the line names it: `client`, `web-app-…-abcde`, `Service web-app`. */
  label: string;
  ip: string;
  port: number;
}

interface Source {
  /** `default/client`. */
  id: string;
  label: string;
  netnsPath: string;
}

interface DemoCtx {
  state: LabState;
  say: (line: string) => void;
  client: Source;
  webPods: (Source & { ip: string; name: string })[];
  dbPod: Source & { ip: string; name: string };
  webSvc: Endpoint;
  dbSvc: Endpoint;
  probes: number;
  mismatches: string[];
}

type PodJson = { metadata: { name: string; namespace: string; deletionTimestamp?: string }; status?: { podIP?: string; phase?: string } };
type SvcJson = {
  metadata: { name: string; namespace: string };
  spec: { clusterIP: string; ports: { port: number; targetPort?: number | string; protocol?: string }[] };
};

interface ProbeOutcome {
  connected: boolean;
  /** The expected/observed line and the command that reproduces the probe. */
  lines: string[];
  mismatch?: string;
}

/** One curl in the source's netns; connected = curl exit 0 (the TCP connect and the HTTP answer). */
async function runProbe(from: Source, to: Endpoint, expect: boolean): Promise<ProbeOutcome> {
  const url = `http://${to.ip}:${to.port}/hostname`;
  const argv = ['curl', '-s', '--connect-timeout', '1', '--max-time', '5', url];
  const r = await run(inNetns(from.netnsPath, argv), { timeoutMs: 15_000 });
  const connected = r.code === 0;
  const word = (c: boolean): string => (c ? 'connects' : 'blocked');
  const why = connected
    ? r.stdout.trim()
      ? ` (answered by ${r.stdout.trim()})`
      : ''
    : ` (curl exit ${r.code}${r.code === 28 ? ', timed out' : r.code === 7 ? ', refused' : ''})`;
  const ok = connected === expect;
  const line = `${ok ? '[ok]      ' : '[MISMATCH]'} ${from.label} -> ${to.label} ${to.ip}:${to.port}/TCP: expected ${word(expect)}, observed ${word(connected)}${why}`;
  return { connected, lines: [line, `           $ scripts/lab exec ${from.id} -- ${argv.join(' ')}`], ...(ok ? {} : { mismatch: line }) };
}

/** Runs the probes in parallel, then reports them in order. */
async function probeSet(ctx: DemoCtx, set: { from: Source; to: Endpoint; expect: boolean }[]): Promise<void> {
  const outcomes = await Promise.all(set.map((p) => runProbe(p.from, p.to, p.expect)));
  for (const o of outcomes) {
    for (const l of o.lines) ctx.say(`  ${l}`);
    ctx.probes++;
    if (o.mismatch) ctx.mismatches.push(o.mismatch);
  }
}

/** Polls `check` (no fixed sleeps: a short pause between looks) until it returns a value or the deadline passes. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = STEP_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new LabCommandError(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(250);
  }
}

/** kube-proxy on every node has the Service's ClusterIP and exactly-these endpoints' chains in its nftables table. */
async function waitKubeProxy(
  ctx: DemoCtx,
  svcs: { ns: string; name: string; clusterIP: string; port: number; targetPort: number; ips: string[] }[],
): Promise<void> {
  const t0 = Date.now();
  await until('kube-proxy to program the Services on every node', async () => {
    for (const n of ctx.state.nodes) {
      const r = await run(inNetns(n.netns, ['nft', 'list', 'table', 'ip', 'kube-proxy']), { timeoutMs: 10_000 });
      if (r.code !== 0) return undefined;
      for (const s of svcs) {
        if (!r.stdout.includes(`${s.clusterIP} . tcp . ${s.port} : goto service-`)) return undefined;
        for (const ip of s.ips) if (!r.stdout.includes(`${s.ns}/${s.name}/tcp/__${ip}/${s.targetPort}`)) return undefined;
      }
    }
    return true;
  });
  ctx.say(
    `  kube-proxy has programmed ${svcs.map((s) => `${s.ns}/${s.name} ${s.clusterIP}:${s.port} → ${s.ips.map((ip) => `${ip}:${s.targetPort}`).join(', ')}`).join('; ')} on every node (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
  );
}

/** What `scripts/lab wait` does, narrated with an indent; a LabCommandError when it does not settle. */
async function settle(ctx: Pick<DemoCtx, 'state' | 'say'>): Promise<void> {
  const r = await waitForLab(ctx.state, {
    timeoutMs: STEP_TIMEOUT_MS,
    say: (l) => ctx.say(l.startsWith('waiting for:') ? '  $ scripts/lab wait' : `    ${l}`),
  });
  if (!r.ok) throw new LabCommandError(`the lab did not settle: ${r.summary}`);
}

async function apply(ctx: DemoCtx, yaml: string, what: string): Promise<void> {
  ctx.say(`  $ scripts/lab kubectl apply -f - <<< '${what}'`);
  const out = await kubectlOk(ctx.state, ['apply', '-f', '-'], { input: yaml });
  for (const l of out.trim().split('\n')) if (l.trim()) ctx.say(`    ${l.trim()}`);
}

function indent(yaml: string): string {
  return yaml
    .trimEnd()
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n');
}

/** Deletes what a previous run left: the namespace (and so its pods, Services, policies), the client, default's label. */
async function cleanup(ctx: Pick<DemoCtx, 'state' | 'say'>): Promise<void> {
  const t0 = Date.now();
  const ns = await kubectl(ctx.state, ['get', 'namespace', DEMO_NAMESPACE, '-o', 'name']);
  const client = await kubectl(ctx.state, ['get', 'pod', 'client', '-n', 'default', '-o', 'name']);
  if (ns.code !== 0 && client.code !== 0) {
    ctx.say('  nothing left from a previous run');
  } else {
    ctx.say(
      `  deleting a previous run's objects: ${[ns.code === 0 ? `namespace ${DEMO_NAMESPACE}` : '', client.code === 0 ? 'pod default/client' : ''].filter(Boolean).join(', ')}`,
    );
    const del = await Promise.all([
      kubectl(ctx.state, ['delete', 'namespace', DEMO_NAMESPACE, '--ignore-not-found', '--wait=true', '--timeout=180s'], { timeoutMs: 200_000 }),
      kubectl(ctx.state, ['delete', 'pod', 'client', '-n', 'default', '--ignore-not-found', '--wait=true', '--timeout=120s'], { timeoutMs: 140_000 }),
    ]);
    for (const d of del) if (d.code !== 0) throw new LabCommandError(`cleanup: kubectl delete: ${d.stderr.trim()}`);
  }
  await kubectlOk(ctx.state, ['label', 'namespace', 'default', 'purpose-', '--overwrite']).catch(() => '');
  ctx.say(`  clean (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}

async function labSource(state: LabState, namespace: string, name: string, label: string): Promise<Source> {
  const pods = await runningPods();
  const p = pods.find((x) => x.namespace === namespace && x.name === name && x.phase === 'Running');
  const netnsPath = p ? podNetnsPath(state, p) : undefined;
  if (!p || !netnsPath) throw new LabCommandError(`pod ${namespace}/${name} does not run on any lab node`);
  return { id: `${namespace}/${name}`, label, netnsPath };
}

async function deploy(ctx: Omit<DemoCtx, 'client' | 'webPods' | 'dbPod' | 'webSvc' | 'dbSvc'>): Promise<DemoCtx> {
  const { state, say } = ctx;
  say(
    `  $ scripts/lab kubectl apply -f -   # namespace ${DEMO_NAMESPACE}: Deployment web-app (2 × app=web, :80) + Service web-app, Deployment database (app=db, :5432) + Service postgres; pod default/client`,
  );
  const out = await kubectlOk(state, ['apply', '-f', '-'], { input: DEMO_APP });
  for (const l of out.trim().split('\n')) say(`    ${l.trim()}`);
  const t0 = Date.now();
  for (const d of ['web-app', 'database'])
    await kubectlOk(state, ['-n', DEMO_NAMESPACE, 'rollout', 'status', `deployment/${d}`, '--timeout=180s'], { timeoutMs: 200_000 });
  await kubectlOk(state, ['-n', 'default', 'wait', '--for=condition=Ready', 'pod/client', '--timeout=180s'], { timeoutMs: 200_000 });
  say(`  web-app, database and client are Ready (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  const live = (p: PodJson): boolean => !p.metadata.deletionTimestamp && p.status?.phase === 'Running' && !!p.status.podIP;
  const webJson = (await kubectlJson<{ items: PodJson[] }>(state, ['-n', DEMO_NAMESPACE, 'get', 'pods', '-l', 'app=web'])).items.filter(live);
  const dbJson = (await kubectlJson<{ items: PodJson[] }>(state, ['-n', DEMO_NAMESPACE, 'get', 'pods', '-l', 'app=db'])).items.filter(live);
  if (webJson.length !== 2 || dbJson.length !== 1)
    throw new LabCommandError(`expected 2 web pods and 1 db pod running, found ${webJson.length} and ${dbJson.length}`);
  const webPods = await Promise.all(
    webJson.map(async (p) => ({
      ...(await labSource(state, DEMO_NAMESPACE, p.metadata.name, `web ${p.metadata.name}`)),
      ip: p.status?.podIP as string,
      name: p.metadata.name,
    })),
  );
  const d = dbJson[0] as PodJson;
  const dbPod = { ...(await labSource(state, DEMO_NAMESPACE, d.metadata.name, `db ${d.metadata.name}`)), ip: d.status?.podIP as string, name: d.metadata.name };
  const client = await labSource(state, 'default', 'client', 'client');
  const svc = async (name: string): Promise<SvcJson> => kubectlJson<SvcJson>(state, ['-n', DEMO_NAMESPACE, 'get', 'service', name]);
  const [ws, ds] = await Promise.all([svc('web-app'), svc('postgres')]);
  const c: DemoCtx = {
    ...ctx,
    client,
    webPods,
    dbPod,
    webSvc: { label: 'Service web-app', ip: ws.spec.clusterIP, port: 80 },
    dbSvc: { label: 'Service postgres', ip: ds.spec.clusterIP, port: 5432 },
  };
  const where = (await runningPods()).filter((p) => p.namespace === DEMO_NAMESPACE || (p.namespace === 'default' && p.name === 'client'));
  for (const p of where) say(`    ${p.namespace}/${p.name} on ${p.node}, ${p.ips.join(' ')}`);
  say(`    Service web-app ${c.webSvc.ip}:80, Service postgres ${c.dbSvc.ip}:5432`);
  await waitKubeProxy(c, [
    { ns: DEMO_NAMESPACE, name: 'web-app', clusterIP: c.webSvc.ip, port: 80, targetPort: 80, ips: webPods.map((p) => p.ip) },
    { ns: DEMO_NAMESPACE, name: 'postgres', clusterIP: c.dbSvc.ip, port: 5432, targetPort: 5432, ips: [dbPod.ip] },
  ]);
  await settle(c);
  return c;
}

const podEp = (p: { ip: string; name: string }, port: number, kind: string): Endpoint => ({ label: `${kind} pod ${p.name}`, ip: p.ip, port });

/** The probes every step runs, with what is expected of each. */
async function probeAll(ctx: DemoCtx, e: { clientWeb: boolean; clientDb: boolean; webDb: boolean }): Promise<void> {
  const { client, webPods, dbPod, webSvc, dbSvc } = ctx;
  const db = podEp(dbPod, 5432, 'db');
  await probeSet(ctx, [
    { from: client, to: webSvc, expect: e.clientWeb },
    ...webPods.map((w) => ({ from: client, to: podEp(w, 80, 'web'), expect: e.clientWeb })),
    { from: client, to: dbSvc, expect: e.clientDb },
    { from: client, to: db, expect: e.clientDb },
    ...webPods.flatMap((w) => [
      { from: w, to: dbSvc, expect: e.webDb },
      { from: w, to: db, expect: e.webDb },
    ]),
  ]);
}

export async function runDemo(say: (line: string) => void): Promise<{ probes: number; mismatches: string[]; ms: number }> {
  const t0 = Date.now();
  const state = labState();
  const base = { state, say, probes: 0, mismatches: [] as string[] };
  say(`weir lab demo: NetworkPolicy step by step (namespace ${DEMO_NAMESPACE}, a client in default), on ${state.nodes.map((n) => n.name).join(', ')}`);
  say('');
  say('== Step 0: clean up a previous run');
  await cleanup(base);
  say('');
  say(`== Step 1: deploy the application; no NetworkPolicy yet, so every pod can reach every other pod`);
  const ctx = await deploy(base);
  await probeAll(ctx, { clientWeb: true, clientDb: true, webDb: true });
  say('');
  say(`== Step 2: default-deny-ingress: every pod in ${DEMO_NAMESPACE} is isolated for ingress, and no rule allows anything`);
  say(indent(DEFAULT_DENY_INGRESS));
  await apply(ctx, DEFAULT_DENY_INGRESS, 'default-deny-ingress');
  await settle(ctx);
  say('  the client is cut off from web-app (the same curl now times out), and so from the database; inside the namespace too, web cannot reach db:');
  await probeAll(ctx, { clientWeb: false, clientDb: false, webDb: false });
  say('');
  say('== Step 3: web-allow-frontend: namespaces labelled purpose=frontend may reach app=web on TCP 80');
  say(indent(WEB_ALLOW_FRONTEND));
  await apply(ctx, WEB_ALLOW_FRONTEND, 'web-allow-frontend');
  await settle(ctx);
  say('  namespace default has no purpose=frontend label yet, so the client is still cut off from web:');
  await probeSet(ctx, [{ from: ctx.client, to: ctx.webSvc, expect: false }]);
  say('  $ scripts/lab kubectl label namespace default purpose=frontend');
  const lbl = await kubectlOk(state, ['label', 'namespace', 'default', 'purpose=frontend', '--overwrite']);
  say(`    ${lbl.trim()}`);
  await settle(ctx);
  say('  now the client reaches web (Service and both pods); db and web → db stay blocked by default-deny-ingress:');
  await probeAll(ctx, { clientWeb: true, clientDb: false, webDb: false });
  say('');
  say('== Step 4: db-policy: only pods labelled app=web may reach app=db, on TCP 5432');
  say(indent(DB_POLICY));
  await apply(ctx, DB_POLICY, 'db-policy');
  await settle(ctx);
  say('  both web replicas reach the database (Service and pod IP); the client still reaches web but not the database:');
  await probeAll(ctx, { clientWeb: true, clientDb: false, webDb: true });
  say('');
  return { probes: ctx.probes, mismatches: ctx.mismatches, ms: Date.now() - t0 };
}

/** `scripts/lab demo`: 0 when every probe saw what was expected, 1 otherwise (or when the lab is not up). */
export async function demoCommand(): Promise<number> {
  const out = (l: string): void => void process.stdout.write(`${l}\n`);
  const err = (l: string): void => void process.stderr.write(`lab: demo: ${l}\n`);
  let r: Awaited<ReturnType<typeof runDemo>>;
  try {
    r = await runDemo(out);
  } catch (e) {
    err(e instanceof Error ? e.message : String(e));
    return 1;
  }
  if (r.mismatches.length === 0) out(`== Result: all ${r.probes} probes as expected (${(r.ms / 1000).toFixed(1)} s)`);
  else {
    out(`== Result: ${r.mismatches.length} of ${r.probes} probes NOT as expected (${(r.ms / 1000).toFixed(1)} s):`);
    for (const m of r.mismatches) out(`  ${m}`);
  }
  out('');
  out('The demo objects are left in place. To remove them:');
  out(`  scripts/lab kubectl delete namespace ${DEMO_NAMESPACE}`);
  out('  scripts/lab kubectl delete pod client -n default');
  out('  scripts/lab kubectl label namespace default purpose-');
  return r.mismatches.length === 0 ? 0 : 1;
}
