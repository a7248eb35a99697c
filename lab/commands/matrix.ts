// `scripts/lab matrix [--namespaces a,b,c] [--ports 80,81] [--protocols TCP,UDP,SCTP] [-o json|table]`
//
// Probes every ordered pair of distinct pods in those namespaces (default:
// every namespace with pods but the system ones, kube-*), on each port and
// protocol, once each, by pod IP, with a 1 s timeout, all in parallel.
// hostNetwork pods take part only with --host-network.
//
//   TCP, UDP   `agnhost connect IP:PORT --timeout=1s --protocol=tcp|udp` run in
//              the source pod's netns (the pinned agnhost; exit 0 = connected),
//              as the upstream e2e suite probes; `--prober netprobe` uses the
//              repo's prober (lab/probe) instead.
//   SCTP       at the packet level: the netprobe prober sends a raw INIT (with a
//              correct CRC32c) from the source pod's netns, and an observer (a
//              raw IPPROTO_SCTP socket, lab/probe spawnServer with only --sctp
//              ports) started in each destination pod's netns for the duration
//              of the matrix reports its arrival. Raw sockets each get their own
//              copy of a packet, so the observer does not take it from the pod.
//
// -o json prints exactly {"probes":[{"from":"x/a","to":"y/b","port":80,"protocol":"TCP","connected":true},...]};
// -o table (the default) prints one upstream-style table per port/protocol
// (`.` connected, `X` blocked). A summary line goes to stderr.

import fs from 'node:fs';
import { formatTarget, PROTOCOLS, type ProbeResult, type ProbeTarget, type Protocol } from '../probe/client.ts';
import { type MatrixPod, type MatrixResult, type Prober, renderMatrix, runMatrix, summarize } from '../probe/matrix.ts';
import { runProberProcess, type ServerProcess, spawnServer } from '../probe/process.ts';
import type { LabPod, LabState } from '../state.ts';
import { agnhostPath, inNetns, LabCommandError, labState, parseDuration, podNetnsPath, run, runningPods } from './common.ts';

export const DEFAULT_PORTS = [80, 81] as const;
export const DEFAULT_PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
export const DEFAULT_TIMEOUT_MS = 1000;
/** agnhost processes in flight at once, across all source pods. */
const AGNHOST_CONCURRENCY = 96;

export type ProberKind = 'agnhost' | 'netprobe';

export interface LabMatrixOptions {
  /** Namespaces whose pods take part; default: every namespace with pods but kube-*. */
  namespaces?: readonly string[];
  ports?: readonly number[];
  protocols?: readonly Protocol[];
  timeoutMs?: number;
  /** Let hostNetwork pods take part. */
  hostNetwork?: boolean;
  /** How TCP and UDP are probed; SCTP always goes through netprobe's raw INIT. */
  prober?: ProberKind;
}

export interface LabMatrix {
  result: MatrixResult;
  /** The pods probed, `ns/name`, sorted. */
  podIds: string[];
  ms: number;
}

/** A small counting semaphore. */
class Limiter {
  #free: number;
  readonly #queue: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#queue.push(r));
    try {
      return await fn();
    } finally {
      const next = this.#queue.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/** One `agnhost connect` in `netnsPath`; connected = exit 0. */
export async function agnhostConnect(state: LabState, netnsPath: string, t: ProbeTarget, timeoutMs: number): Promise<ProbeResult> {
  const host = t.ip.includes(':') ? `[${t.ip}]` : t.ip;
  const argv = inNetns(netnsPath, [agnhostPath(state), 'connect', `${host}:${t.port}`, `--timeout=${timeoutMs}ms`, `--protocol=${t.protocol.toLowerCase()}`]);
  const r = await run(argv, { timeoutMs: timeoutMs + 10_000 });
  const res: ProbeResult = { ...t, target: formatTarget(t), connected: r.code === 0, ms: r.ms };
  if (r.code !== 0) res.error = (r.stderr.trim().split('\n').pop() ?? '') || `exit ${r.code}`;
  return res;
}

/** TCP/UDP through agnhost connect (bounded by `limiter`), SCTP through the netprobe prober. */
export function agnhostProber(state: LabState, limiter = new Limiter(AGNHOST_CONCURRENCY)): Prober {
  return async (pod, targets, timeoutMs, onResult) => {
    const sctp: number[] = [];
    const other: number[] = [];
    for (const [i, t] of targets.entries()) (t.protocol === 'SCTP' ? sctp : other).push(i);
    await Promise.all([
      sctp.length > 0
        ? runProberProcess(
            pod.netnsPath,
            sctp.map((i) => targets[i] as ProbeTarget),
            timeoutMs,
            (r, j) => onResult(r, sctp[j] as number),
          )
        : Promise.resolve(),
      ...other.map((i) =>
        limiter.run(async () => {
          const r = await agnhostConnect(state, pod.netnsPath, targets[i] as ProbeTarget, timeoutMs);
          onResult(r, i);
        }),
      ),
    ]);
  };
}

/** The netprobe prober for everything: one probe-main process per source pod. */
export const netprobeProber: Prober = (pod, targets, timeoutMs, onResult) => runProberProcess(pod.netnsPath, targets, timeoutMs, onResult);

/** The lab's pods that take part, by id, sorted: Running, with an address and a netns. */
export function selectPods(
  state: LabState,
  pods: readonly LabPod[],
  o: { namespaces?: readonly string[]; hostNetwork?: boolean },
): { pods: MatrixPod[]; namespaces: string[] } {
  const wanted = o.namespaces && o.namespaces.length > 0 ? new Set(o.namespaces) : undefined;
  const byId = new Map<string, MatrixPod>();
  for (const p of pods) {
    if (wanted ? !wanted.has(p.namespace) : p.namespace.startsWith('kube-')) continue;
    if (p.hostNetwork && !o.hostNetwork) continue;
    if (p.phase !== 'Running' || p.ips.length === 0) continue;
    const netnsPath = podNetnsPath(state, p);
    if (!netnsPath || !fs.existsSync(netnsPath)) continue;
    const id = `${p.namespace}/${p.name}`;
    if (!byId.has(id)) byId.set(id, { id, netnsPath, ips: p.ips });
  }
  const list = [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { pods: list, namespaces: [...new Set(list.map((p) => p.id.split('/')[0] as string))] };
}

/** Runs the matrix over the lab's pods. */
export async function labMatrix(state: LabState, o: LabMatrixOptions = {}): Promise<LabMatrix> {
  const t0 = Date.now();
  const ports = o.ports ?? DEFAULT_PORTS;
  const protocols = o.protocols ?? DEFAULT_PROTOCOLS;
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const { pods } = selectPods(state, await runningPods(), o);
  if (pods.length === 0)
    throw new LabCommandError(
      `no running pods${o.namespaces?.length ? ` in namespace(s) ${o.namespaces.join(',')}` : ' outside kube-* namespaces'}${o.hostNetwork ? '' : ' (hostNetwork pods excluded)'}`,
    );
  const observers: ServerProcess[] = [];
  try {
    if (protocols.includes('SCTP')) {
      const started = await Promise.allSettled(
        pods.map((p) => spawnServer({ netnsPath: p.netnsPath, name: `${p.id} (lab matrix observer)`, sctp: ports, readyTimeoutMs: 30_000 })),
      );
      started.forEach((s, i) => {
        if (s.status === 'fulfilled') {
          observers.push(s.value);
          (pods[i] as MatrixPod).observer = s.value;
        }
      });
      const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw new LabCommandError(`cannot start an SCTP observer: ${(failed.reason as Error).message}`);
    }
    const prober = (o.prober ?? 'agnhost') === 'agnhost' ? agnhostProber(state) : netprobeProber;
    const result = await runMatrix(pods, { ports, protocols, timeoutMs, prober });
    return { result, podIds: pods.map((p) => p.id), ms: Date.now() - t0 };
  } finally {
    await Promise.all(observers.map((s) => s.stop(1000).catch(() => s.kill())));
  }
}

const splitList = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function parsePorts(v: string | undefined): number[] {
  if (v === undefined) return [...DEFAULT_PORTS];
  const out: number[] = [];
  for (const s of splitList(v)) {
    if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw new LabCommandError(`--ports: bad port ${JSON.stringify(s)}`);
    if (!out.includes(Number(s))) out.push(Number(s));
  }
  if (out.length === 0) throw new LabCommandError('--ports: no port given');
  return out;
}

export function parseProtocols(v: string | undefined): Protocol[] {
  if (v === undefined) return [...DEFAULT_PROTOCOLS];
  const out: Protocol[] = [];
  for (const s of splitList(v)) {
    const p = s.toUpperCase() as Protocol;
    if (!PROTOCOLS.includes(p)) throw new LabCommandError(`--protocols: bad protocol ${JSON.stringify(s)} (TCP, UDP, SCTP)`);
    if (!out.includes(p)) out.push(p);
  }
  if (out.length === 0) throw new LabCommandError('--protocols: no protocol given');
  return out;
}

export interface MatrixArgs {
  namespaces?: string;
  ports?: string;
  protocols?: string;
  output?: string;
  hostNetwork?: boolean;
  prober?: string;
  timeout?: string | number;
}

/** `scripts/lab matrix`: 0 when the matrix ran (whatever it found), 1 when it could not run. */
export async function matrixCommand(a: MatrixArgs): Promise<number> {
  const err = (l: string): void => void process.stderr.write(`lab: matrix: ${l}\n`);
  try {
    const output = a.output ?? 'table';
    if (output !== 'json' && output !== 'table') throw new LabCommandError(`-o: want json or table, got ${JSON.stringify(output)}`);
    const prober = (a.prober ?? 'agnhost') as ProberKind;
    if (prober !== 'agnhost' && prober !== 'netprobe') throw new LabCommandError(`--prober: want agnhost or netprobe, got ${JSON.stringify(a.prober)}`);
    const timeoutMs = a.timeout === undefined ? DEFAULT_TIMEOUT_MS : Math.round(parseDuration(a.timeout, '--timeout'));
    if (timeoutMs > 60_000) throw new LabCommandError('--timeout: at most 60 s');
    const namespaces = a.namespaces === undefined ? undefined : splitList(a.namespaces);
    const o: LabMatrixOptions = {
      ports: parsePorts(a.ports),
      protocols: parseProtocols(a.protocols),
      timeoutMs,
      hostNetwork: !!a.hostNetwork,
      prober,
      ...(namespaces ? { namespaces } : {}),
    };
    const state = labState();
    const m = await labMatrix(state, o);
    if (namespaces) {
      const seen = new Set(m.podIds.map((id) => id.split('/')[0]));
      const empty = namespaces.filter((n) => !seen.has(n));
      if (empty.length > 0) err(`no running pods in ${empty.join(', ')}`);
    }
    if (output === 'json') process.stdout.write(`${JSON.stringify({ probes: m.result.probes })}\n`);
    else process.stdout.write(renderMatrix(m.result, m.podIds));
    const s = summarize(m.result);
    process.stderr.write(
      `${s.total} probes (${m.podIds.length} pods; ports ${o.ports?.join(',')}; ${o.protocols?.join(',')}; ${prober === 'agnhost' ? 'agnhost connect for TCP/UDP' : 'netprobe'}${o.protocols?.includes('SCTP') ? ', raw SCTP INIT' : ''}) in ${(m.ms / 1000).toFixed(1)} s: ${s.connected} connected, ${s.blocked} blocked\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof LabCommandError) {
      err(e.message);
      return 1;
    }
    err(e instanceof Error ? e.message : String(e));
    return 1;
  }
}
