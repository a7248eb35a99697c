// Reaching a control plane that listens inside a test namespace from the test
// process itself, so a test can run agent code in-process (with options the
// agent's flags do not offer) against the real API server. A forwarder in the
// namespace listens on a unix socket (a file, so reachable from any
// namespace) and connects each client to the API server; the test process
// listens on 127.0.0.1 of its own namespace and pipes each connection to that
// socket. TLS passes through untouched: the client still checks the API
// server's certificate, for its address inside the namespace.
//
// Network safety: nothing is configured; the only listener outside the test
// namespace is on loopback.
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { eventually } from './wait.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const NODE = path.join(REPO, 'node_modules/.bin/node');

const FORWARDER = `const net=require('net');const [sock,host,port]=process.argv.slice(1);
net.createServer(c=>{const u=net.connect(Number(port),host);c.pipe(u);u.pipe(c);c.on('error',()=>u.destroy());u.on('error',()=>c.destroy())})
.listen(sock,()=>console.log('listening'))`;

export interface ApiBridge {
  /** https://127.0.0.1:PORT, in the test process's namespace. */
  readonly url: string;
  /** A copy of `kubeconfig` (written beside it, `.bridged` appended) whose server is the bridge. */
  kubeconfig(kubeconfig: string): string;
  close(): Promise<void>;
}

/** Bridges the API server at `apiUrl` (https://ADDR:PORT inside namespace `netns`) to the test process; `dir` holds the socket. */
export async function bridgeApi(netns: string, apiUrl: string, dir: string): Promise<ApiBridge> {
  const api = new URL(apiUrl);
  const sock = path.join(dir, 'api.sock');
  fs.rmSync(sock, { force: true });
  const child: ChildProcess = spawn('ip', ['netns', 'exec', netns, NODE, '-e', FORWARDER, sock, api.hostname, api.port || '443'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const open = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const u = net.connect(sock);
    for (const s of [c, u]) {
      open.add(s);
      s.once('close', () => open.delete(s));
    }
    c.pipe(u);
    u.pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  });
  try {
    await eventually('the forwarder in the namespace', () => out.includes('listening') || child.exitCode !== null, 10_000);
    if (child.exitCode !== null) throw new Error(`the API forwarder exited with ${child.exitCode}`);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const url = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return {
    url,
    kubeconfig(file) {
      const text = fs.readFileSync(file, 'utf8');
      if (!text.includes(apiUrl)) throw new Error(`${file} does not name ${apiUrl}`);
      const copy = `${file}.bridged`;
      fs.writeFileSync(copy, text.replaceAll(apiUrl, url));
      return copy;
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of open) s.destroy();
      });
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
