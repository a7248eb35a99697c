// The connectivity matrix: every pod probes every other pod on every
// port/protocol, one prober process per source pod, all in parallel. TCP and
// UDP verdicts come from the prober; an SCTP probe only says "INIT sent with
// tag T", and counts as connected once the destination's observer reports T
// on that port before the timeout. The result shape is a contract:
//   {"probes":[{"from":"x/a","to":"y/b","port":80,"protocol":"TCP","connected":true},...]}

import { InvalidConfigError } from '../../src/errors.ts';
import { type IpFamily, tryParseIp } from '../../src/ip.ts';
import { DEFAULT_TIMEOUT_MS, PROTOCOLS, type ProbeResult, type ProbeTarget, type Protocol } from './client.ts';
import { runProberProcess, type SctpEventSource, type SpawnOptions } from './process.ts';

export interface MatrixPod {
  /** `namespace/name`, e.g. `x/a`. */
  id: string;
  /** The pod's netns file (/var/run/netns/..., /proc/PID/ns/net). */
  netnsPath: string;
  ips: readonly string[];
  /** Required when SCTP is probed: reports the INITs that reached this pod. */
  observer?: SctpEventSource;
}

export interface MatrixProbe {
  from: string;
  to: string;
  port: number;
  protocol: Protocol;
  connected: boolean;
}

export interface MatrixResult {
  probes: MatrixProbe[];
}

/** Probes `targets` from `pod`; calls `onResult` as each verdict comes. */
export type Prober = (
  pod: MatrixPod,
  targets: readonly ProbeTarget[],
  timeoutMs: number,
  onResult: (r: ProbeResult, index: number) => void,
) => Promise<unknown>;

export interface MatrixOptions {
  ports: readonly number[];
  protocols: readonly Protocol[];
  /** Per-probe timeout (TCP/UDP reply, SCTP observer report); default 1000 ms. */
  timeoutMs?: number;
  /** Probe each pod's first address of this family; default: its first address. */
  family?: IpFamily;
  /** How to run a source pod's probes; default: probe-main.ts in its netns. */
  prober?: Prober;
  /** Passed to the default prober (e.g. the command that runs probe-main). */
  spawn?: SpawnOptions;
}

export const processProber =
  (spawn: SpawnOptions = {}): Prober =>
  (pod, targets, timeoutMs, onResult) =>
    runProberProcess(pod.netnsPath, targets, timeoutMs, onResult, spawn);

/** The address probed for `pod`. */
export function targetIp(pod: MatrixPod, family?: IpFamily): string {
  const ip = pod.ips.find((s) => family === undefined || tryParseIp(s)?.family === family);
  if (ip === undefined) throw new InvalidConfigError(`pod ${pod.id} has no ${family ? `IPv${family} ` : ''}address`);
  return ip;
}

/** Collects SCTP INIT reports of every destination, keyed by (pod, tag, port). */
class TagTracker {
  private readonly seen = new Set<string>();
  private readonly waiters = new Map<string, () => void>();
  private readonly unsubs: (() => void)[] = [];

  watch(pod: MatrixPod): void {
    if (!pod.observer) throw new InvalidConfigError(`SCTP probes need an observer for pod ${pod.id}`);
    this.unsubs.push(
      pod.observer.onSctpInit((ev) => {
        const k = `${pod.id}|${ev.tag}|${ev.dstPort}`;
        this.seen.add(k);
        this.waiters.get(k)?.();
      }),
    );
  }

  /** True once `to` reported `tag` on `port`; false after `timeoutMs`. */
  wait(to: string, tag: number, port: number, timeoutMs: number): Promise<boolean> {
    const k = `${to}|${tag}|${port}`;
    if (this.seen.has(k)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters.delete(k);
        resolve(false);
      }, timeoutMs);
      this.waiters.set(k, () => {
        clearTimeout(t);
        this.waiters.delete(k);
        resolve(true);
      });
    });
  }

  close(): void {
    for (const u of this.unsubs.splice(0)) u();
  }
}

/** Runs the full matrix (self pairs skipped). Probes are ordered by port/protocol, then from, then to. */
export async function runMatrix(pods: readonly MatrixPod[], opts: MatrixOptions): Promise<MatrixResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const prober = opts.prober ?? processProber(opts.spawn);
  const ids = new Set<string>();
  for (const p of pods) {
    if (ids.has(p.id)) throw new InvalidConfigError(`duplicate pod id ${p.id}`);
    ids.add(p.id);
  }
  for (const pr of opts.protocols) if (!PROTOCOLS.includes(pr)) throw new InvalidConfigError(`bad protocol ${pr}`);
  const combos = opts.ports.flatMap((port) => opts.protocols.map((protocol) => ({ port, protocol })));
  const addr = new Map(pods.map((p) => [p.id, targetIp(p, opts.family)]));
  const tracker = new TagTracker();
  try {
    if (opts.protocols.includes('SCTP')) for (const p of pods) tracker.watch(p);
    const verdicts = new Map<string, boolean>();
    const key = (from: string, to: string, port: number, protocol: Protocol): string => `${from}|${to}|${port}|${protocol}`;
    await Promise.all(
      pods.map(async (src) => {
        const meta: { to: string; port: number; protocol: Protocol }[] = [];
        const targets: ProbeTarget[] = [];
        for (const dst of pods) {
          if (dst.id === src.id) continue;
          for (const { port, protocol } of combos) {
            meta.push({ to: dst.id, port, protocol });
            targets.push({ ip: addr.get(dst.id) as string, port, protocol });
          }
        }
        const pending: Promise<void>[] = [];
        await prober(src, targets, timeoutMs, (r, i) => {
          const m = meta[i];
          if (!m) return;
          const k = key(src.id, m.to, m.port, m.protocol);
          if (m.protocol !== 'SCTP') verdicts.set(k, r.connected);
          else if (!r.connected || r.tag === undefined) verdicts.set(k, false);
          else pending.push(tracker.wait(m.to, r.tag, m.port, timeoutMs).then((ok) => void verdicts.set(k, ok)));
        });
        await Promise.all(pending);
      }),
    );
    const probes: MatrixProbe[] = [];
    for (const { port, protocol } of combos) {
      for (const from of pods) {
        for (const to of pods) {
          if (from.id === to.id) continue;
          probes.push({ from: from.id, to: to.id, port, protocol, connected: verdicts.get(key(from.id, to.id, port, protocol)) ?? false });
        }
      }
    }
    return { probes };
  } finally {
    tracker.close();
  }
}

/**
 * One table in the style of the upstream netpol e2e truth table: rows are
 * sources, columns destinations, `.` connected, `X` blocked, `-` the pod
 * itself (not probed), `?` no probe.
 */
export function renderTable(probes: readonly MatrixProbe[], podIds: readonly string[]): string {
  const v = new Map(probes.map((p) => [`${p.from}|${p.to}`, p.connected]));
  const rows: string[][] = [['-', ...podIds]];
  for (const from of podIds) {
    rows.push([
      from,
      ...podIds.map((to) => {
        if (to === from) return '-';
        const c = v.get(`${from}|${to}`);
        return c === undefined ? '?' : c ? '.' : 'X';
      }),
    ]);
  }
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => (r[col] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, col) => cell.padEnd(widths[col] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** One table per port/protocol, headed `port/PROTOCOL`, in order of first appearance. */
export function renderMatrix(result: MatrixResult, podIds?: readonly string[]): string {
  const ids = podIds ?? [...new Set(result.probes.flatMap((p) => [p.from, p.to]))];
  const groups = new Map<string, MatrixProbe[]>();
  for (const p of result.probes) {
    const k = `${p.port}/${p.protocol}`;
    let g = groups.get(k);
    if (!g) {
      g = [];
      groups.set(k, g);
    }
    g.push(p);
  }
  return `${[...groups].map(([k, ps]) => `${k}\n${renderTable(ps, ids)}`).join('\n\n')}\n`;
}

/** Counts for a quick summary line. */
export function summarize(result: MatrixResult): { total: number; connected: number; blocked: number } {
  const connected = result.probes.filter((p) => p.connected).length;
  return { total: result.probes.length, connected, blocked: result.probes.length - connected };
}
