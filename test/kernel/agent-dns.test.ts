// The DNS path of ClusterNetworkPolicy domainNames peers, end to end on one
// node: the real weir-agent against a real kube-apiserver, two pods wired by
// the real plugin, and, beyond the node, a network namespace with a tiny DNS
// server (10.53.0.53) and a TCP server that answers on every address of
// 10.77.0.0/20 (a local route), so each test name can resolve to an address
// of its own.
//   - An Admin policy selects `client`: Accept DNS to the server, Accept
//     domainNames `*.allowed.test` and `exact.test`; a second one denies the
//     rest. `other` is selected by nothing (its lookups are the baseline).
//   - 1,000 fresh lookups of distinct names: the connection to each address
//     succeeds on its first SYN (the client's connect timeout is shorter
//     than the SYN retransmission), zero refused.
//   - A name no policy lists resolves to an address that stays denied; a
//     resolver the policies do not allow never gets the query, so its lie
//     is never learned.
//   - A learned address is denied again once its TTL (clamped to 5 s) ends.
//   - The agent killed: DNS answers still arrive (the queue's bypass), and
//     the address of a new lookup stays denied (nothing learned it); the
//     next agent writes back what the killed one learned.
// It prints the added latency on DNS answers (client vs other) and the
// agent's hold time.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/agent.ts';
import { type AttachedPod, useAgentNode } from '../helpers/agent-node.ts';
import { connectOnceScript, dnsClientScript, type Lookup, parseLookups, quantile } from '../helpers/dns-client.ts';
import { createNetns, type TestNetns } from '../helpers/netns.ts';
import { waitEstablished } from '../helpers/wait.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const NODE = path.join(REPO, 'node_modules/.bin/node');
const CRD = path.join(REPO, 'deploy/crds/clusternetworkpolicies.experimental.yaml');
const DNS_IP = '10.53.0.53';
const LIAR_IP = '10.53.0.54';
const PORT = 8080;
// Not WEIR_*: the agent, started from this process, reads WEIR_* variables as its options.
const LOOKUPS = Number(process.env.DNS_TEST_LOOKUPS ?? 1000);
const n = useAgentNode('dnsagent');
const { fx, kubectl, apply } = n;
let ext: TestNetns | undefined;
const pods: Partial<Record<'client' | 'other', AttachedPod>> = {};
const children: ChildProcess[] = [];
let servers: { lines: string[] };

// The DNS server: `n<i>.allowed.test` -> 10.77.<i/256>.<i%256>, `<x>.ttl<t>.allowed.test` with TTL t,
// `exact.test` -> 10.78.0.1, `unlisted.test` -> 10.77.15.250, `allowed.test` -> 10.77.15.251; TTL 30 unless the name says; NXDOMAIN otherwise.
const DNS_SERVER = `
const s = require('dgram').createSocket('udp4');
s.on('message', (q, r) => {
  let o = 12; const labels = [];
  while (q[o]) { labels.push(q.toString('latin1', o + 1, o + 1 + q[o]).toLowerCase()); o += 1 + q[o]; }
  const qEnd = o + 5, name = labels.join('.');
  let addr, ttl = 30, m;
  if ((m = /^n(\\d+)\\.allowed\\.test$/.exec(name))) addr = [10, 77, (+m[1] >> 8) & 15, +m[1] & 255];
  else if ((m = /^(\\d+)\\.ttl(\\d+)\\.allowed\\.test$/.exec(name))) { addr = [10, 77, 14, +m[1] & 255]; ttl = +m[2]; }
  else if (name === 'exact.test') addr = [10, 78, 0, 1];
  else if (name === 'unlisted.test') addr = [10, 77, 15, 250];
  else if (name === 'allowed.test') addr = [10, 77, 15, 251];
  const h = Buffer.from(q.subarray(0, qEnd)); h[2] = 0x81; h[3] = addr ? 0x80 : 0x83; h.writeUInt16BE(addr ? 1 : 0, 6); h.writeUInt16BE(0, 8); h.writeUInt16BE(0, 10);
  const a = addr ? Buffer.from([0xc0, 12, 0, 1, 0, 1, ttl >>> 24, (ttl >> 16) & 255, (ttl >> 8) & 255, ttl & 255, 0, 4, ...addr]) : Buffer.alloc(0);
  s.send(Buffer.concat([h, a]), r.port, r.address);
});
s.bind(53, '${DNS_IP}', () => console.log('dns ready'));
// A second resolver that lies: every name is 10.77.15.200.
const liar = require('dgram').createSocket('udp4');
liar.on('message', (q, r) => {
  let o = 12; while (q[o]) o += 1 + q[o];
  const h = Buffer.from(q.subarray(0, o + 5)); h[2] = 0x81; h[3] = 0x80; h.writeUInt16BE(1, 6); h.writeUInt16BE(0, 8); h.writeUInt16BE(0, 10);
  liar.send(Buffer.concat([h, Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 77, 15, 200])]), r.port, r.address);
});
liar.bind(53, '${LIAR_IP}');
require('net').createServer((c) => { c.on('error', () => {}); c.end('hi\\n'); }).listen(${PORT}, '0.0.0.0', () => console.log('tcp ready'));
// Long-lived connections on ${PORT + 1}: each line received is printed with the address it came to.
require('net').createServer((c) => { c.on('error', () => {}); c.setEncoding('utf8'); c.on('data', (d) => { for (const l of d.split('\\n')) if (l) console.log(c.localAddress + ' ' + l); }); }).listen(${PORT + 1}, '0.0.0.0');
`;

const CLIENT = dnsClientScript(DNS_IP, PORT);

/** Runs the client in a pod over these names; one result per name. */
function lookups(pod: 'client' | 'other', names: string[], connect = true, resolver = DNS_IP): Lookup[] {
  const ns = pods[pod]?.netns;
  if (!ns) throw new Error(`no pod ${pod}`);
  const r = ns.run(['env', ...(connect ? [] : ['NO_CONNECT=1']), `RESOLVER=${resolver}`, NODE, '-e', CLIENT, ...names]);
  if (r.code !== 0) throw new Error(`client failed: ${r.stderr}`);
  return parseLookups(r.stdout);
}
const ms = (x: number): string => `${x.toFixed(2)} ms`;

/** The upper bound (ms) of the hold-time histogram bucket holding quantile q. */
function holdQuantile(lines: string[], q: number): number {
  const buckets = lines.flatMap((l) => {
    const m = /^weir_dns_hold_seconds_bucket\{le="([^"]+)"\} (\d+)/.exec(l);
    return m ? [[Number(m[1]), Number(m[2])] as const] : [];
  });
  const total = buckets.at(-1)?.[1] ?? 0;
  const hit = buckets.find(([, n]) => n >= q * total);
  return (hit?.[0] ?? Number.NaN) * 1000;
}

// A connection to ip:PORT+1 from a pod that sends a line every 50 ms.
const STREAM = (ip: string): string =>
  `const s=require('net').connect(${PORT + 1},'${ip}');s.on('error',()=>{});s.on('connect',()=>{console.log('connected');setInterval(()=>s.write('tick\\n'),50)})`;

function spawnLines(ns: TestNetns, script: string): { lines: string[] } {
  const child = spawn('ip', ['netns', 'exec', ns.name, NODE, '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
  children.push(child);
  const lines: string[] = [];
  child.stdout?.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
  return { lines };
}

/** weirctl in the node's namespace: its stdout. */
function weirctl(args: string[]): string {
  const r = n.weirctl(args);
  if (r.code !== 0) throw new Error(`weirctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `weirctl trace -o json` from the client. */
const trace = (to: string, port: number): { verdict?: string; agree?: boolean | null; kernel?: { verdict?: string } } =>
  JSON.parse(weirctl(['trace', '--from', 'shop/client', '--to', to, '--port', String(port), '-o', 'json']));

async function metric(name: string): Promise<string[]> {
  const text = await n.metrics();
  return text.split('\n').filter((l) => l.startsWith(name));
}

const policies = [
  {
    apiVersion: 'policy.networking.k8s.io/v1beta1',
    kind: 'ClusterNetworkPolicy',
    metadata: { name: 'client-names' },
    spec: {
      tier: 'Admin',
      priority: 10,
      subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'client' } } } },
      egress: [
        {
          name: 'dns',
          action: 'Accept',
          to: [{ networks: [`${DNS_IP}/32`] }],
          protocols: [{ udp: { destinationPort: { number: 53 } } }, { tcp: { destinationPort: { number: 53 } } }],
        },
        { name: 'names', action: 'Accept', to: [{ domainNames: ['*.allowed.test', 'exact.test'] }] },
      ],
    },
  },
  {
    apiVersion: 'policy.networking.k8s.io/v1beta1',
    kind: 'ClusterNetworkPolicy',
    metadata: { name: 'client-deny-rest' },
    spec: {
      tier: 'Admin',
      priority: 20,
      subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'client' } } } },
      egress: [{ name: 'rest', action: 'Deny', to: [{ networks: ['0.0.0.0/0'] }] }],
    },
  },
];

beforeAll(async () => {
  kubectl(['apply', '--server-side', '-f', CRD]);
  await waitEstablished(kubectl, 'crd/clusternetworkpolicies.policy.networking.k8s.io');
  n.namespace('shop');
  for (const name of ['client', 'other'] as const) n.pod('shop', name, { app: name });
  // Beyond the node: the DNS and TCP servers.
  ext = createNetns('dnsext');
  fx.netns.sh(['ip', 'link', 'add', 'dnsx0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ext.name]);
  fx.netns.sh(['ip', 'addr', 'add', '10.53.0.1/24', 'dev', 'dnsx0']);
  fx.netns.sh(['ip', 'link', 'set', 'dnsx0', 'up']);
  fx.netns.sh(['ip', 'route', 'add', '10.77.0.0/16', 'via', DNS_IP]);
  fx.netns.sh(['ip', 'route', 'add', '10.78.0.0/16', 'via', DNS_IP]);
  fx.netns.sh(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  ext.sh(['ip', 'link', 'set', 'lo', 'up']);
  ext.sh(['ip', 'addr', 'add', `${DNS_IP}/24`, 'dev', 'eth0']);
  ext.sh(['ip', 'addr', 'add', `${LIAR_IP}/24`, 'dev', 'eth0']);
  ext.sh(['ip', 'link', 'set', 'eth0', 'up']);
  ext.sh(['ip', 'route', 'add', 'default', 'via', '10.53.0.1']);
  ext.sh(['ip', 'route', 'add', 'local', '10.77.0.0/16', 'dev', 'lo']);
  ext.sh(['ip', 'route', 'add', 'local', '10.78.0.0/16', 'dev', 'lo']);
  servers = spawnLines(ext, DNS_SERVER);
  await eventually('the DNS and TCP servers', () => (servers.lines.includes('dns ready') && servers.lines.includes('tcp ready') ? true : undefined));

  await n.start();
  for (const name of ['client', 'other'] as const) pods[name] = n.attachPod('shop', name);
}, 180_000);

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  ext?.destroy();
});

describe('ClusterNetworkPolicy domainNames: DNS answers held until their addresses are allowed', () => {
  it('before any policy, the servers answer both pods (the path works); then the policies apply and hold the client`s answers', async () => {
    expect(lookups('client', ['n3000.allowed.test'])[0]).toMatchObject({ answered: true, ip: '10.77.11.184', ok: true });
    for (const p of policies) apply(p);
    await n.applied('clusterpolicies', 'the policies', 20_000);
    const ruleset = fx.netns.sh(['nft', 'list', 'table', 'ip', 'weir_dns']);
    expect(ruleset).toContain(pods.client?.ip);
    expect(ruleset).not.toContain(pods.other?.ip);
    expect(ruleset).toMatch(/udp sport 53 ct direction reply ip daddr @subjects queue num 1053 bypass/);
    // An address not looked up is denied (10.77.0.1 is n1's, looked up next).
    expect(pods.client?.netns.run([NODE, '-e', connectOnceScript('10.77.0.1', PORT)]).code).toBe(1);
  });

  it(`${LOOKUPS} fresh lookups: every connection succeeds on its first try`, async () => {
    const names = Array.from({ length: LOOKUPS }, (_, i) => `n${i + 1}.allowed.test`);
    const t0 = Date.now();
    const res = lookups('client', names);
    const refused = res.filter((r) => r.ok !== true);
    console.log(`${res.length} lookups in ${Date.now() - t0} ms; refused first connections: ${refused.length}`);
    expect(res).toHaveLength(LOOKUPS);
    expect(new Set(res.map((r) => r.ip)).size).toBe(LOOKUPS);
    expect(refused).toEqual([]);
    const dns = res.map((r) => r.dnsMs);
    const conn = res.map((r) => r.connectMs ?? Number.NaN);
    const base = lookups('other', names.slice(0, Math.min(LOOKUPS, 1000)), false).map((r) => r.dnsMs);
    console.log(
      `DNS round trip, held (client): p50 ${ms(quantile(dns, 0.5))} p99 ${ms(quantile(dns, 0.99))}; not held (other): p50 ${ms(quantile(base, 0.5))} p99 ${ms(quantile(base, 0.99))}`,
    );
    console.log(`answer -> connection established: p50 ${ms(quantile(conn, 0.5))} p99 ${ms(quantile(conn, 0.99))}`);
    const dnsMetrics = await metric('weir_dns_');
    console.log(dnsMetrics.join('\n'));
    console.log(
      `agent hold time (answer queued -> addresses in the kernel -> verdict), histogram bucket bounds: p50 <= ${holdQuantile(dnsMetrics, 0.5)} ms, p99 <= ${holdQuantile(dnsMetrics, 0.99)} ms`,
    );
    const learned = (await metric('weir_dns_addresses_learned_total'))[0];
    expect(Number(learned?.split(' ')[1])).toBeGreaterThanOrEqual(LOOKUPS);
    expect((await metric('weir_dns_answers_released_late_total'))[0]).toMatch(/ 0$/);
  }, 600_000);

  it('an exact name is learned; a name no policy lists resolves, and its address stays denied; weirctl trace agrees and policy shows what was learned', () => {
    expect(lookups('client', ['exact.test'])[0]).toMatchObject({ answered: true, ip: '10.78.0.1', ok: true });
    expect(lookups('client', ['unlisted.test'])[0]).toMatchObject({ answered: true, ip: '10.77.15.250', ok: false });
    // Nor a wildcard's own apex.
    expect(lookups('client', ['allowed.test'])[0]).toMatchObject({ answered: true, ip: '10.77.15.251', ok: false });
    // A resolver the policies do not allow: the query is dropped, so its lie never comes back to be learned.
    expect(lookups('other', ['n7.allowed.test'], false, LIAR_IP)[0]).toMatchObject({ answered: true });
    expect(lookups('client', ['n7.allowed.test'], true, LIAR_IP)[0]).toMatchObject({ answered: false });
    expect(pods.client?.netns.run([NODE, '-e', connectOnceScript('10.77.15.200', PORT)]).code).toBe(1);
    // weirctl trace judges with the learned addresses, as the kernel does.
    const allowed = trace('10.78.0.1', PORT);
    expect(allowed, JSON.stringify(allowed)).toMatchObject({ verdict: 'allow', kernel: { verdict: 'allow' }, agree: true });
    expect(JSON.stringify(allowed)).toContain('client-names');
    expect(trace('10.77.15.250', PORT)).toMatchObject({ verdict: 'deny', kernel: { verdict: 'deny' }, agree: true });
    // weirctl policy shows what was learned for the peer's names.
    const policy = weirctl(['policy', 'shop/client']);
    expect(policy).toMatch(/domain names \*\.allowed\.test, exact\.test \(learned: .*exact\.test 10\.78\.0\.1/);
  });

  it('a policy change judges tracked connections with the learned addresses: the one it forbids ends, the one still allowed lives', async () => {
    expect(lookups('client', ['exact.test', 'n42.allowed.test']).map((r) => [r.ip, r.ok])).toEqual([
      ['10.78.0.1', true],
      ['10.77.0.42', true],
    ]);
    const ns = pods.client?.netns;
    if (!ns) throw new Error('no client pod');
    const streams = ['10.78.0.1', '10.77.0.42'].map((ip) => ({ ip, out: spawnLines(ns, STREAM(ip)) }));
    await eventually('both connections up', () => (streams.every((x) => x.out.lines.includes('connected')) ? true : undefined));
    const ticks = (ip: string): number => servers.lines.filter((l) => l === `${ip} tick`).length;
    await eventually('ticks on both', () => (ticks('10.78.0.1') > 0 && ticks('10.77.0.42') > 0 ? true : undefined));
    const deny77 = {
      apiVersion: 'policy.networking.k8s.io/v1beta1',
      kind: 'ClusterNetworkPolicy',
      metadata: { name: 'client-deny-77' },
      spec: {
        tier: 'Admin',
        priority: 5,
        subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: 'client' } } } },
        egress: [{ name: 'no-77', action: 'Deny', to: [{ networks: ['10.77.0.0/16'] }] }],
      },
    };
    apply(deny77);
    try {
      // The connection the new Deny forbids stops carrying data (purged from conntrack, dropped after).
      await eventually(
        'the connection to 10.77.0.42 ended',
        async () => {
          const before = ticks('10.77.0.42');
          await new Promise((r) => setTimeout(r, 300));
          return ticks('10.77.0.42') === before ? true : undefined;
        },
        10_000,
      );
      // The one to the learned address the Deny does not cover is not purged: its ticks go on.
      const before = ticks('10.78.0.1');
      await eventually('ticks on 10.78.0.1 after the change', () => (ticks('10.78.0.1') >= before + 10 ? true : undefined), 5_000);
    } finally {
      kubectl(['delete', 'clusternetworkpolicy', 'client-deny-77']);
    }
  }, 60_000);

  it('TTL expiry removes access: a TTL of 1 s is kept 5 s (the floor), then the address is denied again', async () => {
    const t0 = Date.now();
    expect(lookups('client', ['1.ttl1.allowed.test'])[0]).toMatchObject({ ip: '10.77.14.1', ok: true });
    const connects = () => pods.client?.netns.run([NODE, '-e', connectOnceScript('10.77.14.1', PORT)]).code === 0;
    await eventually('the address denied after its TTL', () => (connects() ? undefined : true), 15_000);
    const gone = Date.now() - t0;
    console.log(`learned with TTL 1 s (floor 5 s): denied again after ${gone} ms`);
    expect(gone).toBeGreaterThanOrEqual(4500);
    // The agent's own kernel check ran meanwhile (the DNS path's commits move the generation) and
    // found the table as applied: learned elements of the timeout sets are not drift.
    const checks = await metric('weir_kernel_checks_total');
    console.log(checks.join('\n'));
    expect(checks.some((l) => /check="full",result="clean"\} [1-9]/.test(l))).toBe(true);
    expect(checks.filter((l) => /result="drift"\} [1-9]/.test(l))).toEqual([]);
    expect((await metric('weir_kernel_repairs_total')).filter((l) => / [1-9]\d*$/.test(l))).toEqual([]);
  }, 30_000);

  it('the agent killed: DNS answers still arrive (bypass), and what they name stays denied', async () => {
    await n.agent.stop('SIGKILL');
    const r = lookups('client', ['7.ttl30.allowed.test', '8.ttl30.allowed.test']);
    expect(r.map((x) => x.ip)).toEqual(['10.77.14.7', '10.77.14.8']);
    expect(r.map((x) => x.answered)).toEqual([true, true]);
    expect(r.map((x) => x.ok)).toEqual([false, false]);
    console.log(`with the agent dead, DNS round trip ${r.map((x) => ms(x.dnsMs)).join(', ')}`);
  }, 30_000);

  it('a restarted agent writes back what the previous one learned: a learned address stays allowed without a new lookup', async () => {
    const connects = (ip: string) => pods.client?.netns.run([NODE, '-e', connectOnceScript(ip, PORT)]).code === 0;
    // Learned (TTL 30 s) by the policy-change case above, before the agent was killed.
    expect(connects('10.78.0.1')).toBe(true);
    await n.start();
    // The first sync replaced the table whole (its domain sets made anew); the address is back in.
    await eventually('the carried-over address allowed', () => (connects('10.78.0.1') ? true : undefined), 5_000).catch((e) => {
      throw new Error(
        `${String(e)}\nagent log:\n${n.agent
          .log()
          .split('\n')
          .filter((l) => /dns|DNS|learned/.test(l))
          .join('\n')
          .slice(-3000)}`,
      );
    });
    expect(fx.netns.sh(['nft', 'list', 'table', 'inet', 'weir'])).toMatch(/10\.78\.0\.1 timeout/);
    // And the new agent learns again.
    expect(lookups('client', ['n6.allowed.test'])[0]).toMatchObject({ ip: '10.77.0.6', ok: true });
  }, 60_000);
});
