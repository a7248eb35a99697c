// The SCTP prober the conformance suite's image runs on a kernel without SCTP
// sockets (scripts/cnp/sctp): built from the tree, in two namespaces joined
// by a veth. What the suite relies on: an association to a served port is
// set up (nothing on stderr, exit 0), over IPv4 and IPv6; conntrack tracks it
// as a valid SCTP association (so checksums and tags are right and nftables
// sees what a real stack would send); a dropped INIT or an unserved port gives
// TIMEOUT on stderr.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNetns, type TestNetns } from '../helpers/netns.ts';
import { eventually } from '../helpers/wait.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const GO = '/usr/local/go/bin/go';
let dir = '';
let bin = '';
let client: TestNetns;
let server: TestNetns;
let serving: ChildProcess | undefined;

const connect = (target: string, timeout = '2s') => client.run([bin, 'connect', `--timeout=${timeout}`, '--protocol=sctp', target]);

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-sctp-'));
  bin = path.join(dir, 'sctp');
  const b = spawnSync(GO, ['build', '-o', bin, './sctp'], {
    cwd: path.join(REPO, 'scripts/cnp'),
    encoding: 'utf8',
    env: { ...process.env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
    timeout: 300_000,
  });
  if (b.status !== 0) throw new Error(`go build scripts/cnp/sctp: ${b.error?.message ?? b.stderr}`);
  client = createNetns('sctpc');
  server = createNetns('sctps');
  client.sh(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', server.name]);
  client.sh(['ip', 'addr', 'add', '10.199.0.1/24', 'dev', 'eth0']);
  server.sh(['ip', 'addr', 'add', '10.199.0.2/24', 'dev', 'eth0']);
  client.sh(['ip', 'addr', 'add', 'fd99::1/64', 'dev', 'eth0', 'nodad']);
  server.sh(['ip', 'addr', 'add', 'fd99::2/64', 'dev', 'eth0', 'nodad']);
  for (const ns of [client, server]) for (const l of ['lo', 'eth0']) ns.sh(['ip', 'link', 'set', l, 'up']);
  // Conntrack in the client's namespace, counting what it finds invalid.
  client.sh(['nft', 'add', 'table', 'inet', 'sctpt']);
  client.sh(['nft', 'add', 'chain', 'inet', 'sctpt', 'in', '{ type filter hook input priority 0; }']);
  client.sh(['nft', 'add', 'rule', 'inet', 'sctpt', 'in', 'ct', 'state', 'invalid', 'counter']);
  client.sh(['nft', 'add', 'rule', 'inet', 'sctpt', 'in', 'ct', 'state', 'established', 'counter']);
  serving = spawn('ip', ['netns', 'exec', server.name, bin, 'serve', '9003', '9005'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const err: string[] = [];
  serving.stderr?.setEncoding('utf8').on('data', (d: string) => err.push(d));
  await eventually('the prober serving', () => err.join('').includes('answering SCTP associations to ports 9003 9005'), 10_000);
}, 320_000);

afterAll(() => {
  serving?.kill('SIGKILL');
  client?.destroy();
  server?.destroy();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the SCTP prober of the conformance image', () => {
  it('sets up an association to a served port over IPv4 and IPv6, silently, and conntrack tracks it as valid SCTP', () => {
    for (const target of ['10.199.0.2:9003', '[fd99::2]:9005']) {
      const r = connect(target);
      expect({ target, code: r.code, stderr: r.stderr }).toEqual({ target, code: 0, stderr: '' });
    }
    const ct = client.sh(['conntrack', '-L', '-p', 'sctp']);
    expect(ct).toMatch(/src=10\.199\.0\.1 dst=10\.199\.0\.2 sport=\d+ dport=9003 .*\[ASSURED\]/);
    expect(ct).toMatch(/src=fd99::1 dst=fd99::2 sport=\d+ dport=9005 .*\[ASSURED\]/);
    expect(client.sh(['nft', 'list', 'chain', 'inet', 'sctpt', 'in'])).toMatch(/ct state invalid counter packets 0 /);
  });

  it('an INIT ACK lost on the way in: the client sends its INIT again, and conntrack sees the association set up', () => {
    client.sh(['conntrack', '-F']);
    // The first INIT ACK is lost on the way in (after conntrack saw it): the client sends its INIT again.
    client.sh(['nft', 'add', 'chain', 'inet', 'sctpt', 'lose', '{ type filter hook input priority -10; }']);
    client.sh(['nft', 'add', 'rule', 'inet', 'sctpt', 'lose', 'sctp', 'sport', '9005', 'quota', 'until', '80', 'bytes', 'drop']);
    const t0 = Date.now();
    expect(connect('10.199.0.2:9005', '3s')).toMatchObject({ code: 0, stderr: '' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(client.sh(['conntrack', '-L', '-p', 'sctp'])).toMatch(/src=10\.199\.0\.1 dst=10\.199\.0\.2 sport=\d+ dport=9005 .*\[ASSURED\]/);
  });

  it('gives TIMEOUT on stderr when nothing answers: an unserved port, or an INIT an nftables rule drops', () => {
    expect(connect('10.199.0.2:9004', '1s')).toMatchObject({ code: 1, stderr: 'TIMEOUT\n' });
    server.sh(['nft', 'add', 'table', 'inet', 'sctpd']);
    server.sh(['nft', 'add', 'chain', 'inet', 'sctpd', 'in', '{ type filter hook input priority 0; }']);
    server.sh(['nft', 'add', 'rule', 'inet', 'sctpd', 'in', 'sctp', 'dport', '9003', 'drop']);
    expect(connect('10.199.0.2:9003', '1s')).toMatchObject({ code: 1, stderr: 'TIMEOUT\n' });
    expect(connect('10.199.0.2:9005')).toMatchObject({ code: 0, stderr: '' });
  });

  it('refuses bad arguments with a usage error, not a probe result', () => {
    expect(connect('10.199.0.2')).toMatchObject({ code: 2 });
    expect(client.run([bin, 'serve', 'x']).code).toBe(2);
  });
});
