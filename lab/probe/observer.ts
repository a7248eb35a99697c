// The SCTP observer: one raw IPPROTO_SCTP socket per family (the kernel has no
// SCTP sockets, but raw sockets of protocol 132 still receive SCTP packets)
// and a worker thread that blocks in poll(2) on them, so Node's event loop in
// the main thread stays free for the TCP/UDP servers and nothing spins. Each
// INIT to a declared port becomes an `sctp-init` event.
import { Worker } from 'node:worker_threads';
import { Errno, SyscallError } from '../../src/errors.ts';
import type { IpFamily } from '../../src/ip.ts';
import { IPPROTO_SCTP, parseSctpPacket, SCTP_CHUNK_INIT } from '../../src/packet/sctp.ts';
import { closeFd, pollIn, rawSocket, recvFromNow, setRecvBuf } from '../../src/sys/raw-socket.ts';

export interface SctpInitEvent {
  event: 'sctp-init';
  src: string;
  srcPort: number;
  dstPort: number;
  tag: number;
  family: IpFamily;
  /** Whether the CRC32c was right (a raw socket does not check it; conntrack does). */
  checksumOk: boolean;
}

export interface RawFd {
  fd: number;
  family: IpFamily;
}

const EAFNOSUPPORT = 97; // not in errors.ts's Errno table

/** Opens the observer's raw sockets; IPv6 is skipped when the netns has it disabled. */
export function openObserverSockets(): RawFd[] {
  const fds: RawFd[] = [{ fd: rawSocket(4, IPPROTO_SCTP), family: 4 }];
  try {
    fds.push({ fd: rawSocket(6, IPPROTO_SCTP), family: 6 });
  } catch (e) {
    if (!(e instanceof SyscallError && (e.errno === EAFNOSUPPORT || e.errno === Errno.EOPNOTSUPP))) {
      for (const r of fds) closeFd(r.fd);
      throw e;
    }
  }
  for (const r of fds) {
    try {
      setRecvBuf(r.fd, 1 << 20); // a full matrix sends bursts of INITs
    } catch {
      // the default buffer still works
    }
  }
  return fds;
}

/**
 * Waits up to `timeoutMs` for packets, then reads every queued one; returns
 * the INITs to one of `ports`. Other chunks and malformed packets are skipped.
 */
export function drainSctp(fds: readonly RawFd[], ports: ReadonlySet<number>, buf: Buffer, timeoutMs = 0): SctpInitEvent[] {
  const out: SctpInitEvent[] = [];
  const ready = new Set(
    pollIn(
      fds.map((r) => r.fd),
      timeoutMs,
    ),
  );
  for (const r of fds) {
    if (!ready.has(r.fd)) continue;
    for (let rx = recvFromNow(r.fd, buf); rx; rx = recvFromNow(r.fd, buf)) {
      let info: ReturnType<typeof parseSctpPacket>;
      try {
        info = parseSctpPacket(buf.subarray(0, rx.length), r.family);
      } catch {
        continue;
      }
      if (info.chunkType !== SCTP_CHUNK_INIT || !ports.has(info.dstPort) || info.initiateTag === undefined) continue;
      out.push({
        event: 'sctp-init',
        src: rx.from?.address ?? '',
        srcPort: info.srcPort,
        dstPort: info.dstPort,
        tag: info.initiateTag,
        family: r.family,
        checksumOk: info.checksumOk,
      });
    }
  }
  return out;
}

export interface ObserverWorkerData {
  fds: RawFd[];
  ports: number[];
  /** Int32Array over it: [0] = 1 asks the worker to stop. */
  stop: SharedArrayBuffer;
  /** How long one blocking poll lasts; bounds the stop latency. */
  pollMs: number;
}

export interface SctpObserver {
  readonly families: IpFamily[];
  /** Stops the worker (within one poll period), then closes the sockets; idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the sockets (synchronously, so a failure is thrown here) and starts
 * the worker. `onError` is called if the worker dies: an observer that no
 * longer reports would turn every SCTP probe into a false "blocked".
 */
export function startSctpObserver(ports: readonly number[], onEvent: (ev: SctpInitEvent) => void, onError: (e: unknown) => void, pollMs = 100): SctpObserver {
  const fds = openObserverSockets();
  const stop = new SharedArrayBuffer(4);
  const data: ObserverWorkerData = { fds, ports: [...ports], stop, pollMs };
  let worker: Worker;
  try {
    worker = new Worker(new URL('./observer-worker.ts', import.meta.url), { workerData: data });
  } catch (e) {
    for (const r of fds) closeFd(r.fd);
    throw e;
  }
  let stopping = false;
  worker.on('message', (ev: SctpInitEvent) => onEvent(ev));
  worker.on('error', (e) => {
    if (!stopping) onError(e);
  });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  let closing: Promise<void> | undefined;
  return {
    families: fds.map((r) => r.family),
    close: () =>
      (closing ??= (async () => {
        stopping = true;
        Atomics.store(new Int32Array(stop), 0, 1);
        await exited;
        for (const r of fds) closeFd(r.fd);
      })()),
  };
}
