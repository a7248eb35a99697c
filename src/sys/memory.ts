// Giving memory back to the system after a burst of work. A Node process
// keeps what a burst needed: V8 pools the heap pages it freed (the first sync
// at 10k pods left ~250 MiB of pooled 256 KiB pages resident while the live
// heap was ~40 MiB), and glibc keeps freed arenas (libnftables parsing a
// multi-MiB script). Neither comes back by itself on an idle agent, and a
// DaemonSet's RSS is what its memory limit and the node's eviction see.
// V8 releases its pool on a "last resort" full collection (what it does
// under memory pressure); glibc on malloc_trim.
import v8 from 'node:v8';
import vm from 'node:vm';
import { loadKoffi, type KoffiFunction } from './ffi.ts';

/**
 * Heap settings for a long-running agent, set before it allocates much: a
 * young generation of 2 MiB semi-spaces (V8's default grows to 16 MiB each,
 * resident once used). Incremental syncs allocate little per event, so the
 * smaller nursery costs little time. (`--optimize-for-size` saved a little
 * more memory but slowed each sync by a third: not taken.)
 */
export function tuneHeapForSize(): void {
  v8.setFlagsFromString('--max-semi-space-size=2');
}

type Gc = (opts: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;
let gc: Gc | undefined;
let trim: KoffiFunction | undefined;

/** A last-resort garbage collection and malloc_trim; returns the RSS before and after, in bytes. */
export function releaseMemory(): { before: number; after: number } {
  const before = process.memoryUsage.rss();
  if (!gc) {
    // The gc() of --expose-gc, without the flag on the command line (the
    // agent is a single executable): set the flag, then read it in a fresh context.
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as Gc;
  }
  gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  trim ??= loadKoffi().load('libc.so.6').func('int malloc_trim(size_t pad)');
  trim(0);
  return { before, after: process.memoryUsage.rss() };
}
