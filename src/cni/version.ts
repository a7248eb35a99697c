// CNI spec versions: which weir speaks, how they compare, which verbs each
// allows, and how a configuration's `cniVersion`/`cniVersions` pick the one in
// use. Pure.
import { IncompatibleVersionError } from '../errors.ts';
import type { CniCommand } from './command.ts';

/**
 * Versions weir accepts in a configuration. 0.1.0/0.2.0 are left out: their
 * result type (`ip4`/`ip6`) cannot carry dual-stack pods, and every runtime
 * still in support speaks 0.3.0 or later.
 */
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type SupportedVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: SupportedVersion = '1.1.0';

/**
 * `major[.minor[.patch]]`, as libcni's version.ParseVersion reads it (missing
 * parts are 0). No pre-release or build suffixes: the spec never used them.
 */
export function parseVersion(v: string): [number, number, number] | undefined {
  if (typeof v !== 'string' || !/^\d{1,9}(\.\d{1,9}){0,2}$/.test(v)) return undefined;
  const [a = 0, b = 0, c = 0] = v.split('.').map(Number);
  return [a, b, c];
}

export const isValidVersion = (v: string): boolean => parseVersion(v) !== undefined;

/**
 * Orders two versions: negative, zero or positive like a sort comparator.
 * Throws IncompatibleVersionError (1) on text that is not a version.
 */
export function compareVersions(a: string, b: string): number {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  if (!pa || !pb) throw new IncompatibleVersionError(`invalid CNI version ${JSON.stringify(pa ? b : a)}`);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/**
 * Exact string membership, as libcni's reconciler checks it: "1.1" is not
 * "1.1.0", because the runtime will parse our reply against the exact string
 * it sent.
 */
export const isSupportedVersion = (v: string): v is SupportedVersion => (SUPPORTED_VERSIONS as readonly string[]).includes(v);

/** The highest of `versions` that weir supports, or undefined. Malformed entries are skipped. */
export function highestSupported(versions: readonly string[]): SupportedVersion | undefined {
  let best: SupportedVersion | undefined;
  for (const v of versions) {
    if (isSupportedVersion(v) && (best === undefined || compareVersions(v, best) > 0)) best = v;
  }
  return best;
}

/**
 * The protocol version of one invocation.
 *
 * Spec 1.1.0 section 1: a configuration may list `cniVersions`, and the
 * *runtime* picks the highest it supports and passes it down as `cniVersion`
 * (libcni >= 1.2 injects it into every plugin's config). So when `cniVersion`
 * is present it is authoritative: the runtime parses our reply against it, and
 * answering in a higher version from `cniVersions` would break runtimes that
 * predate 1.1.0 and pass a single-plugin .conf through untouched. Only when
 * `cniVersion` is absent do we negotiate ourselves: the highest entry of
 * `cniVersions` that weir supports.
 *
 * An absent `cniVersion` with no `cniVersions` means 0.1.0 per libcni's
 * ConfigDecoder, which weir does not speak.
 */
export function negotiateVersion(cniVersion: string | undefined, cniVersions?: readonly string[]): SupportedVersion {
  if (cniVersion !== undefined && cniVersion !== '') {
    if (isSupportedVersion(cniVersion)) return cniVersion;
    throw new IncompatibleVersionError(`incompatible CNI versions: config is ${JSON.stringify(cniVersion.slice(0, 32))}`, {
      details: `plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
    });
  }
  if (cniVersions && cniVersions.length > 0) {
    const best = highestSupported(cniVersions);
    if (best) return best;
    throw new IncompatibleVersionError('incompatible CNI versions: no version in cniVersions is supported', {
      details: `config lists ${JSON.stringify(cniVersions.slice(0, 16))}; plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
    });
  }
  throw new IncompatibleVersionError('incompatible CNI versions: config has no cniVersion (implies 0.1.0)', {
    details: `plugin supports ${JSON.stringify(SUPPORTED_VERSIONS)}`,
  });
}

/**
 * The oldest config version in which each verb exists. CHECK came with 0.4.0;
 * STATUS and GC with 1.1.0. libcni's skel answers an older config with code 1
 * ("config version does not allow GC"), and so does weir.
 */
export const COMMAND_MIN_VERSION: Readonly<Record<CniCommand, SupportedVersion>> = {
  ADD: '0.3.0',
  DEL: '0.3.0',
  CHECK: '0.4.0',
  STATUS: '1.1.0',
  GC: '1.1.0',
  VERSION: '0.3.0',
};

/** Throws IncompatibleVersionError (1) when `command` does not exist in config version `version`. */
export function assertCommandAllowed(command: CniCommand, version: string): void {
  const min = COMMAND_MIN_VERSION[command];
  if (compareVersions(version, min) < 0) {
    throw new IncompatibleVersionError(`config version does not allow ${command}`, {
      details: `${command} needs cniVersion >= ${min}, config is ${JSON.stringify(version)}`,
    });
  }
}

export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

/**
 * The VERSION verb's output. Spec 1.1.0 section 5: `cniVersion` is "the value
 * of cniVersion specified on input" — echoed even when weir does not support
 * it, since the list says what it does support. Without a well-formed input
 * version (none sent, or garbage) weir answers in its latest.
 */
export function versionInfo(requested?: string): VersionInfo {
  const cniVersion = requested !== undefined && isValidVersion(requested) ? requested : LATEST_VERSION;
  return { cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/**
 * The `cniVersion` a VERSION request carries on stdin, if any. Never throws:
 * VERSION must answer even when stdin is empty or not JSON (libcni's skel does
 * not read stdin for VERSION at all).
 */
export function parseVersionRequest(stdin: string): string | undefined {
  try {
    const v: unknown = JSON.parse(stdin);
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const cv = (v as Record<string, unknown>)['cniVersion'];
      return typeof cv === 'string' && isValidVersion(cv) ? cv : undefined;
    }
  } catch {
    // fall through: no usable request version
  }
  return undefined;
}
