// bench-policy, part 2: a node namespace with two pods made by the real
// plugin (dist/bin/weir), an HTTP server (agnhost netexec) and iperf3 in one,
// ab and iperf3 -c in the other; new TCP connections per second and
// single-stream throughput under each condition (conditions.ts), interleaved
// in passes.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { LibNftables } from '../../../src/nft/libnftables.ts';
import { Netns } from '../../../src/sys/netns.ts';
import { BASE_ENV, IP, run } from '../lib/host.ts';
import { BENCH_POD_CIDR } from './cluster.ts';
import { type Condition, DENY_PROBE_PORT, makeConditions, type Pair } from './conditions.ts';
import type { RunContext } from './config.ts';
import { chainPackets } from './pair-tiers.ts';

/** The client and server pods as the API would have them (their addresses come from the plugin). */
const PAIR = {
  client: { namespace: 'ns-03', name: 'bench-client', labels: { app: 'web', tier: 'frontend', version: 'v1' } },
  server: { namespace: 'ns-07', name: 'bench-server', labels: { app: 'api', tier: 'backend', version: 'v1' } },
};

/** The datapath part: its conditions, each measured, added to `conditions` once all are made. */
export async function datapathPart(x: RunContext, root: string, weir: string, conditions: Condition[]): Promise<void> {
  const agnhost = tools(x, root);
  const pair = startPair(x, weir, agnhost);
  conditions.push(...makeConditions(x.cfg, x.extra, pair));
  await measure(x, conditions, agnhost, pair.serverIp);
  for (const [pod, p] of [
    [x.ns.client, PAIR.client],
    [x.ns.server, PAIR.server],
  ] as const) {
    try {
      cni(x, weir, 'DEL', pod, p.namespace, p.name);
    } catch (e) {
      x.log(`CNI DEL ${pod}: ${(e as Error).message}`);
    }
  }
}

/** agnhost (built by scripts/k8s/build the first time), and a check that ab, iperf3 and conntrack are installed. */
function tools(x: RunContext, root: string): string {
  // scripts/k8s/build prints its cache directory last; it builds the pinned binaries first if missing.
  const k8sBuild = (args: string[]): string =>
    run(path.join(root, 'scripts/k8s/build'), args, { timeoutMs: 3_600_000, env: process.env }).trim().split('\n').pop() ?? '';
  let agnhost = path.join(k8sBuild(['--print-dir']), 'agnhost');
  if (!fs.existsSync(agnhost)) {
    x.log('building agnhost (scripts/k8s/build; first time only, several minutes)');
    agnhost = path.join(k8sBuild([]), 'agnhost');
    if (!fs.existsSync(agnhost)) throw new Error(`scripts/k8s/build did not make ${agnhost}`);
  }
  for (const [bin, pkg] of [
    ['ab', 'apache2-utils'],
    ['iperf3', 'iperf3'],
    ['conntrack', 'conntrack'],
  ]) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`], { env: BASE_ENV }).status !== 0)
      throw new Error(`${bin} missing (apt-get install ${pkg}, or scripts/setup)`);
  }
  return agnhost;
}

function cni(x: RunContext, weir: string, verb: 'ADD' | 'DEL', pod: string, ns: string, podName: string): string {
  const conf = JSON.stringify({ cniVersion: '1.1.0', name: 'bench', type: 'weir', podCIDRs: [BENCH_POD_CIDR], dataDir: `${x.ns.tmp}/weir` });
  const vars = [
    `CNI_COMMAND=${verb}`,
    `CNI_CONTAINERID=${pod}`,
    `CNI_NETNS=/run/netns/${pod}`,
    'CNI_IFNAME=eth0',
    'CNI_PATH=/usr/lib/cni',
    `CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${podName}`,
  ];
  return x.ns.exec(x.ns.node, ['env', ...vars, weir], conf);
}

/** The node and the two pods, made by the plugin; the servers started and listening. */
function startPair(x: RunContext, weir: string, agnhost: string): Pair {
  const { ns } = x;
  ns.add(ns.node);
  ns.add(ns.client);
  ns.add(ns.server);
  const ips: Record<string, string> = {};
  for (const [pod, p] of [
    [ns.client, PAIR.client],
    [ns.server, PAIR.server],
  ] as const) {
    const res = JSON.parse(cni(x, weir, 'ADD', pod, p.namespace, p.name)) as { ips?: { address: string }[] };
    const a = res.ips?.[0]?.address?.split('/')[0];
    if (!a) throw new Error(`CNI ADD ${pod}: no address in ${JSON.stringify(res)}`);
    ips[pod] = a;
  }
  const clientIp = ips[ns.client] as string;
  const serverIp = ips[ns.server] as string;
  const hostPart = (a: string): number => Number(a.split('.')[3]);
  if (hostPart(clientIp) >= 20 || hostPart(serverIp) >= 20)
    throw new Error(`real pods got ${clientIp}, ${serverIp}: they would collide with the synthetic pods (from .20 up)`);
  // Many short connections from one client: reuse TIME_WAIT ports, use the whole port range.
  ns.exec(ns.client, ['sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1', 'net.ipv4.ip_local_port_range=1024 65000']);

  ns.startServer(ns.server, [agnhost, 'netexec', '--http-port=8080', '--udp-port=-1']);
  ns.startServer(ns.server, ['iperf3', '-s']);
  ns.waitListening(ns.server, 8080);
  ns.waitListening(ns.server, 5201);
  return { pods: { client: { ...PAIR.client, ip: clientIp }, server: { ...PAIR.server, ip: serverIp } }, clientIp, serverIp };
}

/** agnhost connect from the client: true when the server's kernel answered (connected or refused), false on timeout. */
function probe(x: RunContext, agnhost: string, server: string, port: number): boolean {
  const r = spawnSync(IP, ['netns', 'exec', x.ns.client, agnhost, 'connect', `${server}:${port}`, '--timeout=1s'], {
    env: BASE_ENV,
    encoding: 'utf8',
    timeout: 10_000,
  });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status === 0 || /REFUSED/.test(out)) return true;
  if (/TIMEOUT/.test(out)) return false;
  throw new Error(`agnhost connect ${server}:${port}: unexpected result (exit ${r.status}): ${out.trim()}`);
}

function ab(x: RunContext, server: string): number {
  const { requests, concurrency } = x.cfg;
  const out = x.ns.exec(
    x.ns.client,
    ['ab', '-q', '-r', '-n', String(requests), '-c', String(concurrency), `http://${server}:8080/echo?msg=hello`],
    undefined,
    300_000,
  );
  const rate = Number(/Requests per second:\s+([\d.]+)/.exec(out)?.[1]);
  const failed = Number(/Failed requests:\s+(\d+)/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const complete = Number(/Complete requests:\s+(\d+)/.exec(out)?.[1]);
  if (!Number.isFinite(rate) || failed !== 0 || non2xx !== 0 || complete !== requests)
    throw new Error(`ab: ${complete} complete, ${failed} failed, ${non2xx} non-2xx:\n${out}`);
  return rate;
}

function iperf(x: RunContext, server: string): number {
  const secs = x.cfg.iperfSecs;
  const out = x.ns.exec(x.ns.client, ['iperf3', '-c', server, '-t', String(secs), '-J'], undefined, (secs + 30) * 1000);
  const j = JSON.parse(out) as { end?: { sum_received?: { bits_per_second?: number } }; error?: string };
  const bps = j.end?.sum_received?.bits_per_second;
  if (j.error || typeof bps !== 'number') throw new Error(`iperf3: ${j.error ?? 'no result'}`);
  return bps;
}

/** Packets counted by the ingress rules of each of `policies` (namespace/name) in the weir table. */
function ingressCounters(nft: LibNftables, policies: readonly string[]): Map<string, number> {
  const text = nft.runScript('list table inet weir');
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const ref = policies.find((r) => line.includes(`"${r} ingress[`));
    const n = Number(/counter packets (\d+)/.exec(line)?.[1] ?? 0);
    if (ref && n > 0) out.set(ref, (out.get(ref) ?? 0) + n);
  }
  return out;
}

/**
 * The passes: an ab pass measures every condition once (a few seconds in
 * all), an iperf pass likewise; the two kinds alternate until both counts
 * are done.
 */
async function measure(x: RunContext, conditions: Condition[], agnhost: string, serverIp: string): Promise<void> {
  const { ns, cfg } = x;
  const netns = Netns.open(`/run/netns/${ns.node}`);
  const nft = new LibNftables({ netns });
  try {
    const set = (c: Condition): void => {
      nft.runScript('flush ruleset');
      ns.exec(ns.node, ['conntrack', '-F'], undefined, 30_000);
      c.apply(nft);
    };
    // Warm-up, not recorded: the server's first requests, the page cache of the tools.
    set(conditions[0] as Condition);
    ab(x, serverIp);
    iperf(x, serverIp);
    const p: Pass = { x, conditions, agnhost, serverIp, nft, set, checked: new Set<string>() };
    for (let i = 0; i < Math.max(cfg.abPasses, cfg.rounds); i++) {
      if (i < cfg.abPasses) await pass(p, 'ab', i);
      if (i < cfg.rounds) await pass(p, 'iperf', i);
      x.log(`datapath pass ${i + 1}/${Math.max(cfg.abPasses, cfg.rounds)} done`);
    }
    nft.runScript('flush ruleset');
  } finally {
    nft.close();
    netns.close();
  }
}

interface Pass {
  x: RunContext;
  conditions: Condition[];
  agnhost: string;
  serverIp: string;
  nft: LibNftables;
  /** Sets a condition's table up in the node namespace, after `flush ruleset` and `conntrack -F`. */
  set: (c: Condition) => void;
  /** The conditions measured once already, and so checked. */
  checked: Set<string>;
}

/**
 * One pass: every condition measured once, in an order rotated per pass, so
 * no condition always runs first or after the same neighbour. Ratios are
 * taken within a pass, between measurements seconds apart, so slow changes
 * in the machine's load cancel.
 */
async function pass(p: Pass, kind: 'ab' | 'iperf', n: number): Promise<void> {
  const { x, conditions, checked } = p;
  for (let i = 0; i < conditions.length; i++) {
    const c = conditions[(i + n) % conditions.length] as Condition;
    p.set(c);
    if (!checked.has(c.key)) {
      // The policy is in force: a port the pair's policies do not open behaves as the oracle says.
      const got = probe(x, p.agnhost, p.serverIp, DENY_PROBE_PORT);
      if (got !== c.probeAllowed)
        throw new Error(
          `${c.label}: a connection to :${DENY_PROBE_PORT} was ${got ? 'answered' : 'dropped'}, expected it ${c.probeAllowed ? 'answered' : 'dropped'}`,
        );
      x.ns.exec(x.ns.node, ['conntrack', '-F'], undefined, 30_000);
    }
    await x.checkpoint();
    if (kind === 'ab') c.rate.push(ab(x, p.serverIp));
    else c.bps.push(iperf(x, p.serverIp));
    if (!checked.has(c.key)) noteCounters(p.nft, c);
    checked.add(c.key);
    await x.checkpoint();
  }
}

/** After a condition's first measurement: which rules counted the pair's connections, into its note; throws when the expected ones counted none. */
function noteCounters(nft: LibNftables, c: Condition): void {
  const sp = c.serverPolicies ?? [];
  if (sp.length > 0) {
    // The pair's connections went through the server's policy chains: which policy's rules accepted them.
    const counts = ingressCounters(nft, sp);
    if (counts.size === 0) throw new Error(`${c.label}: no ingress rule of the server's policies counted a packet`);
    const by = [...counts.keys()].map((r) => `${r} (${sp.indexOf(r) + 1} of ${sp.length})`);
    c.note = `${c.note ?? ''}; accepted by ${by.join(', ')}`;
  }
  if (c.passChains) {
    // The pair's connections crossed the Admin tier: its Pass rules counted them, in both directions.
    const listing = nft.runScript('list table inet weir');
    const sp = chainPackets(listing, c.passChains.server);
    const cp = chainPackets(listing, c.passChains.client);
    if (sp === 0 || cp === 0) throw new Error(`${c.label}: the pair's Admin Pass rules counted ${sp} (server ingress) and ${cp} (client egress) packets`);
    c.note = `${c.note ?? ''}; Pass rules counted ${sp} and ${cp} packets`;
  }
}
