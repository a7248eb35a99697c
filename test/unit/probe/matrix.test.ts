import { describe, expect, it } from 'vitest';
import type { ProbeResult, ProbeTarget } from '../../../lab/probe/client.ts';
import { type MatrixPod, type Prober, renderMatrix, renderTable, runMatrix, summarize, targetIp } from '../../../lab/probe/matrix.ts';
import type { SctpInitEvent } from '../../../lab/probe/server.ts';

/** A fake observer the test can fire. */
function observer(): { fire(ev: Partial<SctpInitEvent>): void; onSctpInit(fn: (ev: SctpInitEvent) => void): () => void; subs: number } {
  const fns = new Set<(ev: SctpInitEvent) => void>();
  return {
    get subs() {
      return fns.size;
    },
    fire: (ev) => {
      for (const fn of fns) fn({ event: 'sctp-init', src: '', srcPort: 1, dstPort: 0, tag: 0, family: 4, checksumOk: true, ...ev });
    },
    onSctpInit: (fn) => {
      fns.add(fn);
      return () => void fns.delete(fn);
    },
  };
}

const pods = (): (MatrixPod & { obs: ReturnType<typeof observer> })[] =>
  ['x/a', 'x/b', 'y/c'].map((id, i) => {
    const obs = observer();
    return { id, netnsPath: `/nonexistent/${i}`, ips: [`10.0.0.${i + 1}`, `fd00::${i + 1}`], observer: obs, obs };
  });

describe('runMatrix', () => {
  it('combines prober verdicts and SCTP observer reports', async () => {
    const ps = pods();
    const byIp = new Map(ps.map((p) => [p.ips[0], p]));
    let tag = 100;
    const seenTargets: ProbeTarget[][] = [];
    // TCP: only port 80 connects. UDP: nothing to y/c. SCTP: only to x/b reports back, one late.
    const prober: Prober = async (src, targets, _t, onResult) => {
      seenTargets.push([...targets]);
      targets.forEach((t, i) => {
        const dst = byIp.get(t.ip)!;
        const r: ProbeResult = { ...t, target: '', connected: false, ms: 0 };
        if (t.protocol === 'TCP') r.connected = t.port === 80;
        if (t.protocol === 'UDP') r.connected = dst.id !== 'y/c';
        if (t.protocol === 'SCTP') {
          r.connected = true;
          const sent = ++tag;
          r.tag = sent;
          if (dst.id === 'x/b') setTimeout(() => dst.obs.fire({ tag: sent, dstPort: t.port }), src.id === 'x/a' ? 5 : 0);
          // a report on the wrong port must not count
          if (dst.id === 'y/c') dst.obs.fire({ tag: sent, dstPort: t.port + 1000 });
        }
        onResult(r, i);
      });
    };
    const res = await runMatrix(ps, { ports: [80, 81], protocols: ['TCP', 'UDP', 'SCTP'], timeoutMs: 100, prober });
    expect(res.probes).toHaveLength(3 * 2 * 2 * 3);
    expect(res.probes[0]).toEqual({ from: 'x/a', to: 'x/b', port: 80, protocol: 'TCP', connected: true });
    expect(Object.keys(res.probes[0]!)).toEqual(['from', 'to', 'port', 'protocol', 'connected']);
    expect(res.probes.some((p) => p.from === p.to)).toBe(false);
    const get = (from: string, to: string, port: number, protocol: string): boolean | undefined =>
      res.probes.find((p) => p.from === from && p.to === to && p.port === port && p.protocol === protocol)?.connected;
    expect(get('x/a', 'y/c', 81, 'TCP')).toBe(false);
    expect(get('y/c', 'x/a', 80, 'UDP')).toBe(true);
    expect(get('x/a', 'y/c', 80, 'UDP')).toBe(false);
    expect(get('x/a', 'x/b', 81, 'SCTP')).toBe(true);
    expect(get('y/c', 'x/b', 80, 'SCTP')).toBe(true);
    expect(get('x/b', 'y/c', 80, 'SCTP')).toBe(false);
    expect(get('x/b', 'x/a', 80, 'SCTP')).toBe(false);
    // every source probed the 2 others on 2 ports x 3 protocols, by their first address
    expect(seenTargets.map((t) => t.length)).toEqual([12, 12, 12]);
    expect(seenTargets[0]!.every((t) => t.ip.startsWith('10.0.0.'))).toBe(true);
    // observers are released
    expect(ps.every((p) => p.obs.subs === 0)).toBe(true);
    expect(summarize(res)).toEqual({ total: 36, connected: 6 + 8 + 4, blocked: 36 - 18 });
  });

  it('probes the requested family', async () => {
    const ips: string[] = [];
    const prober: Prober = async (_s, targets, _t, onResult) =>
      targets.forEach((t, i) => {
        ips.push(t.ip);
        onResult({ ...t, target: '', connected: true, ms: 0 }, i);
      });
    await runMatrix(pods(), { ports: [80], protocols: ['TCP'], family: 6, prober });
    expect(ips.every((ip) => ip.startsWith('fd00::'))).toBe(true);
  });

  it('refuses SCTP without observers, duplicate ids, and a missing family', async () => {
    const prober: Prober = async () => {};
    const noObs = pods().map(({ obs: _o, observer: _x, ...p }) => p);
    await expect(runMatrix(noObs, { ports: [80], protocols: ['SCTP'], prober })).rejects.toThrow(/observer/);
    const dup = pods();
    dup[1]!.id = 'x/a';
    await expect(runMatrix(dup, { ports: [80], protocols: ['TCP'], prober })).rejects.toThrow(/duplicate/);
    expect(() => targetIp({ id: 'p', netnsPath: '', ips: ['10.0.0.1'] }, 6)).toThrow(/IPv6/);
  });

  it('propagates a prober failure', async () => {
    const prober: Prober = async () => {
      throw new Error('boom');
    };
    await expect(runMatrix(pods(), { ports: [80], protocols: ['TCP'], prober })).rejects.toThrow('boom');
  });
});

describe('rendering', () => {
  const probes = [
    { from: 'x/a', to: 'x/b', port: 80, protocol: 'TCP' as const, connected: true },
    { from: 'x/a', to: 'y/c', port: 80, protocol: 'TCP' as const, connected: false },
    { from: 'x/b', to: 'x/a', port: 80, protocol: 'TCP' as const, connected: true },
    { from: 'x/b', to: 'y/c', port: 80, protocol: 'TCP' as const, connected: true },
    { from: 'y/c', to: 'x/a', port: 80, protocol: 'TCP' as const, connected: false },
    { from: 'y/c', to: 'x/b', port: 80, protocol: 'TCP' as const, connected: false },
    { from: 'x/a', to: 'x/b', port: 81, protocol: 'SCTP' as const, connected: false },
  ];

  it('renders one table: rows from, columns to', () => {
    expect(renderTable(probes.slice(0, 6), ['x/a', 'x/b', 'y/c'])).toBe(
      ['-    x/a  x/b  y/c', 'x/a  -    .    X', 'x/b  .    -    .', 'y/c  X    X    -'].join('\n'),
    );
  });

  it('renders one table per port/protocol, ? where nothing was probed', () => {
    expect(renderMatrix({ probes })).toBe(
      [
        '80/TCP',
        '-    x/a  x/b  y/c',
        'x/a  -    .    X',
        'x/b  .    -    .',
        'y/c  X    X    -',
        '',
        '81/SCTP',
        '-    x/a  x/b  y/c',
        'x/a  -    X    ?',
        'x/b  ?    -    ?',
        'y/c  ?    ?    -',
        '',
      ].join('\n'),
    );
  });

  it('pads to the longest pod id', () => {
    const t = renderTable([{ from: 'ns/long-name', to: 'a/b', port: 1, protocol: 'UDP', connected: true }], ['ns/long-name', 'a/b']);
    expect(t.split('\n')).toEqual(['-             ns/long-name  a/b', 'ns/long-name  -             .', 'a/b           ?             -']);
  });
});
