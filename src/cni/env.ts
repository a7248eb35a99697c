// The CNI_* environment of one invocation, validated per command (spec 1.1.0
// section 2, "Parameters" and each operation's "Input"). Pure: the caller
// passes the environment in. Every refusal is InvalidEnvironmentError (4) and
// names the variable, as the spec requires of code 4.
import { InvalidEnvironmentError } from '../errors.ts';
import { type CniCommand, isCniCommand } from './command.ts';

export type CniEnvSource = Readonly<Record<string, string | undefined>>;

/** What the runtime says about the pod in CNI_ARGS (Kubernetes convention). */
export interface K8sPodArgs {
  namespace?: string;
  name?: string;
  uid?: string;
  infraContainerId?: string;
}

export interface CniArgs {
  ignoreUnknown: boolean;
  /** Every pair as given (last one wins for a repeated key, as in libcni). */
  pairs: ReadonlyMap<string, string>;
  k8s: K8sPodArgs;
}

interface Attachment {
  containerId: string;
  ifname: string;
  args: CniArgs;
  /** CNI_PATH split on `:`; empty when unset (optional for these verbs). */
  path: string[];
}

export type CniEnv =
  | ({ command: 'ADD' | 'CHECK'; netns: string } & Attachment)
  // DEL may come without a netns: the namespace may already be gone, and the
  // plugin must still release what it holds (spec 1.1.0, DEL "Input").
  | ({ command: 'DEL'; netns: string | undefined } & Attachment)
  | { command: 'STATUS'; path: string[] }
  | { command: 'GC'; path: string[] }
  | { command: 'VERSION' };

/**
 * Required variables per verb, exactly as spec 1.1.0 lists them. CNI_PATH is
 * only required for GC: the spec makes it optional for ADD/DEL/CHECK (libcni's
 * skel is stricter and wants it everywhere; weir delegates to no plugin, so it
 * follows the spec and not skel).
 */
export const REQUIRED_ENV: Readonly<Record<CniCommand, readonly string[]>> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  STATUS: [],
  GC: ['CNI_PATH'],
  VERSION: [],
};

/**
 * Spec rule for container IDs: an alphanumeric, then alphanumerics, `_`, `.`
 * or `-`. The spec sets no length limit; weir caps it at 128 (runtimes use
 * 64 hex digits) because the ID becomes part of file names under dataDir and
 * of the host veth's alias, which must stay below NAME_MAX and IFALIASZ.
 */
export const MAX_CONTAINER_ID_LENGTH = 128;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Linux IFNAMSIZ is 16 including the NUL. */
export const MAX_IFNAME_BYTES = 15;
/** Linux PATH_MAX, NUL included. */
const PATH_MAX = 4096;

const show = (v: string): string => JSON.stringify(v.length > 64 ? `${v.slice(0, 64)}…` : v);

export const isValidContainerId = (id: string): boolean => id.length <= MAX_CONTAINER_ID_LENGTH && CONTAINER_ID.test(id);

/** Throws InvalidEnvironmentError naming `variable` unless `id` is a valid container ID. */
export function validateContainerId(id: string, variable = 'CNI_CONTAINERID'): string {
  if (id.length > MAX_CONTAINER_ID_LENGTH) {
    throw new InvalidEnvironmentError(`${variable} is too long: ${id.length} characters, at most ${MAX_CONTAINER_ID_LENGTH}`);
  }
  if (!CONTAINER_ID.test(id)) {
    throw new InvalidEnvironmentError(`invalid characters in ${variable}: ${show(id)}`, {
      details: 'must start with an alphanumeric character, then only alphanumerics, "_", "." or "-"',
    });
  }
  return id;
}

/** Why `name` is not a usable Linux interface name, or undefined when it is. */
export function ifnameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  // The kernel counts bytes, not characters.
  if (Buffer.byteLength(name, 'utf8') > MAX_IFNAME_BYTES) return `is longer than ${MAX_IFNAME_BYTES} bytes`;
  if (name === '.' || name === '..') return 'is "." or ".."';
  // \s covers the kernel's isspace() and the Unicode spaces libcni also refuses.
  if (/[/:\s]/u.test(name)) return 'contains "/", ":" or whitespace';
  return undefined;
}

export const isValidIfname = (name: string): boolean => ifnameProblem(name) === undefined;

export function validateIfname(name: string, variable = 'CNI_IFNAME'): string {
  const problem = ifnameProblem(name);
  if (problem) throw new InvalidEnvironmentError(`${variable} ${show(name)} ${problem}`);
  return name;
}

function validateNetns(path: string): string {
  if (!path.startsWith('/') || path.includes('\0') || path.length >= PATH_MAX) {
    throw new InvalidEnvironmentError(`CNI_NETNS must be an absolute path, got ${show(path)}`);
  }
  return path;
}

// Kubernetes object names (k8s.io/apimachinery validation): namespaces are
// DNS-1123 labels, pods DNS-1123 subdomains. Checking them here means they are
// safe to put in file names and the veth alias (no `/`, no `..`).
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Pod UIDs are UUIDs, except static pods', which are bare hex hashes.
const POD_UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,63}$/;

export const isDns1123Label = (s: string): boolean => s.length <= 63 && DNS1123_LABEL.test(s);
export const isDns1123Subdomain = (s: string): boolean => s.length <= 253 && DNS1123_SUBDOMAIN.test(s);

// A Map, not an object literal: a key from CNI_ARGS such as `constructor` or
// `__proto__` must be unknown, not found on Object.prototype.
const K8S_KEYS: ReadonlyMap<string, { field: keyof K8sPodArgs; valid: (v: string) => boolean; rule: string }> = new Map([
  ['K8S_POD_NAMESPACE', { field: 'namespace', valid: isDns1123Label, rule: 'a DNS-1123 label' }],
  ['K8S_POD_NAME', { field: 'name', valid: isDns1123Subdomain, rule: 'a DNS-1123 subdomain' }],
  ['K8S_POD_UID', { field: 'uid', valid: (v: string) => POD_UID.test(v), rule: 'a UID (alphanumerics and "-")' }],
  ['K8S_POD_INFRA_CONTAINER_ID', { field: 'infraContainerId', valid: isValidContainerId, rule: 'a container ID' }],
]);

/** libcni's UnmarshallableBool: "1"/"true" and "0"/"false", any case. */
function parseArgsBool(key: string, v: string): boolean {
  const s = v.toLowerCase();
  if (s === '1' || s === 'true') return true;
  if (s === '0' || s === 'false') return false;
  throw new InvalidEnvironmentError(`CNI_ARGS: ${key} must be true/false/1/0, got ${show(v)}`);
}

/**
 * Parses CNI_ARGS, `K=V;K=V`, the way libcni's types.LoadArgs does: every
 * pair must hold exactly one `=` (so a value cannot contain `=` or `;`), and a
 * key weir does not know is an error unless `IgnoreUnknown` is true. That last
 * rule is the reference behaviour; Kubernetes runtimes always send
 * `IgnoreUnknown=1`, so in practice only hand-made invocations meet it.
 * An empty value for a K8S_* key counts as absent.
 */
export function parseCniArgs(raw: string | undefined): CniArgs {
  const pairs = new Map<string, string>();
  const k8s: K8sPodArgs = {};
  if (raw === undefined || raw === '') return { ignoreUnknown: false, pairs, k8s };

  for (const pair of raw.split(';')) {
    const kv = pair.split('=');
    if (kv.length !== 2 || kv[0] === '')
      throw new InvalidEnvironmentError(`CNI_ARGS: invalid pair ${show(pair)}`, { details: 'expected KEY=VALUE pairs separated by ";"' });
    pairs.set(kv[0] ?? '', kv[1] ?? '');
  }

  const ignoreRaw = pairs.get('IgnoreUnknown');
  const ignoreUnknown = ignoreRaw === undefined ? false : parseArgsBool('IgnoreUnknown', ignoreRaw);
  const unknown: string[] = [];
  for (const [key, value] of pairs) {
    if (key === 'IgnoreUnknown') continue;
    const spec = K8S_KEYS.get(key);
    if (!spec) {
      unknown.push(key);
      continue;
    }
    if (value === '') continue;
    if (!spec.valid(value)) throw new InvalidEnvironmentError(`CNI_ARGS: ${key} must be ${spec.rule}, got ${show(value)}`);
    k8s[spec.field] = value;
  }
  if (unknown.length > 0 && !ignoreUnknown) {
    throw new InvalidEnvironmentError(`CNI_ARGS: unknown args ${show(unknown.join(','))}`, { details: 'set IgnoreUnknown=1 to allow keys weir does not use' });
  }
  return { ignoreUnknown, pairs, k8s };
}

const splitPath = (p: string | undefined): string[] => (p ? p.split(':').filter((s) => s !== '') : []);

/**
 * Reads and validates the CNI_* variables for the command in CNI_COMMAND.
 * An empty variable counts as unset, as in libcni (Getenv cannot tell them
 * apart). Variables a verb does not use are ignored, not validated.
 */
export function parseCniEnv(env: CniEnvSource): CniEnv {
  const get = (k: string): string | undefined => {
    const v = env[k];
    return v === undefined || v === '' ? undefined : v;
  };
  const command = get('CNI_COMMAND');
  if (command === undefined) throw new InvalidEnvironmentError('required env variables [CNI_COMMAND] missing');
  if (!isCniCommand(command)) throw new InvalidEnvironmentError(`unknown CNI_COMMAND: ${show(command)}`);

  const missing = REQUIRED_ENV[command].filter((k) => get(k) === undefined);
  if (missing.length > 0) throw new InvalidEnvironmentError(`required env variables [${missing.join(',')}] missing`);

  switch (command) {
    case 'VERSION':
      return { command };
    case 'STATUS':
    case 'GC':
      return { command, path: splitPath(get('CNI_PATH')) };
    case 'ADD':
    case 'CHECK':
    case 'DEL': {
      const containerId = validateContainerId(get('CNI_CONTAINERID') ?? '');
      const ifname = validateIfname(get('CNI_IFNAME') ?? '');
      const netnsRaw = get('CNI_NETNS');
      const netns = netnsRaw === undefined ? undefined : validateNetns(netnsRaw);
      const base = { containerId, ifname, args: parseCniArgs(get('CNI_ARGS')), path: splitPath(get('CNI_PATH')) };
      if (command === 'DEL') return { command, netns, ...base };
      // Required above, so present.
      return { command, netns: netns ?? '', ...base };
    }
  }
}
