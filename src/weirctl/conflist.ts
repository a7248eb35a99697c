// The node's CNI configuration as the runtime sees it: the file of the conf
// dir that defines the network (libcni takes the lexically first match), and
// the weir entry of it with libcni's list injection (the list's `name` and
// `cniVersion` handed to the plugin), checked by the plugin's own parser.
import fs from 'node:fs';
import path from 'node:path';
import { parseNetConf, type WeirNetConf } from '../cni/config.ts';
import { CniCode, WeirError } from '../errors.ts';
import { formatCidr } from '../ip.ts';

export interface LoadedConflist {
  file: string;
  /** The list's (or single config's) network name. */
  name: string;
  cniVersion: string | undefined;
  /** The weir plugin's configuration, as ADD parses it. */
  conf: WeirNetConf;
  /** Plugin types in list order, e.g. ["weir", "portmap"]. */
  plugins: string[];
  /** podCIDRs as text, e.g. ["10.244.1.0/24"]. */
  podCIDRs: string[];
}

/** The node's CNI conflist is missing or not one weirctl can read. */
export class ConflistError extends WeirError {
  readonly code = 'WEIR_CONFLIST';
  readonly cniCode = CniCode.InvalidConfig;
  readonly file: string | undefined;
  constructor(message: string, file?: string) {
    super(message);
    this.file = file;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const CONF_EXT = /\.(conflist|conf|json)$/;

/** Parses one conf dir file (a .conflist, or a single-plugin .conf) into the weir plugin's config. Throws ConflistError. */
export function parseConflistText(text: string, file: string): LoadedConflist {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new ConflistError(`${file}: not valid JSON: ${(e as Error).message}`, file);
  }
  if (!isObj(doc)) throw new ConflistError(`${file}: expected a JSON object`, file);
  const name = typeof doc['name'] === 'string' ? doc['name'] : '';
  const cniVersion = typeof doc['cniVersion'] === 'string' ? doc['cniVersion'] : undefined;
  let entry: Record<string, unknown>;
  let plugins: string[];
  if (Array.isArray(doc['plugins'])) {
    const list = doc['plugins'] as unknown[];
    plugins = list.map((p) => (isObj(p) && typeof p['type'] === 'string' ? p['type'] : '?'));
    const weir = list.find((p): p is Record<string, unknown> => isObj(p) && p['type'] === 'weir');
    if (!weir) throw new ConflistError(`${file}: the list has no plugin of type "weir" (plugins: ${plugins.join(', ') || 'none'})`, file);
    // libcni's injection: every plugin of a list gets the list's name and cniVersion.
    entry = { ...weir, name, ...(cniVersion !== undefined ? { cniVersion } : {}) };
  } else {
    plugins = [typeof doc['type'] === 'string' ? doc['type'] : '?'];
    if (doc['type'] !== 'weir') throw new ConflistError(`${file}: its plugin type is ${JSON.stringify(doc['type'])}, not "weir"`, file);
    entry = doc;
  }
  let conf: WeirNetConf;
  try {
    conf = parseNetConf(JSON.stringify(entry));
  } catch (e) {
    throw new ConflistError(`${file}: the weir plugin would refuse it: ${(e as Error).message}`, file);
  }
  return { file, name, cniVersion, conf, plugins, podCIDRs: conf.podCIDRs.map(formatCidr) };
}

/**
 * The file of `dir` that defines `network`, first by name as libcni sorts
 * them. Undefined when none does; ConflistError when the one that does is
 * broken. Files that are not JSON or name another network are skipped.
 */
export function loadConflist(dir: string, network: string): LoadedConflist | undefined {
  let names: string[];
  try {
    names = fs
      .readdirSync(dir)
      .filter((n) => CONF_EXT.test(n))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConflistError(`cannot read ${dir}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  for (const n of names) {
    const file = path.join(dir, n);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      continue;
    }
    if (!isObj(doc) || doc['name'] !== network) continue;
    return parseConflistText(text, file);
  }
  return undefined;
}
