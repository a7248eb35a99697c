// Waiting on a real signal: poll a condition until it holds or a deadline passes.
import { sleep } from '../commands/common.ts';

/** Polls `cond` every `everyMs` until it holds (its value) or `timeoutMs` passes (undefined). */
export async function until<T>(cond: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number, everyMs = 200): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(everyMs);
  }
}
