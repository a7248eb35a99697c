// One probe packet from inside a pod's network namespace, for weirctl trace:
// a TCP connect (non-blocking, bounded by a short timeout), one UDP datagram,
// or an SCTP INIT (src/packet/sctp.ts) through a raw socket
// (src/sys/raw-socket.ts). The socket is created inside the pod's namespace
// (inNetns, synchronously) and keeps living there after the thread has
// switched back, so the rest happens outside it.
import { randomInt } from 'node:crypto';
import { Errno, errnoName, SyscallError } from '../../errors.ts';
import type { IpFamily } from '../../ip.ts';
import { buildSctpInit, IPPROTO_SCTP } from '../../packet/sctp.ts';
import { libcCalls } from '../../sys/libc.ts';
import { inNetns, type Netns } from '../../sys/netns.ts';
import { closeFd, rawSocket, sendTo, sockaddr } from '../../sys/raw-socket.ts';

const AF = { 4: 2, 6: 10 } as const;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const EINPROGRESS = 115;
const ECONNREFUSED = 111;
const POLLOUT = 0x4;
const SOL_SOCKET = 1;
const SO_ERROR = 4;

/** libc, as bound once in src/sys/libc.ts. */
const libc = libcCalls;

export type ProbeProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface ProbeSpec {
  family: IpFamily;
  dst: string;
  port: number;
  protocol: ProbeProtocol;
  /** TCP: how long to wait for the handshake. */
  timeoutMs?: number;
}

export interface ProbeOutcome {
  /** What the source saw: `connected`, `refused`, `no answer within 500 ms`, `sent`. */
  outcome: string;
}

function socketIn(ns: Netns, family: IpFamily, type: number, protocol: number): number {
  const fd = Number(inNetns(ns, () => libc().socket(AF[family], type | SOCK_CLOEXEC, protocol)));
  if (fd < 0) throw new SyscallError('socket', libc().errno());
  return fd;
}

const REFUSED = 'refused (a reset came back: nothing listens there, or something rejected it)';

function tcpConnect(fd: number, spec: ProbeSpec): string {
  const addr = sockaddr(spec.dst, spec.port);
  if (Number(libc().connect(fd, addr, addr.length)) === 0) return 'connected';
  const errno = libc().errno();
  if (errno === ECONNREFUSED) return REFUSED;
  if (errno !== EINPROGRESS) return `connect failed: ${errnoName(errno)}`;
  const timeout = spec.timeoutMs ?? 500;
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(POLLOUT, 4);
  const deadline = Date.now() + timeout;
  for (;;) {
    const n = Number(libc().poll(pfd, 1, Math.max(0, deadline - Date.now())));
    if (n > 0) break;
    if (n < 0 && libc().errno() !== Errno.EINTR) return `poll failed: ${errnoName(libc().errno())}`;
    if (Date.now() >= deadline) return `no answer within ${timeout} ms`;
  }
  const val = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  if (Number(libc().getsockopt(fd, SOL_SOCKET, SO_ERROR, val, len)) < 0) return 'connected?';
  const err = val.readInt32LE(0);
  return err === 0 ? 'connected' : err === ECONNREFUSED ? REFUSED : `failed: ${errnoName(err)}`;
}

/** Sends one probe from `ns`; throws SyscallError when even the socket cannot be made. */
export function sendProbe(ns: Netns, spec: ProbeSpec): ProbeOutcome {
  if (spec.protocol === 'SCTP') {
    const fd = inNetns(ns, () => rawSocket(spec.family, IPPROTO_SCTP));
    try {
      sendTo(fd, buildSctpInit({ srcPort: randomInt(32768, 61000), dstPort: spec.port, initiateTag: randomInt(1, 0x7fffffff) }), spec.dst);
      return { outcome: 'INIT sent' };
    } finally {
      closeFd(fd);
    }
  }
  const type = spec.protocol === 'TCP' ? SOCK_STREAM | SOCK_NONBLOCK : SOCK_DGRAM | SOCK_NONBLOCK;
  const fd = socketIn(ns, spec.family, type, 0);
  try {
    if (spec.protocol === 'TCP') return { outcome: tcpConnect(fd, spec) };
    sendTo(fd, Buffer.from('weirctl trace probe\n'), spec.dst, spec.port);
    return { outcome: 'datagram sent' };
  } finally {
    closeFd(fd);
  }
}
