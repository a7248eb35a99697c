// The queue that holds DNS answers, in a throwaway namespace: the agent's
// queue tables (ip/ip6 weir_dns with xtables' NFQUEUE through nft_compat)
// and the queue reader (netlink/nfqueue-handle.ts), with a DNS-shaped UDP
// exchange over loopback, IPv4 and IPv6, UDP and TCP (the answer leaves
// through the output hook):
//   - an answer to a subject waits for the verdict: accepted, it arrives;
//     dropped, it never does (so the hold is real);
//   - an answer to an address that is not a subject is never queued;
//   - a handler busier than the deadline: the reader thread accepts the
//     answer at the deadline (DNS does not wait on a busy agent);
//   - nobody listening: `bypass` lets answers through.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DnsKernel } from '../../src/agent/dns-kernel.ts';
import { NF_ACCEPT, NF_DROP } from '../../src/netlink/nfqueue.ts';
import { type QueueWatch, watchQueue } from '../../src/netlink/nfqueue-handle.ts';
import { LibNftables } from '../../src/nft/libnftables.ts';
import { Netns } from '../../src/sys/netns.ts';
import { createNetns, type TestNetns } from '../helpers/netns.ts';

const NODE = path.resolve(import.meta.dirname, '../../node_modules/.bin/node');
let ns: TestNetns;
let netns: Netns;
let kernel: DnsKernel;

// A server on `to`:53 answering each datagram (or TCP data) with its own
// bytes; a client on `from` that sends one and prints the round trip in ms,
// or `timeout` after `waitMs`.
const EXCHANGE = (from: string, waitMs: number, to = '127.0.0.2', proto: 'udp' | 'tcp' = 'udp'): string => `
const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, ${waitMs});
const done = (t0) => { clearTimeout(t); console.log((performance.now() - t0).toFixed(1)); process.exit(0); };
if ('${proto}' === 'udp') {
  const dgram = require('dgram');
  const type = '${to}'.includes(':') ? 'udp6' : 'udp4';
  const srv = dgram.createSocket(type);
  srv.on('message', (m, r) => srv.send(m, r.port, r.address));
  srv.bind(53, '${to}', () => {
    const c = dgram.createSocket(type);
    c.bind(0, '${from}', () => {
      const t0 = performance.now();
      c.on('message', () => done(t0));
      c.send(Buffer.from('q'), 53, '${to}');
    });
  });
} else {
  const net = require('net');
  net.createServer((s) => s.on('data', (d) => s.write(d))).listen(53, '${to}', () => {
    const t0 = performance.now();
    const c = net.connect({ host: '${to}', port: 53, localAddress: '${from}' }, () => c.write('q'));
    c.on('data', () => done(t0));
    c.on('error', () => {});
  });
}`;

/** One exchange, run asynchronously so this process's event loop (the queue handler) keeps running. */
function exchange(from: string, waitMs = 3000, to?: string, proto?: 'udp' | 'tcp'): Promise<number | 'timeout'> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns.name, NODE, '-e', EXCHANGE(from, waitMs, to, proto)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`exchange failed (${code}): ${err}`));
      const line = out.trim();
      resolve(line === 'timeout' ? 'timeout' : Number(line));
    });
  });
}

async function withQueue<T>(handler: (id: number) => number, body: (q: QueueWatch) => Promise<T>, deadlineMs = 500): Promise<T> {
  const q = watchQueue(
    1053,
    netns,
    (p) => handler(p.id),
    () => undefined,
    { deadlineMs },
  );
  try {
    return await body(q);
  } finally {
    await q.stop();
  }
}

beforeAll(() => {
  ns = createNetns('dnsqueue');
  ns.sh(['ip', 'link', 'set', 'lo', 'up']);
  ns.sh(['ip', 'addr', 'add', '127.0.0.2/8', 'dev', 'lo']);
  ns.sh(['ip', '-6', 'addr', 'add', 'fd53::2/128', 'dev', 'lo', 'nodad']);
  netns = Netns.open(ns.path);
  kernel = new DnsKernel(new LibNftables({ netns }));
  kernel.install();
  kernel.setSubjects(
    new Map([
      [4, new Set(['127.0.0.1'])],
      [6, new Set(['::1'])],
    ]),
  );
});

afterAll(() => {
  kernel?.close();
  netns?.close();
  ns?.destroy();
});

describe('the DNS answer queue', () => {
  it('an answer to a subject waits for its verdict: accepted it arrives, dropped it never does', async () => {
    const seen: number[] = [];
    const accept = (id: number): number => {
      seen.push(id);
      return NF_ACCEPT;
    };
    await withQueue(accept, async () => {
      expect(await exchange('127.0.0.1')).toBeLessThan(400);
    });
    expect(seen).toHaveLength(1);
    await withQueue(
      () => NF_DROP,
      async (q) => {
        expect(await exchange('127.0.0.1', 1000)).toBe('timeout');
        expect(q.packets).toBe(1);
      },
    );
  });

  it('IPv6 answers are held too', async () => {
    await withQueue(
      () => NF_DROP,
      async () => {
        expect(await exchange('::1', 1000, 'fd53::2')).toBe('timeout');
      },
    );
    await withQueue(
      () => NF_ACCEPT,
      async (q) => {
        expect(await exchange('::1', 3000, 'fd53::2')).toBeLessThan(400);
        expect(q.packets).toBe(1);
      },
    );
  });

  it('an answer to an address that is not a subject is never queued', async () => {
    await withQueue(
      () => NF_DROP,
      async (q) => {
        expect(await exchange('127.0.0.3')).toBeLessThan(400);
        expect(q.packets).toBe(0);
      },
    );
  });

  it('a handler busier than the deadline: the reader thread accepts the answer at the deadline', async () => {
    await withQueue(
      () => {
        const until = performance.now() + 1500;
        while (performance.now() < until) {
          // the agent's event loop, busy with a long sync
        }
        return NF_DROP;
      },
      async (q) => {
        const rtt = await exchange('127.0.0.1');
        expect(rtt).not.toBe('timeout');
        expect(rtt).toBeGreaterThanOrEqual(450);
        expect(rtt).toBeLessThan(1400);
        expect(q.late).toBe(1);
      },
      500,
    );
  });

  it('nobody listening: bypass lets answers through', async () => {
    expect(await exchange('127.0.0.1')).toBeLessThan(400);
  });

  // Last: the TCP connection's closing segments from port 53 are queued too, after the exchange.
  it('DNS over TCP: every segment from port 53 to a subject is held, and the exchange completes', async () => {
    await withQueue(
      () => NF_ACCEPT,
      async (q) => {
        expect(await exchange('127.0.0.1', 3000, '127.0.0.2', 'tcp')).toBeLessThan(400);
        // The SYN-ACK and the answer at least.
        expect(q.packets).toBeGreaterThanOrEqual(2);
      },
    );
  });
});
