// Shared by the DiskStore tests: look at a store directory from the outside,
// and run worker.ts in real child processes.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSync } from 'esbuild';
import { expect } from 'vitest';
import { canonicalIp } from '../../../src/ipam/range.ts';
import { type AllocationRecord, toRecord } from '../../../src/ipam/store.ts';
import { flock, LOCK_EX, LOCK_NB } from '../../../src/sys/libc.ts';
import type { Job } from './worker.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
// The pinned Node 24, whatever `node` the test runner itself is.
const NODE = path.join(root, 'node_modules/.bin/node');
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));

export const makeTempDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'weir-ipam-'));

export const addressFiles = (dir: string): string[] =>
  fs
    .readdirSync(dir)
    .filter((n) => canonicalIp(n) === n)
    .sort();

export const tempFiles = (dir: string): string[] => fs.readdirSync(dir).filter((n) => n.startsWith('.tmp-'));

/** Every address file holds a complete, valid record that lists the file's own address. */
export function readAddressFiles(dir: string): Map<string, { text: string; record: AllocationRecord }> {
  const out = new Map<string, { text: string; record: AllocationRecord }>();
  for (const name of addressFiles(dir)) {
    const text = fs.readFileSync(path.join(dir, name), 'utf8');
    const record = toRecord(JSON.parse(text));
    expect(record, `${name} is not a valid record: ${text}`).toBeDefined();
    expect(record?.addresses).toContain(name);
    if (record) out.set(name, { text, record });
  }
  return out;
}

/** Every reservation is whole: each address it lists has a file with the same text. */
export function expectAllComplete(dir: string): void {
  const files = readAddressFiles(dir);
  for (const [name, { text, record }] of files) {
    for (const a of record.addresses) expect(files.get(a)?.text, `${name} lists ${a}, whose file differs`).toBe(text);
  }
}

export interface Child {
  ready: Promise<void>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: string[]; stderr: string }>;
  kill(signal: NodeJS.Signals): void;
}

/** Workers still running; a test that failed or timed out leaves them to killWorkers(). */
const live = new Set<ReturnType<typeof spawn>>();

/** SIGKILLs every worker still running (afterEach): one waiting for its go file would otherwise wait forever. */
export function killWorkers(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}

let bundled: string | undefined;

/**
 * worker.ts and the store's modules as one JavaScript file, in the job's data
 * folder (removed with it), bundled once a test file: Node transforming every
 * TypeScript module anew was most of each worker's start. koffi is still
 * required from worker.ts's own folder, as it would be unbundled.
 */
function workerScript(dataDir: string): string {
  bundled ??= buildSync({
    entryPoints: [WORKER],
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    define: { 'import.meta.url': JSON.stringify(pathToFileURL(WORKER).href) },
    write: false,
    logLevel: 'error',
  }).outputFiles[0]?.text;
  const file = path.join(dataDir, 'worker.mjs');
  if (!fs.existsSync(file)) fs.writeFileSync(file, bundled ?? '');
  return file;
}

export function startWorker(job: Job): Child {
  const child = spawn(NODE, [workerScript(job.dataDir), JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.on('exit', () => live.delete(child));
  let out = '';
  let err = '';
  let onReady: () => void = () => {};
  let onEarlyExit: (e: Error) => void = () => {};
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    onEarlyExit = reject;
  });
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
    if (out.split('\n').includes('ready')) onReady();
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: string[]; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => {
      onEarlyExit(new Error(`worker exited (${code ?? signal}) before ready: ${err}`));
      resolve({ code, signal, lines: out.split('\n').filter((l) => l !== ''), stderr: err });
    });
  });
  return { ready, exit, kill: (signal) => child.kill(signal) };
}

/** Whether some other open file description could take the store's lock (`<dir>/lock`) right now. */
export function lockIsFree(dir: string): boolean {
  const fd = fs.openSync(path.join(dir, 'lock'), 'r');
  try {
    return flock(fd, LOCK_EX | LOCK_NB);
  } finally {
    fs.closeSync(fd);
  }
}
