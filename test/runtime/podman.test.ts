// weir under a real container runtime: podman 4.3 with its CNI backend runs
// busybox containers on a weir conflist chained with portmap.
//
// Needs root, podman, runc, busybox-static, containernetworking-plugins and a
// built dist/bin/weir (`node_modules/.bin/node scripts/build.mjs`). A missing
// piece FAILS every test with a message naming it; nothing is skipped.
//
// podman runs the plugin in the machine's ROOT network namespace. Network
// safety (see test/helpers/podman-guard.ts): before anything runs, an `unreachable`
// route covers the whole pod CIDR, so a packet to a missing pod is dropped
// instead of leaving by the default route; ip_forward is restored afterwards;
// traffic only ever goes to the test's own containers and, for the port
// mapping, to the root namespace's own addresses.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostVethName } from '../../src/plugin/names.ts';
import { type RunResult, sh, shTry } from '../helpers/netns.ts';
import { type ContainerInfo, createPodmanSandbox, hostAddress, inCidr4, type PodmanSandbox } from '../helpers/podman.ts';

const WEIR_BIN = fileURLToPath(new URL('../../dist/bin/weir', import.meta.url));
const NETWORK = 'weirt-podman';
const POD_CIDR = '10.254.250.0/24';
const HOST_PORT = 18080;
const A = `${NETWORK}-a`;
const B = `${NETWORK}-b`;
const C = `${NETWORK}-c`;
const CNI_RESULTS = '/var/lib/cni/results';

let sb: PodmanSandbox | undefined;
let setupError: unknown;

beforeAll(() => {
  try {
    const { sandbox, notes } = createPodmanSandbox({ network: NETWORK, podCIDR: POD_CIDR, weirBin: WEIR_BIN });
    sb = sandbox;
    for (const n of notes) console.warn(`podman sandbox: ${n}`);
  } catch (e) {
    // Reported by every test rather than here, so none can pass or be skipped.
    setupError = e;
  }
});

afterAll(() => {
  const problems = sb?.teardown() ?? [];
  if (problems.length > 0) throw new Error(`podman runtime test teardown found leftovers:\n  - ${problems.join('\n  - ')}`);
});

function sandbox(): PodmanSandbox {
  if (setupError !== undefined) throw setupError;
  if (!sb) throw new Error('podman sandbox was not set up');
  return sb;
}

// ---- helpers ----

const sleepMs = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** Retries `fn` until it returns a result with code 0 or the deadline passes; returns the last result. */
function retry(fn: () => RunResult, deadlineMs = 10_000, pauseMs = 100): RunResult {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const r = fn();
    if (r.code === 0 || Date.now() > end) return r;
    sleepMs(pauseMs);
  }
}

const show = (r: RunResult): string => `exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`;

// busybox-static 1.35's `wget -T` segfaults (in and out of containers), so
// the time limit is the `timeout` applet around it.
const wgetArgs = (url: string): string[] => ['timeout', '5', 'wget', '-q', '-O', '-', url];

/** Fetches `url` from inside container `from`, retrying while the server starts. */
function fetchFrom(from: string, url: string): RunResult {
  return retry(() => sandbox().exec(from, wgetArgs(url), 15_000));
}

/** Fetches `url` from the root namespace with the host's busybox. */
function fetchFromHost(url: string): RunResult {
  return retry(() => shTry('/bin/busybox', wgetArgs(url)));
}

interface IpRoute {
  dst: string;
  dev?: string;
  type?: string;
  protocol?: string | number;
  scope?: string;
}
interface IpLink {
  ifname: string;
  flags: string[];
  address?: string;
  ifalias?: string;
  linkinfo?: { info_kind?: string };
}

const hostRoutesTo = (ip: string): IpRoute[] => JSON.parse(sh('ip', ['-j', 'route', 'show', 'to', 'exact', `${ip}/32`]) || '[]') as IpRoute[];
const hostLinks = (): IpLink[] => JSON.parse(sh('ip', ['-j', '-d', 'link', 'show']) || '[]') as IpLink[];
const routesInCidr = (): string[] =>
  sh('ip', ['-4', 'route', 'show', 'table', 'all', 'root', POD_CIDR])
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean);

interface Started {
  a: ContainerInfo;
  b: ContainerInfo;
}
let started: Started | undefined;
let startError: unknown;

/** Starts A and B (B publishes 8080 on the host's 18080), once; both tests 1 and 2 use them. */
function startPair(): Started {
  if (startError !== undefined) throw startError;
  if (started) return started;
  try {
    const s = sandbox();
    const serve = (name: string): string[] => ['sh', '-c', `exec httpd -f -p 8080 -h /www/${name}`];
    for (const n of [A, B]) s.writeRootfsFile(`www/${n}/index.html`, `${n}\n`);
    s.runDetached(A, serve(A));
    s.runDetached(B, serve(B), ['-p', `${HOST_PORT}:8080`]);
    started = { a: s.inspect(A), b: s.inspect(B) };
    return started;
  } catch (e) {
    startError = e;
    throw e;
  }
}

// ---- tests ----

describe('podman (CNI backend) with weir chained with portmap', () => {
  it('gives two containers addresses from the pod range, wires them, and they reach each other', () => {
    const s = sandbox();
    const { a, b } = startPair();

    for (const c of [a, b]) {
      expect(c.running, `${c.name} running`).toBe(true);
      // podman reports weir's result: a /32 with the link-local gateway.
      expect(inCidr4(c.ip, POD_CIDR), `${c.name} address ${c.ip} in ${POD_CIDR}`).toBe(true);
      expect(c.prefixLen).toBe(32);
      expect(c.gateway).toBe('169.254.1.1');
      const octets = c.ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'));
      expect(c.mac).toBe(['0a', '58', ...octets].join(':'));

      // The IPAM record: one file per address, naming the attachment.
      const rec = s.readIpamRecord(c.ip);
      expect(rec).toMatchObject({ containerID: c.id, ifname: 'eth0', network: NETWORK, podName: c.name, addresses: [c.ip] });

      // The host side: a veth named after the attachment, and a /32 route to the pod through it.
      const veth = hostVethName(c.id, 'eth0');
      const routes = hostRoutesTo(c.ip);
      expect(routes, `host route to ${c.ip}`).toHaveLength(1);
      expect(routes[0]).toMatchObject({ dst: c.ip, dev: veth, scope: 'link' });
      expect(String(routes[0]!.protocol)).toBe('87');
      const link = hostLinks().find((l) => l.ifname === veth);
      expect(link, `host veth ${veth}`).toBeDefined();
      expect(link!.linkinfo?.info_kind).toBe('veth');
      expect(link!.flags).toContain('UP');
      expect(link!.address).toBe('ee:ee:ee:ee:ee:ee');
      expect(link!.ifalias).toBe(`weir/${NETWORK}//${c.name}/${c.id}`);

      // The pod side, seen from inside the container.
      const addr = s.exec(c.name, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']);
      expect(addr.code, show(addr)).toBe(0);
      expect(addr.stdout).toContain(`inet ${c.ip}/32 `);
      const route = s.exec(c.name, ['ip', '-4', 'route', 'show']);
      expect(route.stdout).toMatch(/^default via 169\.254\.1\.1 dev eth0/m);
    }
    expect(a.ip).not.toBe(b.ip);
    expect(s.ipamAddressFiles()).toEqual([a.ip, b.ip].sort());
    // Routed pods need forwarding in the namespace the plugin ran in.
    expect(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim()).toBe('1');

    // Pod to pod through the root namespace, both ways; each answer names its server.
    const ab = fetchFrom(A, `http://${b.ip}:8080/`);
    expect(ab.code, `${A} -> ${B}: ${show(ab)}`).toBe(0);
    expect(ab.stdout).toBe(`${B}\n`);
    const ba = fetchFrom(B, `http://${a.ip}:8080/`);
    expect(ba.code, `${B} -> ${A}: ${show(ba)}`).toBe(0);
    expect(ba.stdout).toBe(`${A}\n`);
  });

  it('publishes a port through the chained portmap (-p 18080:8080)', () => {
    const s = sandbox();
    const { b } = startPair();
    const host = hostAddress(POD_CIDR);
    const url = `http://${host}:${HOST_PORT}/`;

    // portmap got the mapping (runtimeConfig.portMappings) and DNATs it to B.
    const nat = sh('iptables-save', ['-t', 'nat']);
    expect(nat).toContain(`--to-destination ${b.ip}:8080`);

    // From a third container on the network: pod -> host address -> DNAT -> pod B.
    const before = s.ipamAddressFiles();
    const c = retry(() => s.runOnce(C, wgetArgs(url), [], 20_000), 10_000, 200);
    expect(c.code, `${C} -> ${url}: ${show(c)}`).toBe(0);
    expect(c.stdout).toBe(`${B}\n`);
    // `--rm` ran DEL: C's address is free again, and its veth is gone.
    expect(s.ipamAddressFiles()).toEqual(before);
    expect(hostLinks().filter((l) => l.ifalias?.startsWith(`weir/${NETWORK}//${C}/`))).toEqual([]);

    // From the root namespace itself, to its own address (OUTPUT DNAT) and to localhost
    // (portmap sets route_localnet on the host veth weir reported in its result).
    const fromHost = fetchFromHost(url);
    expect(fromHost.code, `root ns -> ${url}: ${show(fromHost)}`).toBe(0);
    expect(fromHost.stdout).toBe(`${B}\n`);
    const local = fetchFromHost(`http://127.0.0.1:${HOST_PORT}/`);
    expect(local.code, `root ns -> 127.0.0.1:${HOST_PORT}: ${show(local)}`).toBe(0);
    expect(local.stdout).toBe(`${B}\n`);

    // Hairpin: B reaches itself through its own published port (portmap marks
    // and masquerades it, as the host veth has no address of its own).
    const hairpin = fetchFrom(B, url);
    expect(hairpin.code, `${B} -> ${url}: ${show(hairpin)}`).toBe(0);
    expect(hairpin.stdout).toBe(`${B}\n`);
  });

  it('podman rm -f frees the addresses and removes the veths and host routes', () => {
    const s = sandbox();
    const { a, b } = startPair();
    const r = s.podman(['rm', '--force', '--time', '0', A, B]);
    expect(r.code, show(r)).toBe(0);
    expect(s.containerIds()).toEqual([]);

    // IPAM: no address file left (the lock and the round-robin hint may stay).
    expect(s.ipamAddressFiles()).toEqual([]);
    const names = new Set(hostLinks().map((l) => l.ifname));
    for (const c of [a, b]) {
      const veth = hostVethName(c.id, 'eth0');
      expect(names.has(veth), `host veth ${veth} of ${c.name}`).toBe(false);
      expect(hostRoutesTo(c.ip), `host route to ${c.ip}`).toEqual([]);
      expect(fs.existsSync(c.sandboxKey), `netns ${c.sandboxKey}`).toBe(false);
      expect(fs.existsSync(`${CNI_RESULTS}/${NETWORK}-${c.id}-eth0`), 'libcni cached result').toBe(false);
    }
    expect(
      hostLinks()
        .filter((l) => l.ifalias?.startsWith(`weir/${NETWORK}/`))
        .map((l) => l.ifname),
    ).toEqual([]);
    // Only the test's guard route is left in the pod range.
    expect(routesInCidr()).toEqual([`unreachable ${POD_CIDR}`]);
    // portmap's DEL removed B's DNAT.
    expect(sh('iptables-save', ['-t', 'nat'])).not.toContain(b.ip);
    // Nothing answers on the mapped port any more.
    const gone = spawnSync('/bin/busybox', wgetArgs(`http://127.0.0.1:${HOST_PORT}/`), { encoding: 'utf8', timeout: 10_000 });
    expect(gone.status).not.toBe(0);
  });
});
