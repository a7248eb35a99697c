// Drives `scripts/lab` from the e2e tests: one place for how the command is
// run (the lab directory, timeouts, output kept for the failure message).
import { execFile } from 'node:child_process';
import path from 'node:path';
import { labDir } from '../../lab/state.ts';

export const REPO = path.resolve(import.meta.dirname, '../..');
export const LAB = path.join(REPO, 'scripts/lab');
/** `up` may build the Kubernetes binaries on a fresh machine. */
export const UP_TIMEOUT_MS = 20 * 60_000;
export const DOWN_TIMEOUT_MS = 4 * 60_000;

export interface LabResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface LabOptions {
  input?: string;
  timeoutMs?: number;
}

/** `scripts/lab ARGS`; never rejects: the exit code is in the result. */
export function lab(args: string[], opts: LabOptions = {}): Promise<LabResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = execFile(LAB, args, { cwd: REPO, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, WEIR_LAB_DIR: labDir() } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr: err && typeof err.code !== 'number' ? `${stderr}${err.message}` : stderr, ms: Date.now() - t0 });
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
  });
}

/** Like lab(), but fails the test with the command's output on a non-zero exit. */
export async function labOk(args: string[], opts: LabOptions = {}): Promise<string> {
  const r = await lab(args, opts);
  if (r.code !== 0) throw new Error(`scripts/lab ${args.join(' ')}: exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r.stdout;
}
