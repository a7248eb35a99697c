// NetlinkElementWriter: set and map element changes sent straight to
// nf_tables over netlink, one atomic batch per apply(). libnftables 1.0.6
// lists every set of the table into its cache before any element change
// (6-9 ms with weir's ~1300 sets); an element change needs none of that,
// since it names its set and the set's type says how to encode the key.
//
// Scope: sets and maps without the `interval` flag (an interval element is a
// start and an end element, and nft merges and splits ranges: libnftables'
// job), keyed by ipv4_addr, ipv6_addr, inet_proto, inet_service or a
// concatenation of them, maps with verdict values. canWriteElements() tells;
// the engine leaves everything else to libnftables.
//
// The socket is opened inside the target namespace and stays bound to it
// (like NetlinkHandle), and asks for capped error replies: an error otherwise
// echoes the whole failed message, up to 64 KiB, more than a receive buffer.
import { Errno, errnoName, isNotFound } from '../errors.ts';
import { NETLINK_NETFILTER } from '../netlink/conntrack.ts';
import { NETLINK_CAP_ACK } from '../netlink/constants.ts';
import type { NlMsg } from '../netlink/message.ts';
import {
  type ElementLayout,
  elementAtOffset,
  elementLayout,
  encodeBatch,
  encodeElement,
  encodeGetGen,
  encodeGetTable,
  encodeKey,
  encodeSetElem,
  errorOffset,
  MAX_ELEMENTS_BYTES,
  parseGenId,
  parseTableInfo,
  parseVerdict,
  type SetElemMessage,
  type TableInfo,
} from '../netlink/nftables.ts';
import { type BatchError, NetlinkSocket } from '../netlink/socket.ts';
import * as libc from '../sys/libc.ts';
import { Netns } from '../sys/netns.ts';
import type { ElementChange, ElementWriter } from './element-writer.ts';
import { NftError } from './errors.ts';
import { nft, renderElements } from './transaction.ts';
import { type NftMap, type NftSet, tableId } from './types.ts';

type SetDef = NftSet | NftMap;

const layoutOf = (def: SetDef): ElementLayout | undefined => (def.flags?.includes('interval') ? undefined : elementLayout(def.type, def.kind === 'map'));

/** Whether NetlinkElementWriter can write this set's or map's elements; libnftables must do the rest. */
export const canWriteElements = (def: SetDef): boolean => layoutOf(def) !== undefined;

/** The change as an nft command, for error messages: `delete element inet t s { 10.0.0.1 }`. */
function commandText(c: ElementChange): string {
  const { table, name, kind } = c.set;
  // A delete prints no value, so a map's delete needs none.
  return renderElements(c.verb, [kind === 'map' ? nft.mapElement(table, name, c.key, c.value ?? '') : nft.setElement(table, name, c.key)]);
}

/** The batch's messages and, for each message, the index in `changes` of each of its elements. */
export interface EncodedChanges {
  readonly messages: readonly SetElemMessage[];
  readonly origins: readonly (readonly number[])[];
}

/**
 * Encodes every change, or throws NftError (EINVAL) naming the first one that
 * cannot be. Consecutive changes of the same set and verb share a message, up
 * to what one message holds (MAX_ELEMENTS_BYTES).
 */
export function encodeChanges(changes: readonly ElementChange[]): EncodedChanges {
  const messages: SetElemMessage[] = [];
  const origins: number[][] = [];
  let current: { verb: string; def: SetDef; elements: Buffer[]; bytes: number } | undefined;
  const layouts = new Map<SetDef, ElementLayout | undefined>();
  changes.forEach((c, i) => {
    if (!layouts.has(c.set)) layouts.set(c.set, layoutOf(c.set));
    const elem = encodeChange(c, layouts.get(c.set), i);
    const same = current && current.verb === c.verb && sameSet(current.def, c.set) && current.bytes + elem.length <= MAX_ELEMENTS_BYTES;
    if (!current || !same) {
      current = { verb: c.verb, def: c.set, elements: [], bytes: 0 };
      const { family, name: table } = c.set.table;
      messages.push({ verb: c.verb, family, table, set: c.set.name, elements: current.elements });
      origins.push([]);
    }
    current.elements.push(elem);
    current.bytes += elem.length;
    origins.at(-1)?.push(i);
  });
  return { messages, origins };
}

const sameSet = (a: SetDef, b: SetDef): boolean => a === b || (a.name === b.name && a.table.name === b.table.name && a.table.family === b.table.family);

function encodeChange(c: ElementChange, layout: ElementLayout | undefined, op: number): Buffer {
  const fail = (why: string): NftError =>
    new NftError(`cannot write ${c.verb} of element ${c.key.join(' . ')} to ${c.set.kind} ${tableId(c.set.table)} ${c.set.name}: ${why}`, {
      errno: Errno.EINVAL,
      op,
    });
  if (!layout)
    throw fail(
      `type ${JSON.stringify(c.set.type)}${c.set.flags?.length ? ` with flags ${c.set.flags.join(',')}` : ''} is not supported (canWriteElements is false)`,
    );
  if (!layout.verdict && c.value !== undefined) throw fail('a set element has no value');
  if (layout.verdict && c.verb === 'add' && c.value === undefined) throw fail('a verdict map element needs a verdict');
  try {
    // A delete finds the element by its key alone, as nft sends it.
    return encodeElement(encodeKey(layout, c.key), c.verb === 'add' && c.value !== undefined ? parseVerdict(c.value) : undefined);
  } catch (e) {
    if (e instanceof RangeError) throw fail(e.message);
    throw e;
  }
}

export class NetlinkElementWriter implements ElementWriter {
  /** Where the socket lives; kept to reopen it after a failed exchange. A Netns stays the caller's to close. */
  readonly #netns: Netns | string | undefined;
  #sock: NetlinkSocket | undefined;
  #closed = false;

  private constructor(netns: Netns | string | undefined) {
    this.#netns = netns;
    this.#sock = this.#open();
  }

  /** Opens the writer on nf_tables of `netns` (a Netns or a path such as /var/run/netns/x), or of the calling thread's namespace. */
  static open(netns?: Netns | string): NetlinkElementWriter {
    return new NetlinkElementWriter(netns);
  }

  canWrite(def: SetDef): boolean {
    return canWriteElements(def);
  }

  /**
   * Sends every change in one batch and waits for the kernel's ack of each
   * message. The kernel commits the batch whole or not at all; on failure
   * this throws NftError with the kernel's errno, naming the change that failed.
   */
  apply(changes: readonly ElementChange[]): void {
    if (this.#closed) throw new NftError('nft element batch: writer closed', { errno: Errno.EBADF });
    if (changes.length === 0) return;
    const encoded = encodeChanges(changes);
    const requests = encoded.messages.map(encodeSetElem);
    this.#sock ??= this.#open();
    const sock = this.#sock;
    let firstSeq = 0;
    let failure: BatchError | undefined;
    try {
      failure = sock.sendBatch('nft element batch', (seq) => {
        firstSeq = seq;
        return encodeBatch(requests, seq);
      });
    } catch (e) {
      // Replies may be lost or still queued: the next apply starts on a fresh socket.
      this.#drop();
      const errno = (e as { errno?: unknown }).errno;
      throw new NftError(`nft element batch of ${changes.length} change(s) failed: ${e instanceof Error ? e.message : String(e)}`, {
        errno: typeof errno === 'number' ? errno : undefined,
        cause: e,
      });
    }
    if (failure) throw batchError(encoded, changes, failure, firstSeq);
  }

  /**
   * nf_tables' ruleset generation in the writer's namespace (NFT_MSG_GETGEN):
   * it moves with every committed batch, anyone's. The drift check reads it
   * to skip listing a table nothing has touched.
   */
  generation(): number {
    for (const r of this.#request('nft getgen', encodeGetGen()) ?? []) {
      const id = parseGenId(r);
      if (id !== undefined) return id;
    }
    throw new NftError('nft getgen: no NEWGEN reply with a generation id');
  }

  /** One table's handle and use count (chains + sets + maps), or undefined when it does not exist. */
  tableInfo(family: string, table: string): TableInfo | undefined {
    const replies = this.#request('nft gettable', encodeGetTable(family, table), true);
    for (const r of replies ?? []) {
      const info = parseTableInfo(r);
      if (info) return info;
    }
    return undefined;
  }

  close(): void {
    this.#closed = true;
    this.#drop();
  }

  /** One request on the writer's socket; with `missingOk`, ENOENT is undefined. */
  #request(op: string, req: { type: number; flags: number; body: Buffer }, missingOk = false): NlMsg[] | undefined {
    if (this.#closed) throw new NftError(`${op}: writer closed`, { errno: Errno.EBADF });
    this.#sock ??= this.#open();
    const sock = this.#sock;
    try {
      return sock.request(op, req.type, req.flags, req.body);
    } catch (e) {
      if (missingOk && isNotFound(e)) return undefined;
      throw e;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #drop(): void {
    this.#sock?.close();
    this.#sock = undefined;
  }

  #open(): NetlinkSocket {
    if (typeof this.#netns === 'string') {
      const ns = Netns.open(this.#netns);
      try {
        return openSocket(ns);
      } finally {
        ns.close(); // the socket stays in the namespace without it
      }
    }
    return openSocket(this.#netns);
  }
}

function openSocket(ns: Netns | undefined): NetlinkSocket {
  const sock = new NetlinkSocket(NETLINK_NETFILTER, ns);
  try {
    libc.setsockoptInt(sock.fd, libc.SOL_NETLINK, NETLINK_CAP_ACK, 1);
  } catch (e) {
    sock.close();
    throw e;
  }
  return sock;
}

/** The NftError for a failed batch: the failed change when the kernel pointed at one, else its set, else the batch. */
function batchError(encoded: EncodedChanges, changes: readonly ElementChange[], failure: BatchError, firstSeq: number): NftError {
  // Sequence numbers: BEGIN is firstSeq, message k is firstSeq + 1 + k.
  const k = ((failure.reply.seq - firstSeq) >>> 0) - 1;
  const message = encoded.messages[k];
  const origins = encoded.origins[k];
  const offset = errorOffset(failure.reply);
  const at = message && offset !== undefined ? elementAtOffset(message, offset) : undefined;
  const op = at === undefined ? origins?.[0] : origins?.[at];
  const change = op === undefined ? undefined : changes[op];
  let what = 'batch';
  if (change && at !== undefined) what = commandText(change);
  else if (change) what = `${change.verb} element in ${change.set.kind} ${tableId(change.set.table)} ${change.set.name}`;
  const why = `${errnoName(failure.errno)} (errno ${failure.errno})${failure.message ? `: ${failure.message}` : ''}`;
  return new NftError(`nft element batch failed, nothing applied: ${what}: ${why}`, {
    errno: failure.errno,
    command: change ? what : undefined,
    op: at === undefined ? undefined : op,
    details: failure.message,
  });
}
