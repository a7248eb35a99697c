// The few libc calls weir needs, bound once through koffi. Every wrapper
// checks the return value and throws SyscallError with the real errno, so no
// caller ever sees a bare -1.
import { Errno, SyscallError } from '../errors.ts';
import { type KoffiFunction, loadKoffi } from './ffi.ts';

export const AF_NETLINK = 16;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_RAW = 3;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_SNDBUF = 7;
export const SOL_NETLINK = 270;
export const NETLINK_EXT_ACK = 11;
export const NETLINK_GET_STRICT_CHK = 12;
export const CLONE_NEWNET = 0x40000000;
export const LOCK_EX = 2;
export const LOCK_UN = 8;
export const LOCK_NB = 4;

/** The raw calls (return value as the kernel gives it, errno apart), for callers with their own error handling. */
export interface LibcCalls {
  socket: KoffiFunction;
  bind: KoffiFunction;
  connect: KoffiFunction;
  sendto: KoffiFunction;
  recv: KoffiFunction;
  recvfrom: KoffiFunction;
  poll: KoffiFunction;
  close: KoffiFunction;
  setns: KoffiFunction;
  flock: KoffiFunction;
  setsockopt: KoffiFunction;
  getsockopt: KoffiFunction;
  errno: () => number;
}

let bindings: LibcCalls | undefined;

/** Every libc function weir calls, bound once (lazily) for the whole process. */
export function libcCalls(): LibcCalls {
  if (bindings) return bindings;
  const koffi = loadKoffi();
  const lib = koffi.load('libc.so.6');
  bindings = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    connect: lib.func('int connect(int fd, const void *addr, uint32_t len)'),
    sendto: lib.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)'),
    recv: lib.func('intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)'),
    // koffi passes a Buffer as a pointer to its own memory, so the kernel's
    // writes into buf, addr, val and len land in the caller's Buffers.
    recvfrom: lib.func('intptr_t recvfrom(int fd, void *buf, size_t len, int flags, void *addr, void *alen)'),
    poll: lib.func('int poll(void *fds, uint64_t nfds, int timeout)'),
    close: lib.func('int close(int fd)'),
    setns: lib.func('int setns(int fd, int nstype)'),
    flock: lib.func('int flock(int fd, int op)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    getsockopt: lib.func('int getsockopt(int fd, int level, int name, void *val, void *len)'),
    errno: () => koffi.errno(),
  };
  return bindings;
}

function check(name: string, ret: unknown): number {
  const n = Number(ret);
  if (n < 0) throw new SyscallError(name, libcCalls().errno());
  return n;
}

export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', libcCalls().socket(domain, type | SOCK_CLOEXEC, protocol));
}

export function bind(fd: number, addr: Buffer): void {
  check('bind', libcCalls().bind(fd, addr, addr.length));
}

export function sendto(fd: number, buf: Buffer, addr: Buffer | null): number {
  for (;;) {
    const ret = Number(libcCalls().sendto(fd, buf, buf.length, 0, addr, addr ? addr.length : 0));
    if (ret >= 0) return ret;
    const errno = libcCalls().errno();
    if (errno !== Errno.EINTR) throw new SyscallError('sendto', errno);
  }
}

/** Blocking receive into `buf`; returns the byte count. Retries on EINTR. */
export function recv(fd: number, buf: Buffer, flags = 0): number {
  for (;;) {
    const ret = Number(libcCalls().recv(fd, buf, buf.length, flags));
    if (ret >= 0) return ret;
    const errno = libcCalls().errno();
    if (errno !== Errno.EINTR) throw new SyscallError('recv', errno);
  }
}

export function close(fd: number): void {
  check('close', libcCalls().close(fd));
}

export function setns(fd: number, nstype: number): void {
  check('setns', libcCalls().setns(fd, nstype));
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value);
  check('setsockopt', libcCalls().setsockopt(fd, level, name, v, 4));
}

/**
 * flock(2). Blocks for LOCK_EX unless LOCK_NB is given; returns false only
 * when LOCK_NB was given and the lock is held elsewhere.
 */
export function flock(fd: number, op: number): boolean {
  for (;;) {
    const ret = Number(libcCalls().flock(fd, op));
    if (ret === 0) return true;
    const errno = libcCalls().errno();
    if (errno === Errno.EINTR) continue;
    if (errno === Errno.EAGAIN && op & LOCK_NB) return false;
    throw new SyscallError('flock', errno);
  }
}
