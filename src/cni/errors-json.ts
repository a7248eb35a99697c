// The spec's error result (spec 1.1.0 section 5, "Error"): what weir prints
// on stdout, with a non-zero exit, when a verb fails.
import { CniCode, isWeirError } from '../errors.ts';
import { isValidVersion, LATEST_VERSION } from './version.ts';

export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  /** Omitted when empty, as libcni's types.Error does. */
  details?: string;
}

const MAX_MSG = 1024;

/**
 * Keeps a message to its own text: cuts anything that looks like a stack
 * frame (some libraries fold `err.stack` into messages) and caps the length,
 * so no trace or huge blob reaches the runtime's logs and events.
 */
function clean(s: string): string {
  const frame = s.search(/\n\s*at\s/);
  const cut = (frame >= 0 ? s.slice(0, frame) : s).trim();
  return cut.length > MAX_MSG ? `${cut.slice(0, MAX_MSG)}…` : cut;
}

/**
 * The error result for `err`. WeirErrors carry their CNI code, message and
 * details; anything else is a bug or an unexpected failure and becomes 199
 * (weir's internal code; libcni uses 999) with only its message. The
 * `cniVersion` is the invocation's when known (a well-formed version, even
 * one weir does not support, so a version mismatch reads back naturally),
 * else the latest weir speaks.
 */
export function formatError(err: unknown, cniVersion?: string): CniErrorJson {
  const version = cniVersion !== undefined && isValidVersion(cniVersion) ? cniVersion : LATEST_VERSION;
  if (isWeirError(err)) {
    const out: CniErrorJson = { cniVersion: version, code: err.cniCode, msg: clean(err.message) || err.code };
    if (err.details) out.details = clean(err.details);
    return out;
  }
  let msg: string;
  if (err instanceof Error) msg = clean(err.message) || err.name;
  else if (typeof err === 'string') msg = clean(err);
  else msg = '';
  return { cniVersion: version, code: CniCode.Internal, msg: msg || 'internal error' };
}
