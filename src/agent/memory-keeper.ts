// When the agent gives memory back to the system (src/sys/memory.ts does
// it). A full collection costs enough to delay the next change, so it never
// runs in the middle of a burst: it runs right after a full sync, whose
// garbage (the first sync's above all) is most of what the agent ever
// allocates and which readiness waits for anyway, and after a burst of
// changes once the agent has been quiet for a while and its RSS has grown
// since the last release. glibc's free memory (malloc_trim) is cheap and is
// handed back right after each sync, at most once per TRIM_EVERY_MS.
import { releaseMemory, trimMalloc } from '../sys/memory.ts';

/** How long the agent must be quiet after a burst before a release. */
const QUIET_MS = 5000;
/** How much RSS must have grown since the last release for a release after a burst. */
const GROWTH_BYTES = 16 * 2 ** 20;
const TRIM_EVERY_MS = 1000;

export interface MemoryKeeper {
  afterSync(full: boolean): void;
}

/** `beforeRelease` frees what the agent can drop itself first; `onRelease` hears the RSS before and after. */
export function memoryKeeper(beforeRelease: () => void, onRelease: (r: { before: number; after: number }) => void): MemoryKeeper {
  let floor = 0;
  let timer: NodeJS.Timeout | undefined;
  let trimmedAt = 0;
  const release = (): void => {
    beforeRelease();
    const r = releaseMemory();
    floor = r.after;
    onRelease(r);
  };
  return {
    afterSync(full) {
      clearTimeout(timer);
      if (full) return release();
      if (performance.now() - trimmedAt >= TRIM_EVERY_MS) {
        trimmedAt = performance.now();
        setImmediate(trimMalloc);
      }
      timer = setTimeout(() => {
        if (process.memoryUsage.rss() > floor + GROWTH_BYTES) release();
      }, QUIET_MS).unref();
    },
  };
}
