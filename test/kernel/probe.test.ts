// The connectivity prober against the real kernel. Needs root.
//
// "Pods" are namespaces created here, joined by veth pairs (or bridged in a
// "node" namespace for the 9-pod matrix). Addresses come from 10.99.x and
// fd00:99:x:: and exist only inside those namespaces; nothing is configured in
// the root namespace. Probe servers and probers are child processes started
// with nsenter; every one is killed in afterEach (scope.defer), before the
// namespaces are destroyed, even when a test fails.
import { describe, expect, it } from 'vitest';
import { type ProbeTarget, SctpSender } from '../../lab/probe/client.ts';
import { type MatrixPod, renderMatrix, runMatrix, summarize } from '../../lab/probe/matrix.ts';
import { runProberProcess, type ServerProcess, spawnServer } from '../../lab/probe/process.ts';
import type { SctpInitEvent } from '../../lab/probe/server.ts';
import { inNetns, Netns } from '../../src/sys/netns.ts';
import { sh, type TestNetns, withNetnsCleanup } from '../helpers/netns.ts';
import { eventually } from '../helpers/wait.ts';

const scope = withNetnsCleanup('probe');
const PORTS = [80, 81];

interface Pod extends MatrixPod {
  ns: TestNetns;
  server: ServerProcess;
  events: SctpInitEvent[];
}

/** Whether `cond` came to hold within `ms`: the assertions say what was missing. */
const waitFor = (cond: () => boolean, ms: number): Promise<boolean> =>
  eventually('the condition', () => cond() || undefined, ms, 10).then(
    () => true,
    () => false,
  );

function podNetns(tag: string): TestNetns {
  const ns = scope.create(tag);
  ns.sh(['ip', 'link', 'set', 'lo', 'up']);
  return ns;
}

/** Brings up eth0 in `ns` with the given addresses (IPv6 without DAD). */
function addrs(ns: TestNetns, v4: string, v6: string): void {
  ns.sh(['ip', 'addr', 'add', v4, 'dev', 'eth0']);
  ns.sh(['ip', '-6', 'addr', 'add', v6, 'dev', 'eth0', 'nodad']);
  ns.sh(['ip', 'link', 'set', 'eth0', 'up']);
}

/**
 * Waits until `dev` is operationally UP. The kernel sets operstate from the
 * deferred linkwatch work (up to a second after `link set up`); until then
 * IPv6 neighbour discovery is lost and the first IPv6 SYN only gets through on
 * its 1 s retransmit, i.e. after a 1 s probe timeout. IPv4 is not affected.
 */
async function linkUp(ns: TestNetns, dev = 'eth0'): Promise<void> {
  const up = (): boolean => ns.ipJson<{ operstate?: string }[]>(['link', 'show', dev])[0]?.operstate === 'UP';
  if (!(await waitFor(up, 5000))) throw new Error(`${dev} in ${ns.name} never came up`);
}

/** Starts the probe server in `ns` (all ports, all protocols) and records its SCTP events. */
async function startPod(id: string, ns: TestNetns, ips: string[]): Promise<Pod> {
  const server = await spawnServer({ netnsPath: ns.path, name: id, tcp: PORTS, udp: PORTS, sctp: PORTS });
  scope.defer(() => server.kill());
  const events: SctpInitEvent[] = [];
  server.onSctpInit((ev) => events.push(ev));
  return { id, netnsPath: ns.path, ips, observer: server, ns, server, events };
}

/** Two pods joined by a veth pair: x/a = 10.99.<n>.1, y/b = 10.99.<n>.2. */
async function twoPods(n: number): Promise<[Pod, Pod]> {
  const a = podNetns('a');
  const b = podNetns('b');
  sh('ip', ['-n', a.name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.name]);
  addrs(a, `10.99.${n}.1/24`, `fd00:99:${n}::1/64`);
  addrs(b, `10.99.${n}.2/24`, `fd00:99:${n}::2/64`);
  await Promise.all([linkUp(a), linkUp(b)]);
  return Promise.all([startPod('x/a', a, [`10.99.${n}.1`, `fd00:99:${n}::1`]), startPod('y/b', b, [`10.99.${n}.2`, `fd00:99:${n}::2`])]);
}

function nft(ns: TestNetns, rules: string[]): void {
  ns.sh(['nft', 'add table inet t']);
  ns.sh(['nft', 'add chain inet t in { type filter hook input priority 0 ; policy accept ; }']);
  for (const r of rules) ns.sh(['nft', `add rule inet t in ${r}`]);
}

const targets = (ip: string): ProbeTarget[] => PORTS.flatMap((port) => (['TCP', 'UDP', 'SCTP'] as const).map((protocol) => ({ ip, port, protocol })));

describe('connectivity prober (kernel)', () => {
  it('servers report ready; TCP, UDP and SCTP probes succeed over IPv4 and IPv6', async () => {
    const [a, b] = await twoPods(1);
    expect(b.server.ready).toMatchObject({ event: 'ready', name: 'y/b', tcp: PORTS, udp: PORTS, sctp: PORTS, sctpFamilies: [4, 6] });
    // No sleep: ready means bound.
    const results = await runProberProcess(a.netnsPath, [...targets('10.99.1.2'), ...targets('fd00:99:1::2')], 1000);
    for (const r of results) {
      expect(r, JSON.stringify(r)).toMatchObject({ connected: true });
      if (r.protocol === 'SCTP') expect(r.tag).toBeGreaterThan(0);
      else expect(r.name).toBe('y/b');
    }
    const tags = results.filter((r) => r.protocol === 'SCTP').map((r) => r.tag);
    expect(await waitFor(() => tags.every((t) => b.events.some((e) => e.tag === t)), 2000)).toBe(true);
    const ev = b.events.find((e) => e.tag === tags[0])!;
    expect(ev).toMatchObject({ src: '10.99.1.1', dstPort: 80, family: 4, checksumOk: true });
    expect(b.events.find((e) => e.tag === tags[2])).toMatchObject({ src: 'fd00:99:1::1', dstPort: 80, family: 6 });
    expect(a.events).toEqual([]);
  });

  it('an nft rule in the destination blocks exactly the probes it matches', async () => {
    const [a, b] = await twoPods(2);
    nft(b.ns, ['sctp dport 80 drop', 'tcp dport 81 drop', 'udp dport 80 drop']);
    const res = await runMatrix([a, b], { ports: PORTS, protocols: ['TCP', 'UDP', 'SCTP'], timeoutMs: 500 });
    const got = Object.fromEntries(res.probes.filter((p) => p.from === 'x/a').map((p) => [`${p.port}/${p.protocol}`, p.connected]));
    expect(got).toEqual({ '80/TCP': true, '80/UDP': false, '80/SCTP': false, '81/TCP': false, '81/UDP': true, '81/SCTP': true });
    // Nothing filters the way back.
    expect(res.probes.filter((p) => p.from === 'y/b').every((p) => p.connected)).toBe(true);
    expect(res.probes[0]).toEqual({ from: 'x/a', to: 'y/b', port: 80, protocol: 'TCP', connected: true });
    // The same through IPv6.
    const res6 = await runMatrix([a, b], { ports: PORTS, protocols: ['TCP', 'UDP', 'SCTP'], timeoutMs: 500, family: 6 });
    expect(res6.probes.filter((p) => p.from === 'x/a').map((p) => p.connected)).toEqual([true, false, false, false, true, true]);
  });

  it('conntrack drops an INIT with a wrong CRC32c as invalid and passes a right one', async () => {
    const [a, b] = await twoPods(3);
    const sender = new SctpSender();
    scope.defer(() => sender.close());
    const netnsA = Netns.open(a.netnsPath);
    scope.defer(() => netnsA.close());
    // In-process use: raw sockets are created (on first send) inside pod a's netns.
    const send = (ip: string, wrong: boolean): number =>
      inNetns(netnsA, () => {
        const r = sender.send({ ip, port: 80, protocol: 'SCTP' }, wrong ? { checksumOverride: 0xdeadbeef } : {});
        expect(r.connected, r.error).toBe(true);
        return r.tag!;
      });
    const seen = (tag: number, ms: number): Promise<boolean> => waitFor(() => b.events.some((e) => e.tag === tag), ms);
    for (const ip of ['10.99.3.2', 'fd00:99:3::2']) {
      // Without conntrack the raw socket takes anything: the bad CRC arrives (and is flagged).
      const bad0 = send(ip, true);
      expect(await seen(bad0, 2000)).toBe(true);
      expect(b.events.find((e) => e.tag === bad0)?.checksumOk).toBe(false);
    }
    nft(b.ns, ['ct state invalid counter drop']);
    for (const ip of ['10.99.3.2', 'fd00:99:3::2']) {
      const good = send(ip, false);
      const bad = send(ip, true);
      expect(await seen(good, 2000), `right CRC to ${ip}`).toBe(true);
      expect(await seen(bad, 300), `wrong CRC to ${ip}`).toBe(false);
    }
    // Both wrong ones hit the invalid rule.
    expect(b.ns.sh(['nft', 'list chain inet t in'])).toMatch(/ct state invalid counter packets 2 /);
  });

  it('an address with nothing behind it gives connected=false within the timeout', async () => {
    const [a] = await twoPods(4);
    // .77 is on-link but absent (ARP gets no answer); 10.99.5.1 is not routed at all.
    const timeoutMs = 300;
    const t0 = Date.now();
    const results = await runProberProcess(
      a.netnsPath,
      [
        { ip: '10.99.4.77', port: 80, protocol: 'TCP' },
        { ip: '10.99.4.77', port: 80, protocol: 'UDP' },
        { ip: '10.99.5.1', port: 80, protocol: 'TCP' },
        { ip: '10.99.4.2', port: 82, protocol: 'TCP' }, // a live host, no listener
        { ip: '10.99.4.2', port: 82, protocol: 'UDP' },
        { ip: '10.99.5.1', port: 80, protocol: 'SCTP' }, // the INIT cannot even be sent
      ],
      timeoutMs,
    );
    const elapsed = Date.now() - t0;
    expect(results.map((r) => r.connected)).toEqual([false, false, false, false, false, false]);
    for (const r of results) expect(r.ms).toBeLessThan(timeoutMs + 100);
    expect(results[3]!.error).toBe('ECONNREFUSED');
    expect(results[4]!.error).toBe('ECONNREFUSED');
    expect(results[5]!.error).toMatch(/ENETUNREACH/);
    console.log(`unreachable probes: ${elapsed} ms for the prober process (timeout ${timeoutMs} ms)`);
    expect(elapsed).toBeLessThan(timeoutMs + 3000);
  });

  it('a 9-pod full matrix (2 ports x 3 protocols) is fast', async () => {
    const node = podNetns('node');
    node.sh(['ip', 'link', 'add', 'br0', 'type', 'bridge']);
    node.sh(['ip', 'link', 'set', 'br0', 'up']);
    const ids = ['x/a', 'x/b', 'x/c', 'y/a', 'y/b', 'y/c', 'z/a', 'z/b', 'z/c'];
    const t0 = Date.now();
    const pods = await Promise.all(
      ids.map(async (id, i) => {
        const ns = podNetns(`p${i}`);
        sh('ip', ['-n', node.name, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns.name]);
        node.sh(['ip', 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
        addrs(ns, `10.99.200.${i + 1}/24`, `fd00:99:200::${i + 1}/64`);
        await linkUp(ns);
        return startPod(id, ns, [`10.99.200.${i + 1}`, `fd00:99:200::${i + 1}`]);
      }),
    );
    const setupMs = Date.now() - t0;
    const opts = { ports: PORTS, protocols: ['TCP', 'UDP', 'SCTP'] as const, timeoutMs: 1000 };
    let t = Date.now();
    const open = await runMatrix(pods, { ...opts, protocols: [...opts.protocols] });
    const openMs = Date.now() - t;
    expect(open.probes).toHaveLength(9 * 8 * 6);
    expect(summarize(open).blocked).toBe(0);
    // Isolate z/c on TCP and SCTP port 80: blocked probes wait out the timeout.
    nft(pods[8]!.ns, ['tcp dport 80 drop', 'sctp dport 80 drop']);
    t = Date.now();
    const some = await runMatrix(pods, { ...opts, protocols: [...opts.protocols] });
    const someMs = Date.now() - t;
    expect(some.probes.filter((p) => !p.connected).map((p) => `${p.to} ${p.port}/${p.protocol}`)).toEqual(
      Array.from({ length: 16 }, (_, i) => `z/c 80/${i < 8 ? 'TCP' : 'SCTP'}`),
    );
    console.log(renderMatrix(some, ids));
    console.log(
      `9-pod matrix, ${open.probes.length} probes: servers ready in ${setupMs} ms; all open ${openMs} ms; ` +
        `16 blocked (timeout ${opts.timeoutMs} ms) ${someMs} ms`,
    );
    await Promise.all(pods.map((p) => p.server.stop()));
  });
});
