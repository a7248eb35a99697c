// The client of the domainNames tests: in a pod's network namespace, for
// each name, one DNS query, then at once one TCP connection to the answer's
// address. Its connect timeout is shorter than the SYN's first
// retransmission (1 s), so a connection counts as made only when its first
// SYN got through: an address learned late shows as a refusal, not as a
// delay. Node runs it with `-e`, the names as arguments; it prints one JSON
// line per lookup.

export interface Lookup {
  name: string;
  /** False when no answer came within 2 s. */
  answered: boolean;
  /** The first A record's address; absent for NXDOMAIN or an empty answer. */
  ip?: string;
  /** The connection to `ip` (null when asked not to connect). */
  ok?: boolean | null;
  dnsMs: number;
  connectMs?: number;
}

/**
 * The client's source. `RESOLVER` in its environment overrides the resolver,
 * `NO_CONNECT=1` only looks up. The answer is read record by record (the
 * first A record), so a resolver that adds authority or extra records is read
 * right.
 */
export function dnsClientScript(resolver: string, port: number): string {
  return `
const dgram = require('dgram'), net = require('net');
const names = process.argv.slice(1);
const sock = dgram.createSocket('udp4');
let pending;
sock.on('message', (m) => pending && pending(m));
const query = (name) => new Promise((res) => {
  const id = Math.floor(Math.random() * 65535);
  const q = Buffer.concat([Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
  const t = setTimeout(() => { pending = undefined; res(undefined); }, 2000);
  pending = (m) => { if (m.readUInt16BE(0) !== id) return; clearTimeout(t); pending = undefined; res(m); };
  sock.send(q, 53, process.env.RESOLVER || '${resolver}');
});
const skipName = (m, o) => { while (m[o] && (m[o] & 0xc0) !== 0xc0) o += 1 + m[o]; return m[o] ? o + 2 : o + 1; };
const firstA = (m) => {
  let o = 12;
  for (let i = m.readUInt16BE(4); i > 0; i--) o = skipName(m, o) + 4;
  for (let i = m.readUInt16BE(6); i > 0; i--) {
    o = skipName(m, o);
    const type = m.readUInt16BE(o), len = m.readUInt16BE(o + 8);
    if (type === 1 && len === 4) return [...m.subarray(o + 10, o + 14)].join('.');
    o += 10 + len;
  }
};
const connect = (ip) => new Promise((res) => {
  const c = net.connect({ host: ip, port: ${port} });
  const t = setTimeout(() => { c.destroy(); res(false); }, 900);
  c.on('connect', () => { clearTimeout(t); c.destroy(); res(true); });
  c.on('error', () => { clearTimeout(t); res(false); });
});
(async () => {
  for (const name of names) {
    const t0 = performance.now();
    const m = await query(name);
    const t1 = performance.now();
    const ip = m && firstA(m);
    if (!ip) { console.log(JSON.stringify({ name, answered: !!m, dnsMs: t1 - t0 })); continue; }
    const ok = process.env.NO_CONNECT ? null : await connect(ip);
    console.log(JSON.stringify({ name, answered: true, ip, ok, dnsMs: t1 - t0, connectMs: performance.now() - t1 }));
  }
  sock.close();
})();
`;
}

/** One connection attempt with the client's timeout: exits 0 when it connects, 1 otherwise. */
export const connectOnceScript = (ip: string, port: number): string =>
  `const c=require('net').connect(${port},'${ip}');setTimeout(()=>process.exit(1),900);c.on('connect',()=>process.exit(0));c.on('error',()=>process.exit(1))`;

/** The client's output: one Lookup per line. */
export const parseLookups = (stdout: string): Lookup[] =>
  stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Lookup);

/** The q-quantile of xs (nearest rank below). */
export const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};
