// Long-lived TCP connections between pods of a test node, for the tests of
// what a policy change does to connections already open (conntrack purge):
// an echo server that can also speak first, and a client session that sends
// lines and waits for them to come back. Each runs as a small Node process
// inside the pod's namespace, started by the caller's `spawnIn`.
import type { ChildProcess } from 'node:child_process';
import readline from 'node:readline';

/** Starts `node -e script -- ...argv` inside a pod's namespace. */
export type SpawnIn = (script: string, argv: string[]) => ChildProcess;

export interface EchoServer {
  /** Sends the line `text` on every open connection, unasked. */
  push(text: string): void;
  /** Kills the server; resolves once it exited, so that its port is free again. */
  stop(): Promise<void>;
}

export interface Session {
  localPort: number;
  /** Writes one line; true once its echo came back, false after `timeoutMs`. */
  send(text: string, timeoutMs?: number): Promise<boolean>;
  /** Waits up to `timeoutMs` for the server to send the line `text` from now on (see EchoServer.push). */
  next(text: string, timeoutMs?: number): Promise<boolean>;
  close(): void;
}

/**
 * A TCP echo server on `port`: every connection echoes what it receives, and
 * push(text) makes the server send the line `text` on every connection of
 * its own accord (a server that keeps talking, like a watch stream).
 */
export async function startEchoServer(spawnIn: SpawnIn, what: string, port: number): Promise<EchoServer> {
  const script = `
    const net = require('node:net');
    const conns = new Set();
    const srv = net.createServer((s) => {
      conns.add(s);
      s.on('error', () => {});
      s.on('close', () => conns.delete(s));
      s.pipe(s);
    });
    srv.listen({ port: Number(process.argv[1]), host: '0.0.0.0' }, () => console.log('listening'));
    let inb = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => { inb += d; let i; while ((i = inb.indexOf('\\n')) >= 0) { const line = inb.slice(0, i + 1); inb = inb.slice(i + 1); for (const s of conns) s.write(line); } });
    process.stdin.on('end', () => process.exit(0));`;
  const c = spawnIn(script, [String(port)]);
  await firstLine(c, (l) => l === 'listening', `echo server in ${what}`);
  const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
  return {
    push: (text) => void c.stdin?.write(`${text}\n`),
    stop: async () => {
      if (c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGKILL');
      await exited;
    },
  };
}

/** A long-lived TCP connection to `ip`:`port` (`what` names it in errors). */
export async function openSession(spawnIn: SpawnIn, what: string, ip: string, port: number, o: { connectTimeoutMs?: number } = {}): Promise<Session> {
  const script = `
    const net = require('node:net');
    const s = net.connect({ host: process.argv[1], port: Number(process.argv[2]) }, () => console.log('connected ' + s.localPort));
    s.setNoDelay(true);
    s.on('error', (e) => { console.log('error ' + e.code); });
    s.on('close', () => { console.log('closed'); process.exit(0); });
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { console.log('echo ' + buf.slice(0, i)); buf = buf.slice(i + 1); } });
    let inb = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d) => { inb += d; let i; while ((i = inb.indexOf('\\n')) >= 0) { s.write(inb.slice(0, i + 1)); inb = inb.slice(i + 1); } });
    process.stdin.on('end', () => process.exit(0));`;
  const c = spawnIn(script, [ip, String(port)]);
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  readline.createInterface({ input: c.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of waiters) w();
  });
  const waitLine = (pred: (l: string) => boolean, ms: number, from = 0): Promise<string | undefined> =>
    new Promise((resolve) => {
      const check = (): boolean => {
        const hit = lines.slice(from).find(pred);
        if (hit === undefined) return false;
        waiters.delete(check2);
        clearTimeout(t);
        resolve(hit);
        return true;
      };
      const check2 = (): void => void check();
      const t = setTimeout(() => {
        waiters.delete(check2);
        resolve(undefined);
      }, ms);
      if (!check()) waiters.add(check2);
    });
  const connectMs = o.connectTimeoutMs ?? 5000;
  const hello = await waitLine((l) => l.startsWith('connected ') || l.startsWith('error '), connectMs);
  if (!hello?.startsWith('connected ')) {
    c.kill('SIGKILL');
    throw new Error(`session ${what}: ${hello ?? `no connection in ${connectMs} ms`}`);
  }
  return {
    localPort: Number(hello.split(' ')[1]),
    send: async (text, timeoutMs = 1500) => {
      const start = lines.length;
      c.stdin?.write(`${text}\n`);
      return (await waitLine((l) => l === `echo ${text}`, timeoutMs, start)) !== undefined;
    },
    next: async (text, timeoutMs = 1500) => (await waitLine((l) => l === `echo ${text}`, timeoutMs, lines.length)) !== undefined,
    close: () => void c.kill('SIGKILL'),
  };
}

function firstLine(c: ChildProcess, pred: (l: string) => boolean, what: string, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    c.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = setTimeout(() => {
      c.kill('SIGKILL');
      reject(new Error(`${what}: not ready in ${ms} ms: ${stderr.trim()}`));
    }, ms);
    c.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${what}: exited (${code}): ${stderr.trim()}`));
    });
    readline.createInterface({ input: c.stdout! }).on('line', (l) => {
      if (!pred(l)) return;
      clearTimeout(t);
      resolve(l);
    });
  });
}
