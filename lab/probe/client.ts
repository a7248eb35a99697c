// The prober: runs in the SOURCE pod's netns and probes targets in parallel.
//   TCP:  connected = the handshake completed; `name` = what the server answered.
//   UDP:  connected = a reply datagram arrived (an ICMP port unreachable, seen
//         as ECONNREFUSED on the connected socket, fails it at once).
//   SCTP: the kernel has no SCTP sockets, so a bare INIT goes out through a raw
//         socket; `connected` here only means "sent". The verdict belongs to
//         the caller, who matches `tag` against the destination observer's
//         `sctp-init` events (see matrix.ts).
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { InvalidConfigError } from '../../src/errors.ts';
import { type IpFamily, parseIp } from '../../src/ip.ts';
import { buildSctpInit, IPPROTO_SCTP } from '../../src/packet/sctp.ts';
import { closeFd, rawSocket, sendTo } from '../../src/sys/raw-socket.ts';

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

export interface ProbeTarget {
  ip: string;
  port: number;
  protocol: Protocol;
}

export interface ProbeResult extends ProbeTarget {
  /** `10.0.0.1:80/TCP`, `[fd00::1]:80/UDP`. */
  target: string;
  /** TCP/UDP: reached. SCTP: the INIT was sent (the caller decides reachability). */
  connected: boolean;
  /** The server's answer (TCP/UDP), trimmed. */
  name?: string;
  /** SCTP: the initiate tag of the INIT sent. */
  tag?: number;
  /** SCTP: the source port of the INIT sent. */
  srcPort?: number;
  error?: string;
  /** Milliseconds from start to verdict. */
  ms: number;
}

export const DEFAULT_TIMEOUT_MS = 1000;

export function formatTarget(t: ProbeTarget): string {
  const host = t.ip.includes(':') ? `[${t.ip}]` : t.ip;
  return `${host}:${t.port}/${t.protocol}`;
}

function checkTarget(t: ProbeTarget): ProbeTarget {
  parseIp(t.ip);
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw new InvalidConfigError(`bad port ${t.port}`);
  if (!PROTOCOLS.includes(t.protocol)) throw new InvalidConfigError(`bad protocol ${JSON.stringify(t.protocol)}`);
  return { ip: t.ip, port: t.port, protocol: t.protocol };
}

/** Parses `10.0.0.1:80/TCP` or `[fd00::1]:80/sctp` (protocol defaults to TCP). */
export function parseTarget(s: string): ProbeTarget {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})(?:\/([A-Za-z]+))?$/.exec(s.trim());
  if (!m) throw new InvalidConfigError(`bad target ${JSON.stringify(s)}: want IP:PORT/PROTO or [IPv6]:PORT/PROTO`);
  return checkTarget({ ip: (m[1] ?? m[2]) as string, port: Number(m[3]), protocol: (m[4] ?? 'TCP').toUpperCase() as Protocol });
}

/** Accepts what `--stdin` may carry: an array of target strings or `{ip, port, protocol}` objects. */
export function parseTargetsJson(text: string): ProbeTarget[] {
  const v: unknown = JSON.parse(text);
  if (!Array.isArray(v)) throw new InvalidConfigError('targets JSON must be an array');
  return v.map((x: unknown) => {
    if (typeof x === 'string') return parseTarget(x);
    const o = x as Partial<ProbeTarget> | null;
    if (!o || typeof o.ip !== 'string' || typeof o.port !== 'number') throw new InvalidConfigError(`bad target ${JSON.stringify(x)}`);
    return checkTarget({ ip: o.ip, port: o.port, protocol: String(o.protocol ?? 'TCP').toUpperCase() as Protocol });
  });
}

const base = (t: ProbeTarget): ProbeResult => ({ ...t, target: formatTarget(t), connected: false, ms: 0 });

// Timeouts give their verdict one event-loop turn late (setImmediate): when
// the timer and the connect (or reply) become due in the same turn, as they
// do on a loaded machine, the I/O that already happened is processed first
// instead of being called a timeout.
export function probeTcp(t: ProbeTarget, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ProbeResult> {
  const start = Date.now();
  const r = base(t);
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const sock = net.connect({ host: t.ip, port: t.port, noDelay: true });
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (data.trim() !== '') r.name = data.trim();
      if (error !== undefined && !r.connected) r.error = error;
      r.ms = Date.now() - start;
      resolve(r);
    };
    const timer = setTimeout(() => setImmediate(() => finish('timeout')), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      r.connected = true;
    });
    sock.on('data', (d: string) => {
      data += d;
    });
    sock.on('end', () => finish());
    sock.on('close', () => finish());
    sock.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}

export function probeUdp(t: ProbeTarget, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<ProbeResult> {
  const start = Date.now();
  const r = base(t);
  return new Promise((resolve) => {
    let done = false;
    const family = parseIp(t.ip).family;
    const sock = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
    const finish = (error?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        sock.close();
      } catch {
        // already closed
      }
      if (error !== undefined) r.error = error;
      r.ms = Date.now() - start;
      resolve(r);
    };
    const timer = setTimeout(() => setImmediate(() => finish('timeout')), timeoutMs);
    sock.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
    sock.on('message', (msg) => {
      r.connected = true;
      r.name = msg.toString('utf8').trim();
      finish();
    });
    // A connected socket gets ICMP errors back (ECONNREFUSED), so a closed
    // port fails at once instead of waiting for the timeout.
    sock.connect(t.port, t.ip, () => sock.send('probe\n', (e) => e && finish((e as NodeJS.ErrnoException).code ?? e.message)));
  });
}

/** Random non-zero 32-bit initiate tag. */
export const randomTag = (): number => randomInt(1, 0x1_0000_0000);
/** Random source port in Linux's default ephemeral range. */
export const randomSrcPort = (): number => randomInt(32768, 61000);

/** Raw IPPROTO_SCTP sockets, one per family, opened on first use. */
export class SctpSender {
  private readonly fds = new Map<IpFamily, number>();

  /** Sends one INIT; synchronous. Never throws for a send error: it lands in `error`. */
  send(t: ProbeTarget, o: { tag?: number; srcPort?: number; checksumOverride?: number } = {}): ProbeResult {
    const start = Date.now();
    const r = base(t);
    r.tag = o.tag ?? randomTag();
    r.srcPort = o.srcPort ?? randomSrcPort();
    try {
      const ip = parseIp(t.ip);
      let fd = this.fds.get(ip.family);
      if (fd === undefined) {
        fd = rawSocket(ip.family, IPPROTO_SCTP);
        this.fds.set(ip.family, fd);
      }
      const pkt = buildSctpInit({
        srcPort: r.srcPort,
        dstPort: t.port,
        initiateTag: r.tag,
        ...(o.checksumOverride !== undefined ? { checksumOverride: o.checksumOverride } : {}),
      });
      sendTo(fd, pkt, ip);
      r.connected = true;
    } catch (e) {
      r.error = (e as Error).message ?? String(e);
    }
    r.ms = Date.now() - start;
    return r;
  }

  close(): void {
    for (const fd of this.fds.values()) closeFd(fd);
    this.fds.clear();
  }
}

/** Probes one target; SCTP goes through `sctp` (a fresh sender when omitted). */
export async function probe(t: ProbeTarget, timeoutMs = DEFAULT_TIMEOUT_MS, sctp?: SctpSender): Promise<ProbeResult> {
  if (t.protocol === 'TCP') return probeTcp(t, timeoutMs);
  if (t.protocol === 'UDP') return probeUdp(t, timeoutMs);
  const own = sctp ?? new SctpSender();
  try {
    return own.send(t);
  } finally {
    if (!sctp) own.close();
  }
}

/**
 * Probes every target in parallel; `onResult` sees each result as it comes
 * (SCTP ones first: they are sent synchronously). Results are returned in
 * the order of `targets`.
 */
export async function probeAll(
  targets: readonly ProbeTarget[],
  timeoutMs = DEFAULT_TIMEOUT_MS,
  onResult?: (r: ProbeResult, index: number) => void,
): Promise<ProbeResult[]> {
  const sctp = new SctpSender();
  try {
    // SCTP INITs go out first and synchronously (the first raw socket is
    // slow to open), so that no TCP or UDP timer runs while they block.
    const results: Array<ProbeResult | Promise<ProbeResult>> = targets.map((t, i) => {
      if (t.protocol !== 'SCTP') return undefined as unknown as ProbeResult;
      const r = sctp.send(t);
      onResult?.(r, i);
      return r;
    });
    targets.forEach((t, i) => {
      if (t.protocol === 'SCTP') return;
      results[i] = probe(t, timeoutMs).then((r) => {
        onResult?.(r, i);
        return r;
      });
    });
    return await Promise.all(results);
  } finally {
    sctp.close();
  }
}
