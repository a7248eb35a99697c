// ConntrackHandle against the real kernel (ctnetlink, kernel 6.18). Needs root.
//
// Every test builds two fresh namespaces from test/helpers/netns.ts joined by
// a veth (10.97.0.1/24 + fd97::1/64 in `a`, 10.97.0.2/24 + fd97::2/64 in `b`),
// destroyed in afterEach even when the test fails, together with every process
// the test started. Nothing is configured in the root namespace: the handle is
// opened inside `a`, and `conntrack -L` runs there through `ip netns exec`.
//
// Conntrack only starts tracking in a namespace once a rule needs it, so `a`
// gets an inet table whose output chain has `ct state established accept`.
// Connections go from `a` (client) to `b` (server): TCP with busybox nc, UDP
// with a small node echo pair (Debian's busybox nc has no -u).
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { NetlinkError } from '../../src/errors.ts';
import { type CtEntry, type CtTuple, IPPROTO_TCP, IPPROTO_UDP, IPS_ASSURED, TCP_CONNTRACK_STATES } from '../../src/netlink/conntrack.ts';
import { ConntrackHandle } from '../../src/netlink/conntrack-handle.ts';
import { Netns } from '../../src/sys/netns.ts';
import { catchNetlink } from '../helpers/netlink.ts';
import { linkedPair, type TestNetns, withNetnsCleanup } from '../helpers/netns.ts';
import { eventually as waitFor } from '../helpers/wait.ts';

const scope = withNetnsCleanup('conntrack');

const A4 = '10.97.0.1';
const B4 = '10.97.0.2';
const A6 = 'fd97::1';
const B6 = 'fd97::2';
const TABLE = 'weir_ct_test';

// ---- setup ----

interface Pair {
  a: TestNetns;
  b: TestNetns;
  /** A handle on the conntrack table of `a`. */
  h: ConntrackHandle;
  netnsA: Netns;
}

function pair(): Pair {
  const { a, b } = linkedPair(scope, { v4: A4, v6: A6 }, { v4: B4, v6: B6 });
  a.sh([
    'nft',
    `add table inet ${TABLE}; ` +
      `add chain inet ${TABLE} out { type filter hook output priority 0; policy accept; }; ` +
      `add rule inet ${TABLE} out ct state established accept`,
  ]);
  const netnsA = Netns.open(a.path);
  scope.defer(() => netnsA.close());
  const h = ConntrackHandle.open(netnsA);
  scope.defer(() => h.close());
  return { a, b, h, netnsA };
}

/** A process inside `ns` (SIGKILLed in afterEach) with its stdin held open and its output kept. */
function spawnIn(ns: TestNetns, cmd: string[]): { child: ChildProcess; out: () => string } {
  const child = scope.spawn(ns, cmd, ['pipe', 'pipe', 'pipe']);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString('utf8')));
  return { child, out: () => out };
}

/** A busybox nc server in `b` and a client in `a`, both with stdin held open: an idle established TCP connection. */
async function tcpConnection(p: Pair, family: 4 | 6, port: number) {
  const server = spawnIn(p.b, ['busybox', 'nc', '-l', '-p', String(port)]);
  await waitFor(`nc listening on ${port}`, () => p.b.sh(['ss', '-Hltn', `sport = :${port}`]).trim() !== '' || undefined);
  const client = spawnIn(p.a, ['busybox', 'nc', family === 4 ? B4 : B6, String(port)]);
  const entry = await waitFor(`an established TCP entry to port ${port}`, () =>
    p.h.list(family).find((e) => e.orig.proto === IPPROTO_TCP && e.orig.dport === port && e.tcpState === 3 && (e.status ?? 0) & IPS_ASSURED),
  );
  return { server, client, entry };
}

/** One UDP exchange from `a` (fixed source port) to an echo server in `b`: a replied UDP entry. */
async function udpFlow(p: Pair, family: 4 | 6, sport: number, dport: number): Promise<CtEntry> {
  const type = family === 4 ? 'udp4' : 'udp6';
  const server = spawnIn(p.b, [
    process.execPath,
    '-e',
    `const s=require('dgram').createSocket('${type}');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(${dport},()=>console.log('ready'))`,
  ]);
  await waitFor('the UDP echo server', () => server.out().includes('ready') || undefined);
  const client = spawnIn(p.a, [
    process.execPath,
    '-e',
    `const s=require('dgram').createSocket('${type}');s.on('message',()=>{console.log('echo');s.close()});` +
      `s.bind(${sport},()=>s.send('hi',${dport},'${family === 4 ? B4 : B6}'));setTimeout(()=>process.exit(1),8000)`,
  ]);
  await waitFor('the UDP echo', () => client.out().includes('echo') || undefined);
  return waitFor('the UDP entry', () => p.h.list(family).find((e) => e.orig.proto === IPPROTO_UDP && e.orig.sport === sport && e.orig.dport === dport));
}

// ---- `conntrack -L` as the cross-check ----

interface CliEntry {
  proto: number;
  orig: { src: string; dst: string; sport?: number; dport?: number };
  reply: { src: string; dst: string; sport?: number; dport?: number };
  id?: number;
}

/** `conntrack -L -f <family> -o id` in `ns`, parsed: the first src/dst/sport/dport are the original direction. */
function conntrackCli(ns: TestNetns, family: 4 | 6): CliEntry[] {
  const r = ns.run(['conntrack', '-L', '-f', family === 4 ? 'ipv4' : 'ipv6', '-o', 'id']);
  if (r.code !== 0) throw new Error(`conntrack -L: exit ${r.code}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const tok = line.trim().split(/\s+/);
      const dirs: Record<string, string>[] = [{}, {}];
      let id: number | undefined;
      for (const t of tok) {
        const m = /^(src|dst|sport|dport|id)=(.*)$/.exec(t);
        if (!m) continue;
        const [, k = '', v = ''] = m;
        if (k === 'id') id = Number(v);
        else {
          const d = dirs[0]![k] === undefined ? dirs[0]! : dirs[1]!;
          d[k] = v;
        }
      }
      const dir = (d: Record<string, string>) => ({
        src: d.src ?? '',
        dst: d.dst ?? '',
        ...(d.sport !== undefined ? { sport: Number(d.sport) } : {}),
        ...(d.dport !== undefined ? { dport: Number(d.dport) } : {}),
      });
      return { proto: Number(tok[1]), orig: dir(dirs[0]!), reply: dir(dirs[1]!), ...(id !== undefined ? { id } : {}) };
    });
}

const asCli = (e: CtEntry): CliEntry => {
  const dir = ({ src, dst, sport, dport }: CtTuple) => ({ src, dst, ...(sport !== undefined ? { sport } : {}), ...(dport !== undefined ? { dport } : {}) });
  return { proto: e.orig.proto, orig: dir(e.orig), reply: dir(e.reply), ...(e.id !== undefined ? { id: e.id } : {}) };
};
const byKey = (x: CliEntry) => `${x.proto} ${x.orig.src} ${x.orig.sport} ${x.orig.dst} ${x.orig.dport}`;
const sorted = (xs: CliEntry[]) => [...xs].sort((p, q) => byKey(p).localeCompare(byKey(q)));

const sameTuple = (x: CtTuple, y: CtTuple) =>
  x.family === y.family && x.proto === y.proto && x.src === y.src && x.dst === y.dst && x.sport === y.sport && x.dport === y.dport;
const has = (h: ConntrackHandle, t: CtTuple) => h.list(t.family).some((e) => sameTuple(e.orig, t));

// ---- tests ----

describe('ConntrackHandle (kernel)', () => {
  it('an empty table where no rule needs conntrack, and in `a` before any traffic', () => {
    const p = pair();
    const nb = Netns.open(p.b.path);
    scope.defer(() => nb.close());
    const hb = ConntrackHandle.open(nb);
    scope.defer(() => hb.close());
    expect(hb.list()).toEqual([]);
    expect(p.h.list()).toEqual([]);
  });

  it('lists a TCP connection and a UDP flow with the tuples and ids `conntrack -L` shows', async () => {
    const p = pair();
    const { entry: tcp } = await tcpConnection(p, 4, 8080);
    const udp = await udpFlow(p, 4, 5353, 9090);

    expect(tcp.orig).toEqual({ family: 4, src: A4, dst: B4, proto: 6, sport: tcp.orig.sport, dport: 8080 });
    expect(tcp.orig.sport).toBeGreaterThan(0);
    expect(tcp.reply).toEqual({ family: 4, src: B4, dst: A4, proto: 6, sport: 8080, dport: tcp.orig.sport });
    expect(TCP_CONNTRACK_STATES[tcp.tcpState!]).toBe('ESTABLISHED');
    expect(tcp.id).toBeTypeOf('number');
    expect(tcp.mark).toBe(0);
    expect(tcp.zone).toBeUndefined();
    expect(tcp.timeout).toBeGreaterThan(400_000); // 5 days, the established timeout

    expect(udp.orig).toEqual({ family: 4, src: A4, dst: B4, proto: 17, sport: 5353, dport: 9090 });
    expect(udp.reply).toEqual({ family: 4, src: B4, dst: A4, proto: 17, sport: 9090, dport: 5353 });
    expect(udp.tcpState).toBeUndefined();

    const mine = p.h.list(4);
    expect(sorted(mine.map(asCli))).toEqual(sorted(conntrackCli(p.a, 4)));
    // All families by default; nothing IPv6 happened yet.
    expect(
      p.h
        .list()
        .map((e) => e.id)
        .sort(),
    ).toEqual(mine.map((e) => e.id).sort());
    expect(p.h.list(6)).toEqual([]);
  });

  it('deletes the TCP entry by its orig tuple: gone from the table, a second delete is false, the UDP entry stays', async () => {
    const p = pair();
    const { entry: tcp } = await tcpConnection(p, 4, 8080);
    const udp = await udpFlow(p, 4, 5353, 9090);

    expect(p.h.delete(tcp.orig)).toBe(true);
    expect(has(p.h, tcp.orig)).toBe(false);
    expect(conntrackCli(p.a, 4).some((c) => c.proto === 6 && c.orig.dport === 8080)).toBe(false);
    expect(p.h.delete(tcp.orig)).toBe(false);
    expect(has(p.h, udp.orig)).toBe(true);
    expect(conntrackCli(p.a, 4).map((c) => c.id)).toContain(udp.id);
  });

  it('deletes by the reply tuple too (the kernel looks tuples up in both directions)', async () => {
    const p = pair();
    const { entry: tcp } = await tcpConnection(p, 4, 8080);
    expect(p.h.delete(tcp.reply)).toBe(true);
    expect(has(p.h, tcp.orig)).toBe(false);
  });

  it('IPv6: TCP and UDP entries listed like `conntrack -L -f ipv6`, TCP deleted by its orig tuple', async () => {
    const p = pair();
    const { entry: tcp } = await tcpConnection(p, 6, 8081);
    const udp = await udpFlow(p, 6, 5354, 9091);
    expect(tcp.orig).toEqual({ family: 6, src: A6, dst: B6, proto: 6, sport: tcp.orig.sport, dport: 8081 });
    expect(tcp.reply).toEqual({ family: 6, src: B6, dst: A6, proto: 6, sport: 8081, dport: tcp.orig.sport });
    expect(udp.orig).toEqual({ family: 6, src: A6, dst: B6, proto: 17, sport: 5354, dport: 9091 });
    expect(sorted(p.h.list(6).map(asCli))).toEqual(sorted(conntrackCli(p.a, 6)));
    expect(p.h.list(4)).toEqual([]);

    expect(p.h.delete(tcp.orig)).toBe(true);
    expect(has(p.h, tcp.orig)).toBe(false);
    expect(p.h.delete(tcp.orig)).toBe(false);
    expect(has(p.h, udp.orig)).toBe(true);
  });

  it('a delete by entry carries its id: a stale id deletes nothing', async () => {
    const p = pair();
    const { entry: tcp } = await tcpConnection(p, 4, 8080);
    expect(p.h.delete({ ...tcp, id: (tcp.id! + 1) >>> 0 })).toBe(false);
    expect(has(p.h, tcp.orig)).toBe(true);
    expect(p.h.delete({ ...tcp, zone: 3 })).toBe(false); // not in zone 3
    expect(has(p.h, tcp.orig)).toBe(true);
    expect(p.h.delete(tcp)).toBe(true);
    expect(has(p.h, tcp.orig)).toBe(false);
  });

  it('deleteWhere after a policy change: the established connection the new rule forbids stops at once', async () => {
    const p = pair();
    const { server, client, entry } = await tcpConnection(p, 4, 8080);
    const other = await udpFlow(p, 4, 5353, 9090);

    // The "policy change": port 8080 is no longer allowed, but the
    // established connection still passes `ct state established accept`.
    p.a.sh(['nft', 'add', 'rule', 'inet', TABLE, 'out', 'tcp', 'dport', '8080', 'drop']);
    client.child.stdin!.write('before\n');
    await waitFor('data over the old connection', () => server.out().includes('before') || undefined);

    const seen: CtEntry[] = [];
    const n = p.h.deleteWhere((e) => {
      seen.push(e);
      return e.orig.proto === IPPROTO_TCP && e.orig.dst === B4 && e.orig.dport === 8080;
    });
    expect(n).toBe(1);
    expect(seen.map((e) => e.id).sort()).toEqual([entry.id, other.id].sort());

    // The next segment finds no entry, is NEW, and meets the drop rule.
    client.child.stdin!.write('after\n');
    await sleep(1500);
    expect(server.out()).not.toContain('after');
    expect(has(p.h, entry.orig)).toBe(false); // a dropped packet's entry is never confirmed
    expect(has(p.h, other.orig)).toBe(true);
    expect(p.h.deleteWhere((e) => e.orig.dport === 8080)).toBe(0);
  });

  it('kernel refusals become NetlinkError with the errno', () => {
    const p = pair();
    // ICMP destination-unreachable (type 3) has no inverse tuple: ctnetlink says EINVAL.
    const e = catchNetlink(() => p.h.delete({ family: 4, src: A4, dst: B4, proto: 1, icmp: { id: 0, type: 3, code: 0 } }));
    expect(e.errno).toBe(22);
    expect(e.message).toMatch(/delete conntrack/);
  });

  it('a closed handle refuses requests', () => {
    const p = pair();
    p.h.close();
    expect(() => p.h.list()).toThrow(NetlinkError);
    p.h.close(); // idempotent
  });
});
