// Raw IP sockets over the libc calls bound in libc.ts, for SCTP at the packet
// level (weirctl trace's probe, the lab's prober and observer): socket,
// sendto with a sockaddr_in/sockaddr_in6, poll(2)-bounded recvfrom, close.
// All calls are synchronous and bounded (receives wait at most their
// timeout), and every failure is a SyscallError carrying the kernel errno.
import os from 'node:os';
import { Errno, InvalidConfigError, SyscallError } from '../errors.ts';
import { formatIp, type IpBytes, type IpFamily, parseIp } from '../ip.ts';
import { AF_INET, AF_INET6, libcCalls, SO_RCVBUF, SOCK_CLOEXEC, SOCK_RAW, SOL_SOCKET } from './libc.ts';

export const SOCK_NONBLOCK = 0o4000;
export const POLLIN = 0x1;
export const POLLERR = 0x8;

/** libc, as bound once in src/sys/libc.ts. */
const raw = libcCalls;

const LE = os.endianness() === 'LE';
const writeU16Native = (b: Buffer, v: number, off: number): void => void (LE ? b.writeUInt16LE(v, off) : b.writeUInt16BE(v, off));
const readU16Native = (b: Buffer, off: number): number => (LE ? b.readUInt16LE(off) : b.readUInt16BE(off));
const writeU32Native = (b: Buffer, v: number, off: number): void => void (LE ? b.writeUInt32LE(v >>> 0, off) : b.writeUInt32BE(v >>> 0, off));
const readU32Native = (b: Buffer, off: number): number => (LE ? b.readUInt32LE(off) : b.readUInt32BE(off));

export const afOf = (family: IpFamily): number => (family === 4 ? AF_INET : AF_INET6);

/** sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes) for an address and port. */
export function sockaddr(ip: IpBytes | string, port = 0): Buffer {
  const a = typeof ip === 'string' ? parseIp(ip) : ip;
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new InvalidConfigError(`bad port ${port}`);
  if (a.family === 4) {
    const b = Buffer.alloc(16);
    writeU16Native(b, AF_INET, 0);
    b.writeUInt16BE(port, 2);
    b.set(a.bytes, 4);
    return b;
  }
  const b = Buffer.alloc(28);
  writeU16Native(b, AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  b.set(a.bytes, 8); // after flowinfo; scope id stays 0
  return b;
}

export interface SockaddrInfo {
  family: IpFamily;
  address: string;
  port: number;
}

/** Decodes a sockaddr_in/sockaddr_in6 as filled in by the kernel. */
export function parseSockaddr(b: Buffer, len = b.length): SockaddrInfo | undefined {
  if (len < 2) return undefined;
  const af = readU16Native(b, 0);
  if (af === AF_INET && len >= 8) return { family: 4, port: b.readUInt16BE(2), address: formatIp(b.subarray(4, 8)) };
  if (af === AF_INET6 && len >= 24) return { family: 6, port: b.readUInt16BE(2), address: formatIp(b.subarray(8, 24)) };
  return undefined;
}

function fail(syscall: string): never {
  throw new SyscallError(syscall, raw().errno());
}

/** socket(AF_INET[6], SOCK_RAW|SOCK_CLOEXEC, protocol). Needs CAP_NET_RAW. */
export function rawSocket(family: IpFamily, protocol: number): number {
  const fd = Number(raw().socket(afOf(family), SOCK_RAW | SOCK_CLOEXEC, protocol));
  if (fd < 0) fail('socket');
  return fd;
}

/**
 * Sends one datagram to `ip`. For raw sockets the port must be 0 (IPv6 raw
 * sockets refuse a port other than 0 or their protocol). Retries on EINTR.
 */
export function sendTo(fd: number, buf: Uint8Array, ip: IpBytes | string, port = 0): number {
  const addr = sockaddr(ip, port);
  for (;;) {
    const ret = Number(raw().sendto(fd, buf, buf.length, 0, addr, addr.length));
    if (ret >= 0) return ret;
    const errno = raw().errno();
    if (errno !== Errno.EINTR) throw new SyscallError('sendto', errno);
  }
}

/**
 * poll(2) for readability. Returns the subset of `fds` that are readable (or
 * in error, so the following recv reports it), [] on timeout. A negative
 * timeout waits forever; an interrupted poll (EINTR) counts as a timeout.
 */
export function pollIn(fds: readonly number[], timeoutMs: number): number[] {
  if (fds.length === 0) return [];
  const pfd = Buffer.alloc(8 * fds.length);
  // struct pollfd { int fd; short events; short revents; }, native-endian.
  fds.forEach((fd, i) => {
    writeU32Native(pfd, fd, i * 8);
    writeU16Native(pfd, POLLIN, i * 8 + 4);
  });
  const n = Number(raw().poll(pfd, fds.length, Math.trunc(timeoutMs)));
  if (n < 0) {
    const errno = raw().errno();
    if (errno === Errno.EINTR) return [];
    throw new SyscallError('poll', errno);
  }
  if (n === 0) return [];
  return fds.filter((_, i) => readU16Native(pfd, i * 8 + 6) !== 0);
}

export interface Received {
  /** Bytes written to the caller's buffer. */
  length: number;
  from: SockaddrInfo | undefined;
}

const MSG_DONTWAIT = 0x40;

/** One non-blocking recvfrom: undefined when nothing is queued. */
export function recvFromNow(fd: number, buf: Buffer): Received | undefined {
  const addr = Buffer.alloc(28);
  const alen = Buffer.alloc(4);
  for (;;) {
    writeU32Native(alen, addr.length, 0);
    const ret = Number(raw().recvfrom(fd, buf, buf.length, MSG_DONTWAIT, addr, alen));
    if (ret >= 0) return { length: ret, from: parseSockaddr(addr, readU32Native(alen, 0)) };
    const errno = raw().errno();
    if (errno === Errno.EINTR) continue;
    if (errno === Errno.EAGAIN) return undefined;
    throw new SyscallError('recvfrom', errno);
  }
}

/**
 * recvfrom bounded by a timeout (poll(2) first, then MSG_DONTWAIT): returns
 * undefined when nothing arrived within `timeoutMs`.
 */
export function recvFrom(fd: number, buf: Buffer, timeoutMs: number): Received | undefined {
  const deadline = Date.now() + Math.max(0, timeoutMs);
  for (;;) {
    const left = deadline - Date.now();
    if (pollIn([fd], Math.max(0, left)).length > 0) {
      const r = recvFromNow(fd, buf);
      if (r) return r;
    }
    if (Date.now() >= deadline) return undefined;
  }
}

export function setRecvBuf(fd: number, bytes: number): void {
  const v = Buffer.alloc(4);
  writeU32Native(v, bytes, 0);
  if (Number(raw().setsockopt(fd, SOL_SOCKET, SO_RCVBUF, v, 4)) < 0) fail('setsockopt');
}

/** close(2); EINTR is not retried (Linux releases the fd anyway). */
export function closeFd(fd: number): void {
  if (Number(raw().close(fd)) < 0) {
    const errno = raw().errno();
    if (errno !== Errno.EINTR) throw new SyscallError('close', errno);
  }
}
