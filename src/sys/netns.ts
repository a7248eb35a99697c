// Network namespaces. The only place weir calls setns(2): it enters a namespace
// on the calling (JS main) thread, runs a synchronous function, and switches
// back in a `finally`. setns affects the calling thread alone, and synchronous
// code cannot yield to other JS, so nothing else ever runs in the wrong netns.
import fs from 'node:fs';
import { errnoName, NetnsError, SyscallError } from '../errors.ts';
import { CLONE_NEWNET, setns } from './libc.ts';

const NSFS_MAGIC = 0x6e736673;

export class Netns {
  readonly path: string;
  readonly fd: number;
  /** The nsfs inode, as `readlink /proc/PID/ns/net` shows it (`net:[inode]`). */
  readonly inode: number;
  /** `dev:ino`: equal identities are the same namespace. */
  readonly identity: string;

  private constructor(path: string, fd: number, st: fs.Stats) {
    this.path = path;
    this.fd = fd;
    this.inode = st.ino;
    this.identity = `${st.dev}:${st.ino}`;
  }

  /** Opens a namespace file (e.g. /var/run/netns/x or /proc/PID/ns/net). */
  static open(path: string): Netns {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      throw new NetnsError(`cannot open network namespace ${path}: ${code}`, (e as NodeJS.ErrnoException).errno);
    }
    const st = fs.fstatSync(fd);
    // Namespace files live on nsfs; anything else would only fail later, at
    // setns, with a bare EINVAL. (Which kind of namespace it is, setns says.)
    if (!st.isFile() || fs.statfsSync(`/proc/self/fd/${fd}`).type !== NSFS_MAGIC) {
      fs.closeSync(fd);
      throw new NetnsError(`${path} is not a network namespace`);
    }
    return new Netns(path, fd, st);
  }

  /** The namespace of the calling thread. */
  static current(): Netns {
    return Netns.open('/proc/thread-self/ns/net');
  }

  sameAs(other: Netns): boolean {
    return this.identity === other.identity;
  }

  close(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed: nothing to release
    }
  }
}

/**
 * Runs `fn` with the calling thread inside `target`. If switching back fails
 * the process would go on in the wrong namespace, which is worse than dying:
 * abort at once (every store weir writes is crash-safe by design).
 */
export function inNetns<T>(target: Netns, fn: () => T): T {
  const home = Netns.current();
  try {
    try {
      setns(target.fd, CLONE_NEWNET);
    } catch (e) {
      const errno = e instanceof SyscallError ? e.errno : undefined;
      throw new NetnsError(`cannot enter network namespace ${target.path}: ${errno ? errnoName(errno) : String(e)}`, errno);
    }
    try {
      return fn();
    } finally {
      try {
        setns(home.fd, CLONE_NEWNET);
      } catch (e) {
        process.stderr.write(`weir: fatal: cannot return to the original network namespace: ${String(e)}\n`);
        process.abort();
      }
    }
  } finally {
    home.close();
  }
}
