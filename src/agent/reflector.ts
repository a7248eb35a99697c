// A reflector keeps one kind of Kubernetes object mirrored in memory: list
// (paged), then watch from the list's resourceVersion with bookmarks, and
// start over with a fresh list when the server says the version is gone
// (410, as the watch request's HTTP status, as an ERROR event in the stream,
// or on a paged list whose continue token expired). A watch that simply ends
// (the server's timeout, the client's inactivity timer) resumes from the last
// version seen, without a list. Any other failure (the API server
// unreachable, a broken stream, another ERROR event) is retried with capped
// exponential backoff and jitter, while the last known objects stay in
// place. client-node's own informer stops for good on such errors, hence
// this. Why each case is handled so, and what it means for syncs: resync.ts.
//
// The API is reached through ListWatch (api-list.ts has the real one, over
// client-node's Watch; fake-list-watch.ts a scripted one for tests).
import { ResourceExpiredError, WatchError } from '../errors.ts';
import { WATCH_RETRY_MAX_MS, WATCH_RETRY_MIN_MS, WATCH_TIMEOUT_S } from './resync.ts';

export interface ObjectMeta {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}
export interface ListPage<T> {
  items: T[];
  metadata?: { resourceVersion?: string; _continue?: string };
}
export type Lister<T> = (opts: { limit: number; _continue?: string }) => Promise<ListPage<T>>;

export type WatchOptions = {
  resourceVersion: string;
  allowWatchBookmarks: boolean;
  timeoutSeconds: number;
};

/**
 * What a reflector needs of the API for one kind: a paged list, and a watch
 * from a resourceVersion. `watch` has the contract of client-node's
 * Watch.watch: events go to `onEvent` (`type` is ADDED, MODIFIED, DELETED,
 * BOOKMARK or ERROR, whose object is a Status); `onDone` is called when the
 * stream ends, with no error (or an AbortError/TimeoutError) for an ordinary
 * end, with an Error carrying `statusCode` when the request's HTTP status was
 * not 200, or with the transport's error. It resolves with a handle that
 * aborts the stream, and may reject before any stream exists.
 */
export interface ListWatch<T> {
  list: Lister<T>;
  watch(opts: WatchOptions, onEvent: (type: string, obj: T) => void, onDone: (err: unknown) => void): Promise<{ abort(): void }>;
}

export interface ReflectorHandlers<T> {
  /**
   * What to keep of each listed object, applied page by page as the pages
   * come in: a list is delivered whole (replace), and holding the API's full
   * objects until the last page is the agent's peak memory at 150k pods.
   * Must leave the object's metadata (name, namespace, uid, resourceVersion).
   */
  keep?(item: T): T;
  /** A complete list replaced everything known of this kind. */
  replace(items: T[], resourceVersion: string): void;
  /** One watch event. */
  event(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T, resourceVersion: string): void;
  /** The server confirmed everything up to this version has been delivered. */
  bookmark?(resourceVersion: string): void;
  /** A failure that will be retried; `attempt` counts consecutive failures. */
  error?(err: unknown, attempt: number): void;
  /** The version watched or listed from is gone (410); a fresh list follows at once. */
  expired?(err: ResourceExpiredError): void;
}

export interface ReflectorOptions {
  pageSize?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Server-side watch timeout; the reflector simply resumes after it. */
  watchTimeoutSeconds?: number;
}

/** The HTTP status an API error carries: client-node's Watch sets `statusCode`, api-list.ts's ApiStatusError `status`. */
export const httpStatus = (e: unknown): number | undefined => {
  const o = e as { statusCode?: unknown; status?: unknown } | undefined;
  return typeof o?.statusCode === 'number' ? o.statusCode : typeof o?.status === 'number' ? o.status : undefined;
};

/** A 410 from the API as a ResourceExpiredError; anything else as it is. */
function typed(e: unknown, what: string): unknown {
  if (e instanceof ResourceExpiredError || httpStatus(e) !== 410) return e;
  return new ResourceExpiredError(`${what}: HTTP 410 Gone: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

/** An ordinary end of a watch stream: closed, aborted, or timed out for inactivity. */
const isOrdinaryEnd = (err: unknown): boolean => {
  const name = (err as { name?: unknown } | null | undefined)?.name;
  return !err || name === 'TimeoutError' || name === 'AbortError';
};

export class Reflector<T extends ObjectMeta> {
  readonly kind: string;
  #rv = '';
  #stopped = false;
  /** Ends the open watch stream, if any (stop()). */
  #endStream: (() => void) | undefined;
  #wake: (() => void) | undefined;
  /** Resolves on stop(): a pending list is not waited for. */
  readonly #stopping: Promise<undefined>;
  #onStop!: () => void;
  readonly #api: ListWatch<T>;
  readonly #on: ReflectorHandlers<T>;
  readonly #opts: Required<ReflectorOptions>;

  constructor(kind: string, api: ListWatch<T>, on: ReflectorHandlers<T>, opts: ReflectorOptions = {}) {
    this.kind = kind;
    this.#api = api;
    this.#on = on;
    this.#opts = { pageSize: 500, minBackoffMs: WATCH_RETRY_MIN_MS, maxBackoffMs: WATCH_RETRY_MAX_MS, watchTimeoutSeconds: WATCH_TIMEOUT_S, ...opts };
    this.#stopping = new Promise((resolve) => {
      this.#onStop = () => resolve(undefined);
    });
  }

  /** The resourceVersion of the newest state delivered. */
  get resourceVersion(): string {
    return this.#rv;
  }

  /** Runs until stop(); resolves then. */
  async run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      try {
        if (!this.#rv) await this.#relist();
        if (this.#stopped) break;
        await this.#watchOnce();
        failures = 0;
      } catch (e) {
        if (this.#stopped) break;
        if (e instanceof ResourceExpiredError) {
          this.#rv = '';
          this.#on.expired?.(e);
          continue;
        }
        failures++;
        this.#on.error?.(e, failures);
        const cap = Math.min(this.#opts.maxBackoffMs, this.#opts.minBackoffMs * 2 ** (failures - 1));
        await this.#sleep(cap / 2 + Math.random() * (cap / 2));
      }
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#onStop();
    this.#endStream?.();
    this.#wake?.();
  }

  async #relist(): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      let page: ListPage<T> | undefined;
      try {
        page = await Promise.race([this.#api.list({ limit: this.#opts.pageSize, ...(cont ? { _continue: cont } : {}) }), this.#stopping]);
      } catch (e) {
        throw typed(e, `list ${this.kind}`);
      }
      if (!page) return;
      const keep = this.#on.keep;
      for (const item of page.items) items.push(keep ? keep(item) : item);
      cont = page.metadata?._continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont && !this.#stopped);
    if (this.#stopped) return;
    this.#rv = rv;
    this.#on.replace(items, rv);
  }

  /**
   * One watch stream, from the current version until it ends: resolves on an
   * ordinary end, rejects with a ResourceExpiredError on a 410 (status or
   * event), a WatchError on another ERROR event, or the transport's error.
   * Nothing the stream delivers after its end reaches the handlers.
   */
  #watchOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const what = `watch ${this.kind} from resourceVersion ${this.#rv || '(none)'}`;
      let ended = false;
      let handle: { abort(): void } | undefined;
      const end = (err?: unknown): void => {
        if (ended) return;
        ended = true;
        if (this.#endStream === stop) this.#endStream = undefined;
        handle?.abort();
        if (err === undefined) resolve();
        else reject(err);
      };
      const stop = (): void => end();
      this.#endStream = stop;
      this.#api
        .watch(
          { resourceVersion: this.#rv, allowWatchBookmarks: true, timeoutSeconds: this.#opts.watchTimeoutSeconds },
          (type, obj) => {
            if (ended) return;
            if (type === 'ERROR') {
              const st = obj as { code?: unknown; reason?: unknown; message?: unknown };
              const code = typeof st?.code === 'number' ? st.code : undefined;
              const text = `${what}: ERROR event${code ? ` ${code}` : ''}${st?.reason ? ` ${String(st.reason)}` : ''}${st?.message ? `: ${String(st.message)}` : ''}`;
              // 410 in the stream: the version is too old; relist.
              end(code === 410 ? new ResourceExpiredError(text) : new WatchError(text, code));
              return;
            }
            const rv = obj?.metadata?.resourceVersion;
            if (rv) this.#rv = rv;
            if (type === 'BOOKMARK') this.#on.bookmark?.(this.#rv);
            else if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.#on.event(type, obj, this.#rv);
          },
          (err) => end(isOrdinaryEnd(err) ? undefined : typed(err, what)),
        )
        .then(
          (h) => {
            handle = h;
            // Ended (or stopped) before the request returned: close it now.
            if (ended) h.abort();
          },
          (e) => end(typed(e, what)),
        );
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
