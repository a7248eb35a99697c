// The trace parser against `nft monitor` output recorded on a real node
// namespace (weir's own table, compiled by the policy engine, and the
// temporary inet weirctl_trace table):
//   fixtures/nft-monitor.txt:       `nft monitor` (ruleset events and traces):
//                                    a denied TCP SYN to port 81, an allowed
//                                    connection to port 80 (SYN, then
//                                    established packets), a denied UDP datagram
//   fixtures/nft-monitor-trace.txt: `nft monitor trace`, where the kernel
//                                    reuses a trace id for a later packet
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { traceScript } from '../../../src/weirctl/trace/kernel.ts';
import { judgePacket, parseTraceLine, probePacket, settled, splitPackets, verdictOf } from '../../../src/weirctl/trace/parse.ts';

const fixture = (name: string): string[] => fs.readFileSync(path.join(import.meta.dirname, 'fixtures', name), 'utf8').split('\n');

describe('parseTraceLine', () => {
  it('reads packet, rule, policy and unknown-rule lines', () => {
    expect(parseTraceLine('trace id 1261aa31 inet weir pod_egress rule ip saddr vmap @egress4 (verdict goto prof_6938d29946f5_eg)')).toEqual({
      id: '1261aa31',
      family: 'inet',
      table: 'weir',
      chain: 'pod_egress',
      kind: 'rule',
      text: 'ip saddr vmap @egress4',
      verdict: 'goto',
      target: 'prof_6938d29946f5_eg',
    });
    expect(parseTraceLine('trace id 15a9c910 inet weirctl_trace prerouting unknown rule handle 2 (verdict continue)')).toMatchObject({
      kind: 'rule',
      text: 'handle 2',
      verdict: 'continue',
    });
    expect(parseTraceLine('trace id 15a9c910 inet weirctl_trace prerouting policy accept ')).toMatchObject({
      kind: 'policy',
      verdict: 'accept',
      chain: 'prerouting',
    });
    const drop = parseTraceLine('trace id 1 inet weir prof_x_in rule counter packets 0 bytes 0 drop comment "ingress default deny" (verdict drop)');
    expect(drop).toMatchObject({ kind: 'rule', verdict: 'drop', text: 'counter packets 0 bytes 0 drop comment "ingress default deny"' });
    expect(parseTraceLine('trace id 1 inet weir pod_ingress packet: iif "a" ip saddr 10.0.0.1')).toMatchObject({
      kind: 'packet',
      text: 'iif "a" ip saddr 10.0.0.1',
    });
    expect(parseTraceLine('add table inet weirctl_trace')).toBeUndefined();
    expect(parseTraceLine('# new generation 5 by process 26387 (nft)')).toBeUndefined();
  });
});

describe('recorded nft monitor output', () => {
  const packets = splitPackets(fixture('nft-monitor.txt'));

  it('splits the trace lines into packets, ignoring ruleset events', () => {
    expect(packets.length).toBe(6);
    expect(packets.every((p) => p.packet !== undefined)).toBe(true);
    expect(packets[0]?.packet).toContain('tcp dport 81 tcp flags == syn');
  });

  it('a SYN dropped by the ingress profile: deny, naming the chain and rule', () => {
    const j = judgePacket(packets[0]!);
    expect(j.bases).toEqual({ pod_egress: 'accept', pod_ingress: 'drop' });
    expect(j.droppedAt?.chain).toBe('prof_6cdd876cee7c_in');
    expect(j.droppedAt?.rule).toContain('drop comment "ingress default deny"');
    expect(settled(j)).toBe(true);
    expect(verdictOf(j, 'both')).toBe('deny');
    expect(verdictOf(j, 'egress')).toBe('deny');
  });

  it('a SYN accepted by a policy rule in each base chain: allow', () => {
    const p = probePacket(
      packets.filter((x) => /dport 80/.test(x.packet ?? '')),
      'TCP',
    );
    expect(p?.packet).toMatch(/tcp dport 80 tcp flags == syn\b/);
    const j = judgePacket(p!);
    expect(j.bases).toEqual({ pod_egress: 'accept', pod_ingress: 'accept' });
    expect(j.droppedAt).toBeUndefined();
    expect(verdictOf(j, 'both')).toBe('allow');
  });

  it('for TCP the probe is the SYN, not the established packets that follow', () => {
    const established = packets.filter((x) => /flags == (ack|0x)/.test(x.packet ?? ''));
    expect(established.length).toBeGreaterThan(0);
    for (const e of established) expect(e.lines.join('\n')).toContain('ct state established,related accept');
    expect(probePacket(established, 'TCP')).toBeUndefined();
  });

  it('a UDP datagram dropped at ingress; its probe is the first traced packet', () => {
    const udp = packets.filter((x) => /ip protocol udp/.test(x.packet ?? ''));
    expect(udp.length).toBe(1);
    expect(probePacket(udp, 'UDP')).toBe(udp[0]);
    expect(verdictOf(judgePacket(udp[0]!), 'both')).toBe('deny');
  });
});

describe('a packet delivered to the node (host-firewall mode, recorded on the lab)', () => {
  const packets = splitPackets(fixture('nft-monitor-host-input.txt'));

  it('a SYN to a hostNetwork server that host_input accepts: allow, though no pod chain saw it', () => {
    const j = judgePacket(probePacket(packets, 'TCP')!);
    expect(j.bases).toEqual({ host_input: 'accept' });
    expect(settled(j)).toBe(true);
    expect(verdictOf(j, 'both')).toBe('allow');
    // Judged for its egress half only (the server elsewhere), a packet no pod chain saw is not decided here.
    expect(verdictOf(j, 'egress')).toBeUndefined();
  });

  it('the same packet with host_input undecided is neither settled nor allowed', () => {
    const j = judgePacket(
      probePacket(
        packets.map((p) => ({ ...p, events: p.events.filter((e) => !(e.table === 'weir' && e.kind !== 'packet')) })),
        'TCP',
      )!,
    );
    expect(j.bases).toEqual({ host_input: undefined });
    expect(settled(j)).toBe(false);
    expect(verdictOf(j, 'both')).toBeUndefined();
  });
});

describe('recorded nft monitor trace output (trace ids reused)', () => {
  const packets = splitPackets(fixture('nft-monitor-trace.txt'));

  it('starts a new packet at each packet line of the tracing table, even under a reused id', () => {
    const reused = packets.filter((p) => p.id === '8ca2b904');
    expect(reused.length).toBe(2);
    expect(reused[0]?.packet).toContain('flags == syn');
    expect(reused[1]?.packet).toContain('flags == 0x18');
    expect(verdictOf(judgePacket(reused[0]!), 'both')).toBe('allow');
  });

  it('judges the first SYN of each flow', () => {
    const to81 = probePacket(
      packets.filter((p) => /dport 81/.test(p.packet ?? '')),
      'TCP',
    );
    expect(verdictOf(judgePacket(to81!), 'both')).toBe('deny');
  });
});

describe('judgePacket edge cases', () => {
  const lines = (...l: string[]): string[] => l.map((x) => `trace id aa ${x}`);
  const first = (l: string[]) => splitPackets(l)[0]!;

  it('egress only: pod_egress accepting is enough when the destination runs elsewhere', () => {
    const p = first(lines('inet weirctl_trace prerouting packet: ip saddr 1.1.1.1', 'inet weir pod_egress packet: x', 'inet weir pod_egress policy accept'));
    const j = judgePacket(p);
    expect(verdictOf(j, 'egress')).toBe('allow');
    expect(verdictOf(j, 'both')).toBeUndefined();
    expect(settled(j)).toBe(false);
  });

  it('a drop by another table is a deny, attributed to it', () => {
    const p = first(lines('inet weirctl_trace prerouting packet: x', 'ip filter FORWARD packet: x', 'ip filter FORWARD rule counter drop (verdict drop)'));
    const j = judgePacket(p);
    expect(j.weirSeen).toBe(false);
    expect(j.otherDrop).toEqual({ table: 'ip filter', chain: 'FORWARD', rule: 'counter drop' });
    expect(verdictOf(j, 'both')).toBe('deny');
  });

  it("a base chain's policy decides when no rule does; a packet never reaching weir is undecided", () => {
    const p = first(
      lines(
        'inet weirctl_trace prerouting packet: x',
        'inet weir pod_egress packet: x',
        'inet weir pod_egress policy accept',
        'inet weir pod_ingress packet: x',
        'inet weir pod_ingress policy accept',
      ),
    );
    expect(verdictOf(judgePacket(p), 'both')).toBe('allow');
    const never = first(lines('inet weirctl_trace prerouting packet: x', 'inet weirctl_trace prerouting policy accept'));
    expect(judgePacket(never).weirSeen).toBe(false);
    expect(verdictOf(judgePacket(never), 'both')).toBeUndefined();
  });
});

describe('traceScript', () => {
  it('traces exactly the flow, before conntrack, in a table of its own', () => {
    expect(traceScript({ family: 4, src: '10.0.0.1', dst: '10.0.0.2', protocol: 'TCP', port: 80 })).toContain(
      'add rule inet weirctl_trace prerouting ip saddr 10.0.0.1 ip daddr 10.0.0.2 meta l4proto tcp th dport 80 meta nftrace set 1',
    );
    const v6 = traceScript({ family: 6, src: 'fd00::1', dst: 'fd00::2', protocol: 'SCTP', port: 9 });
    expect(v6).toContain('ip6 saddr fd00::1 ip6 daddr fd00::2 meta l4proto sctp th dport 9');
    expect(v6).toContain('type filter hook prerouting priority -350; policy accept;');
  });
});
