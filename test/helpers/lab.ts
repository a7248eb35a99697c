// Drives `scripts/lab` from the e2e tests: one place for how the command is
// run (the lab directory, timeouts, output kept for the failure message).
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { expect, it } from 'vitest';
import { kubectlOk, podNetnsPath } from '../../lab/commands/common.ts';
import { type LabState, labDir, labPods, readState } from '../../lab/state.ts';
import { sleep } from './wait.ts';

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
    const child = execFile(
      LAB,
      args,
      { cwd: REPO, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, WEIR_LAB_DIR: labDir() } },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr: err && typeof err.code !== 'number' ? `${stderr}${err.message}` : stderr, ms: Date.now() - t0 });
      },
    );
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

/**
 * `scripts/lab up` for the default lab (three nodes, no host firewall): one
 * left up in that shape is reused, a lab of another shape is taken down
 * first. Throws with the command's output when up fails.
 */
export async function upDefaultLab(dir?: string): Promise<LabResult> {
  const s = readState(dir);
  if (s && (s.hostFirewall || s.nodes.length !== 3)) await labOk(['down'], { timeoutMs: DOWN_TIMEOUT_MS });
  const r = await lab(['up'], { timeoutMs: UP_TIMEOUT_MS });
  if (r.code !== 0) throw new Error(`scripts/lab up failed (exit ${r.code})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}

/** The pinned kubectl as admin (what `scripts/lab kubectl` runs, without its start-up cost), which must succeed. */
export function labKubectl(state: LabState | undefined, args: string[], input?: string, timeoutMs = 60_000): Promise<string> {
  if (!state) throw new Error('no lab');
  return kubectlOk(state, args, { timeoutMs, ...(input === undefined ? {} : { input }) });
}

interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
}

/** The self-checks every e2e file ends with: on each node the agent's cache equals a fresh list from the API, and the kernel's table equals what the agent applied. */
export const INVARIANT_CHECKS = ['agent cache = API', 'table inet weir'];

/**
 * Runs `weirctl doctor` on every node of the running lab and returns, per
 * node, the invariant checks that failed (empty when all hold). A node whose
 * doctor does not answer in JSON counts as failing all of them.
 */
export async function invariantFailures(nodes = readState()?.nodes.map((n) => n.name) ?? []): Promise<Record<string, string[]>> {
  if (nodes.length === 0) throw new Error('invariantFailures: no lab is up (no node to check)');
  const out: Record<string, string[]> = {};
  await Promise.all(
    nodes.map(async (node) => {
      const r = await lab(['node', node, '--', 'weirctl', 'doctor', '-o', 'json'], { timeoutMs: 180_000 });
      let checks: DoctorCheck[];
      try {
        checks = (JSON.parse(r.stdout) as { checks: DoctorCheck[] }).checks;
      } catch {
        out[node] = INVARIANT_CHECKS.map((c) => `${c}: weirctl doctor exit ${r.code}, not JSON: ${r.stderr.trim() || r.stdout.trim()}`);
        return;
      }
      out[node] = INVARIANT_CHECKS.flatMap((name) => {
        const c = checks.find((x) => x.name === name);
        if (!c) return [`${name}: not reported by weirctl doctor`];
        return c.ok ? [] : [`${name}: ${c.detail}`];
      });
    }),
  );
  return out;
}

/**
 * Registers the test each e2e file runs last while its lab is up: every
 * node's agent still agrees with the API and with its kernel after what the
 * file did (issue: nothing drifts).
 */
export function itKeepsInvariants(): void {
  it("afterwards, on every node: the agent's cache equals the API and the kernel's table what the agent applied", async () => {
    const failures = await invariantFailures();
    expect(Object.keys(failures).length).toBeGreaterThan(0);
    expect(failures).toEqual(Object.fromEntries(Object.keys(failures).map((n) => [n, []])));
  }, 400_000);
}

export interface ScriptRun {
  code: number;
  out: string;
  ms: number;
}

/** A repository script, its output echoed as it comes (these take minutes) and kept. */
export function script(rel: string, args: string[], timeoutMs: number): Promise<ScriptRun> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(path.join(REPO, rel), args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (d: Buffer): void => {
      out += d.toString();
      process.stdout.write(d);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, out, ms: Date.now() - t0 });
    });
  });
}

/** A running lab pod as the probes need it: its network namespace and first address. */
export interface LabPodRef {
  id: string;
  netnsPath: string;
  ip: string;
  node: string;
}

/**
 * The pod `ns/name` once it runs with an address and its network namespace
 * is found on its node; polls for up to `timeoutMs` (0: looks once).
 */
export async function runningLabPod(state: LabState | undefined, ns: string, name: string, timeoutMs = 60_000): Promise<LabPodRef> {
  if (!state) throw new Error('no lab');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = (await labPods()).find((x) => x.namespace === ns && x.name === name && x.phase === 'Running' && x.ips.length > 0);
    const netnsPath = p ? podNetnsPath(state, p) : undefined;
    if (p && netnsPath) return { id: `${ns}/${name}`, netnsPath, ip: p.ips[0] as string, node: p.node };
    if (Date.now() >= deadline) throw new Error(`pod ${ns}/${name} is not running in the lab`);
    await sleep(250);
  }
}
