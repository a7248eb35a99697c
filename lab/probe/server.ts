// The probe target that runs inside a pod's netns: TCP servers that answer
// each connection with the pod name and close, UDP servers that answer each
// datagram with the pod name, and the SCTP observer (observer.ts: raw
// sockets read on a worker thread), which reports every INIT to a declared
// port.
import dgram from 'node:dgram';
import net from 'node:net';
import type { IpFamily } from '../../src/ip.ts';
import { type SctpInitEvent, type SctpObserver, startSctpObserver } from './observer.ts';

export type { SctpInitEvent } from './observer.ts';

export interface ServeOptions {
  /** Answered to every TCP connection and UDP datagram, e.g. `x/a`. */
  name: string;
  tcp?: readonly number[];
  udp?: readonly number[];
  sctp?: readonly number[];
  /** The observer worker's poll period, which bounds how long close() takes; default 100 ms. */
  pollMs?: number;
}

export interface ReadyEvent {
  event: 'ready';
  name: string;
  pid: number;
  tcp: number[];
  udp: number[];
  sctp: number[];
  /** Families the SCTP observer listens on (IPv6 is skipped when the netns has it disabled). */
  sctpFamilies: IpFamily[];
}

export type ServerEvent = ReadyEvent | SctpInitEvent;

export interface RunningServer {
  readonly ready: ReadyEvent;
  /** Stops every listener and the observer; idempotent. */
  close(): Promise<void>;
}

const isPort = (p: number): boolean => Number.isInteger(p) && p >= 1 && p <= 65535;

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Runs `attempt` for the dual-stack IPv6 wildcard, and again for IPv4 when
 * the netns has no IPv6 (the family is missing or disabled).
 */
async function withV4Fallback<T>(attempt: (v6: boolean) => Promise<T>): Promise<T> {
  try {
    return await attempt(true);
  } catch (e) {
    if (errCode(e) === 'EAFNOSUPPORT' || errCode(e) === 'EADDRNOTAVAIL') return attempt(false);
    throw e;
  }
}

/** Dual-stack `::` first; `0.0.0.0` when the netns has no IPv6. */
function listenTcp(port: number, name: string): Promise<net.Server> {
  const attempt = (host: string): Promise<net.Server> =>
    new Promise((resolve, reject) => {
      const srv = net.createServer((sock) => {
        sock.on('error', () => sock.destroy());
        sock.end(`${name}\n`);
      });
      srv.once('error', reject);
      srv.listen({ port, host, ipv6Only: false, exclusive: true }, () => {
        srv.off('error', reject);
        srv.on('error', () => {}); // accept errors after bind are per-connection
        resolve(srv);
      });
    });
  return withV4Fallback((v6) => attempt(v6 ? '::' : '0.0.0.0'));
}

/** Dual-stack `::` first; `0.0.0.0` when the netns has no IPv6. */
function bindUdp(port: number, name: string): Promise<dgram.Socket> {
  const attempt = (type: 'udp4' | 'udp6'): Promise<dgram.Socket> =>
    new Promise((resolve, reject) => {
      const s = dgram.createSocket({ type, ipv6Only: false, reuseAddr: false });
      const reply = Buffer.from(`${name}\n`);
      s.on('message', (_msg, rinfo) => {
        s.send(reply, rinfo.port, rinfo.address, () => {});
      });
      s.once('error', (e) => {
        s.close();
        reject(e);
      });
      s.bind({ port, address: type === 'udp6' ? '::' : '0.0.0.0', exclusive: true }, () => {
        s.removeAllListeners('error');
        s.on('error', () => {});
        resolve(s);
      });
    });
  return withV4Fallback((v6) => attempt(v6 ? 'udp6' : 'udp4'));
}

/**
 * Binds every listener, then resolves with the ready event (so a caller that
 * sees it never needs to sleep: the observer's raw sockets queue INITs from
 * the moment they are open). `onEvent` receives each SCTP INIT; `onError` is
 * told if the observer dies. If any listener fails to bind, the ones already
 * bound are closed and the error is thrown.
 */
export async function startServer(
  opts: ServeOptions,
  onEvent: (ev: SctpInitEvent) => void,
  onError: (e: unknown) => void = (e) => process.stderr.write(`probe server: sctp observer: ${String(e)}\n`),
): Promise<RunningServer> {
  const tcp = [...new Set(opts.tcp ?? [])];
  const udp = [...new Set(opts.udp ?? [])];
  const sctp = [...new Set(opts.sctp ?? [])];
  for (const p of [...tcp, ...udp, ...sctp]) if (!isPort(p)) throw new RangeError(`bad port ${p}`);
  const tcpServers: net.Server[] = [];
  const udpSockets: dgram.Socket[] = [];
  let observer: SctpObserver | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await Promise.all([
        observer?.close(),
        ...tcpServers.map((s) => new Promise<void>((res) => s.close(() => res()))),
        ...udpSockets.map((s) => new Promise<void>((res) => s.close(() => res()))),
      ]);
    })());
  try {
    for (const p of tcp) tcpServers.push(await listenTcp(p, opts.name));
    for (const p of udp) udpSockets.push(await bindUdp(p, opts.name));
    if (sctp.length > 0) observer = startSctpObserver(sctp, onEvent, onError, opts.pollMs);
  } catch (e) {
    await close();
    throw e;
  }
  const ready: ReadyEvent = {
    event: 'ready',
    name: opts.name,
    pid: process.pid,
    tcp,
    udp,
    sctp,
    sctpFamilies: observer?.families ?? [],
  };
  return { ready, close };
}
