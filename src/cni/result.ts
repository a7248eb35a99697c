// weir's version-independent result model, and its JSON in each spec version:
// 0.3.0/0.3.1/0.4.0 (libcni types/040), 1.0.0 and 1.1.0 (types/100). Fields
// are emitted or omitted exactly as those Go types marshal them.
import { IncompatibleVersionError, InternalError, InvalidConfigError } from '../errors.ts';
import { formatIp, tryParseCidr, tryParseIp } from '../ip.ts';
import { isSupportedVersion, LATEST_VERSION } from './version.ts';

export interface ResultInterface {
  name: string;
  mac?: string;
  /** Netns path for container interfaces; absent for host ones. */
  sandbox?: string;
  /** 1.1.0 only. */
  mtu?: number;
  socketPath?: string;
  pciID?: string;
}

export interface ResultIp {
  /** Address with the prefix of its subnet, e.g. `10.244.1.5/24`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`; absent in IPAM-style results. */
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
  /** The rest are 1.1.0 only. */
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface ResultDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface WeirResult {
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns: ResultDns;
}

export type CniResultJson = Record<string, unknown>;

const isV1 = (v: string): boolean => v === '1.0.0' || v === '1.1.0';

function dnsJson(d: ResultDns): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (d.nameservers?.length) o['nameservers'] = [...d.nameservers];
  if (d.domain) o['domain'] = d.domain;
  if (d.search?.length) o['search'] = [...d.search];
  if (d.options?.length) o['options'] = [...d.options];
  return o;
}

function canonicalCidr(s: string, what: string): { text: string; family: 4 | 6 } {
  const c = tryParseCidr(s);
  if (!c) throw new InternalError(`result ${what}: invalid CIDR ${JSON.stringify(s)}`);
  return { text: `${c.address}/${c.prefix}`, family: c.family };
}

function canonicalIp(s: string, what: string): string {
  const ip = tryParseIp(s);
  if (!ip) throw new InternalError(`result ${what}: invalid IP ${JSON.stringify(s)}`);
  return formatIp(ip.bytes);
}

/**
 * The result as JSON for `cniVersion`. Differences by version:
 * - 0.x: every ip carries `"version": "4"|"6"`; `dns` is always present, `{}`
 *   when empty (types040.Result has no DNS omission).
 * - 1.0.0: no `version`; `dns` omitted when empty (types100 MarshalJSON).
 * - 1.1.0: as 1.0.0 plus interface `mtu`/`socketPath`/`pciID` and route
 *   `mtu`/`advmss`/`priority`/`table`/`scope`. Zero `mtu`/`advmss`/`priority`
 *   are omitted (Go omitempty on int); `table`/`scope` are pointers in Go, so
 *   an explicit 0 is kept.
 * Empty arrays are omitted; key order follows the Go structs. Addresses are
 * re-emitted in canonical form; malformed ones are a bug (InternalError).
 */
export function formatResult(result: WeirResult, cniVersion: string): CniResultJson {
  if (!isSupportedVersion(cniVersion)) throw new IncompatibleVersionError(`cannot emit a result in CNI version ${JSON.stringify(cniVersion)}`);
  const v11 = cniVersion === '1.1.0';
  const out: CniResultJson = { cniVersion };

  if (result.interfaces.length > 0) {
    out['interfaces'] = result.interfaces.map((i) => {
      const o: Record<string, unknown> = { name: i.name };
      if (i.mac) o['mac'] = i.mac;
      if (v11 && i.mtu) o['mtu'] = i.mtu;
      if (i.sandbox) o['sandbox'] = i.sandbox;
      if (v11 && i.socketPath) o['socketPath'] = i.socketPath;
      if (v11 && i.pciID) o['pciID'] = i.pciID;
      return o;
    });
  }
  if (result.ips.length > 0) {
    out['ips'] = result.ips.map((ip, n) => {
      const addr = canonicalCidr(ip.address, `ips[${n}].address`);
      const o: Record<string, unknown> = {};
      if (!isV1(cniVersion)) o['version'] = String(addr.family);
      if (ip.interface !== undefined) {
        if (!Number.isInteger(ip.interface) || ip.interface < 0 || ip.interface >= result.interfaces.length) {
          throw new InternalError(`result ips[${n}].interface ${ip.interface} is not an index into interfaces`);
        }
        o['interface'] = ip.interface;
      }
      o['address'] = addr.text;
      if (ip.gateway) o['gateway'] = canonicalIp(ip.gateway, `ips[${n}].gateway`);
      return o;
    });
  }
  if (result.routes.length > 0) {
    out['routes'] = result.routes.map((r, n) => {
      const o: Record<string, unknown> = { dst: canonicalCidr(r.dst, `routes[${n}].dst`).text };
      if (r.gw) o['gw'] = canonicalIp(r.gw, `routes[${n}].gw`);
      if (v11) {
        if (r.mtu) o['mtu'] = r.mtu;
        if (r.advmss) o['advmss'] = r.advmss;
        if (r.priority) o['priority'] = r.priority;
        if (r.table !== undefined) o['table'] = r.table;
        if (r.scope !== undefined) o['scope'] = r.scope;
      }
      return o;
    });
  }
  const dns = dnsJson(result.dns);
  if (!isV1(cniVersion) || Object.keys(dns).length > 0) out['dns'] = dns;
  return out;
}

// ---- parsing a prevResult ----

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (key: string, why: string): InvalidConfigError => new InvalidConfigError(`${key}: ${why}`);

function optString(o: Obj, k: string, where: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(`${where}${k}`, 'must be a string');
  return v === '' ? undefined : v;
}

function optInt(o: Obj, k: string, where: string, min: number, max: number): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${where}${k}`, `must be an integer in ${min}..${max}`);
  return v;
}

function optArray(o: Obj, k: string, where: string): unknown[] {
  const v = o[k];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`${where}${k}`, 'must be an array');
  return v;
}

function optStrings(o: Obj, k: string, where: string): string[] | undefined {
  const arr = optArray(o, k, where);
  arr.forEach((s, i) => {
    if (typeof s !== 'string') throw bad(`${where}${k}[${i}]`, 'must be a string');
  });
  return arr.length > 0 ? [...(arr as string[])] : undefined;
}

function cidrField(o: Obj, k: string, where: string): { text: string; family: 4 | 6 } {
  const v = o[k];
  const c = typeof v === 'string' ? tryParseCidr(v) : undefined;
  if (!c) throw bad(`${where}${k}`, `must be a CIDR, got ${JSON.stringify(v)}`);
  return { text: `${c.address}/${c.prefix}`, family: c.family };
}

function ipField(o: Obj, k: string, where: string): string | undefined {
  const s = optString(o, k, where);
  if (s === undefined) return undefined;
  const ip = tryParseIp(s);
  if (!ip) throw bad(`${where}${k}`, `must be an IP address, got ${JSON.stringify(s)}`);
  return formatIp(ip.bytes);
}

/** T as parsed, before compact(): each optional member present, possibly undefined. */
type Loose<T> = { [K in keyof T]: object extends Pick<T, K> ? T[K] | undefined : T[K] };

/** Drops undefined members so results compare cleanly and spread safely: what is left is a T. */
function compact<T extends object>(o: Loose<T>): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o as T;
}

/**
 * Reads a `prevResult` (CHECK, DEL, chained ADD) of any supported version into
 * the internal model. Its own `cniVersion` picks the shape; when it has none,
 * the config's `cniVersion` is assumed, since libcni converts the cached
 * result to the config's version before passing it. Like the Go types, 1.1.0
 * fields are read whatever the version says. Bad content is
 * InvalidConfigError (7) naming the key; an unsupported version is
 * IncompatibleVersionError (1).
 */
export function parsePrevResult(json: unknown, cniVersion: string = LATEST_VERSION): WeirResult {
  if (!isObj(json)) throw new InvalidConfigError('prevResult: must be an object');
  const declared = json['cniVersion'];
  if (declared !== undefined && typeof declared !== 'string') throw bad('prevResult.cniVersion', 'must be a string');
  const version = declared || cniVersion;
  if (!isSupportedVersion(version)) throw new IncompatibleVersionError(`prevResult.cniVersion ${JSON.stringify(version)} is not supported`);

  const P = 'prevResult.';
  const interfaces = optArray(json, 'interfaces', P).map((raw, n): ResultInterface => {
    const w = `${P}interfaces[${n}].`;
    if (!isObj(raw)) throw bad(`${P}interfaces[${n}]`, 'must be an object');
    if (typeof raw['name'] !== 'string') throw bad(`${w}name`, 'must be a string');
    return compact<ResultInterface>({
      name: raw['name'],
      mac: optString(raw, 'mac', w),
      sandbox: optString(raw, 'sandbox', w),
      mtu: optInt(raw, 'mtu', w, 0, 0x7fffffff) || undefined,
      socketPath: optString(raw, 'socketPath', w),
      pciID: optString(raw, 'pciID', w),
    });
  });

  const ips = optArray(json, 'ips', P).map((raw, n): ResultIp => {
    const w = `${P}ips[${n}].`;
    if (!isObj(raw)) throw bad(`${P}ips[${n}]`, 'must be an object');
    const addr = cidrField(raw, 'address', w);
    // 0.x results label each ip; a label that contradicts the address is
    // corrupt. 1.x has no such field (and the Go types ignore one).
    if (!isV1(version) && raw['version'] !== undefined && raw['version'] !== String(addr.family)) {
      throw bad(`${w}version`, `must be "${addr.family}" for ${addr.text}`);
    }
    const index = optInt(raw, 'interface', w, 0, 0x7fffffff);
    if (index !== undefined && index >= interfaces.length) throw bad(`${w}interface`, `index ${index} is past interfaces`);
    return compact<ResultIp>({ address: addr.text, gateway: ipField(raw, 'gateway', w), interface: index });
  });

  const routes = optArray(json, 'routes', P).map((raw, n): ResultRoute => {
    const w = `${P}routes[${n}].`;
    if (!isObj(raw)) throw bad(`${P}routes[${n}]`, 'must be an object');
    return compact<ResultRoute>({
      dst: cidrField(raw, 'dst', w).text,
      gw: ipField(raw, 'gw', w),
      mtu: optInt(raw, 'mtu', w, 0, 0x7fffffff) || undefined,
      advmss: optInt(raw, 'advmss', w, 0, 0x7fffffff) || undefined,
      priority: optInt(raw, 'priority', w, 0, 0xffffffff) || undefined,
      table: optInt(raw, 'table', w, 0, 0xffffffff),
      scope: optInt(raw, 'scope', w, 0, 255),
    });
  });

  const dnsRaw = json['dns'];
  if (dnsRaw !== undefined && dnsRaw !== null && !isObj(dnsRaw)) throw bad(`${P}dns`, 'must be an object');
  const dns = parseDns(isObj(dnsRaw) ? dnsRaw : {}, `${P}dns.`);
  return { interfaces, ips, routes, dns };
}

/** Reads a CNI `dns` object (result or config); `where` (e.g. `dns.`) prefixes error keys. */
export function parseDns(o: Obj, where: string): ResultDns {
  return compact<ResultDns>({
    nameservers: optStrings(o, 'nameservers', where),
    domain: optString(o, 'domain', where),
    search: optStrings(o, 'search', where),
    options: optStrings(o, 'options', where),
  });
}

/** An empty result, for verbs and tests that build one up. */
export const emptyResult = (): WeirResult => ({ interfaces: [], ips: [], routes: [], dns: {} });
