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
import { type KoffiFunction, loadKoffi } from './ffi.ts';

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
  trimMalloc();
  return { before, after: process.memoryUsage.rss() };
}

/**
 * glibc's free memory back to the system (malloc_trim): what libnftables'
 * cache refreshes and netlink buffers left. ~2 ms at 10k pods, so it can
 * follow every change: in a burst of 300 changes it kept ~20 MiB off RSS.
 */
export function trimMalloc(): void {
  trim ??= loadKoffi().load('libc.so.6').func('int malloc_trim(size_t pad)');
  trim(0);
}
