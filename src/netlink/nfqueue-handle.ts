// A bound nfnetlink_queue in one network namespace, read by a thread of its
// own: the agent holds DNS answers there until the addresses they carry are
// in the kernel's sets, then accepts them (src/agent/dns.ts).
//
// Like watchNflog(), a worker thread blocks in read(2) on the socket and
// posts each datagram to the main thread, which decodes the packets, decides
// and sends each verdict itself (one sendto, no reply). The worker is an
// `eval` worker of plain JavaScript (it must run from the single-executable
// bundle too), and it also keeps the promise the queue makes to the packets
// it holds: a packet the main thread has not judged within `deadlineMs` is
// accepted by the worker. The main thread can be busy for long stretches (a
// big sync, a full kernel check); a DNS answer must not wait on that, so
// weir's added latency on DNS is bounded whatever the agent is doing.
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { Errno, NetlinkError, SyscallError } from '../errors.ts';
import * as libc from '../sys/libc.ts';
import type { Netns } from '../sys/netns.ts';
import { NETLINK_NETFILTER } from './conntrack.ts';
import * as C from './constants.ts';
import { parseError, parseMessages } from './message.ts';
import {
  decodeQueueDatagram,
  encodeNfqueueConfig,
  NF_ACCEPT,
  NFQA_CFG_F_FAIL_OPEN,
  NFQNL_CFG_CMD_BIND,
  NFQNL_CFG_CMD_UNBIND,
  nfqueueConfigMessage,
  nfqueueVerdictMessage,
  type QueuedPacket,
} from './nfqueue.ts';
import { openNetlinkSocket } from './socket.ts';

export type { QueuedPacket } from './nfqueue.ts';

const RECV_BUFFER = 256 * 1024;
const SO_RCVTIMEO = 20;
const SO_RCVBUFFORCE = 33;
const ETIMEDOUT = 110;
const CONFIG_TIMEOUT_MS = 5000;

export interface QueueOptions {
  /** Bytes of each packet copied to the agent; default 65535 (a whole DNS answer over UDP or one TCP segment). */
  copyRange?: number;
  /** Packets the kernel holds for the agent; past it, FAIL_OPEN accepts them. Default 1024. */
  maxLen?: number;
  /** A packet not judged within this long is accepted by the reader thread. Default 1500 ms. */
  deadlineMs?: number;
  /** The reader thread's receive timeout: how often it looks at deadlines and the stop flag. Default 50 ms. */
  pollMs?: number;
}

const DEFAULTS = { copyRange: 0xffff, maxLen: 1024, deadlineMs: 1500, pollMs: 50 };

function setRecvTimeout(fd: number, ms: number): void {
  const tv = Buffer.alloc(16);
  tv.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  tv.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  if (Number(libc.libcCalls().setsockopt(fd, libc.SOL_SOCKET, SO_RCVTIMEO, tv, tv.length)) < 0) {
    throw new SyscallError('setsockopt(SO_RCVTIMEO)', libc.libcCalls().errno());
  }
}

/** Opens a socket in `ns`, binds `queue` with FAIL_OPEN and the copy range, and waits for the kernel's ack. */
function bindQueue(queue: number, ns: Netns | undefined, opts: Required<QueueOptions>): number {
  const fd = openNetlinkSocket(NETLINK_NETFILTER, ns);
  try {
    try {
      libc.setsockoptInt(fd, libc.SOL_SOCKET, SO_RCVBUFFORCE, 4 * RECV_BUFFER);
    } catch {
      // the default buffer works; FAIL_OPEN covers an overflow
    }
    setRecvTimeout(fd, opts.pollMs);
    const seq = 1;
    const body = encodeNfqueueConfig(queue, { command: NFQNL_CFG_CMD_BIND, copyRange: opts.copyRange, maxLen: opts.maxLen, flags: NFQA_CFG_F_FAIL_OPEN });
    libc.sendto(fd, nfqueueConfigMessage(C.NLM_F_REQUEST | C.NLM_F_ACK, seq, body), null);
    const buf = Buffer.alloc(8192);
    const deadline = Date.now() + CONFIG_TIMEOUT_MS;
    for (;;) {
      if (Date.now() > deadline) throw new NetlinkError(`bind nfqueue ${queue} (no answer from the kernel)`, ETIMEDOUT);
      let n: number;
      try {
        n = libc.recv(fd, buf, 0);
      } catch (e) {
        if (e instanceof SyscallError && (e.errno === Errno.EAGAIN || e.errno === Errno.EINTR)) continue;
        throw e;
      }
      for (const m of parseMessages(buf.subarray(0, n))) {
        if (m.type !== C.NLMSG_ERROR || m.seq !== seq) continue;
        const err = parseError(m);
        if (err.errno === 0) return fd;
        throw new NetlinkError(
          `bind nfqueue ${queue}${err.errno === Errno.EBUSY ? ' (another socket of this network namespace holds it)' : ''}`,
          err.errno,
          err.message,
        );
      }
    }
  } catch (e) {
    libc.close(fd);
    throw e;
  }
}

/**
 * The reader thread: posts every datagram; notes the id of each queued
 * packet, forgets those the main thread says it judged, and accepts the
 * ones left past the deadline. Plain JavaScript, no imports of weir's.
 */
const WORKER_SOURCE = `
const { parentPort, workerData, receiveMessageOnPort } = require('node:worker_threads');
const fs = require('node:fs');
const { fd, queue, deadlineMs, port } = workerData;
const stop = new Int32Array(workerData.stop);
const buf = Buffer.allocUnsafe(workerData.bufSize);
const pending = new Map();
const PACKET = (3 << 8) | 0;
function accept(id) {
  const m = Buffer.alloc(32);
  m.writeUInt32LE(32, 0); m.writeUInt16LE((3 << 8) | 1, 4); m.writeUInt16LE(1, 6);
  m.writeUInt8(0, 16); m.writeUInt8(0, 17); m.writeUInt16BE(queue, 18);
  m.writeUInt16LE(12, 20); m.writeUInt16LE(2, 22); m.writeUInt32BE(1, 24); m.writeUInt32BE(id >>> 0, 28);
  try { fs.writeSync(fd, m); } catch (e) {}
}
while (Atomics.load(stop, 0) === 0) {
  let n = 0;
  try {
    n = fs.readSync(fd, buf, 0, buf.length, null);
  } catch (e) {
    if (e.code === 'ENOBUFS') parentPort.postMessage({ overrun: true });
    else if (e.code !== 'EAGAIN' && e.code !== 'EINTR') throw e;
  }
  if (Atomics.load(stop, 0) !== 0) break;
  const now = performance.timeOrigin + performance.now();
  if (n > 0) {
    for (let off = 0; off + 16 <= n; ) {
      const len = buf.readUInt32LE(off);
      if (len < 16 || off + len > n) break;
      if (buf.readUInt16LE(off + 4) === PACKET) {
        for (let a = off + 20; a + 4 <= off + len; ) {
          const alen = buf.readUInt16LE(a);
          if (alen < 4) break;
          if ((buf.readUInt16LE(a + 2) & 0x3fff) === 1 && alen >= 11) { pending.set(buf.readUInt32BE(a + 4), now); break; }
          a += (alen + 3) & ~3;
        }
      }
      off += (len + 3) & ~3;
    }
    const out = new Uint8Array(n);
    out.set(buf.subarray(0, n));
    parentPort.postMessage({ data: out, at: now }, [out.buffer]);
  }
  for (let m; (m = receiveMessageOnPort(port)); ) for (const id of m.message) pending.delete(id);
  const late = [];
  for (const [id, t] of pending) if (now - t >= deadlineMs) { accept(id); late.push(id); }
  for (const id of late) pending.delete(id);
  if (late.length > 0) parentPort.postMessage({ late });
}
`;

interface WorkerMsg {
  data?: Uint8Array;
  at?: number;
  overrun?: boolean;
  late?: number[];
}

export interface QueueWatch {
  readonly queue: number;
  /** Packets delivered to the handler so far. */
  readonly packets: number;
  /** Packets the reader thread accepted because the handler had not judged them in time. */
  readonly late: number;
  /** Receive overruns (ENOBUFS): datagrams of packets lost to the agent (FAIL_OPEN still passes later ones). */
  readonly overruns: number;
  /** Stops the reader thread, then unbinds and closes the socket (packets still held are dropped by the kernel); idempotent. */
  stop(): Promise<void>;
}

/**
 * Binds `queue` in `ns` (synchronously: EBUSY and other failures are thrown
 * here) and hands each queued packet to `onPacket` on the calling thread,
 * with the time the reader thread received it (performance.timeOrigin +
 * performance.now(), milliseconds). `onPacket`
 * returns the verdict (NF_ACCEPT or NF_DROP), sent at once. A handler that
 * throws, or a packet that cannot be decoded, is accepted.
 */
export function watchQueue(
  queue: number,
  ns: Netns | undefined,
  onPacket: (p: QueuedPacket, receivedAt: number) => number,
  onError: (e: unknown) => void,
  options: QueueOptions = {},
): QueueWatch {
  const opts = { ...DEFAULTS, ...options };
  const fd = bindQueue(queue, ns, opts);
  const stop = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  const worker = startReader(fd, queue, stop, opts.deadlineMs, port2);
  const w: Watch = { fd, queue, stop, port: port1, packets: 0, late: 0, overruns: 0, stopping: false };
  worker.on('message', judge(w, onPacket, onError));
  worker.on('error', (e) => {
    if (!w.stopping) onError(e);
  });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  let stopped: Promise<void> | undefined;
  return {
    queue,
    get packets() {
      return w.packets;
    },
    get late() {
      return w.late;
    },
    get overruns() {
      return w.overruns;
    },
    stop: () => (stopped ??= stopWatch(w, exited)),
  };
}

/** The main thread's side of one watch: the bound socket, the stop flag and port shared with the reader thread, the counts. */
interface Watch {
  readonly fd: number;
  readonly queue: number;
  readonly stop: SharedArrayBuffer;
  readonly port: MessagePort;
  packets: number;
  late: number;
  overruns: number;
  stopping: boolean;
}

/** Starts the reader thread on the bound socket; closes the socket if the thread cannot start. */
function startReader(fd: number, queue: number, stop: SharedArrayBuffer, deadlineMs: number, port: MessagePort): Worker {
  try {
    return new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { fd, queue, stop, bufSize: RECV_BUFFER, deadlineMs, port },
      transferList: [port],
    });
  } catch (e) {
    libc.close(fd);
    throw e;
  }
}

/** Handles the reader thread's messages: counts, and a verdict for every packet of a datagram (accept when the handler throws). */
function judge(w: Watch, onPacket: (p: QueuedPacket, receivedAt: number) => number, onError: (e: unknown) => void): (m: WorkerMsg) => void {
  let seq = 1;
  const verdict = (id: number, v: number): void => {
    try {
      seq = (seq + 1) >>> 0;
      libc.sendto(w.fd, nfqueueVerdictMessage(w.queue, id, v, seq), null);
    } catch (e) {
      onError(e);
    }
  };
  return (m) => {
    if (m.overrun) w.overruns++;
    if (m.late) w.late += m.late.length;
    if (!m.data) return;
    const judged: number[] = [];
    for (const p of decodeQueueDatagram(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength))) {
      w.packets++;
      let v = NF_ACCEPT;
      try {
        v = onPacket(p, m.at ?? performance.timeOrigin + performance.now());
      } catch (e) {
        onError(e);
      }
      verdict(p.id, v);
      judged.push(p.id);
    }
    if (judged.length > 0 && !w.stopping) w.port.postMessage(judged);
  };
}

/** Stops the reader thread, then unbinds the queue and closes the socket. */
async function stopWatch(w: Watch, exited: Promise<void>): Promise<void> {
  w.stopping = true;
  Atomics.store(new Int32Array(w.stop), 0, 1);
  await exited; // within one receive timeout
  w.port.close();
  try {
    libc.sendto(w.fd, nfqueueConfigMessage(C.NLM_F_REQUEST, 0, encodeNfqueueConfig(w.queue, { command: NFQNL_CFG_CMD_UNBIND })), null);
  } catch {
    // closing releases it too
  }
  libc.close(w.fd);
}
