// The on-node Store: plain files under <dataDir>/<network>/, one per allocated
// address, named by the address and holding the whole record as JSON. Many
// CNI processes (ADD/DEL/GC for different pods) run at once, and any of them
// can be SIGKILLed or lose power at any instant, so:
//  - all access is serialised by flock(2) on <dir>/lock;
//  - every reservation is written to a temp file, fsynced, then hard-linked to
//    each address name. link(2) fails with EEXIST when the name exists, so it
//    claims an address exclusively, and a name, once visible, always has
//    complete content;
//  - anything a crash can leave (temp files, one of a dual-stack pair) is
//    recognisable and removed by repair() under the lock.

import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { InternalError, InvalidConfigError } from '../errors.ts';
import { flock, LOCK_EX } from '../sys/libc.ts';
import { errnoCode, io, ioError } from './io.ts';
import { canonicalIp, type Family, ipFamily } from './range.ts';
import { type AllocationRecord, type RepairReport, type Store, sameAttachment, toRecord } from './store.ts';

const TEMP_PREFIX = '.tmp-';
const LOCK_FILE = 'lock';
const lastReservedFile = (family: Family): string => `last_reserved_ip.${family}`;

/** Points where a crash matters; tests SIGKILL themselves there. */
export type DiskStoreStep = 'reserve:temp-written' | 'reserve:linked' | 'reserve:done' | 'release:unlinked' | 'last-reserved:temp-written';

export interface DiskStoreOptions {
  /** Test hook, called after each step with the path it touched. */
  onStep?: (step: DiskStoreStep, file: string) => void;
}

interface Entry {
  name: string;
  text: string;
  record: AllocationRecord;
}

export class DiskStore implements Store {
  readonly dir: string;
  readonly #onStep: DiskStoreOptions['onStep'];
  #depth = 0;
  /**
   * The directory as last read under the current lock hold. Nothing else
   * writes while we hold the lock, so one ADD reads every record once
   * instead of once per query; any write of ours invalidates it.
   */
  #scanned: ReturnType<DiskStore['scanDir']> | undefined;

  constructor(dataDir: string, network: string, options: DiskStoreOptions = {}) {
    // The caller validates network names; this guards the path join anyway so
    // a bad name can never escape dataDir.
    if (network === '' || network === '.' || network === '..' || /[/\0]/.test(network)) {
      throw new InvalidConfigError(`network name ${JSON.stringify(network)} cannot be used as a directory name`);
    }
    this.dir = path.join(dataDir, network);
    this.#onStep = options.onStep;
  }

  withLock<T>(fn: () => T): T {
    // flock locks belong to the open file description: a second open+flock in
    // this process would deadlock against the first, so nested calls reuse it.
    if (this.#depth > 0) {
      this.#depth++;
      try {
        return fn();
      } finally {
        this.#depth--;
      }
    }
    io('mkdir', this.dir, () => fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 }));
    const lockPath = path.join(this.dir, LOCK_FILE);
    const fd = io('open', lockPath, () => fs.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600));
    try {
      // Blocks the (short-lived, synchronous) plugin until the holder is done.
      // The kernel drops the lock when the holder's fd closes, including on
      // SIGKILL, so a crashed process never leaves it held.
      io('flock', lockPath, () => flock(fd, LOCK_EX));
      this.#depth = 1;
      this.#scanned = undefined;
      try {
        return fn();
      } finally {
        this.#depth = 0;
        this.#scanned = undefined;
      }
    } finally {
      // Closing the only fd on the description releases the lock.
      io('close', lockPath, () => fs.closeSync(fd));
    }
  }

  reserve(record: AllocationRecord): boolean {
    this.#held();
    this.#scanned = undefined;
    const names = record.addresses.map((a) => {
      const c = canonicalIp(a);
      if (c === undefined) throw new InternalError(`cannot reserve invalid address "${a}"`);
      return c;
    });
    if (new Set(names).size !== names.length) throw new InternalError(`record lists an address twice: ${names.join(', ')}`);
    const text = `${JSON.stringify({ ...record, addresses: names })}\n`;
    const temp = this.#writeTemp(text);
    this.#step('reserve:temp-written', temp);
    const linked: string[] = [];
    for (const name of names) {
      const final = path.join(this.dir, name);
      try {
        fs.linkSync(temp, final);
      } catch (e) {
        if (errnoCode(e) !== 'EEXIST') {
          this.#undo([...linked, temp]);
          throw ioError('link', final, e);
        }
        // Taken: give back what we claimed so the reservation is all or none.
        this.#undo([...linked, temp]);
        return false;
      }
      linked.push(final);
      this.#step('reserve:linked', final);
    }
    io('unlink', temp, () => fs.unlinkSync(temp));
    // The names must be durable before ADD reports success: after a power
    // cut the pod would otherwise keep an address the store calls free.
    this.#syncDir();
    this.#step('reserve:done', this.dir);
    return true;
  }

  findByAttachment(containerID: string, ifname: string): AllocationRecord | undefined {
    this.#held();
    return this.#scan().entries.find((e) => sameAttachment(e.record, containerID, ifname))?.record;
  }

  heldAddresses(containerID: string, ifname: string): string[] {
    this.#held();
    return this.#scan()
      .entries.filter((e) => sameAttachment(e.record, containerID, ifname))
      .map((e) => e.name);
  }

  releaseByAttachment(containerID: string, ifname: string): AllocationRecord | undefined {
    this.#held();
    // Scans every file rather than trusting the record's address list, so a
    // dual-stack reservation cut in half by a crash is freed too.
    const mine = this.#scan().entries.filter((e) => sameAttachment(e.record, containerID, ifname));
    if (mine.length > 0) this.#scanned = undefined;
    for (const e of mine) {
      const file = path.join(this.dir, e.name);
      io('unlink', file, () => fs.unlinkSync(file));
      this.#step('release:unlinked', file);
    }
    // No directory fsync: a release lost to a power cut only leaves the
    // address reserved for a pod that is gone (a leak GC frees), never two
    // pods with one address; the fsync would cost every DEL a disk flush.
    return mine[0]?.record;
  }

  list(): AllocationRecord[] {
    this.#held();
    // The files of one reservation are hard links with identical text.
    const byText = new Map<string, AllocationRecord>();
    for (const e of this.#scan().entries) if (!byText.has(e.text)) byText.set(e.text, e.record);
    return [...byText.values()];
  }

  lastReserved(family: Family): string | undefined {
    this.#held();
    const file = path.join(this.dir, lastReservedFile(family));
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw ioError('read', file, e);
    }
    // Only a hint for round-robin: something unreadable just restarts the walk.
    const ip = text.trim();
    return ipFamily(ip) === family ? canonicalIp(ip) : undefined;
  }

  setLastReserved(family: Family, ip: string): void {
    this.#held();
    const file = path.join(this.dir, lastReservedFile(family));
    // Only a hint: after a power cut an old or missing one merely restarts
    // the round-robin walk, so it is not fsynced (two fewer fsyncs per ADD).
    const temp = this.#writeTemp(`${ip}\n`, { durable: false });
    this.#step('last-reserved:temp-written', temp);
    // rename(2) replaces atomically: readers see the old or the new hint.
    try {
      fs.renameSync(temp, file);
    } catch (e) {
      this.#undo([temp]);
      throw ioError('rename', file, e);
    }
  }

  repair(): RepairReport {
    this.#held();
    const { entries, temps, unreadable } = this.#scan();
    const report: RepairReport = { tempFilesRemoved: [], incompleteRemoved: [], unreadable };
    // Under the lock no reservation is in flight, so every temp file is a
    // crash leftover.
    for (const name of temps) {
      const file = path.join(this.dir, name);
      io('unlink', file, () => fs.unlinkSync(file));
      report.tempFilesRemoved.push(name);
    }
    // A reservation is complete when every address it lists has a file with
    // the same text. Anything less is a crash in the middle of reserve (before
    // ADD could succeed) or of release (DEL will be retried); either way no
    // running pod relies on it, so it is freed.
    const textOf = new Map(entries.map((e) => [e.name, e.text]));
    const done = new Set<string>();
    for (const e of entries) {
      if (done.has(e.text)) continue;
      done.add(e.text);
      const complete = e.record.addresses.every((a) => textOf.get(canonicalIp(a) ?? a) === e.text);
      if (complete) continue;
      for (const part of entries.filter((x) => x.text === e.text)) {
        const file = path.join(this.dir, part.name);
        io('unlink', file, () => fs.unlinkSync(file));
      }
      report.incompleteRemoved.push(e.record);
    }
    if (report.tempFilesRemoved.length > 0 || report.incompleteRemoved.length > 0) {
      this.#scanned = undefined;
      this.#syncDir();
    }
    return report;
  }

  #held(): void {
    if (this.#depth === 0) throw new InternalError(`IPAM store ${this.dir} used without holding its lock`);
  }

  #step(step: DiskStoreStep, file: string): void {
    this.#onStep?.(step, file);
  }

  #scan(): { entries: Entry[]; temps: string[]; unreadable: string[] } {
    this.#scanned ??= this.scanDir();
    return this.#scanned;
  }

  private scanDir(): { entries: Entry[]; temps: string[]; unreadable: string[] } {
    const entries: Entry[] = [];
    const temps: string[] = [];
    const unreadable: string[] = [];
    for (const name of io('readdir', this.dir, () => fs.readdirSync(this.dir))) {
      if (name.startsWith(TEMP_PREFIX)) {
        temps.push(name);
        continue;
      }
      if (canonicalIp(name) !== name) continue; // lock, last_reserved_ip.*, strangers
      const file = path.join(this.dir, name);
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (e) {
        if (errnoCode(e) === 'ENOENT') continue;
        throw ioError('read', file, e);
      }
      const record = parseRecord(text);
      // A file that does not claim its own address was not written by us.
      if (record?.addresses.some((a) => canonicalIp(a) === name)) entries.push({ name, text, record });
      else unreadable.push(name);
    }
    return { entries, temps, unreadable };
  }

  #writeTemp(text: string, { durable = true }: { durable?: boolean } = {}): string {
    const temp = path.join(this.dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    const fd = io('create', temp, () => fs.openSync(temp, 'wx', 0o600));
    try {
      io('write', temp, () => fs.writeFileSync(fd, text));
      // Content must reach the disk before any name points at it, or a power
      // cut could leave a visible but empty reservation.
      if (durable) io('fsync', temp, () => fs.fsyncSync(fd));
    } catch (e) {
      try {
        fs.closeSync(fd);
      } catch {
        // Already failing; the write error is the one to report.
      }
      this.#undo([temp]);
      throw e;
    }
    io('close', temp, () => fs.closeSync(fd));
    return temp;
  }

  /** Best-effort removal while already failing or backing out. */
  #undo(files: string[]): void {
    for (const f of files) {
      try {
        fs.unlinkSync(f);
      } catch {
        // repair() under the next lock removes whatever is left.
      }
    }
    try {
      this.#syncDir();
    } catch {
      // Same: nothing here is needed for correctness.
    }
  }

  #syncDir(): void {
    // Directory entries (link, unlink, rename) are only durable once the
    // directory itself is fsynced.
    const fd = io('open', this.dir, () => fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY));
    try {
      io('fsync', this.dir, () => fs.fsyncSync(fd));
    } finally {
      fs.closeSync(fd);
    }
  }
}

function parseRecord(text: string): AllocationRecord | undefined {
  try {
    return toRecord(JSON.parse(text));
  } catch {
    return undefined;
  }
}
