// The control plane's PKI, made with the openssl CLI (Node's crypto can make
// keys but cannot sign X.509 certificates). ECDSA P-256 keys throughout:
// generating them is instant, and Kubernetes accepts them for serving, client
// and service-account keys alike.
//
// Layout under DIR (the caller's `dir/pki`):
//   ca.crt ca.key                  the cluster CA (client CA and serving CA)
//   NAME.crt NAME.key NAME.cnf     leaf certificates; NAME.cnf is the openssl
//                                  config the certificate was made from
//   sa.key sa.pub                  service-account token signing key pair
//
// Idempotent: a file set that exists is reused as long as its config is the
// same, so a control plane restarted on the same dir keeps its identities;
// a changed subject or SAN list re-issues that certificate only, and a new CA
// re-issues every leaf.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ControlPlaneError } from './process.ts';

export interface KeyPair {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  ca: KeyPair;
  /** Service-account token signing key (private) and verification key (public). */
  saKey: string;
  saPub: string;
}

export interface CertRequest {
  /** Subject CN (the user name, for a client certificate). */
  cn: string;
  /** Subject O values (the groups, for a client certificate). */
  orgs?: string[];
  usage: 'client' | 'server' | 'both';
  /** Subject alternative names: IP addresses and DNS names, told apart by their form. */
  sans?: string[];
}

function openssl(args: string[], input?: string): string {
  const r = spawnSync('openssl', args, { encoding: 'utf8', input: input ?? '', timeout: 30_000 });
  if (r.error) throw new ControlPlaneError(`openssl ${args[0]}: ${r.error.message} (is the openssl CLI installed? scripts/setup installs it)`);
  if (r.status !== 0) throw new ControlPlaneError(`openssl ${args.join(' ')}: exit ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DAYS = '3650';

/** `/CN=x/O=a/O=b`, with openssl's escaping of `/` and `\`. */
function subject(cn: string, orgs: string[] = []): string {
  const esc = (v: string): string => {
    if (v === '' || /[\n\r]/.test(v)) throw new ControlPlaneError(`bad certificate subject value ${JSON.stringify(v)}`);
    return v.replace(/[\\/]/g, (c) => `\\${c}`);
  };
  return `/CN=${esc(cn)}${orgs.map((o) => `/O=${esc(o)}`).join('')}`;
}

function sanList(sans: string[]): string {
  return sans.map((s) => (net.isIP(s) ? `IP:${s}` : `DNS:${s}`)).join(', ');
}

function leafConfig(req: CertRequest): string {
  const eku = { client: 'clientAuth', server: 'serverAuth', both: 'serverAuth, clientAuth' }[req.usage];
  const lines = [
    `# subject ${subject(req.cn, req.orgs)}`,
    '[req]',
    'distinguished_name = dn',
    '[dn]',
    '[v3]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    `extendedKeyUsage = ${eku}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
  ];
  if (req.sans && req.sans.length > 0) lines.push(`subjectAltName = ${sanList(req.sans)}`);
  return `${lines.join('\n')}\n`;
}

const CA_CONFIG = [
  '[req]',
  'distinguished_name = dn',
  'x509_extensions = v3',
  '[dn]',
  '[v3]',
  'basicConstraints = critical, CA:TRUE',
  'keyUsage = critical, digitalSignature, keyCertSign, cRLSign',
  'subjectKeyIdentifier = hash',
  '',
].join('\n');

const exists = (...files: string[]): boolean => files.every((f) => fs.existsSync(f));

/** Creates (or reuses) the CA and the service-account key pair in `dir`. */
export function ensureCa(dir: string): Pki & { fresh: boolean } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = { cert: path.join(dir, 'ca.crt'), key: path.join(dir, 'ca.key') };
  let fresh = false;
  if (!exists(ca.cert, ca.key)) {
    const cnf = path.join(dir, 'ca.cnf');
    fs.writeFileSync(cnf, CA_CONFIG);
    openssl(['req', '-x509', '-new', ...EC, '-keyout', ca.key, '-out', ca.cert, '-days', DAYS, '-subj', '/CN=weir-lab-ca', '-config', cnf]);
    fresh = true;
  }
  const saKey = path.join(dir, 'sa.key');
  const saPub = path.join(dir, 'sa.pub');
  if (!exists(saKey, saPub)) {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', saKey]);
    openssl(['pkey', '-in', saKey, '-pubout', '-out', saPub]);
  }
  for (const f of [ca.key, saKey]) fs.chmodSync(f, 0o600);
  return { dir, ca, saKey, saPub, fresh };
}

/** Issues `dir/NAME.{crt,key}` signed by the CA, unless an identical one exists (and `force` is off). */
export function issueCert(pki: Pki, name: string, req: CertRequest, force = false): KeyPair {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(name)) throw new ControlPlaneError(`bad certificate file name ${JSON.stringify(name)}`);
  const pair = { cert: path.join(pki.dir, `${name}.crt`), key: path.join(pki.dir, `${name}.key`) };
  const cnf = path.join(pki.dir, `${name}.cnf`);
  const config = leafConfig(req);
  if (!force && exists(pair.cert, pair.key, cnf) && fs.readFileSync(cnf, 'utf8') === config) return pair;
  fs.writeFileSync(cnf, config);
  const csr = path.join(pki.dir, `${name}.csr`);
  openssl(['req', '-new', ...EC, '-keyout', pair.key, '-out', csr, '-subj', subject(req.cn, req.orgs), '-config', cnf]);
  fs.chmodSync(pair.key, 0o600);
  const serial = `0x${randomBytes(16)
    .toString('hex')
    .replace(/^[89a-f]/, '1')}`;
  openssl([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    pki.ca.cert,
    '-CAkey',
    pki.ca.key,
    '-set_serial',
    serial,
    '-days',
    DAYS,
    '-out',
    pair.cert,
    '-extfile',
    cnf,
    '-extensions',
    'v3',
  ]);
  fs.rmSync(csr, { force: true });
  return pair;
}

/** Subject and SANs of a certificate, as openssl prints them (for tests and diagnostics). */
export function describeCert(cert: string): string {
  return openssl(['x509', '-in', cert, '-noout', '-subject', '-ext', 'subjectAltName,extendedKeyUsage']);
}

// ---- addresses ----

function parseIp(addr: string): { bits: number; value: bigint } {
  const kind = net.isIP(addr);
  if (kind === 4) return { bits: 32, value: addr.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
  if (kind === 6) {
    if (addr.includes('.')) throw new ControlPlaneError(`IPv4-mapped IPv6 address not supported: ${addr}`);
    const [head = '', tail] = addr.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return { bits: 128, value: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
  }
  throw new ControlPlaneError(`bad IP address ${JSON.stringify(addr)}`);
}

function formatIp(bits: number, value: bigint): string {
  if (bits === 32) return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  // Not compressed with `::`: openssl and Go both accept the long form.
  return groups.join(':');
}

/** The first usable address of a CIDR: `10.96.0.0/16` -> `10.96.0.1` (the `kubernetes` Service's ClusterIP). */
export function firstAddress(cidr: string): string {
  const [addr = '', lenText = ''] = cidr.trim().split('/');
  const { bits, value } = parseIp(addr);
  const len = Number(lenText);
  if (!/^\d+$/.test(lenText) || len > bits || len >= bits - 1) throw new ControlPlaneError(`bad CIDR ${JSON.stringify(cidr)}`);
  const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n);
  return formatIp(bits, (value & mask) + 1n);
}
