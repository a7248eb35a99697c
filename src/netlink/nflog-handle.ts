// An nfnetlink_log socket bound to one nflog group of one network namespace:
// receives the packets that nftables rules log with `log ... group N` (weir
// logs denied packets that way), for the agent's drop metrics and
// `weirctl drops`.
//
// Like ConntrackHandle, the socket is opened inside the target namespace and
// keeps receiving that namespace's logged packets afterwards, with no further
// setns: nflog groups are per namespace, owned by the netlink socket that
// bound them, and released when that socket closes.
//
// Two ways to read:
// - NflogReader.read(timeoutMs): synchronous, waits in poll(2) at most
//   timeoutMs. For a loop of its own or a worker thread.
// - watchNflog(): the agent's way. A worker thread blocks in read(2) on the
//   socket and posts every datagram to the main thread, which decodes it, so
//   the agent's event loop never blocks. The worker is an `eval` worker of a
//   few lines of plain JavaScript using only node:fs and node:worker_threads:
//   unlike a worker *file* (lab/probe/observer-worker.ts), it also runs from
//   the esbuild bundle inside the single-executable agent, where there is no
//   .ts file to start a worker from.
//
// Overruns: when the socket's receive buffer is full, the kernel drops the
// batch and flags the socket; the next receive fails once with ENOBUFS and
// the socket works on. Both readers count that in `overruns` and continue.
import { Worker } from 'node:worker_threads';
import { Errno, NetlinkError, SyscallError } from '../errors.ts';
import * as libc from '../sys/libc.ts';
import type { Netns } from '../sys/netns.ts';
import { NETLINK_NETFILTER } from './conntrack.ts';
import * as C from './constants.ts';
import { parseError, parseMessages } from './message.ts';
import {
  decodeNflogPacket,
  encodeNflogConfig,
  encodeNflogUnbind,
  NFLOG_PACKET,
  NFULNL_CFG_CMD_BIND,
  NFULNL_COPY_PACKET,
  type NflogConfig,
  type NflogPacket,
  nflogConfigMessage,
} from './nflog.ts';
import { openNetlinkSocket } from './socket.ts';

export type { NflogPacket } from './nflog.ts';

// The kernel batches packets into one skb whose tailroom can reach 256 KiB
// (NLBUFSIZ at most 128 KiB, rounded up by the page allocator); a bigger
// buffer never truncates a datagram.
const RECV_BUFFER = 512 * 1024;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const POLLIN = 0x1;
const SO_RCVTIMEO = 20; // SO_RCVTIMEO_OLD: struct timeval of longs (64-bit)
const SO_RCVBUFFORCE = 33;
const SO_MEMINFO = 55;
const SK_MEMINFO_DROPS = 8; // enum sk_meminfo_vars (linux/sock_diag.h)
const ETIMEDOUT = 110; // not in errors.ts's Errno table
/** How long open() waits for the kernel's answer to BIND. */
const CONFIG_TIMEOUT_MS = 5000;
/** A read() call drains at most this many datagrams, so a flood cannot pin it. */
const MAX_DATAGRAMS_PER_READ = 256;

export interface NflogOptions {
  /** Bytes of each packet to copy, from the network header; default 128 (IPv6 + TCP with options fit). */
  copyRange?: number;
  /** Send a batch once it holds this many packets; default 32. 1 delivers every packet at once. */
  qthreshold?: number;
  /** Send a partial batch after this long; default 100 ms (the kernel counts in 10 ms steps). */
  flushMs?: number;
  /** The kernel's batch buffer, bytes (its default is one page minus overhead; at most 128 KiB). */
  nlbufsiz?: number;
  /** SO_RCVBUF(FORCE) of the socket, bytes; default 1 MiB, so bursts of drops are not lost. */
  rcvbuf?: number;
}

const DEFAULTS = { copyRange: 128, qthreshold: 32, flushMs: 100, rcvbuf: 1 << 20 };

// ---- libc, as bound once in src/sys/libc.ts ----

const sys = libc.libcCalls;

/** poll(2) one fd for input: true when readable (or in error, which the next receive reports). EINTR counts as a timeout. */
function pollIn(fd: number, timeoutMs: number): boolean {
  const pfd = Buffer.alloc(8); // struct pollfd { int fd; short events; short revents; }
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(POLLIN, 4);
  const n = Number(sys().poll(pfd, 1, Math.trunc(timeoutMs)));
  if (n < 0) {
    const errno = sys().errno();
    if (errno === Errno.EINTR) return false;
    throw new SyscallError('poll', errno);
  }
  return n > 0 && pfd.readInt16LE(6) !== 0;
}

function setRecvTimeout(fd: number, ms: number): void {
  const tv = Buffer.alloc(16); // struct timeval { long tv_sec; long tv_usec; }
  tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  if (Number(sys().setsockopt(fd, libc.SOL_SOCKET, SO_RCVTIMEO, tv, tv.length)) < 0) {
    throw new SyscallError('setsockopt(SO_RCVTIMEO)', sys().errno());
  }
}

/** The socket's drop counter (SO_MEMINFO): datagrams the kernel could not queue. */
function socketDrops(fd: number): number {
  const info = Buffer.alloc(4 * 16);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  if (Number(sys().getsockopt(fd, libc.SOL_SOCKET, SO_MEMINFO, info, len)) < 0) {
    throw new SyscallError('getsockopt(SO_MEMINFO)', sys().errno());
  }
  return len.readUInt32LE(0) >= 4 * (SK_MEMINFO_DROPS + 1) ? info.readUInt32LE(4 * SK_MEMINFO_DROPS) : 0;
}

/** The receive buffer: FORCE (root) past net.core.rmem_max, else as much as rmem_max allows. Best effort. */
function setRecvBuf(fd: number, bytes: number): void {
  try {
    libc.setsockoptInt(fd, libc.SOL_SOCKET, SO_RCVBUFFORCE, bytes);
  } catch {
    try {
      libc.setsockoptInt(fd, libc.SOL_SOCKET, libc.SO_RCVBUF, bytes);
    } catch {
      // the default buffer still works
    }
  }
}

function configOf(opts: NflogOptions): NflogConfig {
  const cfg: NflogConfig = {
    command: NFULNL_CFG_CMD_BIND,
    copy: { mode: NFULNL_COPY_PACKET, range: opts.copyRange ?? DEFAULTS.copyRange },
    qthreshold: opts.qthreshold ?? DEFAULTS.qthreshold,
    timeout: Math.max(1, Math.ceil((opts.flushMs ?? DEFAULTS.flushMs) / 10)),
  };
  if (opts.nlbufsiz !== undefined) cfg.nlbufsiz = opts.nlbufsiz;
  return cfg;
}

export class NflogReader {
  readonly fd: number;
  readonly group: number;
  /**
   * Receives that failed with ENOBUFS. Each is one congestion episode: the
   * kernel reports ENOBUFS once, then drops silently until the queue has
   * drained. droppedBatches() counts what was actually lost.
   */
  overruns = 0;
  /** Datagrams longer than the receive buffer (their cut-off packets are lost); not expected. */
  truncated = 0;

  private seq = Math.floor(Math.random() * 0x7fffffff);
  private readonly buf = Buffer.alloc(RECV_BUFFER);
  /** Packets that arrived while waiting for an ACK, handed out by the next read(). */
  private pending: NflogPacket[] = [];
  private closed = false;

  private constructor(fd: number, group: number) {
    this.fd = fd;
    this.group = group;
  }

  /**
   * Binds nflog `group` in `ns` (or the calling thread's namespace) and sets
   * the copy mode. Throws NetlinkError EPERM when another socket of that
   * namespace already bound the group (the kernel allows one reader per
   * group and namespace).
   */
  static open(group: number, ns?: Netns, opts: NflogOptions = {}): NflogReader {
    const cfg = configOf(opts); // validates before any socket exists
    encodeNflogConfig(group, cfg);
    const fd = openNetlinkSocket(NETLINK_NETFILTER, ns);
    const r = new NflogReader(fd, group);
    try {
      setRecvBuf(fd, opts.rcvbuf ?? DEFAULTS.rcvbuf);
      // BIND and the settings in one message: the kernel creates the
      // instance, then applies MODE/QTHRESH/TIMEOUT/NLBUFSIZ to it.
      r.configure(`bind nflog group ${group}${ns ? ` in ${ns.path}` : ''}`, cfg);
    } catch (e) {
      r.closed = true;
      libc.close(fd);
      throw e;
    }
    return r;
  }

  /**
   * Waits up to `timeoutMs` (negative: forever) for logged packets, then
   * returns every packet already queued on the socket; [] on timeout. An
   * overrun (ENOBUFS) is counted and reading goes on.
   */
  read(timeoutMs: number): NflogPacket[] {
    if (this.closed) throw new NetlinkError(`read nflog group ${this.group} (reader closed)`, Errno.EBADF);
    const out = this.pending;
    this.pending = [];
    if (out.length === 0 && !pollIn(this.fd, timeoutMs)) return out;
    for (let i = 0; i < MAX_DATAGRAMS_PER_READ; i++) {
      const n = this.recvNow();
      if (n === undefined) break;
      if (n >= 0) out.push(...this.ingest(this.buf.subarray(0, n)));
    }
    return out;
  }

  /**
   * Decodes one datagram received from this socket (by read(), or by
   * watchNflog's worker) into its packets, dropping ACKs and batch ends.
   */
  ingest(datagram: Buffer): NflogPacket[] {
    const out: NflogPacket[] = [];
    for (const m of parseMessages(datagram)) {
      if (m.type !== NFLOG_PACKET) continue;
      const p = decodeNflogPacket(m.payload);
      if (p) out.push(p);
    }
    return out;
  }

  /**
   * Datagrams (batches of up to `qthreshold` packets) the kernel dropped
   * because the receive buffer was full, since the socket was opened.
   */
  droppedBatches(): number {
    if (this.closed) return 0;
    return socketDrops(this.fd);
  }

  /** Sends UNBIND (best effort, no wait) and closes the socket; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      // Closing releases the group anyway (NETLINK_URELEASE); UNBIND says so first.
      libc.sendto(this.fd, nflogConfigMessage(C.NLM_F_REQUEST, this.nextSeq(), encodeNflogUnbind(this.group)), null);
    } catch {
      // the close below releases it
    }
    libc.close(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Sends a config request without waiting: its ACK will wake a thread blocked in read(2). */
  wake(): void {
    if (this.closed) return;
    try {
      libc.sendto(this.fd, nflogConfigMessage(C.NLM_F_REQUEST | C.NLM_F_ACK, this.nextSeq(), encodeNflogConfig(this.group, {})), null);
    } catch {
      // the reader's receive timeout wakes it anyway
    }
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    if (this.seq === 0) this.seq = 1; // packets carry seq 0
    return this.seq;
  }

  /** One non-blocking receive: bytes, -1 for an overrun or a truncated datagram, undefined when the queue is empty. */
  private recvNow(): number | undefined {
    let n: number;
    try {
      n = libc.recv(this.fd, this.buf, MSG_DONTWAIT | MSG_TRUNC);
    } catch (e) {
      if (e instanceof SyscallError && e.errno === Errno.EAGAIN) return undefined;
      if (e instanceof SyscallError && e.errno === Errno.ENOBUFS) {
        this.overruns++;
        return -1;
      }
      throw e;
    }
    if (n > this.buf.length) {
      this.truncated++;
      return -1;
    }
    return n;
  }

  /** Sends a config message and waits for its ACK; packets arriving meanwhile are kept for read(). */
  private configure(op: string, cfg: NflogConfig): void {
    const seq = this.nextSeq();
    libc.sendto(this.fd, nflogConfigMessage(C.NLM_F_REQUEST | C.NLM_F_ACK, seq, encodeNflogConfig(this.group, cfg)), null);
    const deadline = Date.now() + CONFIG_TIMEOUT_MS;
    for (;;) {
      const left = deadline - Date.now();
      // An ACK can only be lost to an overrun of a buffer full of packets.
      if (left <= 0 || !pollIn(this.fd, left)) throw new NetlinkError(`${op} (no answer from the kernel)`, ETIMEDOUT);
      const n = this.recvNow();
      if (n === undefined || n < 0) continue;
      for (const msg of parseMessages(this.buf.subarray(0, n))) {
        if (msg.type === NFLOG_PACKET) {
          const p = decodeNflogPacket(msg.payload);
          if (p) this.pending.push(p);
          continue;
        }
        if (msg.seq !== seq || msg.type !== C.NLMSG_ERROR) continue;
        const err = parseError(msg);
        if (err.errno === 0) return;
        if (err.errno === Errno.EPERM) {
          throw new NetlinkError(`${op} (the group is already bound by another netlink socket in this network namespace)`, err.errno, err.message);
        }
        throw new NetlinkError(op, err.errno, err.message);
      }
    }
  }
}

// ---- the agent's asynchronous reader ----

/** The worker: blocks in read(2) on the socket, posts each datagram. Plain JavaScript, no imports of weir's. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const stop = new Int32Array(workerData.stop);
const buf = Buffer.allocUnsafe(workerData.bufSize);
while (Atomics.load(stop, 0) === 0) {
  let n;
  try {
    n = fs.readSync(workerData.fd, buf, 0, buf.length, null);
  } catch (e) {
    // EAGAIN: SO_RCVTIMEO ran out, time to look at the stop flag.
    if (e.code === 'EAGAIN' || e.code === 'EINTR') continue;
    if (e.code === 'ENOBUFS') { parentPort.postMessage({ overrun: true }); continue; }
    throw e;
  }
  if (Atomics.load(stop, 0) !== 0) break;
  const out = new Uint8Array(n);
  out.set(buf.subarray(0, n));
  parentPort.postMessage({ data: out }, [out.buffer]);
}
`;

interface WorkerMsg {
  data?: Uint8Array;
  overrun?: boolean;
}

export interface NflogWatch {
  readonly group: number;
  /** Packets delivered so far. */
  readonly packets: number;
  /** ENOBUFS overruns seen so far (congestion episodes, see NflogReader.overruns). */
  readonly overruns: number;
  /** Batches the kernel dropped on a full receive buffer (see NflogReader.droppedBatches). */
  droppedBatches(): number;
  /** Stops the worker (at once, or within one receive timeout), then closes the socket; idempotent. */
  stop(): Promise<void>;
}

export interface WatchOptions extends NflogOptions {
  /** The worker's receive timeout, which bounds how long stop() can take; default 250 ms. */
  pollMs?: number;
}

/**
 * Binds `group` in `ns` (synchronously, so EPERM and other failures are
 * thrown here) and delivers each logged packet to `onPacket` on the calling
 * thread's event loop. `onError` gets a worker failure (after which no more
 * packets come; call stop() to release the socket) and any exception thrown
 * by `onPacket`. The worker keeps the process alive until stop().
 */
export function watchNflog(
  group: number,
  ns: Netns | undefined,
  onPacket: (p: NflogPacket) => void,
  onError: (e: unknown) => void,
  opts: WatchOptions = {},
): NflogWatch {
  const reader = NflogReader.open(group, ns, opts);
  const stop = new SharedArrayBuffer(4);
  let worker: Worker;
  try {
    setRecvTimeout(reader.fd, opts.pollMs ?? 250);
    worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd: reader.fd, stop, bufSize: RECV_BUFFER } });
  } catch (e) {
    reader.close();
    throw e;
  }
  let packets = 0;
  let stopping = false;
  let failed = false;
  const fail = (e: unknown) => {
    if (stopping || failed) return;
    failed = true;
    onError(e);
  };
  worker.on('message', (m: WorkerMsg) => {
    if (m.overrun) {
      reader.overruns++;
      return;
    }
    if (!m.data) return;
    for (const p of reader.ingest(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength))) {
      packets++;
      try {
        onPacket(p);
      } catch (e) {
        onError(e);
      }
    }
  });
  worker.on('error', fail);
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', (code) => {
      fail(new Error(`nflog group ${group} reader thread exited (code ${code})`));
      resolve();
    }),
  );
  let stopped: Promise<void> | undefined;
  return {
    group,
    get packets() {
      return packets;
    },
    get overruns() {
      return reader.overruns;
    },
    droppedBatches: () => reader.droppedBatches(),
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        Atomics.store(new Int32Array(stop), 0, 1);
        reader.wake(); // its ACK ends the worker's read at once
        await exited;
        reader.close(); // only now: the worker no longer reads the fd
      })()),
  };
}
