// A "node" for NetworkPolicy kernel tests: one network namespace playing node
// n1 (lo up, 192.0.2.1/32 on lo), pods attached to it by the real plugin
// (dist/bin/weir ADD, so the veths, routes, forwarding and neighbour set-up
// are weir's own), a probe server in every pod (TCP and UDP servers and the
// SCTP observer of lab/probe on ports 80 and 81), and weir's PolicyEngine
// driving the `inet weir` table of the node namespace through libnftables.
//
//   const fx = usePolicyNode({ namespaces: { x: {ns: 'x'} }, pods: [{ namespace: 'x', name: 'a', labels: { pod: 'a' } }] });
//   it('...', async () => {
//     fx.node.apply([policy]);                 // engine.sync: one nft transaction, a diff after the first
//     const r = await fx.node.compare();       // kernel matrix vs the reference evaluator's
//     expect(r.mismatches, r.report).toEqual([]);
//   });
//
// Every pod lives on n1, so every pod is a local subject: a pod-to-pod packet
// is forwarded by the node namespace and meets both base chains, pod_egress
// for its source and pod_ingress for its destination.
//
// The ClusterState handed to the engine and to the evaluator is built from the
// fixture: the pods' REAL addresses from the CNI result, their labels (which
// tests may change), named container ports `serve-<port>-<proto>` for every
// port the servers listen on (plus per-pod extras), and the namespaces with
// their labels. Policies are plain JS objects (networking.k8s.io/v1 shape).
//
// Lifetime: beforeAll builds everything, afterAll tears it down (servers, DEL
// of every pod, namespaces, temp dir), also when a test or the set-up failed.
// Leftover namespaces of a crashed run are swept by prefix.
//
// Network safety: the plugin runs inside the node namespace (`ip netns exec`),
// probes and servers run inside pod namespaces (nsenter), nftables and
// conntrack are reached through handles opened inside the node namespace.
// Nothing is configured in the root namespace.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type MatrixPod, type MatrixProbe, type MatrixResult, renderMatrix, runMatrix } from '../../lab/probe/matrix.ts';
import { defaultNode, type ServerProcess, spawnServer } from '../../lab/probe/process.ts';
import type { SctpInitEvent } from '../../lab/probe/server.ts';
import { tableDrift } from '../../src/agent/kernel-drift.ts';
import { ConntrackHandle } from '../../src/netlink/conntrack-handle.ts';
import { LibNftables } from '../../src/nft/libnftables.ts';
import { parseTableListing } from '../../src/nft/listing.ts';
import { NetlinkElementWriter } from '../../src/nft/netlink-elements.ts';
import type { ClusterNetworkPolicy } from '../../src/policy/cnp-types.ts';
import { PolicyEngine, type SyncReport } from '../../src/policy/engine.ts';
import { PolicyEvaluator, podEndpoint } from '../../src/policy/evaluator.ts';
import type { Ruleset } from '../../src/policy/ruleset.ts';
import type { ClusterState, ContainerPort, Namespace, NetworkPolicy, Pod } from '../../src/policy/types.ts';
import { Netns } from '../../src/sys/netns.ts';
import { containerdArgs, expectSuccess, newContainerId, type PluginJson, runCni, weirBinary } from './cni.ts';
import { createNetns, sweepLeakedNetns, type TestNetns } from './netns.ts';
import { type EchoServer, openSession, type Session, startEchoServer } from './tcp-session.ts';

export const POD_CIDR = '10.244.1.0/24';
export const NODE_NAME = 'n1';
export const NODE_IP = '192.0.2.1';
export const PORTS = [80, 81] as const;
export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
export type Proto = (typeof PROTOCOLS)[number];

/** The container ports every pod declares: `serve-80-tcp`, `serve-80-udp`, ..., `serve-81-sctp`. */
export const SERVE_PORTS: readonly ContainerPort[] = PORTS.flatMap((port) =>
  PROTOCOLS.map((protocol) => ({ name: `serve-${port}-${protocol.toLowerCase()}`, containerPort: port, protocol })),
);

export interface PodInput {
  namespace: string;
  name: string;
  labels?: Record<string, string>;
  /** Named container ports besides SERVE_PORTS (e.g. `web` on 80 for one pod, on 81 for another). */
  extraPorts?: readonly ContainerPort[];
}

export interface NodePod {
  /** `namespace/name`. */
  readonly id: string;
  readonly namespace: string;
  readonly name: string;
  labels: Record<string, string>;
  readonly extraPorts: readonly ContainerPort[];
  readonly netns: TestNetns;
  readonly containerId: string;
  readonly uid: string;
  /** The CNI ADD result. */
  readonly result: PluginJson;
  /** The pod's IPv4 address, from the CNI result. */
  readonly ip: string;
  readonly server: ServerProcess;
  /** SCTP INITs the pod's observer reported since it started. */
  readonly sctpEvents: SctpInitEvent[];
  /** False while the pod is attached but not yet in the ClusterState (the API has not shown it yet). */
  published: boolean;
}

export interface PolicyNodeOptions {
  /** netns name prefix (swept on start); default `policy`. */
  prefix?: string;
  /** Namespaces and their labels (kubernetes.io/metadata.name is added by the policy core). */
  namespaces: Record<string, Record<string, string>>;
  pods: readonly PodInput[];
  /** Per-probe timeout of the matrix; default 1000 ms (env WEIR_POLICY_PROBE_MS overrides). */
  timeoutMs?: number;
}

export interface Comparison {
  observed: MatrixResult;
  expected: MatrixResult;
  /** Probes where the kernel and the evaluator disagree (no probe is retried: see compare()). */
  mismatches: { from: string; to: string; port: number; protocol: string; kernel: boolean; evaluator: boolean }[];
  /** A human-readable dump: the policies, the mismatches and both matrices (empty string when they agree). */
  report: string;
}

const key = (p: { from: string; to: string; port: number; protocol: string }): string => `${p.from}|${p.to}|${p.port}|${p.protocol}`;

export class PolicyNode {
  readonly node: TestNetns;
  readonly tmp: string;
  readonly dataDir: string;
  readonly nodeNetns: Netns;
  readonly nft: LibNftables;
  readonly engine: PolicyEngine;
  readonly elements: NetlinkElementWriter;
  readonly timeoutMs: number;
  readonly prefix: string;
  /** Live pods, in creation order. */
  readonly pods: NodePod[] = [];
  /** Current labels of each namespace. */
  readonly namespaceLabels = new Map<string, Record<string, string>>();
  /** The policies last applied. */
  policies: NetworkPolicy[] = [];
  /** The ClusterNetworkPolicies last applied (apply's `clusterPolicies`). */
  clusterPolicies: ClusterNetworkPolicy[] = [];
  lastReport: SyncReport | undefined;
  readonly #defaults: { ns: Map<string, Record<string, string>>; pods: Map<string, Record<string, string>> };
  readonly #children = new Set<ChildProcess>();
  /** Every pod ADDed and not yet DELeted, with its server if it started. */
  readonly #attached: {
    id: string;
    netns: TestNetns;
    containerId: string;
    uid: string;
    namespace: string;
    name: string;
    result: PluginJson;
    server: ServerProcess | undefined;
  }[] = [];
  readonly #podNetns: TestNetns[] = [];
  #conntrack: ConntrackHandle | undefined;

  private constructor(node: TestNetns, tmp: string, opts: PolicyNodeOptions) {
    this.node = node;
    this.tmp = tmp;
    this.dataDir = path.join(tmp, 'data');
    this.prefix = opts.prefix ?? 'policy';
    this.timeoutMs = Number(process.env.WEIR_POLICY_PROBE_MS ?? opts.timeoutMs ?? 1000);
    this.nodeNetns = Netns.open(node.path);
    this.nft = new LibNftables({ netns: this.nodeNetns });
    // As the agent runs it: element-only changes straight to nf_tables over netlink.
    this.elements = NetlinkElementWriter.open(this.nodeNetns);
    // Strict: a diff that fails here is a bug in weir (nothing else edits this table), not drift to paper over.
    this.engine = new PolicyEngine(this.nft, { nodeName: NODE_NAME }, this.elements, { strict: true });
    for (const [n, l] of Object.entries(opts.namespaces)) this.namespaceLabels.set(n, { ...l });
    this.#defaults = { ns: new Map([...this.namespaceLabels].map(([n, l]) => [n, { ...l }])), pods: new Map() };
  }

  /** Creates the node namespace and temp dir, attaches every pod and starts its server. */
  static async start(opts: PolicyNodeOptions): Promise<PolicyNode> {
    weirBinary(); // fail with the build hint before creating anything
    const prefix = opts.prefix ?? 'policy';
    sweepLeakedNetns(prefix);
    const node = createNetns(`${prefix}-node`);
    let tmp: string | undefined;
    let fx: PolicyNode | undefined;
    try {
      node.sh(['ip', 'link', 'set', 'lo', 'up']);
      node.sh(['ip', 'addr', 'add', `${NODE_IP}/32`, 'dev', 'lo']);
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), `weir-${prefix}-`));
      fx = new PolicyNode(node, tmp, opts);
      // Sequential ADDs: deterministic addresses, and weir's IPAM is not what is under test.
      for (const p of opts.pods) await fx.addPod(p);
      for (const p of fx.pods) fx.#defaults.pods.set(p.id, { ...p.labels });
      return fx;
    } catch (e) {
      if (fx) await fx.close().catch(() => {});
      else {
        node.destroy();
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      }
      throw e;
    }
  }

  /** weir's network configuration for this node. */
  cniConfig(): Record<string, unknown> {
    return { cniVersion: '1.1.0', name: 'pols', type: 'weir', podCIDRs: [POD_CIDR], dataDir: this.dataDir };
  }

  pod(id: string): NodePod {
    const p = this.pods.find((x) => x.id === id);
    if (!p) throw new Error(`no pod ${id} on the node`);
    return p;
  }

  /**
   * Attaches a pod (CNI ADD in the node namespace) and starts its probe
   * server. `publish: false` keeps it out of the ClusterState until
   * publish(): the kernel then sees an address of the pod CIDR weir does not
   * know yet.
   */
  async addPod(input: PodInput, o: { publish?: boolean } = {}): Promise<NodePod> {
    const id = `${input.namespace}/${input.name}`;
    if (this.pods.some((p) => p.id === id)) throw new Error(`pod ${id} exists`);
    const netns = createNetns(`${this.prefix}-${input.namespace}-${input.name}`);
    this.#podNetns.push(netns);
    netns.sh(['ip', 'link', 'set', 'lo', 'up']);
    const containerId = newContainerId();
    const uid = randomUUID();
    const args = containerdArgs(containerId, { namespace: input.namespace, name: input.name, uid });
    const out = runCni({ node: this.node.name, command: 'ADD', containerId, netns: netns.path, ifname: 'eth0', args, config: this.cniConfig() });
    const result = expectSuccess(out, `ADD ${id}`);
    const ip = ((result?.ips ?? []) as { address: string }[]).map((i) => i.address.split('/')[0] ?? '').find((a) => a.includes('.'));
    if (!ip) throw new Error(`ADD ${id}: no IPv4 address in ${JSON.stringify(result)}`);
    // Registered before the server starts, so close() DELs it even if the server fails.
    const partial = { id, namespace: input.namespace, name: input.name, netns, containerId, uid, result, ip };
    const pending = { ...partial, server: undefined as ServerProcess | undefined };
    this.#attached.push(pending);
    const server = await spawnServer({ netnsPath: netns.path, name: id, tcp: PORTS, udp: PORTS, sctp: PORTS });
    pending.server = server;
    const sctpEvents: SctpInitEvent[] = [];
    server.onSctpInit((ev) => sctpEvents.push(ev));
    const pod: NodePod = {
      ...partial,
      labels: { ...(input.labels ?? {}) },
      extraPorts: [...(input.extraPorts ?? [])],
      server,
      sctpEvents,
      published: o.publish ?? true,
    };
    this.pods.push(pod);
    return pod;
  }

  publish(id: string): void {
    this.pod(id).published = true;
  }

  /** Stops the pod's server, DELs it, deletes its namespace; the next apply() no longer has it. */
  async removePod(id: string): Promise<void> {
    const i = this.#attached.findIndex((a) => a.id === id);
    if (i < 0) throw new Error(`no pod ${id} attached`);
    const a = this.#attached[i]!;
    await a.server?.stop();
    this.#del(a);
    this.#attached.splice(i, 1);
    const j = this.pods.findIndex((p) => p.id === id);
    if (j >= 0) this.pods.splice(j, 1);
    a.netns.destroy();
  }

  #del(a: { id: string; netns: TestNetns; containerId: string; uid: string; namespace: string; name: string; result: PluginJson }): void {
    const args = containerdArgs(a.containerId, { namespace: a.namespace, name: a.name, uid: a.uid });
    const out = runCni({
      node: this.node.name,
      command: 'DEL',
      containerId: a.containerId,
      netns: a.netns.path,
      ifname: 'eth0',
      args,
      config: { ...this.cniConfig(), prevResult: a.result },
    });
    expectSuccess(out, `DEL ${a.id}`);
  }

  /** Puts every label back as start() made it (pods added later keep theirs). */
  resetLabels(): void {
    this.namespaceLabels.clear();
    for (const [n, l] of this.#defaults.ns) this.namespaceLabels.set(n, { ...l });
    for (const p of this.pods) {
      const d = this.#defaults.pods.get(p.id);
      if (d) p.labels = { ...d };
    }
  }

  // ---- the cluster as the API would serve it ----

  podObject(p: NodePod): Pod {
    return {
      metadata: { namespace: p.namespace, name: p.name, uid: p.uid, labels: { ...p.labels } },
      spec: { nodeName: NODE_NAME, containers: [{ ports: [...SERVE_PORTS, ...p.extraPorts].map((x) => ({ ...x })) }] },
      status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }], hostIP: NODE_IP, hostIPs: [{ ip: NODE_IP }] },
    };
  }

  namespaceObjects(): Namespace[] {
    return [...this.namespaceLabels].map(([name, labels]) => ({ metadata: { name, labels: { ...labels } } }));
  }

  /** The snapshot for `policies` (default: the ones last applied) with the fixture's current pods and labels. */
  state(policies: readonly NetworkPolicy[] = this.policies): ClusterState {
    return {
      pods: this.pods.filter((p) => p.published).map((p) => this.podObject(p)),
      namespaces: this.namespaceObjects(),
      policies: structuredClone([...policies]),
      nodes: [{ name: NODE_NAME, internalIPs: [NODE_IP], labels: { 'kubernetes.io/hostname': NODE_NAME } }],
      ...(this.clusterPolicies.length > 0 ? { clusterPolicies: structuredClone(this.clusterPolicies) } : {}),
    };
  }

  /**
   * Sets the policies (and, when given, replaces the labels of the listed
   * namespaces / pods `ns/name`; they stay until changed or resetLabels())
   * and syncs the engine: one nftables transaction, the whole table the first
   * time and a diff afterwards. Throws if a policy was refused (tests only
   * write valid ones). `clusterPolicies`, when given, replaces the
   * ClusterNetworkPolicies (they stay until changed).
   */
  apply(
    policies: readonly NetworkPolicy[],
    nsLabels?: Record<string, Record<string, string>>,
    podLabels?: Record<string, Record<string, string>>,
    clusterPolicies?: readonly ClusterNetworkPolicy[],
  ): SyncReport {
    for (const [n, l] of Object.entries(nsLabels ?? {})) this.namespaceLabels.set(n, { ...l });
    for (const [id, l] of Object.entries(podLabels ?? {})) this.pod(id).labels = { ...l };
    this.policies = structuredClone([...policies]);
    if (clusterPolicies) this.clusterPolicies = structuredClone([...clusterPolicies]);
    const report = this.engine.sync(this.state(), { options: { guardCIDRs: [POD_CIDR] } });
    this.lastReport = report;
    // The agent's drift check (kernel-drift.ts) must read every rule and element back as applied.
    const drift = tableDrift(this.engine.applied as Ruleset, parseTableListing(this.nft.list('inet', 'weir', { stateless: true })));
    if (drift.examples.length > 0) {
      const how = `${report.full ? 'full' : report.elementsOnly ? 'element writer' : 'nft diff'}, ${report.operations} operations`;
      throw new Error(`the kernel's table does not read back as applied (${how}): ${JSON.stringify(drift.examples)}`);
    }
    // Its cheap check: the table's use count is its chains and sets (kernel-verifier.ts).
    const rs = this.engine.applied as Ruleset;
    const use = this.elements.tableInfo('inet', 'weir')?.use;
    if (use !== rs.chains.size + rs.sets.size)
      throw new Error(`the kernel counts ${use} objects in the table, the applied ruleset has ${rs.chains.size + rs.sets.size}`);
    if (report.result.errors.length > 0) throw new Error(`policies refused by the compiler: ${report.result.errors.map((e) => e.message).join('; ')}`);
    return report;
  }

  /** `nft list table inet weir` in the node namespace. */
  table(): string {
    return this.nft.list('inet', 'weir');
  }

  // ---- connectivity ----

  conntrack(): ConntrackHandle {
    this.#conntrack ??= ConntrackHandle.open(this.nodeNetns);
    return this.#conntrack;
  }

  /**
   * The kernel's matrix over every live pod (ports 80/81, TCP/UDP/SCTP). By
   * default the node's conntrack entries of pod traffic are deleted first, as
   * the agent would after a change: a UDP probe that reuses the source port
   * of an earlier, replied probe within its timeout would otherwise ride that
   * entry as `established` and be let through whatever the new rules say.
   */
  async matrix(o: { flushConntrack?: boolean; pods?: readonly NodePod[] } = {}): Promise<MatrixResult> {
    const pods = o.pods ?? this.pods;
    if (o.flushConntrack ?? true) {
      const ips = new Set(this.pods.map((p) => p.ip));
      this.conntrack().deleteWhere((e) => ips.has(e.orig.src) || ips.has(e.orig.dst));
    }
    const mp: MatrixPod[] = pods.map((p) => ({ id: p.id, netnsPath: p.netns.path, ips: [p.ip], observer: p.server }));
    return runMatrix(mp, { ports: [...PORTS], protocols: [...PROTOCOLS], timeoutMs: this.timeoutMs });
  }

  /**
   * The same matrix from the reference evaluator over state(). A pod not yet
   * published is unknown to weir: its address is in the guarded pod CIDR, so
   * everything to and from it is expected dropped.
   */
  expected(o: { pods?: readonly NodePod[] } = {}): MatrixResult {
    const pods = o.pods ?? this.pods;
    const ev = new PolicyEvaluator(this.state());
    const probes: MatrixProbe[] = [];
    for (const port of PORTS) {
      for (const protocol of PROTOCOLS) {
        for (const src of pods) {
          for (const dst of pods) {
            if (src === dst) continue;
            const connected =
              src.published &&
              dst.published &&
              ev.evaluate({ src: podEndpoint(src.namespace, src.name), dst: podEndpoint(dst.namespace, dst.name), protocol, port }).allowed;
            probes.push({ from: src.id, to: dst.id, port, protocol, connected });
          }
        }
      }
    }
    return { probes };
  }

  /**
   * Probes the kernel and compares with the evaluator; `report` says
   * everything needed to diagnose a mismatch. No probe is retried: a
   * mismatch is a bug (in the compiler, the evaluator or the prober).
   */
  async compare(label = '', o: { pods?: readonly NodePod[] } = {}): Promise<Comparison> {
    const observed = await this.matrix(o);
    const expected = this.expected(o);
    const want = new Map(expected.probes.map((p) => [key(p), p.connected]));
    const mismatches: Comparison['mismatches'] = [];
    for (const p of observed.probes) {
      const e = want.get(key(p));
      if (e === undefined) throw new Error(`probe ${key(p)} has no expectation`);
      if (e !== p.connected) mismatches.push({ from: p.from, to: p.to, port: p.port, protocol: p.protocol, kernel: p.connected, evaluator: e });
    }
    if (observed.probes.length !== expected.probes.length)
      throw new Error(`matrix sizes differ: ${observed.probes.length} observed, ${expected.probes.length} expected`);
    let report = '';
    if (mismatches.length > 0) {
      const ids = (o.pods ?? this.pods).map((p) => p.id);
      report = [
        `=== ${label}: ${mismatches.length} probe(s) differ between the kernel and the evaluator ('.' connected, 'X' blocked; rows from, columns to)`,
        ...mismatches.map(
          (m) =>
            `  ${m.from} -> ${m.to} ${m.port}/${m.protocol}: kernel ${m.kernel ? 'connected' : 'blocked'}, evaluator ${m.evaluator ? 'allowed' : 'denied'}`,
        ),
        '--- pods',
        ...this.pods.map(
          (p) =>
            `  ${p.id} ${p.ip} ${JSON.stringify(p.labels)}${p.published ? '' : ' (unpublished)'}${p.extraPorts.length ? ` extra ports ${JSON.stringify(p.extraPorts)}` : ''}`,
        ),
        '--- namespaces',
        ...[...this.namespaceLabels].map(([n, l]) => `  ${n} ${JSON.stringify(l)}`),
        '--- policies',
        JSON.stringify(this.policies, null, 1),
        ...(this.clusterPolicies.length > 0 ? ['--- cluster policies', JSON.stringify(this.clusterPolicies, null, 1)] : []),
        '--- kernel',
        renderMatrix(observed, ids),
        '--- evaluator',
        renderMatrix(expected, ids),
      ].join('\n');
    }
    return { observed, expected, mismatches, report };
  }

  // ---- long-lived connections ----

  #spawnIn(pod: NodePod, script: string, argv: string[]): ChildProcess {
    const c = spawn('nsenter', [`--net=${pod.netns.path}`, '--', defaultNode(), '-e', script, '--', ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#children.add(c);
    c.on('close', () => this.#children.delete(c));
    c.stdin?.on('error', () => {});
    return c;
  }

  /** A TCP echo server on `port` in `pod` (see tcp-session.ts). */
  echoServer(pod: NodePod, port: number): Promise<EchoServer> {
    return startEchoServer((script, argv) => this.#spawnIn(pod, script, argv), pod.id, port);
  }

  /** A long-lived TCP connection from `from` to `to`:`port` (see tcp-session.ts). */
  session(from: NodePod, to: NodePod, port: number, o: { connectTimeoutMs?: number } = {}): Promise<Session> {
    return openSession((script, argv) => this.#spawnIn(from, script, argv), `${from.id} -> ${to.id}:${port}`, to.ip, port, o);
  }

  // ---- teardown ----

  /** Stops every server and helper process, DELs every pod, deletes the namespaces and the temp dir; throws the first error after trying everything. */
  async close(): Promise<void> {
    const errors: unknown[] = [];
    const attempt = async (fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (e) {
        errors.push(e);
      }
    };
    for (const c of this.#children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(this.#attached.map((a) => attempt(() => a.server?.stop(1000))));
    for (const a of this.#attached.splice(0).reverse()) await attempt(() => this.#del(a));
    this.pods.splice(0);
    await attempt(() => this.#conntrack?.close());
    await attempt(() => this.nft.close());
    await attempt(() => this.elements.close());
    await attempt(() => this.nodeNetns.close());
    for (const ns of this.#podNetns.splice(0).reverse()) await attempt(() => ns.destroy());
    await attempt(() => this.node.destroy());
    await attempt(() => fs.rmSync(this.tmp, { recursive: true, force: true }));
    if (errors.length > 0) throw errors[0];
  }
}

export interface PolicyNodeFixture {
  /** The node (after beforeAll). */
  readonly node: PolicyNode;
  /** ms spent in start(). */
  readonly startupMs: number;
}

/**
 * beforeAll: PolicyNode.start(opts); afterAll: close(), even when tests or
 * the start failed. Does nothing without root (the tests skip themselves).
 */
export function usePolicyNode(opts: PolicyNodeOptions, timeoutMs = 120_000): PolicyNodeFixture {
  let node: PolicyNode | undefined;
  let startupMs = 0;
  beforeAll(async () => {
    if (process.getuid?.() !== 0) return;
    const t0 = performance.now();
    node = await PolicyNode.start(opts);
    startupMs = performance.now() - t0;
  }, timeoutMs);
  afterAll(async () => {
    await node?.close();
    node = undefined;
  }, timeoutMs);
  return {
    get node(): PolicyNode {
      if (!node) throw new Error('the policy node is not running (beforeAll failed?)');
      return node;
    },
    get startupMs(): number {
      return startupMs;
    },
  };
}

/**
 * Runs and seed of a property test over the node: `<env>_RUNS` (default
 * `runs`) and `<env>_SEED` (default random) from the environment, so that a
 * printed seed replays a failure.
 */
export function propertyRuns(env: string, runs: number): { runs: number; seed: number } {
  return { runs: Number(process.env[`${env}_RUNS`] ?? runs), seed: Number(process.env[`${env}_SEED`] ?? Math.floor(Math.random() * 2 ** 31)) };
}

/**
 * The upstream e2e model: namespaces x, y, z (labelled ns=<name>), pods a, b,
 * c in each (labelled pod=<name>), every pod declaring the named port `web`
 * of WEB_PORT.
 */
export const E2E_NAMESPACES = ['x', 'y', 'z'] as const;
export const E2E_PODS = ['a', 'b', 'c'] as const;
/** `web`, a name that means a different port (or protocol) per pod: TCP 80 on every a, TCP 81 on every b, UDP 80 on every c. */
export const WEB_PORT = {
  a: { name: 'web', containerPort: 80, protocol: 'TCP' },
  b: { name: 'web', containerPort: 81, protocol: 'TCP' },
  c: { name: 'web', containerPort: 80, protocol: 'UDP' },
} as const satisfies Record<(typeof E2E_PODS)[number], ContainerPort>;
export const e2eModel = (): Pick<PolicyNodeOptions, 'namespaces' | 'pods'> => ({
  namespaces: Object.fromEntries(E2E_NAMESPACES.map((n) => [n, { ns: n }])),
  pods: E2E_NAMESPACES.flatMap((namespace) => E2E_PODS.map((name) => ({ namespace, name, labels: { pod: name }, extraPorts: [WEB_PORT[name]] }))),
});
