// kubeconfig files: one cluster, one user, one context. Credentials are
// referenced by path (client certificates) or inline (bearer tokens). String
// values are written as JSON strings, which YAML reads as double-quoted
// scalars.
import fs from 'node:fs';
import path from 'node:path';

export type KubeconfigUser = { clientCertificate: string; clientKey: string } | { token: string };

export interface KubeconfigSpec {
  server: string;
  caFile: string;
  /** Name of the user entry, e.g. `admin`. */
  user: string;
  credentials: KubeconfigUser;
  clusterName?: string;
}

export function renderKubeconfig(spec: KubeconfigSpec): string {
  const q = (s: string): string => JSON.stringify(s);
  const cluster = spec.clusterName ?? 'weir-lab';
  const context = `${spec.user}@${cluster}`;
  const creds =
    'token' in spec.credentials
      ? [`    token: ${q(spec.credentials.token)}`]
      : [`    client-certificate: ${q(spec.credentials.clientCertificate)}`, `    client-key: ${q(spec.credentials.clientKey)}`];
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${q(cluster)}`,
    '  cluster:',
    `    server: ${q(spec.server)}`,
    `    certificate-authority: ${q(spec.caFile)}`,
    'users:',
    `- name: ${q(spec.user)}`,
    '  user:',
    ...creds,
    'contexts:',
    `- name: ${q(context)}`,
    '  context:',
    `    cluster: ${q(cluster)}`,
    `    user: ${q(spec.user)}`,
    `current-context: ${q(context)}`,
    'preferences: {}',
    '',
  ].join('\n');
}

/** Writes a kubeconfig (mode 0600, atomically) and returns its path. */
export function writeKubeconfig(file: string, spec: KubeconfigSpec): string {
  const abs = path.resolve(file);
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  const tmp = `${abs}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, renderKubeconfig(spec), { mode: 0o600 });
  fs.renameSync(tmp, abs);
  return abs;
}
