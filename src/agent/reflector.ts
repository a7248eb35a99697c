// A reflector keeps one kind of Kubernetes object mirrored in memory: list
// (paged), then watch from the list's resourceVersion with bookmarks, and
// start over with a fresh list when the server says the version is gone
// (410). Any other failure (the API server unreachable, a broken stream) is
// retried with capped exponential backoff and jitter, while the last known
// objects stay in place: enforcement never depends on the API being up.
// client-node's own informer stops for good on such errors, hence this.
import type { Watch } from '@kubernetes/client-node';

export interface ObjectMeta {
  metadata?: { name?: string; namespace?: string; uid?: string; resourceVersion?: string };
}
export interface ListPage<T> {
  items: T[];
  metadata?: { resourceVersion?: string; _continue?: string };
}
export type Lister<T> = (opts: { limit: number; _continue?: string }) => Promise<ListPage<T>>;

export interface ReflectorHandlers<T> {
  /** A complete list replaced everything known of this kind. */
  replace(items: T[], resourceVersion: string): void;
  /** One watch event. */
  event(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T, resourceVersion: string): void;
  /** The server confirmed everything up to this version has been delivered. */
  bookmark?(resourceVersion: string): void;
  /** A failure that will be retried; `attempt` counts consecutive failures. */
  error?(err: unknown, attempt: number): void;
}

export interface ReflectorOptions {
  pageSize?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Server-side watch timeout; the reflector simply resumes after it. */
  watchTimeoutSeconds?: number;
}

const isGone = (e: unknown): boolean => {
  const o = e as { statusCode?: number; code?: number } | undefined;
  return o?.statusCode === 410 || o?.code === 410;
};

export class Reflector<T extends ObjectMeta> {
  readonly kind: string;
  #rv = '';
  #stopped = false;
  #abort: AbortController | undefined;
  #wake: (() => void) | undefined;
  readonly #watch: Watch;
  readonly #path: string;
  readonly #list: Lister<T>;
  readonly #on: ReflectorHandlers<T>;
  readonly #opts: Required<ReflectorOptions>;

  constructor(kind: string, watch: Watch, path: string, list: Lister<T>, on: ReflectorHandlers<T>, opts: ReflectorOptions = {}) {
    this.kind = kind;
    this.#watch = watch;
    this.#path = path;
    this.#list = list;
    this.#on = on;
    this.#opts = { pageSize: 500, minBackoffMs: 200, maxBackoffMs: 30_000, watchTimeoutSeconds: 300, ...opts };
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
        await this.#watchOnce();
        failures = 0;
      } catch (e) {
        if (this.#stopped) break;
        if (isGone(e)) {
          this.#rv = '';
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
    this.#abort?.abort();
    this.#wake?.();
  }

  async #relist(): Promise<void> {
    const items: T[] = [];
    let cont: string | undefined;
    let rv = '';
    do {
      const page = await this.#list({ limit: this.#opts.pageSize, ...(cont ? { _continue: cont } : {}) });
      items.push(...page.items);
      cont = page.metadata?._continue || undefined;
      rv = page.metadata?.resourceVersion ?? rv;
    } while (cont);
    this.#rv = rv;
    this.#on.replace(items, rv);
  }

  /** One watch stream, from the current version until it ends. */
  #watchOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let gone = false;
      const done = (err: unknown): void => {
        this.#abort = undefined;
        if (gone) reject({ code: 410 });
        // A timeout of the client's inactivity timer is a normal end: resume.
        else if (err && (err as { name?: string }).name !== 'TimeoutError' && (err as { name?: string }).name !== 'AbortError') reject(err);
        else resolve();
      };
      this.#watch
        .watch(
          this.#path,
          { resourceVersion: this.#rv, allowWatchBookmarks: true, timeoutSeconds: this.#opts.watchTimeoutSeconds },
          (type: string, obj: T & { code?: number }) => {
            if (type === 'ERROR') {
              // A 410 inside the stream: the version is too old; relist.
              if (obj.code === 410) gone = true;
              this.#abort?.abort();
              return;
            }
            const rv = obj.metadata?.resourceVersion;
            if (rv) this.#rv = rv;
            if (type === 'BOOKMARK') this.#on.bookmark?.(this.#rv);
            else if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.#on.event(type, obj, this.#rv);
          },
          done,
        )
        .then((abort) => {
          this.#abort = abort;
          if (this.#stopped) abort.abort();
        }, reject);
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
