// Runs a native call with the asynchronous signals blocked on the calling
// thread. Some C libraries weir calls are not written for a process whose
// signals have handlers: libnftables reads the kernel's acknowledgements of a
// batch in a select(2) loop and gives up when select returns EINTR, after the
// kernel has already committed the batch, so the caller is told that a change
// failed when it was made. Node installs handlers (SIGCHLD once a child
// process exists, SIGINT, SIGTERM, ...), so a child exiting at that moment is
// enough. While the main thread blocks them, the kernel delivers such signals
// to one of Node's other threads, whose handlers only wake the event loop.
// The synchronous signals (a fault in the call itself) stay deliverable.
import { SyscallError } from '../errors.ts';
import { type KoffiFunction, loadKoffi } from './ffi.ts';

const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
/** sizeof(sigset_t) in glibc: 1024 bits. */
const SIGSET_BYTES = 128;
/** SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS: raised by the call itself, never to be held back. */
const SYNCHRONOUS = [4, 5, 6, 7, 8, 11, 31];

interface SignalCalls {
  sigmask: KoffiFunction;
  /** The set to block, built once. */
  blocked: Buffer;
}

let calls: SignalCalls | undefined;

function signalCalls(): SignalCalls {
  if (calls) return calls;
  const lib = loadKoffi().load('libc.so.6');
  const sigfillset = lib.func('int sigfillset(void *set)');
  const sigdelset = lib.func('int sigdelset(void *set, int signum)');
  // koffi passes a Buffer as a pointer to its own memory: libc fills these in place.
  const blocked = Buffer.alloc(SIGSET_BYTES);
  sigfillset(blocked);
  for (const s of SYNCHRONOUS) sigdelset(blocked, s);
  calls = { sigmask: lib.func('int pthread_sigmask(int how, const void *set, void *oldset)'), blocked };
  return calls;
}

/** `fn()` with the asynchronous signals blocked on this thread; the previous mask is restored however fn ends. */
export function withSignalsBlocked<T>(fn: () => T): T {
  const c = signalCalls();
  const previous = Buffer.alloc(SIGSET_BYTES);
  // pthread_sigmask returns the error number itself rather than setting errno.
  const rc = Number(c.sigmask(SIG_BLOCK, c.blocked, previous));
  if (rc !== 0) throw new SyscallError('pthread_sigmask', rc);
  try {
    return fn();
  } finally {
    c.sigmask(SIG_SETMASK, previous, null);
  }
}
