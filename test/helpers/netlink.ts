// Netlink errors in kernel tests: the call must fail, and with a NetlinkError.
import { NetlinkError } from '../../src/errors.ts';

/** Runs `fn`, which must throw a NetlinkError; returns it (anything else is rethrown). */
export function catchNetlink(fn: () => unknown): NetlinkError {
  try {
    fn();
  } catch (e) {
    if (e instanceof NetlinkError) return e;
    throw e;
  }
  throw new Error('expected a NetlinkError, got none');
}
