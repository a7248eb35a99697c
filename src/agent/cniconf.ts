// What the node agent writes to the host's CNI directories: the network
// configuration list (/etc/cni/net.d) once its Node has spec.podCIDRs, and the
// `weir` executable (plus koffi.node beside it) in the CNI bin dir, installed
// by the DaemonSet's init step.
//
// Everything is replaced atomically: a temp file in the same directory is
// written, fsynced and renamed over the target, then the directory is fsynced.
// The runtime (containerd and CRI-O watch the conf dir with inotify) therefore
// never reads half a file, and a crash leaves either the old or the new one.
// Temp names end in `.tmp-<pid>-<hex>`, never in .conf/.conflist/.json, so
// libcni's directory scan never loads one.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseNetConf } from '../cni/config.ts';
import { InvalidConfigError, IoError } from '../errors.ts';
import { formatCidr, parseCidr } from '../ip.ts';

export const DEFAULT_NETWORK_NAME = 'weir';
/** libcni loads the lexically first file of the conf dir; `10-` sorts ahead of most. */
export const DEFAULT_CONFLIST_NAME = '10-weir.conflist';
export const DEFAULT_CNI_CONF_DIR = '/etc/cni/net.d';
export const DEFAULT_CNI_BIN_DIR = '/opt/cni/bin';

/**
 * The version of the list. It is 1.0.0, not weir's own latest (1.1.0), because
 * the runtime sends one version to every plugin of a list, and the chained
 * reference `portmap` that distributions ship (Debian 12: containernetworking-
 * plugins 1.1.1) supports only 0.1.0..1.0.0: at 1.1.0 it fails ADD with
 * "incompatible CNI versions; config is "1.1.0", plugin supports [... 1.0.0]"
 * (checked against /usr/lib/cni/portmap). A `cniVersions: ["1.0.0","1.1.0"]`
 * list does not help either: libcni >= 1.2 picks the highest entry it knows,
 * 1.1.0, and hands it to portmap all the same. weir speaks 1.0.0 fully; the
 * 1.1.0 additions (GC, STATUS) are only reached by runtimes that pick 1.1.0.
 */
export const CONFLIST_CNI_VERSION = '1.0.0';

export interface ConflistOptions {
  /** The network name; default "weir". */
  networkName?: string;
  /** The Node's spec.podCIDRs, one per family (as the API server hands them out). */
  podCIDRs: string[];
  mtu?: number;
  /** The plugin's state directory; the plugin defaults to /var/lib/cni/weir. */
  dataDir?: string;
  /** The agent's unix socket, for the plugin to reach the agent. */
  agentSocket?: string;
}

/**
 * The conflist text: weir first, then portmap for hostPort. Deterministic
 * (fixed key order, 2-space indent, trailing newline), so writeFileAtomic can
 * tell "nothing changed" from the bytes alone. CIDRs are written canonically.
 * The weir entry is checked against the plugin's own parser (parseNetConf,
 * the same code every ADD runs), so a config the plugin would refuse on every
 * pod is refused here instead: InvalidConfigError naming the key.
 */
export function renderConflist(opts: ConflistOptions): string {
  const name = opts.networkName ?? DEFAULT_NETWORK_NAME;
  if (!Array.isArray(opts.podCIDRs)) throw new InvalidConfigError('podCIDRs: must be an array of CIDRs');
  const podCIDRs = opts.podCIDRs.map((c) => formatCidr(parseCidr(c)));
  const weir: Record<string, unknown> = { type: 'weir', podCIDRs };
  if (opts.mtu !== undefined) weir['mtu'] = opts.mtu;
  if (opts.dataDir !== undefined) weir['dataDir'] = opts.dataDir;
  if (opts.agentSocket !== undefined) {
    const s = opts.agentSocket;
    if (typeof s !== 'string' || !s.startsWith('/') || s.includes('\0')) {
      throw new InvalidConfigError(`agentSocket: must be an absolute path, got ${JSON.stringify(s)}`);
    }
    weir['agentSocket'] = s;
  }
  // libcni hands each plugin the list's cniVersion and name; check exactly that.
  parseNetConf(JSON.stringify({ cniVersion: CONFLIST_CNI_VERSION, name, ...weir }));
  const portmap = { type: 'portmap', capabilities: { portMappings: true }, snat: true };
  const list = { cniVersion: CONFLIST_CNI_VERSION, name, plugins: [weir, portmap] };
  return `${JSON.stringify(list, null, 2)}\n`;
}

// ---- file operations ----

/** An fs failure: IoError (CNI 5) that also names the operation, path and errno. */
export class FileIoError extends IoError {
  /** The failing step, e.g. `rename`. */
  readonly op: string;
  readonly path: string;
  /** The errno name, e.g. `ENOSPC`, when the failure had one. */
  readonly errnoCode: string | undefined;
  /** The positive errno, when the failure had one. */
  readonly errno: number | undefined;
  constructor(op: string, file: string, cause: unknown) {
    const e = cause as NodeJS.ErrnoException | null;
    const errnoCode = typeof e?.code === 'string' ? e.code : undefined;
    super(`${op} ${file}: ${errnoCode ?? (cause instanceof Error ? cause.message : String(cause))}`, { cause });
    this.op = op;
    this.path = file;
    this.errnoCode = errnoCode;
    this.errno = typeof e?.errno === 'number' ? Math.abs(e.errno) : undefined;
  }
}

function io<T>(op: string, file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw new FileIoError(op, file, e);
  }
}

const errCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | null)?.code;

/** A plain file name: no directory part, not `.` or `..`. */
function checkName(name: string, what: string): void {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new InvalidConfigError(`${what}: must be a plain file name, got ${JSON.stringify(name)}`);
  }
}

const tempPrefix = (base: string): string => `.${base}.tmp-`;
const tempName = (base: string): string => `${tempPrefix(base)}${process.pid}-${randomBytes(4).toString('hex')}`;

function fsyncDir(dir: string): void {
  const fd = io('open', dir, () => fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY));
  try {
    io('fsync', dir, () => fs.fsyncSync(fd));
  } finally {
    fs.closeSync(fd);
  }
}

/** The file's stat, or undefined when it does not exist. */
function statOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return undefined;
    throw new FileIoError('stat', file, e);
  }
}

const permBits = (st: fs.Stats): number => st.mode & 0o7777;

/**
 * Runs `fill(tempPath)` to produce the new file, then sets `mode`, fsyncs,
 * renames it over `target` and fsyncs the directory. The temp file is removed
 * on any failure.
 */
function replaceVia(target: string, mode: number, fill: (temp: string) => void): void {
  const dir = path.dirname(target);
  const temp = path.join(dir, tempName(path.basename(target)));
  try {
    fill(temp);
    const fd = io('open', temp, () => fs.openSync(temp, 'r+'));
    try {
      // The creating open's mode is filtered through the umask; set it exactly.
      io('chmod', temp, () => fs.fchmodSync(fd, mode));
      io('fsync', temp, () => fs.fsyncSync(fd));
    } finally {
      fs.closeSync(fd);
    }
    io('rename', temp, () => fs.renameSync(temp, target));
  } catch (e) {
    try {
      fs.unlinkSync(temp);
    } catch {
      // never created, or already renamed
    }
    throw e;
  }
  fsyncDir(dir);
}

/**
 * Writes `content` to `file` atomically (temp file in the same directory,
 * write, fsync, rename, fsync of the directory) with permission bits `mode`.
 * Returns false, writing nothing, when the file already holds exactly this
 * content with this mode, so a resync loop touches the disk (and wakes the
 * runtime's directory watch) only when something changed. A file with the
 * right content but another mode is rewritten, so the result is always
 * exactly (content, mode).
 */
export function writeFileAtomic(file: string, content: string | Uint8Array, mode = 0o644): boolean {
  const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
  const st = statOrUndefined(file);
  if (st?.isFile() && st.size === data.length && permBits(st) === mode) {
    const old = io('read', file, () => fs.readFileSync(file));
    if (old.equals(data)) return false;
  }
  replaceVia(file, mode, (temp) => {
    const fd = io('create', temp, () => fs.openSync(temp, 'wx', mode));
    try {
      let off = 0;
      while (off < data.length) off += io('write', temp, () => fs.writeSync(fd, data, off, data.length - off));
    } finally {
      fs.closeSync(fd);
    }
  });
  return true;
}

/** sha256 of a file, read in chunks (the weir executable is tens of MB). */
function sha256File(file: string): string {
  const hash = createHash('sha256');
  const fd = io('open', file, () => fs.openSync(file, 'r'));
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = io('read', file, () => fs.readSync(fd, buf, 0, buf.length, null));
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/**
 * Installs `src` as `destDir/name` with mode 0755 (the DaemonSet init step:
 * the `weir` executable, and koffi.node beside it, into the CNI bin dir).
 * Copies to a temp name in destDir and renames it over the target: writing in
 * place would fail with ETXTBSY while the runtime runs the old `weir`, and
 * could let it execute half a binary. Skips (returns false) when the target
 * already has the same size, sha256 and mode.
 */
export function installFile(src: string, destDir: string, name: string, mode = 0o755): boolean {
  checkName(name, 'installFile name');
  const target = path.join(destDir, name);
  const s = io('stat', src, () => fs.statSync(src));
  if (!s.isFile()) throw new FileIoError('install', src, Object.assign(new Error('not a regular file'), { code: 'EINVAL' }));
  const d = statOrUndefined(target);
  if (d?.isFile() && d.size === s.size && permBits(d) === mode && sha256File(target) === sha256File(src)) return false;
  replaceVia(target, mode, (temp) => io(`copy ${src} to`, temp, () => fs.copyFileSync(src, temp, fs.constants.COPYFILE_EXCL)));
  return true;
}

/**
 * Removes `dir/name` (uninstall), with any temp files an interrupted write of
 * it left behind. Returns whether the file existed; a missing file is not an
 * error.
 */
export function removeConflist(dir: string, name: string = DEFAULT_CONFLIST_NAME): boolean {
  checkName(name, 'removeConflist name');
  const file = path.join(dir, name);
  let removed = true;
  try {
    fs.unlinkSync(file);
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw new FileIoError('unlink', file, e);
    removed = false;
  }
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return removed;
    throw new FileIoError('readdir', dir, e);
  }
  const prefix = tempPrefix(name);
  for (const entry of entries) {
    if (!entry.startsWith(prefix)) continue;
    const p = path.join(dir, entry);
    try {
      fs.unlinkSync(p);
    } catch (e) {
      if (errCode(e) !== 'ENOENT') throw new FileIoError('unlink', p, e);
    }
  }
  if (removed) fsyncDir(dir);
  return removed;
}
