import { isWeirError } from '../../../src/errors.ts';

/** Runs `fn`, which must throw a WeirError; returns its CNI code and message. */
export function failure(fn: () => unknown): { code: number; msg: string; details: string | undefined } {
  try {
    fn();
  } catch (e) {
    if (isWeirError(e)) return { code: e.cniCode, msg: e.message, details: e.details };
    throw new Error(`expected a WeirError, got ${String(e)}`);
  }
  throw new Error('expected a throw, got none');
}
