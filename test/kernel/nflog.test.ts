// NflogReader and watchNflog against the real kernel (nfnetlink_log, kernel
// 6.18). Needs root.
//
// Every test builds two fresh namespaces from test/helpers/netns.ts joined by
// a veth (10.96.250.1/24 in `a`, the client; 10.96.250.2/24 in `b`, the
// server), destroyed in afterEach even when the test fails, together with
// every process, reader and watch the test started. Nothing is configured in
// the root namespace.
//
// `b` has an inet table whose input chain logs and drops TCP to port 81 the
// way weir logs denied packets (`log prefix "weir deny in prof_x: " group 7
// drop`), and logs and drops UDP to port 82 in the same group (the flood
// test). `a` logs (and accepts) its own TCP to port 83 in its output chain,
// group 8.
//
// Facts these tests pin down:
// - A second socket binding a group already bound in the same namespace gets
//   EPERM, not EBUSY: the kernel refuses any config message about a group
//   owned by another portid before it looks at the command. EBUSY is what the
//   owning socket gets for binding its own group twice.
// - Groups are per namespace: group 7 can be bound in `a` and `b` at once.
// - Closing the socket releases the group immediately.
// - Timestamps come with input-hook packets, never with output-hook ones.
// - On a full receive buffer the kernel drops batches; the next receive fails
//   once with ENOBUFS (one per congestion episode, not per lost batch) and
//   the socket keeps working. SO_MEMINFO's drop counter has the real count.
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { NLM_F_ACK, NLM_F_REQUEST, NLMSG_ERROR } from '../../src/netlink/constants.ts';
import { parseError, parseMessages } from '../../src/netlink/message.ts';
import { encodeNflogBind, hookName, type NflogPacket, nflogConfigMessage } from '../../src/netlink/nflog.ts';
import { NflogReader, type NflogWatch, watchNflog } from '../../src/netlink/nflog-handle.ts';
import * as libc from '../../src/sys/libc.ts';
import { Netns } from '../../src/sys/netns.ts';
import { catchNetlink } from '../helpers/netlink.ts';
import { linkedPair, type TestNetns, withNetnsCleanup } from '../helpers/netns.ts';
import { headersOf, readUntil } from '../helpers/nflog.ts';
import { eventually as waitFor } from '../helpers/wait.ts';

const scope = withNetnsCleanup('nflog');

// Watches stop asynchronously; this afterEach was registered after the
// scope's, so it runs first: workers end before the namespaces go.
const watches: NflogWatch[] = [];
afterEach(async () => {
  await Promise.all(watches.splice(0).map((w) => w.stop()));
});

const A4 = '10.96.250.1';
const B4 = '10.96.250.2';
const TABLE = 'weir_nflog_test';
const PREFIX = 'weir deny in prof_x: ';

interface Pair {
  a: TestNetns;
  b: TestNetns;
  nsA: Netns;
  nsB: Netns;
  /** ifindex of veth1 in `b` and veth0 in `a`. */
  ifB: number;
  ifA: number;
}

function pair(): Pair {
  const { a, b } = linkedPair(scope, { v4: A4 }, { v4: B4 });
  b.sh([
    'nft',
    `add table inet ${TABLE}; ` +
      `add chain inet ${TABLE} in { type filter hook input priority 0; policy accept; }; ` +
      `add rule inet ${TABLE} in tcp dport 81 log prefix "${PREFIX}" group 7 drop; ` +
      `add rule inet ${TABLE} in udp dport 82 log prefix "flood: " group 7 drop`,
  ]);
  a.sh([
    'nft',
    `add table inet ${TABLE}; ` +
      `add chain inet ${TABLE} out { type filter hook output priority 0; policy accept; }; ` +
      `add rule inet ${TABLE} out tcp dport 83 log prefix "out: " group 8`,
  ]);
  const nsA = Netns.open(a.path);
  scope.defer(() => nsA.close());
  const nsB = Netns.open(b.path);
  scope.defer(() => nsB.close());
  const ifindex = (ns: TestNetns, dev: string) => ns.ipJson<{ ifindex: number }[]>(['link', 'show', dev])[0]!.ifindex;
  return { a, b, nsA, nsB, ifA: ifindex(a, 'veth0'), ifB: ifindex(b, 'veth1') };
}

/** A reader closed in afterEach (close is idempotent). */
function open(group: number, ns: Netns, opts?: Parameters<typeof NflogReader.open>[2]): NflogReader {
  const r = NflogReader.open(group, ns, opts);
  scope.defer(() => r.close());
  return r;
}

const spawnIn = (ns: TestNetns, cmd: string[]): ChildProcess => scope.spawn(ns, cmd);

/** A TCP connect from `a` with a fixed source port; gives up (the SYN is dropped) after 1.5 s. */
function connectFromA(p: Pair, dst: string, port: number, localPort: number): ChildProcess {
  return spawnIn(p.a, [
    process.execPath,
    '-e',
    `const c = require('net').connect({ host: '${dst}', port: ${port}, localPort: ${localPort} });` +
      `c.on('error', () => {}).on('connect', () => c.destroy()); setTimeout(() => process.exit(0), 1500)`,
  ]);
}

/** `count` UDP datagrams from `a` to B4:`port`, sent one after the other; resolves when all are out. */
async function udpFlood(p: Pair, port: number, count: number): Promise<void> {
  const child = spawnIn(p.a, [
    process.execPath,
    '-e',
    `const s = require('dgram').createSocket('udp4'); let i = 0;const go = () => (i++ >= ${count} ? s.close() : s.send('x', ${port}, '${B4}', go)); go();`,
  ]);
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`udp flood: exit ${code}`))));
  });
}

const isPort = (port: number) => (p: NflogPacket) => headersOf(p)?.dport === port;

describe('NflogReader (kernel)', () => {
  it('reads the SYN of a denied connect: group, prefix, input hook, indev, timestamp, addresses and ports', async () => {
    const p = pair();
    const r = open(7, p.nsB);
    const before = Date.now();
    connectFromA(p, B4, 80, 40080); // no log rule: refused with a RST, never logged
    connectFromA(p, B4, 81, 40081);
    const pkts = await readUntil(r, isPort(81));
    const syn = pkts.find(isPort(81))!;
    expect(syn).toMatchObject({ group: 7, prefix: PREFIX, hook: 1, family: 4, nfproto: 2, hwProtocol: 0x0800, indev: p.ifB });
    expect(syn.outdev).toBeUndefined();
    expect(hookName(syn.hook)).toBe('input');
    expect(syn.timestamp).toBeInstanceOf(Date);
    expect(Math.abs(syn.timestamp!.getTime() - before)).toBeLessThan(10_000);
    expect(headersOf(syn)).toEqual({ family: 4, src: A4, dst: B4, protocol: 'TCP', sport: 40081, dport: 81, tcpFlags: 0x02 });
    // The default copy range is 128 bytes; a SYN is shorter and comes whole (20 + 40 with options).
    expect(syn.payload.length).toBe(60);
    expect(pkts.every((q) => headersOf(q)?.dport === 81)).toBe(true);
    expect(r.overruns).toBe(0);
    expect(r.droppedBatches()).toBe(0);
  });

  it('the SYN retransmissions of one attempt are logged too (same ports), and read() returns [] on timeout', async () => {
    const p = pair();
    const r = open(7, p.nsB, { qthreshold: 1 });
    connectFromA(p, B4, 81, 40082);
    const all: NflogPacket[] = [];
    await waitFor('the retransmitted SYN', () => {
      all.push(...r.read(100));
      return all.length >= 2 || undefined;
    });
    expect(all.map((q) => [headersOf(q)?.sport, headersOf(q)?.dport])).toEqual(all.map(() => [40082, 81]));
    const t0 = Date.now();
    // The client gives up at 1.5 s; after that nothing more comes.
    await sleep(1600);
    r.read(0);
    expect(r.read(200)).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1800);
  });

  it('output hook (group 8 in `a`): outdev and uid, no timestamp; groups are per namespace', async () => {
    const p = pair();
    const inA = open(8, p.nsA, { qthreshold: 1 });
    // Group 7 can be bound in `a` while bound in `b`: instances belong to a namespace.
    const b7 = open(7, p.nsB);
    const a7 = open(7, p.nsA);
    connectFromA(p, B4, 83, 40083); // accepted by `a`'s rule, refused by `b` with a RST
    const syn = (await readUntil(inA, isPort(83))).find(isPort(83))!;
    expect(syn).toMatchObject({ group: 8, prefix: 'out: ', hook: 3, outdev: p.ifA, uid: 0, gid: 0 });
    expect(hookName(syn.hook)).toBe('output');
    expect(syn.indev).toBeUndefined();
    expect(syn.timestamp).toBeUndefined();
    expect(headersOf(syn)).toMatchObject({ src: A4, dst: B4, protocol: 'TCP', sport: 40083, dport: 83 });
    expect(a7.read(100)).toEqual([]);
    expect(b7.read(0)).toEqual([]);
  });

  it('a second socket binding the same group in the same namespace gets EPERM; the first keeps reading', async () => {
    const p = pair();
    const r = open(7, p.nsB);
    const e = catchNetlink(() => open(7, p.nsB));
    expect(e.errno).toBe(1); // EPERM, not EBUSY
    expect(e.message).toMatch(/bind nflog group 7 .*already bound by another netlink socket.*EPERM/);
    connectFromA(p, B4, 81, 40084);
    expect((await readUntil(r, isPort(81))).some(isPort(81))).toBe(true);
  });

  it('EBUSY is for the owner: the same socket binding its group again', () => {
    const p = pair();
    const r = open(7, p.nsB);
    libc.sendto(r.fd, nflogConfigMessage(NLM_F_REQUEST | NLM_F_ACK, 4242, encodeNflogBind(7)), null);
    const buf = Buffer.alloc(8192);
    const n = libc.recv(r.fd, buf);
    const ack = parseMessages(buf.subarray(0, n)).find((m) => m.type === NLMSG_ERROR && m.seq === 4242)!;
    expect(parseError(ack).errno).toBe(16); // EBUSY
  });

  it('closing a reader releases the group at once', () => {
    const p = pair();
    const r = open(7, p.nsB);
    r.close();
    r.close(); // idempotent
    const again = open(7, p.nsB);
    expect(again.group).toBe(7);
    expect(() => r.read(0)).toThrow(/reader closed/);
  });

  it('a full receive buffer: ENOBUFS counted once, drops counted by SO_MEMINFO, the reader goes on', async () => {
    const p = pair();
    // One datagram per packet and the smallest buffer: a burst overruns it.
    const r = open(7, p.nsB, { qthreshold: 1, rcvbuf: 1 });
    await udpFlood(p, 82, 500);
    let got = 0;
    for (let batch = r.read(200); batch.length > 0; batch = r.read(200)) got += batch.length;
    expect(r.overruns).toBe(1);
    const dropped = r.droppedBatches();
    expect(dropped).toBeGreaterThan(0);
    expect(got + dropped).toBe(500);
    // Still working: packets sent one at a time (each fits the tiny buffer) all arrive.
    const after: NflogPacket[] = [];
    for (let i = 0; i < 3; i++) {
      await udpFlood(p, 82, 1);
      after.push(...(await readUntil(r, () => true)));
    }
    expect(after.length).toBe(3);
    expect(after.every((q) => q.prefix === 'flood: ' && headersOf(q)?.protocol === 'UDP' && headersOf(q)?.dport === 82)).toBe(true);
    expect(r.overruns).toBe(1);
    expect(r.droppedBatches()).toBe(dropped);
  });
});

describe('watchNflog (kernel)', () => {
  it('delivers packets on the event loop from a worker thread; the loop never blocks; stop() releases the group', async () => {
    const p = pair();
    const got: NflogPacket[] = [];
    const errors: unknown[] = [];
    const w = watchNflog(
      7,
      p.nsB,
      (q) => got.push(q),
      (e) => errors.push(e),
    );
    watches.push(w);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      connectFromA(p, B4, 81, 40085);
      const syn = await waitFor('a packet from the watch', () => got.find(isPort(81)));
      expect(syn).toMatchObject({ group: 7, prefix: PREFIX, hook: 1, indev: p.ifB });
      expect(headersOf(syn)).toEqual({ family: 4, src: A4, dst: B4, protocol: 'TCP', sport: 40085, dport: 81, tcpFlags: 0x02 });
      // The main thread kept running its timers while the worker waited.
      expect(ticks).toBeGreaterThan(5);
    } finally {
      clearInterval(timer);
    }
    expect(w.packets).toBe(got.length);
    expect(w.overruns).toBe(0);
    // While the watch holds the group, nobody else can bind it.
    expect(catchNetlink(() => NflogReader.open(7, p.nsB).close()).errno).toBe(1);
    const t0 = Date.now();
    await w.stop();
    expect(Date.now() - t0).toBeLessThan(1000); // woken by its own ACK, not by the receive timeout
    await w.stop(); // idempotent
    open(7, p.nsB); // the group is free again
    expect(errors).toEqual([]);
  });

  it('throws synchronously when the group is taken, leaving no worker behind', () => {
    const p = pair();
    open(7, p.nsB);
    expect(() =>
      watchNflog(
        7,
        p.nsB,
        () => {},
        () => {},
      ),
    ).toThrow(/EPERM/);
  });

  it('an exception thrown by onPacket goes to onError; packets keep coming', async () => {
    const p = pair();
    const got: NflogPacket[] = [];
    const errors: unknown[] = [];
    const w = watchNflog(
      7,
      p.nsB,
      (q) => {
        got.push(q);
        if (got.length === 1) throw new Error('consumer bug');
      },
      (e) => errors.push(e),
      { qthreshold: 1 },
    );
    watches.push(w);
    connectFromA(p, B4, 81, 40086);
    await waitFor('two packets (the SYN and its retransmission)', () => got.length >= 2 || undefined);
    expect(errors.map(String)).toEqual(['Error: consumer bug']);
  });
});
