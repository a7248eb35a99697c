import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CniCode, InternalError, InvalidConfigError, IoError } from '../../../src/errors.ts';
import { allocate, gc, release } from '../../../src/ipam/allocator.ts';
import { DiskStore } from '../../../src/ipam/disk-store.ts';
import { PodRange } from '../../../src/ipam/range.ts';
import { addressFiles, expectAllComplete, lockIsFree, makeTempDir, readAddressFiles, tempFiles } from './helpers.ts';

const ranges = [PodRange.parse('10.244.1.0/24'), PodRange.parse('fd00:10:244:1::/64')];
const pod = (containerID: string) => ({ containerID, ifname: 'eth0', network: 'weir', podNamespace: 'default', podName: containerID });

let dataDir: string;
let dir: string;
let store: DiskStore;

beforeEach(() => {
  dataDir = makeTempDir();
  dir = path.join(dataDir, 'weir');
  store = new DiskStore(dataDir, 'weir');
});

afterEach(() => {
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('DiskStore layout', () => {
  it('stores one file per address holding the whole record, hard-linked for dual-stack', () => {
    const rec = allocate(store, ranges, pod('c1'));
    expect(rec.addresses).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
    expect(addressFiles(dir)).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
    const files = readAddressFiles(dir);
    expect(files.get('10.244.1.1')?.record).toEqual(rec);
    expect(files.get('fd00:10:244:1::1')?.text).toBe(files.get('10.244.1.1')?.text);
    const st = fs.statSync(path.join(dir, '10.244.1.1'));
    expect(st.ino).toBe(fs.statSync(path.join(dir, 'fd00:10:244:1::1')).ino);
    expect(st.nlink).toBe(2);
    expect(st.mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(dir, 'last_reserved_ip.4'), 'utf8').trim()).toBe('10.244.1.1');
    expect(fs.readFileSync(path.join(dir, 'last_reserved_ip.6'), 'utf8').trim()).toBe('fd00:10:244:1::1');
    expect(tempFiles(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'lock'))).toBe(true);
  });

  it('is idempotent and round-robin across store instances (state is on disk)', () => {
    allocate(store, ranges, pod('a'));
    const again = new DiskStore(dataDir, 'weir');
    expect(allocate(again, ranges, pod('a')).addresses).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
    release(again, 'a', 'eth0');
    expect(allocate(new DiskStore(dataDir, 'weir'), ranges, pod('b')).addresses).toEqual(['10.244.1.2', 'fd00:10:244:1::2']);
  });

  it('release removes both files of a dual-stack record', () => {
    allocate(store, ranges, pod('a'));
    allocate(store, ranges, pod('b'));
    expect(release(store, 'a', 'eth0')?.containerID).toBe('a');
    expect(addressFiles(dir)).toEqual(['10.244.1.2', 'fd00:10:244:1::2']);
    expect(release(store, 'a', 'eth0')).toBeUndefined();
    // The store itself removes both names, without help from repair().
    expect(store.withLock(() => store.releaseByAttachment('b', 'eth0'))?.containerID).toBe('b');
    expect(addressFiles(dir)).toEqual([]);
  });

  it('reserve is exclusive and all-or-none, leaving no temp file behind', () => {
    allocate(store, ranges, pod('a'));
    store.withLock(() => {
      const taken = store.reserve({ containerID: 'b', ifname: 'eth0', addresses: ['10.244.1.9', 'fd00:10:244:1::1'], created: '' });
      expect(taken).toBe(false);
      expect(store.findByAttachment('b', 'eth0')).toBeUndefined();
    });
    expect(addressFiles(dir)).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
    expect(tempFiles(dir)).toEqual([]);
  });

  it('list gives one entry per reservation', () => {
    allocate(store, ranges, pod('a'));
    allocate(store, ranges, pod('b'));
    expect(
      store
        .withLock(() => store.list())
        .map((r) => r.containerID)
        .sort(),
    ).toEqual(['a', 'b']);
  });
});

describe('DiskStore crash leftovers', () => {
  it('repair removes stray temp files', () => {
    allocate(store, ranges, pod('a'));
    fs.writeFileSync(path.join(dir, '.tmp-999-abc'), '{"containerID":"x"');
    fs.writeFileSync(path.join(dir, '.tmp-998-def'), '');
    const report = store.withLock(() => store.repair());
    expect(report.tempFilesRemoved.sort()).toEqual(['.tmp-998-def', '.tmp-999-abc']);
    expect(tempFiles(dir)).toEqual([]);
    expect(addressFiles(dir)).toHaveLength(2);
  });

  const halfWritten = (): void => {
    allocate(store, ranges, pod('a'));
    allocate(store, ranges, pod('b'));
    // What a crash between the two link() calls leaves.
    fs.unlinkSync(path.join(dir, 'fd00:10:244:1::2'));
  };

  it('release finds and frees a half-written dual-stack reservation', () => {
    halfWritten();
    expect(release(store, 'b', 'eth0')?.addresses).toEqual(['10.244.1.2', 'fd00:10:244:1::2']);
    expect(addressFiles(dir)).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
  });

  it('gc frees a half-written reservation of a gone attachment', () => {
    halfWritten();
    expect(gc(store, [{ containerID: 'a', ifname: 'eth0' }]).map((r) => r.containerID)).toEqual(['b']);
    expect(addressFiles(dir)).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
  });

  it('repair frees a half-written reservation, so a retried ADD gets a whole one', () => {
    halfWritten();
    const report = store.withLock(() => store.repair());
    expect(report.incompleteRemoved.map((r) => r.containerID)).toEqual(['b']);
    expect(addressFiles(dir)).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
    allocate(store, ranges, pod('b'));
    expectAllComplete(dir);
    expect(addressFiles(dir)).toHaveLength(4);
  });

  it('treats a half-written reservation whose twin name belongs to another pod as incomplete', () => {
    allocate(store, ranges, pod('a'));
    // "b" claimed 10.244.1.5, then lost the race for a's IPv6 address and crashed before undoing.
    const text = JSON.stringify({ containerID: 'b', ifname: 'eth0', addresses: ['10.244.1.5', 'fd00:10:244:1::1'], created: '' });
    fs.writeFileSync(path.join(dir, '10.244.1.5'), text);
    const report = store.withLock(() => store.repair());
    expect(report.incompleteRemoved.map((r) => r.containerID)).toEqual(['b']);
    expect(addressFiles(dir)).toEqual(['10.244.1.1', 'fd00:10:244:1::1']);
  });

  it('leaves unreadable address files alone and never hands out their address', () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, '10.244.1.1'), 'garbage');
    fs.writeFileSync(path.join(dir, '10.244.1.2'), JSON.stringify({ containerID: 'z', ifname: 'eth0', addresses: ['10.9.9.9'], created: '' }));
    // The failed attempt also skips the IPv6 candidate it had paired with .1
    // and .2: conservative, and only ever happens around foreign files.
    expect(allocate(store, ranges, pod('a')).addresses).toEqual(['10.244.1.3', 'fd00:10:244:1::3']);
    const report = store.withLock(() => store.repair());
    expect(report.unreadable.sort()).toEqual(['10.244.1.1', '10.244.1.2']);
    expect(fs.existsSync(path.join(dir, '10.244.1.1'))).toBe(true);
  });

  it('ignores an unreadable round-robin hint', () => {
    allocate(store, ranges, pod('a'));
    fs.writeFileSync(path.join(dir, 'last_reserved_ip.4'), 'fd00::1\n');
    fs.writeFileSync(path.join(dir, 'last_reserved_ip.6'), 'nonsense');
    store.withLock(() => {
      expect(store.lastReserved(4)).toBeUndefined();
      expect(store.lastReserved(6)).toBeUndefined();
    });
    expect(allocate(store, ranges, pod('b')).addresses).toEqual(['10.244.1.2', 'fd00:10:244:1::2']);
  });
});

describe('DiskStore lock and errors', () => {
  it('holds a real flock only inside withLock, and nests without deadlock', () => {
    store.withLock(() => {
      expect(lockIsFree(dir)).toBe(false);
      store.withLock(() => expect(lockIsFree(dir)).toBe(false));
      expect(lockIsFree(dir)).toBe(false);
    });
    expect(lockIsFree(dir)).toBe(true);
    expect(() =>
      store.withLock(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(lockIsFree(dir)).toBe(true);
  });

  it('refuses use without the lock', () => {
    expect(() => store.list()).toThrow(InternalError);
    expect(() => store.repair()).toThrow(InternalError);
  });

  it.each(['', '.', '..', 'a/b', '../etc', 'a\0b'])('refuses network name %j', (name) => {
    expect(() => new DiskStore(dataDir, name)).toThrow(InvalidConfigError);
  });

  it('turns fs failures into IoError naming the path and errno code', () => {
    const file = path.join(dataDir, 'not-a-dir');
    fs.writeFileSync(file, '');
    let err: unknown;
    try {
      allocate(new DiskStore(file, 'weir'), ranges, pod('a'));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IoError);
    expect((err as IoError).cniCode).toBe(CniCode.IoFailure);
    expect((err as IoError).message).toContain(path.join(file, 'weir'));
    expect((err as IoError).message).toContain('ENOTDIR');
  });

  it('reports an unreadable hint as IoError', () => {
    fs.mkdirSync(path.join(dir, 'last_reserved_ip.4'), { recursive: true });
    expect(() => allocate(store, ranges, pod('a'))).toThrow(/read .*last_reserved_ip\.4: EISDIR/);
    expect(lockIsFree(dir)).toBe(true);
  });

  it('reports a failed hint write as IoError and leaves no temp file', () => {
    const hint = path.join(dir, 'last_reserved_ip.4');
    const sabotaged = new DiskStore(dataDir, 'weir', {
      onStep: (step) => {
        // Between temp write and rename: renaming a file onto a directory fails.
        if (step === 'last-reserved:temp-written') fs.mkdirSync(hint, { recursive: true });
      },
    });
    expect(() => allocate(sabotaged, ranges, pod('a'))).toThrow(/rename .*last_reserved_ip\.4: EISDIR/);
    expect(tempFiles(dir)).toEqual([]);
    expect(lockIsFree(dir)).toBe(true);
  });
});
