// DiskStore under real contention and real crashes: separate OS processes
// (the pinned Node 24 running worker.ts), real flock, real SIGKILL.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { allocate, gc, release } from '../../../src/ipam/allocator.ts';
import { DiskStore, type DiskStoreStep } from '../../../src/ipam/disk-store.ts';
import { PodRange } from '../../../src/ipam/range.ts';
import { addressFiles, expectAllComplete, killWorkers, lockIsFree, makeTempDir, readAddressFiles, startWorker, tempFiles } from './helpers.ts';

let dataDir: string;
let dir: string;

beforeEach(() => {
  dataDir = makeTempDir();
  dir = path.join(dataDir, 'weir');
});

afterEach(() => {
  killWorkers();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function allocateConcurrently(workers: number, count: number, ranges: string[]) {
  const goFile = path.join(dataDir, 'go');
  const children = Array.from({ length: workers }, (_, w) =>
    startWorker({ mode: 'allocate', dataDir, network: 'weir', ranges, prefix: `w${w}`, count, goFile }),
  );
  await Promise.all(children.map((c) => c.ready));
  fs.writeFileSync(goFile, '');
  const results = await Promise.all(children.map((c) => c.exit));
  return results.map((r) => {
    expect(r.code, r.stderr).toBe(0);
    const last = r.lines.at(-1);
    return JSON.parse(last ?? '{}') as { addresses: string[]; exhausted: number };
  });
}

describe('DiskStore across processes', () => {
  it('8 processes x 25 allocations give 200 distinct addresses', async () => {
    const results = await allocateConcurrently(8, 25, ['10.244.1.0/24']);
    const all = results.flatMap((r) => r.addresses);
    expect(all).toHaveLength(200);
    expect(new Set(all).size).toBe(200);
    expect(results.every((r) => r.exhausted === 0)).toBe(true);
    expect(addressFiles(dir)).toEqual([...all].sort());
    const owners = [...readAddressFiles(dir).values()].map((f) => f.record.containerID);
    expect(new Set(owners).size).toBe(200);
    expect(tempFiles(dir)).toEqual([]);
  });

  it('exhausting a small dual-stack range under contention yields exactly its size', async () => {
    // 10.250.0.0/27 holds 30 addresses; 8 x 6 = 48 attempts.
    const results = await allocateConcurrently(8, 6, ['10.250.0.0/27', 'fd00:250::/120']);
    const all = results.flatMap((r) => r.addresses);
    const v4 = all.filter((a) => !a.includes(':'));
    expect(v4).toHaveLength(30);
    expect(new Set(all).size).toBe(60);
    expect(results.reduce((n, r) => n + r.exhausted, 0)).toBe(18);
    expect(addressFiles(dir)).toHaveLength(60);
    expectAllComplete(dir);
    expect(tempFiles(dir)).toEqual([]);
  });
});

describe('DiskStore after SIGKILL', () => {
  const ranges = ['10.244.1.0/28', 'fd00:10:244:1::/124'];
  const parsed = ranges.map((r) => PodRange.parse(r));

  it('survives being killed at random moments of an allocate/release/gc loop', async () => {
    for (let round = 0; round < 6; round++) {
      const child = startWorker({ mode: 'loop', dataDir, network: 'weir', ranges, prefix: `r${round}` });
      await child.ready;
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 150));
      child.kill('SIGKILL');
      const { signal, stderr } = await child.exit;
      expect(signal, stderr).toBe('SIGKILL');

      // The kernel dropped the dead process's lock.
      expect(lockIsFree(dir)).toBe(true);
      // Names only ever appear with complete content (temp + fsync + link).
      readAddressFiles(dir);
      const store = new DiskStore(dataDir, 'weir');
      store.withLock(() => store.repair());
      expect(tempFiles(dir)).toEqual([]);
      expectAllComplete(dir);
      // And the store keeps working.
      const rec = allocate(store, parsed, { containerID: `after-${round}`, ifname: 'eth0', network: 'weir' });
      expect(rec.addresses).toHaveLength(2);
      expectAllComplete(dir);
      gc(store, []);
      expect(addressFiles(dir)).toEqual([]);
    }
  });

  const victim = { containerID: 'victim', ifname: 'eth0', network: 'weir' };

  async function crashAt(op: 'allocate' | 'release', step: DiskStoreStep, nth: number): Promise<void> {
    const child = startWorker({ mode: 'crash', dataDir, network: 'weir', ranges, op, containerID: 'victim', step, nth });
    const { signal, lines } = await child.exit;
    expect(lines).not.toContain('{"survived":true}');
    expect(signal).toBe('SIGKILL');
    expect(lockIsFree(dir)).toBe(true);
    readAddressFiles(dir);
  }

  it('crash after the temp file is written: no reservation, a temp file that repair removes', async () => {
    await crashAt('allocate', 'reserve:temp-written', 1);
    expect(addressFiles(dir)).toEqual([]);
    expect(tempFiles(dir)).toHaveLength(1);
    const store = new DiskStore(dataDir, 'weir');
    expect(store.withLock(() => store.repair()).tempFilesRemoved).toHaveLength(1);
    expect(tempFiles(dir)).toEqual([]);
  });

  it('crash between the two links: a half reservation that release frees', async () => {
    await crashAt('allocate', 'reserve:linked', 1);
    expect(addressFiles(dir)).toEqual(['10.244.1.1']);
    const store = new DiskStore(dataDir, 'weir');
    expect(release(store, 'victim', 'eth0')?.addresses).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
    expect(addressFiles(dir)).toEqual([]);
    expect(tempFiles(dir)).toEqual([]);
  });

  it('crash between the two links: a retried ADD gets a whole reservation', async () => {
    await crashAt('allocate', 'reserve:linked', 1);
    const store = new DiskStore(dataDir, 'weir');
    const rec = allocate(store, parsed, victim);
    expect(rec.addresses).toHaveLength(2);
    expect(addressFiles(dir)).toHaveLength(2);
    expectAllComplete(dir);
  });

  it('crash after reserving, before the hint: the reservation stands and ADD is idempotent', async () => {
    await crashAt('allocate', 'reserve:done', 1);
    expectAllComplete(dir);
    const store = new DiskStore(dataDir, 'weir');
    const before = store.withLock(() => store.findByAttachment('victim', 'eth0'));
    expect(before?.addresses).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
    expect(allocate(store, parsed, victim)).toEqual(before);
  });

  it('crash halfway through a release: the retried DEL (or gc) frees the rest', async () => {
    const store = new DiskStore(dataDir, 'weir');
    allocate(store, parsed, victim);
    await crashAt('release', 'release:unlinked', 1);
    expect(addressFiles(dir)).toHaveLength(1);
    expect(gc(store, []).map((r) => r.containerID)).toEqual(['victim']);
    expect(addressFiles(dir)).toEqual([]);
  });

  it('crash while writing the hint: the hint is old or new, never torn', async () => {
    const store = new DiskStore(dataDir, 'weir');
    allocate(store, parsed, { ...victim, containerID: 'first' });
    await crashAt('allocate', 'last-reserved:temp-written', 1);
    expect(fs.readFileSync(path.join(dir, 'last_reserved_ip.4'), 'utf8')).toBe('10.244.1.1\n');
    expect(store.withLock(() => store.repair()).tempFilesRemoved).toHaveLength(1);
    expect(allocate(store, parsed, { ...victim, containerID: 'next' }).addresses).toEqual(['10.244.1.3', 'fd00:10:244:1::3']);
  });
});
