// Typed errors with stable codes. Every error that can leave the plugin carries
// the CNI error code it maps to, so the edge (cni/main.ts) never guesses: the
// runtime and operators get 4 for a bad environment, 7 for a bad config, and
// weir's own codes (>= 100) for what the spec leaves to the plugin, instead of
// the catch-all 999 that upstream plugins return.

/** CNI spec 1.1.0 well-known error codes, plus weir's own (>= 100). */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  LimitedConnectivity: 51,
  // weir's own
  RangeExhausted: 100,
  Netlink: 101,
  Namespace: 102,
  CheckFailed: 103,
  Internal: 199,
} as const;
export type CniCode = (typeof CniCode)[keyof typeof CniCode];

export abstract class WeirError extends Error {
  /** Stable machine-readable code, e.g. `WEIR_INVALID_CONFIG`. */
  abstract readonly code: string;
  /**
   * The CNI error code this maps to when it reaches the runtime. The agent's
   * errors about the API server (a kind it does not serve, a status or an
   * ERROR event it answers with) never reach one, yet each still states what
   * the agent does about them: TryAgainLater, because the reflector lists
   * again until the API serves what it asked for.
   */
  abstract readonly cniCode: CniCode;
  /** Optional longer explanation (CNI `details`). */
  readonly details: string | undefined;

  constructor(message: string, options?: { details?: string | undefined; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.details = options?.details;
  }
}

export class IncompatibleVersionError extends WeirError {
  readonly code = 'WEIR_INCOMPATIBLE_VERSION';
  readonly cniCode = CniCode.IncompatibleVersion;
}
export class UnsupportedFieldError extends WeirError {
  readonly code = 'WEIR_UNSUPPORTED_FIELD';
  readonly cniCode = CniCode.UnsupportedField;
}
export class UnknownContainerError extends WeirError {
  readonly code = 'WEIR_UNKNOWN_CONTAINER';
  readonly cniCode = CniCode.UnknownContainer;
}
export class InvalidEnvironmentError extends WeirError {
  readonly code = 'WEIR_INVALID_ENVIRONMENT';
  readonly cniCode = CniCode.InvalidEnvironment;
}
export class IoError extends WeirError {
  readonly code = 'WEIR_IO';
  readonly cniCode = CniCode.IoFailure;
}
export class DecodeError extends WeirError {
  readonly code = 'WEIR_DECODE';
  readonly cniCode = CniCode.DecodeFailure;
}
export class InvalidConfigError extends WeirError {
  readonly code = 'WEIR_INVALID_CONFIG';
  readonly cniCode = CniCode.InvalidConfig;
}
export class TryAgainLaterError extends WeirError {
  readonly code = 'WEIR_TRY_AGAIN_LATER';
  readonly cniCode = CniCode.TryAgainLater;
}
export class NotAvailableError extends WeirError {
  readonly code = 'WEIR_NOT_AVAILABLE';
  readonly cniCode = CniCode.NotAvailable;
}
/** STATUS: the plugin can add pods, but they will lack some connectivity. */
export class LimitedConnectivityError extends WeirError {
  readonly code = 'WEIR_LIMITED_CONNECTIVITY';
  readonly cniCode = CniCode.LimitedConnectivity;
}
export class RangeExhaustedError extends WeirError {
  readonly code = 'WEIR_RANGE_EXHAUSTED';
  readonly cniCode = CniCode.RangeExhausted;
}
export class CheckFailedError extends WeirError {
  readonly code = 'WEIR_CHECK_FAILED';
  readonly cniCode = CniCode.CheckFailed;
}
export class InternalError extends WeirError {
  readonly code = 'WEIR_INTERNAL';
  readonly cniCode = CniCode.Internal;
}

/** A failed system call; `errno` is the positive kernel errno. */
export class SyscallError extends WeirError {
  readonly code = 'WEIR_SYSCALL';
  readonly cniCode = CniCode.IoFailure;
  readonly syscall: string;
  readonly errno: number;
  constructor(syscall: string, errno: number, message?: string) {
    super(message ?? `${syscall}: ${errnoName(errno)} (errno ${errno})`);
    this.syscall = syscall;
    this.errno = errno;
  }
}

/** The kernel refused a netlink request; `errno` is positive, from NLMSG_ERROR. */
export class NetlinkError extends WeirError {
  readonly code = 'WEIR_NETLINK';
  readonly cniCode = CniCode.Netlink;
  readonly operation: string;
  readonly errno: number;
  constructor(operation: string, errno: number, extAck?: string) {
    super(`${operation}: ${errnoName(errno)} (errno ${errno})${extAck ? `: ${extAck}` : ''}`);
    this.operation = operation;
    this.errno = errno;
  }
}

/** Entering or opening a network namespace failed. */
export class NetnsError extends WeirError {
  readonly code = 'WEIR_NETNS';
  readonly cniCode = CniCode.Namespace;
  readonly errno: number | undefined;
  constructor(message: string, errno?: number) {
    super(message);
    this.errno = errno;
  }
}

/**
 * The API no longer has the resourceVersion a watch or a paged list started
 * from (HTTP 410 Gone, as a status or as an ERROR event in a watch stream):
 * the only way on is a fresh list. Never reaches the CNI runtime.
 */
export class ResourceExpiredError extends WeirError {
  readonly code = 'WEIR_RESOURCE_EXPIRED';
  readonly cniCode = CniCode.TryAgainLater;
}

/** A watch stream delivered an ERROR event other than 410; `status` is the Status object's code, when it had one. */
export class WatchError extends WeirError {
  readonly code = 'WEIR_WATCH';
  readonly cniCode = CniCode.TryAgainLater;
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

export const isWeirError = (e: unknown): e is WeirError => e instanceof WeirError;
/** Predicates in the style of knftables' IsNotFound/IsAlreadyExists. */
export const isNotFound = (e: unknown): boolean =>
  (e instanceof NetlinkError || e instanceof SyscallError) && (e.errno === Errno.ENOENT || e.errno === Errno.ENODEV || e.errno === Errno.ESRCH);
export const isAlreadyExists = (e: unknown): boolean => (e instanceof NetlinkError || e instanceof SyscallError) && e.errno === Errno.EEXIST;

/** The errno values weir inspects (Linux, x86-64 and arm64 agree on these). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  EOPNOTSUPP: 95,
  EADDRNOTAVAIL: 99,
  ENOBUFS: 105,
  ENETUNREACH: 101,
  ETIMEDOUT: 110,
  EHOSTUNREACH: 113,
} as const;

const errnoNames = new Map<number, string>(Object.entries(Errno).map(([k, v]) => [v, k]));
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno${errno}`;
}
