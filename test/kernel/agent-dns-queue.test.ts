// The queue that holds DNS answers, in a throwaway namespace: the agent's
// queue tables (ip/ip6 weir_dns with xtables' NFQUEUE through nft_compat)
// and the queue reader (netlink/nfqueue-handle.ts), with a DNS-shaped UDP
// exchange over loopback (the answer leaves through the output hook):
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
import { LibNftables } from '../../src/nft/libnftables.ts';
import { NF_ACCEPT, NF_DROP } from '../../src/netlink/nfqueue.ts';
import { type QueueWatch, watchQueue } from '../../src/netlink/nfqueue-handle.ts';
import { Netns } from '../../src/sys/netns.ts';
import { type TestNetns, createNetns } from '../helpers/netns.ts';

const NODE = path.resolve(import.meta.dirname, '../../node_modules/.bin/node');
let ns: TestNetns;
let netns: Netns;
let kernel: DnsKernel;

// A server on 127.0.0.2:53 answering each datagram with its own bytes; a
// client on `from` that sends one and prints the round trip in ms, or
// `timeout` after `waitMs`.
const EXCHANGE = (from: string, waitMs: number): string => `
const dgram = require('dgram');
const srv = dgram.createSocket('udp4');
srv.on('message', (m, r) => srv.send(m, r.port, r.address));
srv.bind(53, '127.0.0.2', () => {
  const c = dgram.createSocket('udp4');
  c.bind(0, '${from}', () => {
    const t0 = performance.now();
    const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, ${waitMs});
    c.on('message', () => { clearTimeout(t); console.log((performance.now() - t0).toFixed(1)); process.exit(0); });
    c.send(Buffer.from('q'), 53, '127.0.0.2');
  });
});`;

/** One exchange, run asynchronously so this process's event loop (the queue handler) keeps running. */
function exchange(from: string, waitMs = 3000): Promise<number | 'timeout'> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns.name, NODE, '-e', EXCHANGE(from, waitMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  const q = watchQueue(1053, netns, (p) => handler(p.id), () => undefined, { deadlineMs });
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
  netns = Netns.open(ns.path);
  kernel = new DnsKernel(new LibNftables({ netns }));
  kernel.install();
  kernel.setSubjects(new Map([[4, new Set(['127.0.0.1'])]]));
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
    await withQueue(() => NF_DROP, async (q) => {
      expect(await exchange('127.0.0.1', 1000)).toBe('timeout');
      expect(q.packets).toBe(1);
    });
  });

  it('an answer to an address that is not a subject is never queued', async () => {
    await withQueue(() => NF_DROP, async (q) => {
      expect(await exchange('127.0.0.3')).toBeLessThan(400);
      expect(q.packets).toBe(0);
    });
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
});
