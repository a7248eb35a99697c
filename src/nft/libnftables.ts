// The real nftables backend: libnftables.so.1 over koffi (effects).
//
// - A transaction is rendered to one script and handed to libnftables in ONE
//   nft_run_cmd_from_buffer call. nft parses and evaluates the whole script,
//   then sends it to the kernel as one netlink batch, which the kernel commits
//   all or nothing: a failing command anywhere leaves the ruleset untouched.
// - One context per LibNftables instance (so per netns), made on first use
//   and kept until close(); dropped after any failed run. Not per call,
//   because closing a context's netlink socket right after a deletion makes
//   the kernel wait (measured: a transaction that deletes anything, an
//   element, a chain or a table, costs 8-24 ms with a fresh context per call,
//   all of it in the close() inside nft_ctx_free, against 0.1 ms on a kept
//   context; most likely nf_tables flushing its deferred destroy work, an RCU
//   grace period, when a netfilter netlink socket is released).
//   A context is also dropped after every dry run: nft keeps the dry run's
//   would-be changes in its cache, and since nothing was committed the
//   kernel's generation id does not tell it to refetch.
//   Creating a context costs about 0.03 ms. Output and error are buffered;
//   both buffers are read after every run (reading rewinds them), and the dry
//   run flag and output flags are set on every call.
// - Namespaces: nft_ctx_new opens its netlink socket at once (libnftables
//   1.0.6; verified: a context made in one netns and run in another lists the
//   first netns' tables), and nft resolves interface names (`iif "eth0"`) in
//   the calling thread's netns at parse time. So with `netns`, the context is
//   created AND every run happens inside inNetns(netns, ...), synchronously.
// - Error locations: for a script passed as a buffer, nft 1.0.6 prints the
//   first line of the buffer under its message instead of the failing line (the
//   carets are right, the line is not). When a run fails, weir replays the same
//   script in dry-run mode from a memfd (nft_run_cmd_from_filename), where nft
//   reports `file:LINE:COL`, and maps LINE back to the transaction's operation.
// - check(tx) is nft's dry run (`nft -c`): nft evaluates the script against the
//   kernel's current ruleset and sends the batch without its commit, so kernel
//   errors (EEXIST, EBUSY, ENOENT...) are found too and nothing changes.
import fs from 'node:fs';
import { Errno } from '../errors.ts';
import { type KoffiFunction, loadKoffi } from '../sys/ffi.ts';
import { inNetns, type Netns } from '../sys/netns.ts';
import { withSignalsBlocked } from '../sys/signals.ts';
import type { Nft, NftJson } from './backend.ts';
import { errnoFromNftMessage, NftError } from './errors.ts';
import type { Compiled, Transaction } from './transaction.ts';
import { FAMILIES, type Family } from './types.ts';
import { checkName } from './validate.ts';

/** libnftables output flags (nftables/libnftables.h, enum nft_output_flags). */
export const NFT_CTX_OUTPUT_HANDLE = 1 << 3;
export const NFT_CTX_OUTPUT_JSON = 1 << 4;
export const NFT_CTX_OUTPUT_STATELESS = 1 << 2;
const MFD_CLOEXEC = 1;

export const LIBNFTABLES = 'libnftables.so.1';

interface Bindings {
  ctxNew: KoffiFunction;
  ctxFree: KoffiFunction;
  bufferOutput: KoffiFunction;
  bufferError: KoffiFunction;
  getOutput: KoffiFunction;
  getError: KoffiFunction;
  runBuffer: KoffiFunction;
  runFile: KoffiFunction;
  setFlags: KoffiFunction;
  setDryRun: KoffiFunction;
  memfdCreate: KoffiFunction;
}

const loaded = new Map<string, Bindings>();

function bindings(library: string): Bindings {
  const hit = loaded.get(library);
  if (hit) return hit;
  const koffi = loadKoffi();
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(library);
  } catch (e) {
    throw new NftError(`cannot load ${library}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const libc = koffi.load('libc.so.6');
  // The context is opaque: `void *` comes back as an external pointer.
  const b: Bindings = {
    ctxNew: lib.func('void *nft_ctx_new(uint32_t flags)'),
    ctxFree: lib.func('void nft_ctx_free(void *ctx)'),
    bufferOutput: lib.func('int nft_ctx_buffer_output(void *ctx)'),
    bufferError: lib.func('int nft_ctx_buffer_error(void *ctx)'),
    getOutput: lib.func('const char *nft_ctx_get_output_buffer(void *ctx)'),
    getError: lib.func('const char *nft_ctx_get_error_buffer(void *ctx)'),
    runBuffer: lib.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)'),
    runFile: lib.func('int nft_run_cmd_from_filename(void *ctx, const char *filename)'),
    setFlags: lib.func('void nft_ctx_output_set_flags(void *ctx, uint32_t flags)'),
    setDryRun: lib.func('void nft_ctx_set_dry_run(void *ctx, bool dry)'),
    memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)'),
  };
  loaded.set(library, b);
  return b;
}

export interface LibNftablesOptions {
  /** Talk to this network namespace instead of the caller's. */
  netns?: Netns;
  /** The shared object to load; default libnftables.so.1. */
  library?: string;
  /** On failure, replay in dry-run mode to find the failing line (default true). */
  locateErrors?: boolean;
}

export interface RunOptions {
  dryRun?: boolean;
  /** nft_ctx_output_set_flags bits, e.g. NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE. */
  outputFlags?: number;
}

type Ctx = unknown;

export class LibNftables implements Nft {
  readonly netns: Netns | undefined;
  private readonly library: string;
  private readonly locateErrors: boolean;
  /** The context, made inside `netns` on first use; see the file comment. */
  private ctx: Ctx | undefined;
  /** nft_run_cmd_from_buffer calls made (diagnostic replays not counted); for tests. */
  calls = 0;

  constructor(options: LibNftablesOptions = {}) {
    this.netns = options.netns;
    this.library = options.library ?? LIBNFTABLES;
    this.locateErrors = options.locateErrors ?? true;
    bindings(this.library);
  }

  run(tx: Transaction): void {
    this.apply(tx, false);
  }

  check(tx: Transaction): void {
    this.apply(tx, true);
  }

  list(family: Family, table: string, options: { handles?: boolean; stateless?: boolean } = {}): string {
    const flags = (options.handles ? NFT_CTX_OUTPUT_HANDLE : 0) | (options.stateless ? NFT_CTX_OUTPUT_STATELESS : 0);
    return this.runScript(listTable(family, table), { outputFlags: flags });
  }

  listJson(family: Family, table: string): NftJson {
    return JSON.parse(this.runScript(listTable(family, table), { outputFlags: NFT_CTX_OUTPUT_JSON })) as NftJson;
  }

  /**
   * Runs any nft script (e.g. `list ruleset`) in one call and returns nft's
   * output. The script is not checked: use a Transaction to change things.
   * (No `define`: the context is reused, and nft keeps definitions in it.)
   */
  runScript(script: string, options: RunOptions = {}): string {
    return this.inNs(() => {
      const r = this.exec(script, options);
      if (r.rc !== 0) throw failure(r.error, script, undefined);
      return r.output;
    });
  }

  /**
   * Frees the context (and closes its netlink socket). Idempotent; a later
   * call makes a new context. The Netns stays open: it belongs to the caller.
   */
  close(): void {
    const ctx = this.ctx;
    this.ctx = undefined;
    if (ctx) bindings(this.library).ctxFree(ctx);
  }

  private apply(tx: Transaction, dryRun: boolean): void {
    const compiled = tx.compile();
    if (compiled.lines.length === 0) return;
    this.inNs(() => {
      const r = this.exec(compiled.script, { dryRun });
      if (r.rc === 0) return;
      let located: string | undefined;
      if (this.locateErrors && !/^\S+:\d+:\d+(-\d+)?: Error/m.test(r.error)) located = this.locate(compiled.script);
      // The replay only names the line of the same error; anything else it reports is not what failed.
      if (located !== undefined && firstMessage(located) !== firstMessage(r.error)) located = undefined;
      throw failure(located ?? r.error, compiled.script, compiled, dryRun ? 'check' : 'run');
    });
  }

  private inNs<T>(fn: () => T): T {
    return this.netns ? inNetns(this.netns, fn) : fn();
  }

  /**
   * One nft_run_cmd_from_buffer on the cached context, with this call's
   * settings (dry run, output flags) set and reset. Call inside the target
   * netns. After a failure or a dry run the context is dropped, so no state
   * of such a run (parser, cache) outlives it.
   */
  private exec(script: string, options: RunOptions): { rc: number; output: string; error: string } {
    const b = bindings(this.library);
    this.ctx ??= newCtx(b);
    const ctx = this.ctx;
    let ok = false;
    try {
      b.setFlags(ctx, options.outputFlags ?? 0);
      b.setDryRun(ctx, options.dryRun === true);
      this.calls++;
      // Signals blocked: libnftables misreports a committed batch as failed when one interrupts it (src/sys/signals.ts).
      const rc = Number(withSignalsBlocked(() => b.runBuffer(ctx, script)));
      // Reading a buffer also rewinds it for the next run: always read both.
      const output = String(b.getOutput(ctx) ?? '');
      const error = String(b.getError(ctx) ?? '');
      ok = rc === 0;
      return { rc, output, error };
    } finally {
      // A dry run leaves its would-be changes in nft's cache, and the kernel's
      // generation id did not move, so the next run on this context would trust
      // them (seen: "interval overlaps with an existing one" for elements that
      // only the check added). Drop the context after checks and failures.
      if (!ok || options.dryRun) this.close();
    }
  }

  /** Replays `script` as a dry run from a memfd, where nft reports line numbers; the error text, or undefined. */
  private locate(script: string): string | undefined {
    const b = bindings(this.library);
    const fd = Number(b.memfdCreate('weir-nft', MFD_CLOEXEC));
    if (fd < 0) return undefined;
    let ctx: Ctx | undefined;
    try {
      fs.writeSync(fd, script);
      ctx = newCtx(b);
      b.setDryRun(ctx, true);
      const rc = Number(withSignalsBlocked(() => b.runFile(ctx, `/proc/self/fd/${fd}`)));
      return rc === 0 ? undefined : String(b.getError(ctx) ?? '');
    } catch {
      return undefined;
    } finally {
      if (ctx) b.ctxFree(ctx);
      fs.closeSync(fd);
    }
  }
}

/** A context with buffered output and error. Its netlink socket opens here, in the calling thread's netns. */
function newCtx(b: Bindings): Ctx {
  const ctx = b.ctxNew(0) as Ctx;
  if (!ctx) throw new NftError('nft_ctx_new failed');
  if (Number(b.bufferOutput(ctx)) !== 0 || Number(b.bufferError(ctx)) !== 0) {
    b.ctxFree(ctx);
    throw new NftError('nft_ctx_buffer_output/nft_ctx_buffer_error failed');
  }
  return ctx;
}

/** `list table F N`, refusing anything that is not a family and a name (no second command). */
function listTable(family: Family, table: string): string {
  const reason = FAMILIES.includes(family) ? checkName('table', table) : `family ${JSON.stringify(family)} is not one of ${FAMILIES.join(', ')}`;
  if (reason) throw new NftError(`cannot list: ${reason}`, { errno: Errno.EINVAL });
  return `list table ${family} ${table}`;
}

/** The first `Error: ...` message of libnftables' error text. */
function firstMessage(text: string): string {
  const m = /Error: (.*)/.exec(text);
  return (m?.[1] ?? text.split('\n')[0] ?? '').trim() || 'unknown error';
}

function failure(errorText: string, script: string, compiled: Compiled | undefined, what = 'run'): NftError {
  const message = firstMessage(errorText);
  const errno = errnoFromNftMessage(message);
  const lineNo = /^\S+:(\d+):\d+(?:-\d+)?: Error/m.exec(errorText)?.[1];
  if (!compiled) {
    const cmd = script.split('\n')[0] ?? script;
    return new NftError(`nft ${cmd}: ${message}`, { errno, details: errorText.trim() });
  }
  const line = lineNo === undefined ? undefined : Number(lineNo);
  const scriptLine = line === undefined ? undefined : compiled.lines[line - 1];
  const command = scriptLine?.text;
  // A merged element line holds several operations; name the first.
  const op = scriptLine?.ops[0];
  const where = command === undefined ? '' : ` (line ${line}: ${command.length > 200 ? `${command.slice(0, 200)}...` : command})`;
  const verb = what === 'check' ? 'nft check failed' : 'nft transaction failed, nothing applied';
  return new NftError(`${verb}: ${message}${where}`, { errno, line, command, op, details: errorText.trim() });
}
