// NftError: everything that goes wrong between weir and nftables. The real
// backend (libnftables.ts) and the fake (fake.ts) throw the same shape, so
// callers (and tests) branch on `errno` rather than on message text.
import { CniCode, Errno, WeirError } from '../errors.ts';

/** Not in ../errors.ts' Errno table. */
export const ENFILE = 23;

export interface NftErrorInfo {
  /** Positive errno when known: ENOENT, EEXIST, EBUSY, EOPNOTSUPP, EINVAL (also for validation). */
  errno?: number | undefined;
  /** 1-based line of the rendered script that failed, when known. */
  line?: number | undefined;
  /** The failing command (that script line), when known. */
  command?: string | undefined;
  /** Index of the failing operation in the transaction, when known. */
  op?: number | undefined;
  /** libnftables' own error text, verbatim. */
  details?: string | undefined;
  cause?: unknown;
}

export class NftError extends WeirError {
  readonly code = 'WEIR_NFT';
  readonly cniCode = CniCode.Internal;
  readonly errno: number | undefined;
  readonly line: number | undefined;
  readonly command: string | undefined;
  readonly op: number | undefined;

  constructor(message: string, info: NftErrorInfo = {}) {
    super(message, { details: info.details, cause: info.cause });
    this.errno = info.errno;
    this.line = info.line;
    this.command = info.command;
    this.op = info.op;
  }
}

export const isNftError = (e: unknown): e is NftError => e instanceof NftError;
/** The object (table, chain, set, element, rule handle) does not exist. */
export const isNftNotFound = (e: unknown): boolean => e instanceof NftError && e.errno === Errno.ENOENT;
/** `create` of something that exists (or `add` of a conflicting definition). */
export const isNftExists = (e: unknown): boolean => e instanceof NftError && e.errno === Errno.EEXIST;
/** Still referenced (a chain targeted by jump/goto, a set used by a rule). */
export const isNftBusy = (e: unknown): boolean => e instanceof NftError && e.errno === Errno.EBUSY;
/** A transaction refused by weir's own checks before reaching nft. */
export const isNftInvalid = (e: unknown): boolean => e instanceof NftError && e.errno === Errno.EINVAL;

/** The strerror texts libnftables prints ("Could not process rule: File exists"). */
const STRERROR: readonly (readonly [RegExp, number])[] = [
  [/No such file or directory|element does not exist/, Errno.ENOENT],
  [/File exists/, Errno.EEXIST],
  [/Device or resource busy/, Errno.EBUSY],
  [/Operation not supported/, Errno.EOPNOTSUPP],
  [/Operation not permitted/, Errno.EPERM],
  [/Invalid argument/, Errno.EINVAL],
  [/No space left on device/, Errno.ENOSPC],
  [/Numerical result out of range/, Errno.ERANGE],
  [/Cannot allocate memory/, Errno.ENOMEM],
  // A set that is full (its `size`; nft sizes a constant set declared with elements to fit them).
  [/Too many open files in system/, ENFILE],
];

/** Best-effort errno from libnftables' error text; undefined for syntax and type errors. */
export function errnoFromNftMessage(text: string): number | undefined {
  for (const [re, errno] of STRERROR) if (re.test(text)) return errno;
  return undefined;
}
