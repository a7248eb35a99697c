// An optional kind's reflector, started and stopped by the watch of its CRD
// (crd-watch.ts). The kind's reflector runs from the start as every other
// does, listing empty while the CRD is missing (optional-api.ts), so the
// first sync never waits on the CRD watch. Then:
//
//   - The CRD is Established: the kind's reflector starts afresh at once,
//     unless it runs and its last list was served, so the policies are
//     mirrored now rather than at the next retry of a back-off that has grown
//     while the kind was missing.
//   - The CRD is gone (deleted, or listed without it): the kind lists empty
//     at once (`absent`), and its reflector stops until the CRD is back. The
//     grace that keeps the last list through a restarting API server's 404s
//     (resync.ts) is for an absence the agent cannot tell from an outage; the
//     CRD's own watch tells it, and the API server deletes a CRD's objects
//     before the CRD anyway.
//   - The CRD may not be read (403: a ClusterRole from before this watch):
//     the kind's reflector runs as it did without the watch, and its list's
//     back-off finds the CRD, later.
import type { Crd, CrdWatchHandlers } from './crd-watch.ts';
import { crdReflector } from './crd-watch.ts';
import type { ListWatch, ObjectMeta, Reflector, ReflectorOptions } from './reflector.ts';

export interface CrdGateDeps<T extends ObjectMeta> {
  /** The CRD's name (`plural.group`). */
  readonly crd: string;
  readonly crdApi: ListWatch<Crd>;
  /** A new reflector of the kind, for each start: a stopped reflector does not run again. */
  make(): Reflector<T>;
  /** Whether the kind's last list was served (optional-api.ts ApiAvailability). */
  available(): boolean | undefined;
  /** The CRD is gone: the kind lists empty now (its cache and its availability). */
  absent(): void;
  /** The CRD watch's other news, for the log. */
  readable?: CrdWatchHandlers['readable'];
  error?: CrdWatchHandlers['error'];
  /** The CRD watch's reflector options (back-off). */
  options?: ReflectorOptions;
}

export class CrdGate<T extends ObjectMeta> {
  readonly #d: CrdGateDeps<T>;
  readonly #crd: Reflector<Crd>;
  #kind: Reflector<T> | undefined;
  readonly #runs = new Set<Promise<void>>();
  #stopped = false;

  constructor(d: CrdGateDeps<T>) {
    this.#d = d;
    this.#crd = crdReflector(
      d.crd,
      d.crdApi,
      {
        served: (established) => (established ? this.#established() : this.#gone()),
        readable: (ok, err) => {
          // Without the watch, the kind's own retries are what finds the CRD.
          if (!ok) this.#start(false);
          d.readable?.(ok, err);
        },
        ...(d.error ? { error: d.error } : {}),
      },
      d.options,
    );
  }

  /** Whether the kind's reflector runs (it does not while the CRD is known to be gone). */
  get running(): boolean {
    return this.#kind !== undefined;
  }

  /** Runs the CRD watch and the kind's reflector until stop(); resolves once both have stopped. */
  async run(): Promise<void> {
    this.#start(false);
    await this.#crd.run();
    while (this.#runs.size > 0) await Promise.allSettled([...this.#runs]);
  }

  stop(): void {
    this.#stopped = true;
    this.#crd.stop();
    this.#kind?.stop();
    this.#kind = undefined;
  }

  #established(): void {
    if (this.#kind && this.#d.available() === true) return;
    this.#start(true);
  }

  #gone(): void {
    this.#kind?.stop();
    this.#kind = undefined;
    this.#d.absent();
  }

  /** Starts the kind's reflector; `again`: a running one is replaced, its list or back-off abandoned. */
  #start(again: boolean): void {
    if (this.#stopped || (this.#kind && !again)) return;
    this.#kind?.stop();
    const r = this.#d.make();
    this.#kind = r;
    const run = r.run().finally(() => this.#runs.delete(run));
    this.#runs.add(run);
  }
}
