// Waiting in tests: for a condition, never for a span of time. Every test
// that waits polls what a user would look at (a reply, a listing, a counter)
// and fails with what it was waiting for. `sleep` is the pause between two
// polls or the pacing of a load loop, never a stand-in for readiness.
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/**
 * Polls `fn` until it returns a value other than undefined or false (that
 * value is the result), or fails after `timeoutMs` naming `what` and the last
 * error `fn` threw.
 */
export async function eventually<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

/** `eventually` for a condition: resolves once `cond()` holds. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 5000, everyMs = 25): Promise<void> {
  await eventually(what, async () => (await cond()) || undefined, timeoutMs, everyMs);
}

/**
 * Waits until the CRD `crd` (`crd/NAME`) is Established, reading it with
 * `get` (a kubectl that returns stdout). Not `kubectl wait
 * --for=condition=Established`: right after the CRD is created its
 * `status.conditions` can still be null, and kubectl wait then fails at once
 * (".status.conditions accessor error") instead of waiting.
 */
export async function waitEstablished(get: (args: string[]) => string | Promise<string>, crd: string, timeoutMs = 60_000): Promise<void> {
  const established = '-o=jsonpath={.status.conditions[?(@.type=="Established")].status}';
  await waitFor(`${crd} to be Established`, async () => (await get(['get', crd, established])).trim() === 'True', timeoutMs, 100);
}
