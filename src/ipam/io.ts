// Turns failures of fs calls (and of flock through libc) into IoError (CNI
// code 5) whose message names the operation, the path and the errno code, so
// the runtime and the operator see "link /var/lib/.../10.244.1.5: ENOSPC"
// rather than a bare Node error.
import { errnoName, IoError, isWeirError, SyscallError } from '../errors.ts';

export function errnoCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function ioError(op: string, file: string, e: unknown): Error {
  if (isWeirError(e) && !(e instanceof SyscallError)) return e;
  const code = e instanceof SyscallError ? errnoName(e.errno) : (errnoCode(e) ?? (e instanceof Error ? e.message : String(e)));
  return new IoError(`IPAM store: ${op} ${file}: ${code}`, { cause: e });
}

export function io<T>(op: string, file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw ioError(op, file, e);
  }
}
