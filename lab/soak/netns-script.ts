// Probe loops: small Node scripts run with this machine's Node inside a
// pod's network namespace (nsenter --net), reporting one JSON line per
// verdict. Nothing runs in the machine's root namespace: each script's
// sockets live in the pod's.
//
// Shared by the soak (PROBE_STREAM) and test/e2e/lab-resilience.test.ts
// (PROBE_LOOP, NetnsScript).
import { type ChildProcess, spawn } from 'node:child_process';
import readline from 'node:readline';
import { defaultNode } from '../probe/process.ts';

/**
 * A probe loop in a pod's netns: every `intervalMs`, a fresh TCP connect to
 * each target (each bounded by `timeoutMs`), for at most `durationMs`; one
 * JSON line per verdict: {"i":target,"start":epochMs,"connected":bool,"ms":n}.
 */
export const PROBE_LOOP = String.raw`
const net = require('node:net');
const cfg = JSON.parse(process.argv[1]);
const end = Date.now() + cfg.durationMs;
let stop = false;
process.on('SIGTERM', () => { stop = true; });
process.stdin.on('end', () => { stop = true; }).resume();
function probe(i, t) {
  const start = Date.now();
  const s = net.connect({ host: t.ip, port: t.port });
  let done = false;
  const fin = (connected, error) => {
    if (done) return;
    done = true;
    clearTimeout(tm);
    s.destroy();
    process.stdout.write(JSON.stringify({ i, start, connected, ms: Date.now() - start, error }) + '\n');
  };
  const tm = setTimeout(() => fin(false, 'timeout'), t.timeoutMs);
  s.on('connect', () => fin(true));
  s.on('error', (e) => fin(false, e.code));
}
(function tick() {
  if (stop || Date.now() > end) { setTimeout(() => process.exit(0), 2500); return; }
  cfg.targets.forEach((t, i) => probe(i, t));
  setTimeout(tick, cfg.intervalMs);
})();
`;

/**
 * The soak's prober: targets come as JSON lines on stdin ({"targets":[{ip,port}]},
 * replacing the list); every `intervalMs` it connects once to each target,
 * the connects spread over the interval, each bounded by `timeoutMs`; one
 * JSON line per verdict: {"ip","port","start","connected","ms","error","who"}.
 * A connect that succeeds asks the server who it is (one HTTP GET; the
 * soak's servers answer with their namespace/name), so that a connection
 * that reached another pod than the one the API gave the address to is
 * told apart from a policy verdict; `ms` is the connect's time alone.
 * It ends when stdin closes or on SIGTERM, after its last verdicts.
 */
export const PROBE_STREAM = String.raw`
const net = require('node:net');
const readline = require('node:readline');
const cfg = JSON.parse(process.argv[1]);
const WHO_MS = 300;
let targets = [];
let stop = false;
readline.createInterface({ input: process.stdin })
  .on('line', (l) => { try { const m = JSON.parse(l); if (Array.isArray(m.targets)) targets = m.targets; } catch {} })
  .on('close', () => { stop = true; });
process.on('SIGTERM', () => { stop = true; });
function probe(t) {
  const start = Date.now();
  const s = net.connect({ host: t.ip, port: t.port });
  let done = false;
  let connectedMs;
  let body = '';
  const fin = (error) => {
    if (done) return;
    done = true;
    clearTimeout(tm);
    s.destroy();
    const connected = connectedMs !== undefined;
    const at = body.indexOf('\r\n\r\n');
    const who = at >= 0 ? body.slice(at + 4).trim().slice(0, 200) : undefined;
    process.stdout.write(JSON.stringify({ ip: t.ip, port: t.port, start, connected, ms: connected ? connectedMs : Date.now() - start, error: connected ? undefined : error, who }) + '\n');
  };
  let tm = setTimeout(() => fin('timeout'), cfg.timeoutMs);
  s.on('connect', () => {
    connectedMs = Date.now() - start;
    clearTimeout(tm);
    tm = setTimeout(() => fin(), WHO_MS);
    s.setEncoding('utf8');
    s.on('data', (d) => { if (body.length < 4096) body += d; });
    s.on('end', () => fin());
    s.write('GET / HTTP/1.0\r\n\r\n');
  });
  s.on('error', (e) => fin(e.code));
}
(function tick() {
  if (stop) { setTimeout(() => process.exit(0), cfg.timeoutMs + WHO_MS + 200); return; }
  const round = targets;
  const gap = cfg.intervalMs / Math.max(1, round.length);
  round.forEach((t, i) => setTimeout(() => { if (!stop) probe(t); }, i * gap));
  setTimeout(tick, cfg.intervalMs);
})();
`;

/** A node script running in a netns (a pod's, given as its /proc/PID/ns/net path), its JSON lines collected or handed on. */
export class NetnsScript<T> {
  readonly lines: T[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr = '';
  /** `onLine`: each parsed line goes there instead of into `lines` (a long run would hold them all). */
  constructor(from: { netnsPath: string }, script: string, cfg: unknown, onLine?: (line: T) => void) {
    this.child = spawn('nsenter', [`--net=${from.netnsPath}`, '--', defaultNode(), '-e', script, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin?.on('error', () => {});
    this.child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (this.stderr.length < 64 * 1024) this.stderr += d;
    });
    readline.createInterface({ input: this.child.stdout! }).on('line', (l) => {
      let parsed: T;
      try {
        parsed = JSON.parse(l) as T;
      } catch {
        return; // not ours
      }
      if (onLine) onLine(parsed);
      else this.lines.push(parsed);
    });
    this.exited = new Promise((r) => this.child.once('close', (code) => r(code)));
  }

  /** One JSON line to the script's stdin. */
  send(msg: unknown): void {
    this.child.stdin?.write(`${JSON.stringify(msg)}\n`);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Asks it to stop (SIGTERM), waits for it (SIGKILL after 10 s). */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}
