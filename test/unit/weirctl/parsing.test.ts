import { describe, expect, it } from 'vitest';
import { ConflistError, parseConflistText } from '../../../src/weirctl/conflist.ts';
import { byLabel, parsePrometheus, sampleValue } from '../../../src/weirctl/metrics.ts';
import { canonical, parsePodRef, recordOfIp, recordOfPod } from '../../../src/weirctl/resolve.ts';

describe('conflist', () => {
  const list = {
    cniVersion: '1.0.0',
    name: 'weir',
    plugins: [
      { type: 'weir', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'], dataDir: '/d', agentSocket: '/run/weir/agent.sock' },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  it("parses the weir entry with the list's name and cniVersion injected", () => {
    const c = parseConflistText(JSON.stringify(list), '/etc/cni/net.d/10-weir.conflist');
    expect(c).toMatchObject({ name: 'weir', cniVersion: '1.0.0', plugins: ['weir', 'portmap'], podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] });
    expect(c.conf.dataDir).toBe('/d');
    expect(c.conf.name).toBe('weir');
  });
  it('names the file and the problem', () => {
    expect(() => parseConflistText('{', 'f')).toThrow(ConflistError);
    expect(() => parseConflistText(JSON.stringify({ ...list, plugins: [{ type: 'bridge' }] }), 'f')).toThrow(/no plugin of type "weir" \(plugins: bridge\)/);
    expect(() => parseConflistText(JSON.stringify({ ...list, plugins: [{ type: 'weir', podCIDRs: ['10.244.1.5/24'] }] }), 'f')).toThrow(
      /f: the weir plugin would refuse it: podCIDRs\[0\]: host bits set/,
    );
  });
});

describe('metrics', () => {
  const text =
    '# HELP x y\n# TYPE weir_api_watch_up gauge\nweir_api_watch_up{kind="pods"} 1\nweir_api_watch_up{kind="nodes"} 0\nweir_x{a="q\\"uote",b="2"} 1.5e3\nplain 7\nweir_h_bucket{le="+Inf"} 4\n';
  it('reads samples with labels', () => {
    const s = parsePrometheus(text);
    expect(byLabel(s, 'weir_api_watch_up', 'kind')).toEqual(
      new Map([
        ['pods', 1],
        ['nodes', 0],
      ]),
    );
    expect(sampleValue(s, 'weir_x', { a: 'q"uote' })).toBe(1500);
    expect(sampleValue(s, 'plain')).toBe(7);
    expect(sampleValue(s, 'weir_h_bucket', { le: '+Inf' })).toBe(4);
    expect(sampleValue(s, 'missing')).toBeUndefined();
  });
});

describe('resolve', () => {
  it('pod references and canonical addresses', () => {
    expect(parsePodRef('shop/web')).toEqual({ namespace: 'shop', name: 'web' });
    expect(parsePodRef('web')).toBeUndefined();
    expect(parsePodRef('a/b/c')).toBeUndefined();
    expect(canonical('fd00:0::1')).toBe('fd00::1');
  });
  it("finds a pod's newest record, and the record of an address", () => {
    const r = (cid: string, created: string, ip: string) => ({
      containerID: cid,
      ifname: 'eth0',
      podNamespace: 'shop',
      podName: 'web',
      addresses: [ip],
      created,
    });
    const records = [r('old', '2025-01-01T00:00:00Z', '10.0.0.1'), r('new', '2025-01-02T00:00:00Z', '10.0.0.2')];
    expect(recordOfPod(records, 'shop/web')?.containerID).toBe('new');
    expect(recordOfIp(records, '10.0.0.1')?.containerID).toBe('old');
  });
});
