// FakeListWatch: a scripted API server for one kind, implementing the
// reflector's ListWatch seam beside the real one (api-list.ts apiListWatch),
// for tests of the reflector and what it feeds. The test drives it step by
// step: it takes each request the reflector makes, in order (nextList,
// nextWatch), and answers it: a list page or an error for a list; for a
// watch, the request's outcome and then the stream, event by event. It
// behaves as client-node's Watch does over a real connection:
//
//   - a watch request refused with an HTTP status calls `onDone` with an
//     Error carrying `statusCode`, then resolves the watch() promise;
//   - an accepted request resolves it with an abort handle, then delivers
//     events until the stream ends (`onDone(null)`), breaks (`onDone(err)`)
//     or is aborted (`onDone` with an AbortError, a tick later);
//   - `onDone` is called once; events are lines of the stream, so the test
//     can still deliver one between an abort and its `onDone`.
//
// List errors are api-list.ts's ApiStatusError, as jsonLister throws them.
import { ApiStatusError } from './api-list.ts';
import type { ListPage, ListWatch, WatchOptions } from './reflector.ts';

const DEFAULT_WAIT_MS = 5000;

/** Requests in the order the reflector makes them, handed to the test one at a time. */
class Requests<R> {
  readonly #queue: R[] = [];
  readonly #waiters: Array<(r: R) => void> = [];
  readonly all: R[] = [];

  push(r: R): void {
    this.all.push(r);
    const w = this.#waiters.shift();
    if (w) w(r);
    else this.#queue.push(r);
  }

  next(what: string, waitMs: number): Promise<R> {
    const r = this.#queue.shift();
    if (r) return Promise.resolve(r);
    return new Promise<R>((resolve, reject) => {
      // Only a failure's deadline: the request resolves as soon as it is made.
      const t = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(take), 1);
        reject(new Error(`no ${what} request within ${waitMs} ms`));
      }, waitMs);
      const take = (x: R): void => {
        clearTimeout(t);
        resolve(x);
      };
      this.#waiters.push(take);
    });
  }

  /** Requests made and not yet taken by the test. */
  get untaken(): number {
    return this.#queue.length;
  }
}

export class FakeListRequest<T> {
  readonly opts: { limit: number; _continue?: string };
  #answered = false;
  readonly #resolve: (p: ListPage<T>) => void;
  readonly #reject: (e: unknown) => void;
  readonly #path: string;

  constructor(opts: { limit: number; _continue?: string }, path: string, resolve: (p: ListPage<T>) => void, reject: (e: unknown) => void) {
    this.opts = opts;
    this.#path = path;
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** Answers with one page; a `continueToken` says more pages follow. */
  reply(items: T[], resourceVersion: string, continueToken?: string): void {
    this.#answer();
    this.#resolve({ items, metadata: { resourceVersion, ...(continueToken ? { _continue: continueToken } : {}) } });
  }

  /** Answers with an HTTP status, as jsonLister throws it (410: the continue token expired). */
  status(code: number, reason = 'Expired', message = `status ${code}`): void {
    this.fail(new ApiStatusError('GET', this.#path, code, JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message })));
  }

  /** Fails with `err` (an unreachable server, say). */
  fail(err: unknown): void {
    this.#answer();
    this.#reject(err);
  }

  #answer(): void {
    if (this.#answered) throw new Error('this list request was already answered');
    this.#answered = true;
  }
}

export class FakeWatch<T> {
  readonly opts: WatchOptions;
  readonly #onEvent: (type: string, obj: T) => void;
  readonly #onDone: (err: unknown) => void;
  readonly #resolve: (h: { abort(): void }) => void;
  readonly #reject: (e: unknown) => void;
  readonly #controller = new AbortController();
  #settled = false;
  #done = false;

  constructor(
    opts: WatchOptions,
    onEvent: (type: string, obj: T) => void,
    onDone: (err: unknown) => void,
    resolve: (h: { abort(): void }) => void,
    reject: (e: unknown) => void,
  ) {
    this.opts = opts;
    this.#onEvent = onEvent;
    this.#onDone = onDone;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#controller.signal.addEventListener('abort', () => {
      // As client-node: the aborted body errors, and done follows.
      if (!this.#done) queueMicrotask(() => this.#finish(new DOMException('This operation was aborted', 'AbortError')));
    });
  }

  /** Whether the reflector (or the end of the stream) aborted the request. */
  get aborted(): boolean {
    return this.#controller.signal.aborted;
  }

  /** Resolves once the request is aborted (by the reflector, or by the end of the stream); rejects after `waitMs` otherwise. */
  whenAborted(waitMs = DEFAULT_WAIT_MS): Promise<void> {
    const signal = this.#controller.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`watch from ${this.opts.resourceVersion} not aborted within ${waitMs} ms`)), waitMs);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** Whether `onDone` was called. */
  get done(): boolean {
    return this.#done;
  }

  /** HTTP 200: the stream is open. Implied by the first event. */
  accept(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#resolve(this.#controller);
  }

  /** One line of the stream. */
  send(type: string, obj: unknown): void {
    if (this.#done) throw new Error(`watch from ${this.opts.resourceVersion}: ${type} sent after the stream ended`);
    this.accept();
    this.#onEvent(type, obj as T);
  }

  added(obj: unknown): void {
    this.send('ADDED', obj);
  }
  modified(obj: unknown): void {
    this.send('MODIFIED', obj);
  }
  deleted(obj: unknown): void {
    this.send('DELETED', obj);
  }
  bookmark(resourceVersion: string): void {
    this.send('BOOKMARK', { metadata: { resourceVersion } });
  }
  /** An ERROR event: a Status object (410 Expired: the version is too old). */
  error(code: number, reason = code === 410 ? 'Expired' : 'InternalError', message = `too old resource version: ${this.opts.resourceVersion}`): void {
    this.send('ERROR', { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', code, reason, message });
  }

  /** The server closes the stream (its timeout, say). */
  end(): void {
    this.accept();
    this.#finish(null);
  }

  /** The connection breaks mid-stream (or the client's inactivity timer fires: a DOMException named TimeoutError). */
  break(err: unknown): void {
    this.accept();
    this.#finish(err);
  }

  /** The watch request answered with an HTTP status other than 200 (410 Gone, 503, ...). */
  status(code: number, statusText = code === 410 ? 'Gone' : 'Service Unavailable'): void {
    if (this.#settled) throw new Error('the watch request was already answered');
    const err = Object.assign(new Error(statusText), { statusCode: code });
    this.#finish(err);
    this.#settled = true;
    this.#resolve(this.#controller);
  }

  /** watch() itself fails before any request (no current cluster, say). */
  reject(err: unknown): void {
    if (this.#settled) throw new Error('the watch request was already answered');
    this.#settled = true;
    this.#reject(err);
  }

  #finish(err: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#controller.abort();
    this.#onDone(err);
  }
}

export class FakeListWatch<T> implements ListWatch<T> {
  readonly #lists = new Requests<FakeListRequest<T>>();
  readonly #watches = new Requests<FakeWatch<T>>();
  readonly #path: string;
  readonly #waitMs: number;

  constructor(opts: { path?: string; waitMs?: number } = {}) {
    this.#path = opts.path ?? '/api/v1/things';
    this.#waitMs = opts.waitMs ?? DEFAULT_WAIT_MS;
  }

  readonly list = (opts: { limit: number; _continue?: string }): Promise<ListPage<T>> =>
    new Promise((resolve, reject) => this.#lists.push(new FakeListRequest<T>(opts, this.#path, resolve, reject)));

  watch(opts: WatchOptions, onEvent: (type: string, obj: T) => void, onDone: (err: unknown) => void): Promise<{ abort(): void }> {
    return new Promise((resolve, reject) => this.#watches.push(new FakeWatch<T>({ ...opts }, onEvent, onDone, resolve, reject)));
  }

  /** The next list request the reflector makes (resolves once it has made it). */
  nextList(): Promise<FakeListRequest<T>> {
    return this.#lists.next('list', this.#waitMs);
  }

  /** The next watch the reflector opens (resolves once it has opened it). */
  nextWatch(): Promise<FakeWatch<T>> {
    return this.#watches.next('watch', this.#waitMs);
  }

  /** Every list request made so far. */
  get lists(): readonly FakeListRequest<T>[] {
    return this.#lists.all;
  }

  /** Every watch opened so far. */
  get watches(): readonly FakeWatch<T>[] {
    return this.#watches.all;
  }

  /** Requests made that the test has not taken yet. */
  get untaken(): { lists: number; watches: number } {
    return { lists: this.#lists.untaken, watches: this.#watches.untaken };
  }
}
