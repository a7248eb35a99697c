// weir's network configuration, parsed from the bytes the runtime writes on
// stdin. Malformed JSON is DecodeError (6); a well-formed document with a bad
// key is InvalidConfigError (7) whose message starts with the key; a version
// weir does not speak is IncompatibleVersionError (1). Pure.
import { DecodeError, InvalidConfigError } from '../errors.ts';
import { type Cidr, cidrContains, formatCidr, hasHostBits, networkOf, parseCidr, tryParseCidr } from '../ip.ts';
import { parseDns, parsePrevResult, type ResultDns, type WeirResult } from './result.ts';
import { isValidVersion, negotiateVersion, type SupportedVersion } from './version.ts';

export const DEFAULT_DATA_DIR = '/var/lib/cni/weir';

/** One attachment the runtime still considers live (GC input). */
export interface GcAttachment {
  containerID: string;
  ifname: string;
}

export interface WeirNetConf {
  /** The protocol version of this invocation (see negotiateVersion). */
  cniVersion: SupportedVersion;
  cniVersions?: string[];
  name: string;
  type: string;
  /** One or two networks, at most one per family, host bits zero, in config order. */
  podCIDRs: Cidr[];
  mtu?: number;
  dataDir: string;
  /**
   * The node agent's local socket. When set, ADD tells the agent the pod's
   * addresses and waits until its policy is in force, and DEL tells it the
   * pod is gone.
   */
  agentSocket?: string;
  dns?: ResultDns;
  /** CHECK, DEL and chained ADD: the previous result, in the internal model. */
  prevResult?: WeirResult;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  capabilities?: Record<string, boolean>;
  /** GC only: `cni.dev/valid-attachments` (or the older `cni.dev/attachments`). */
  validAttachments?: GcAttachment[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const invalid = (key: string, why: string): InvalidConfigError => new InvalidConfigError(`${key}: ${why}`);
const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
};

// Spec 1.1.0 section 1: the network name starts with an alphanumeric, then
// alphanumerics, `_`, `.`, `-`. The 255 cap is weir's: the name may become a
// directory under dataDir, and NAME_MAX is 255.
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MAX_NAME = 255;

/** Prefixes that leave room for pods: a /31 or /32 (/127, /128) has no usable host besides the network. */
const MAX_PREFIX = { 4: 30, 6: 126 } as const;
const MTU_MIN = { 4: 68, 6: 1280 } as const; // RFC 791 and RFC 8200 minimum link MTUs
const MTU_MAX = 65535;

function optObject(o: Obj, key: string): Obj | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) throw invalid(key, `must be an object, got ${show(v)}`);
  return v;
}

function parseName(o: Obj): string {
  const v = o['name'];
  if (v === undefined || v === '') throw invalid('name', 'missing network name');
  if (typeof v !== 'string') throw invalid('name', `must be a string, got ${show(v)}`);
  if (v.length > MAX_NAME || !NETWORK_NAME.test(v)) {
    throw invalid('name', `invalid network name ${show(v)}: must start with an alphanumeric, then only alphanumerics, "_", "." or "-" (at most ${MAX_NAME})`);
  }
  return v;
}

function parseType(o: Obj): string {
  const v = o['type'];
  if (typeof v !== 'string' || v === '') throw invalid('type', `must be a non-empty string, got ${show(v)}`);
  // The spec forbids path separators; the runtime already found our binary by
  // this name, so any other value (a renamed binary) is accepted.
  if (/[/\\]/.test(v)) throw invalid('type', `must not contain "/" or "\\", got ${show(v)}`);
  return v;
}

function parseVersions(o: Obj): { cniVersion: SupportedVersion; cniVersions?: string[] } {
  const cv = o['cniVersion'];
  if (cv !== undefined && typeof cv !== 'string') throw invalid('cniVersion', `must be a string, got ${show(cv)}`);
  const list = o['cniVersions'];
  let cniVersions: string[] | undefined;
  if (list !== undefined) {
    if (!Array.isArray(list)) throw invalid('cniVersions', `must be an array of strings, got ${show(list)}`);
    list.forEach((v, i) => {
      // libcni refuses the whole list when one entry is not a version.
      if (typeof v !== 'string' || !isValidVersion(v)) throw invalid(`cniVersions[${i}]`, `must be a version string, got ${show(v)}`);
    });
    cniVersions = list as string[];
  }
  const cniVersion = negotiateVersion(cv, cniVersions);
  return cniVersions ? { cniVersion, cniVersions } : { cniVersion };
}

/**
 * Ranges no pod address may come from: the kernel refuses some on an
 * interface (IPv6 loopback, multicast), routes none as unicast (0/8, 127/8,
 * IPv4 multicast, class E and broadcast, IPv4-mapped), and the link-local
 * ones hold every pod's gateway (169.254.1.1, fe80::1).
 */
const NOT_FOR_PODS: readonly { cidr: Cidr; what: string }[] = [
  ['0.0.0.0/8', '"this network"'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', "link-local (the pods' gateway)"],
  ['224.0.0.0/3', 'multicast, reserved and broadcast'],
  ['::/127', 'unspecified and loopback'],
  ['::ffff:0:0/96', 'IPv4-mapped'],
  ['fe80::/10', "link-local (the pods' gateway)"],
  ['ff00::/8', 'multicast'],
].map(([c, what]) => ({ cidr: parseCidr(c as string), what: what as string }));

/** Two networks overlap when the shorter prefix contains the other's network address. */
const overlaps = (a: Cidr, b: Cidr): boolean => (a.prefix <= b.prefix ? cidrContains(a, b) : cidrContains(b, a));

function parsePodCIDRs(o: Obj): Cidr[] {
  const v = o['podCIDRs'];
  if (v === undefined) throw invalid('podCIDRs', 'missing (one IPv4 and/or one IPv6 CIDR)');
  if (!Array.isArray(v) || v.length < 1 || v.length > 2) throw invalid('podCIDRs', `must be an array of one or two CIDRs, got ${show(v)}`);
  const out: Cidr[] = [];
  v.forEach((raw, i) => {
    const key = `podCIDRs[${i}]`;
    const c = typeof raw === 'string' ? tryParseCidr(raw) : undefined;
    if (!c) throw invalid(key, `must be a CIDR such as 10.244.1.0/24, got ${show(raw)}`);
    if (hasHostBits(c)) throw invalid(key, `host bits set in ${show(raw)} (the network is ${networkOf(c).address}/${c.prefix})`);
    if (c.prefix > MAX_PREFIX[c.family]) throw invalid(key, `/${c.prefix} leaves no room for pods (IPv${c.family} needs a prefix <= ${MAX_PREFIX[c.family]})`);
    const special = NOT_FOR_PODS.find((r) => overlaps(r.cidr, c));
    if (special) throw invalid(key, `${show(raw)} overlaps ${formatCidr(special.cidr)} (${special.what}), which holds no pod addresses`);
    if (out.some((p) => p.family === c.family)) throw invalid(key, `a second IPv${c.family} CIDR; at most one per family`);
    out.push(c);
  });
  return out;
}

function parseMtu(o: Obj, cidrs: Cidr[]): number | undefined {
  const v = o['mtu'];
  if (v === undefined || v === null) return undefined;
  // IPv6 refuses to run on a link below 1280, so a dual-stack or IPv6 network
  // needs that much.
  const min = cidrs.some((c) => c.family === 6) ? MTU_MIN[6] : MTU_MIN[4];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MTU_MAX) throw invalid('mtu', `must be an integer in ${min}..${MTU_MAX}, got ${show(v)}`);
  return v;
}

function parsePath(o: Obj, key: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !v.startsWith('/')) throw invalid(key, `must be an absolute path, got ${show(v)}`);
  // `..` would let the path escape what an operator reads in the config.
  if (v.includes('\0') || v.split('/').includes('..')) throw invalid(key, `must not contain ".." or NUL, got ${show(v)}`);
  return v;
}

function parseCapabilities(o: Obj): Record<string, boolean> | undefined {
  const caps = optObject(o, 'capabilities');
  if (!caps) return undefined;
  for (const [k, b] of Object.entries(caps)) if (typeof b !== 'boolean') throw invalid(`capabilities.${k}`, `must be a boolean, got ${show(b)}`);
  return caps as Record<string, boolean>;
}

function parseAttachmentList(o: Obj, key: string): GcAttachment[] | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid(key, `must be an array of {containerID, ifname}, got ${show(v)}`);
  return v.map((a, i) => {
    const k = `${key}[${i}]`;
    if (!isObj(a)) throw invalid(k, `must be an object, got ${show(a)}`);
    const { containerID, ifname } = a;
    if (typeof containerID !== 'string' || containerID === '') throw invalid(`${k}.containerID`, `must be a non-empty string, got ${show(containerID)}`);
    if (typeof ifname !== 'string') throw invalid(`${k}.ifname`, `must be a string, got ${show(ifname)}`);
    return { containerID, ifname };
  });
}

/**
 * GC's keep-list. The spec first named the key `cni.dev/attachments`, then
 * `cni.dev/valid-attachments` (libcni 1.2.3 sends both, cni#1101). When both
 * are present weir keeps the union: an entry wrongly kept costs a leak until
 * the next GC, an entry wrongly dropped deletes a live pod's state. Entries
 * that fail the ADD rules for container IDs are harmless (nothing of theirs
 * can exist), so they are kept rather than failing the whole GC.
 */
function parseValidAttachments(o: Obj): GcAttachment[] | undefined {
  const a = parseAttachmentList(o, 'cni.dev/valid-attachments');
  const b = parseAttachmentList(o, 'cni.dev/attachments');
  if (!a && !b) return undefined;
  const seen = new Set<string>();
  const out: GcAttachment[] = [];
  for (const x of [...(a ?? []), ...(b ?? [])]) {
    const id = `${x.containerID}\n${x.ifname}`;
    if (!seen.has(id)) {
      seen.add(id);
      out.push(x);
    }
  }
  return out;
}

/**
 * Parses the network configuration from stdin. Keys weir does not know are
 * ignored: the spec has runtimes pass unknown keys through, and a runtime or
 * meta-plugin may add its own.
 */
export function parseNetConf(stdin: string): WeirNetConf {
  let doc: unknown;
  try {
    doc = JSON.parse(stdin);
  } catch (e) {
    throw new DecodeError(`error decoding network config: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isObj(doc)) throw new DecodeError(`error decoding network config: expected a JSON object, got ${Array.isArray(doc) ? 'an array' : show(doc)}`);

  // Version first: with an unknown version the other keys cannot be trusted to mean what we think.
  const versions = parseVersions(doc);
  const name = parseName(doc);
  const type = parseType(doc);
  const podCIDRs = parsePodCIDRs(doc);
  const conf: WeirNetConf = { ...versions, name, type, podCIDRs, dataDir: parsePath(doc, 'dataDir') ?? DEFAULT_DATA_DIR };
  const agentSocket = parsePath(doc, 'agentSocket');
  if (agentSocket) conf.agentSocket = agentSocket;

  const mtu = parseMtu(doc, podCIDRs);
  if (mtu !== undefined) conf.mtu = mtu;
  const dns = optObject(doc, 'dns');
  if (dns) conf.dns = parseDns(dns, 'dns.');
  const prev = optObject(doc, 'prevResult');
  if (prev) conf.prevResult = parsePrevResult(prev, versions.cniVersion);
  const runtimeConfig = optObject(doc, 'runtimeConfig');
  if (runtimeConfig) conf.runtimeConfig = runtimeConfig;
  const args = optObject(doc, 'args');
  if (args) conf.args = args;
  const capabilities = parseCapabilities(doc);
  if (capabilities) conf.capabilities = capabilities;
  const valid = parseValidAttachments(doc);
  if (valid) conf.validAttachments = valid;
  return conf;
}
