// What kubelet derives from a pod spec before it starts a container: the
// environment (kubelet's makeEnvironmentVariables, in its order), the
// downward-API field values, and the volumes (hostPath on the node's own
// filesystem, emptyDir, configMap, secret, downwardAPI, projected — the last
// covers the service-account volume `kube-api-access-*` that admission adds).
import fs from 'node:fs';
import path from 'node:path';
import { expandVars } from './images.ts';

export interface FieldContext {
  nodeName: string;
  hostIP: string;
  podIPs: string[];
}

/** Host paths that stay the real machine's (kernel interfaces), not the node's state root. */
const PASSTHROUGH_HOST_PATHS = ['/lib/modules', '/usr/lib/modules', '/sys', '/proc', '/dev'];

/** Where a hostPath of the pod lives for this node: under its state root, except kernel interfaces. */
export function hostPathOnNode(root: string, p: string): string {
  const norm = path.posix.normalize(p);
  if (PASSTHROUGH_HOST_PATHS.some((x) => norm === x || norm.startsWith(`${x}/`))) return norm;
  return path.join(root, norm);
}

const labelRef = /^metadata\.(labels|annotations)\['(.+)'\]$/;

function formatMap(m: Record<string, string> | undefined): string {
  return Object.entries(m ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join('\n');
}

/** The value of a downward-API fieldRef, or undefined when unsupported. */
export function fieldValue(pod: any, fieldPath: string, ctx: FieldContext): string | undefined {
  const md = pod?.metadata ?? {};
  switch (fieldPath) {
    case 'metadata.name':
      return md.name;
    case 'metadata.namespace':
      return md.namespace;
    case 'metadata.uid':
      return md.uid;
    case 'metadata.labels':
      return formatMap(md.labels);
    case 'metadata.annotations':
      return formatMap(md.annotations);
    case 'spec.nodeName':
      return ctx.nodeName;
    case 'spec.serviceAccountName':
      return pod?.spec?.serviceAccountName ?? 'default';
    case 'status.hostIP':
      return ctx.hostIP;
    case 'status.hostIPs':
      return ctx.hostIP;
    case 'status.podIP':
      return ctx.podIPs[0] ?? '';
    case 'status.podIPs':
      return ctx.podIPs.join(',');
  }
  const m = labelRef.exec(fieldPath);
  if (m) return (md[m[1] as string] ?? {})[m[2] as string] ?? '';
  return undefined;
}

const GI = 1024 ** 3;
/** resourceFieldRef, roughly: the container's limit (or request), else the node's allocatable (2 CPU, 8 GiB). */
function resourceValue(container: any, resource: string): string {
  const [kind, name] = resource.split('.') as [string, string];
  const v = container?.resources?.[kind]?.[name] as string | undefined;
  if (name === 'cpu') {
    if (!v) return kind === 'requests' ? '0' : '2';
    const cores = v.endsWith('m') ? Number(v.slice(0, -1)) / 1000 : Number(v);
    return String(Math.max(1, Math.ceil(cores)));
  }
  if (name === 'memory' || name === 'ephemeral-storage') {
    if (!v) return kind === 'requests' ? '0' : String(8 * GI);
    const m = /^(\d+(?:\.\d+)?)([KMGTE]i?|[kmgte])?$/.exec(v);
    if (!m) return v;
    const mult: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: GI, Ti: 1024 ** 4, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
    return String(Math.round(Number(m[1]) * (m[2] ? (mult[m[2]] ?? 1) : 1)));
  }
  return v ?? '0';
}

export type ObjectFetcher = (kind: 'configmaps' | 'secrets', namespace: string, name: string) => Promise<any | undefined>;

/** ConfigMap/Secret data as strings (secrets decoded). */
function objectData(kind: 'configmaps' | 'secrets', obj: any): Record<string, string> {
  const out: Record<string, string> = {};
  if (kind === 'secrets') {
    for (const [k, v] of Object.entries((obj?.data ?? {}) as Record<string, string>)) out[k] = Buffer.from(v, 'base64').toString('utf8');
    for (const [k, v] of Object.entries((obj?.stringData ?? {}) as Record<string, string>)) out[k] = v;
  } else {
    for (const [k, v] of Object.entries((obj?.data ?? {}) as Record<string, string>)) out[k] = v;
    for (const [k, v] of Object.entries((obj?.binaryData ?? {}) as Record<string, string>)) out[k] = Buffer.from(v, 'base64').toString('latin1');
  }
  return out;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/**
 * The container's environment in kubelet's order: envFrom, then env (values
 * expanded against what came before and the service variables), then the
 * service variables not already set.
 */
export async function containerEnv(pod: any, container: any, ctx: FieldContext, serviceEnv: Record<string, string>, fetch: ObjectFetcher): Promise<Map<string, string>> {
  const ns = pod?.metadata?.namespace ?? 'default';
  const env = new Map<string, string>();
  const cache = new Map<string, any>();
  const get = async (kind: 'configmaps' | 'secrets', name: string, optional: boolean): Promise<Record<string, string> | undefined> => {
    const key = `${kind}/${name}`;
    if (!cache.has(key)) cache.set(key, await fetch(kind, ns, name));
    const obj = cache.get(key);
    if (!obj) {
      if (optional) return undefined;
      throw new ConfigError(`${kind === 'secrets' ? 'secret' : 'configmap'} "${name}" not found`);
    }
    return objectData(kind, obj);
  };
  for (const from of (container?.envFrom ?? []) as any[]) {
    const ref = from.configMapRef ?? from.secretRef;
    if (!ref?.name) continue;
    const data = await get(from.configMapRef ? 'configmaps' : 'secrets', ref.name, !!ref.optional);
    for (const [k, v] of Object.entries(data ?? {})) env.set(`${from.prefix ?? ''}${k}`, v);
  }
  for (const e of (container?.env ?? []) as any[]) {
    if (!e?.name) continue;
    if (e.valueFrom) {
      const vf = e.valueFrom;
      if (vf.fieldRef) {
        const v = fieldValue(pod, vf.fieldRef.fieldPath, ctx);
        if (v === undefined) throw new ConfigError(`env ${e.name}: unsupported fieldRef ${vf.fieldRef.fieldPath}`);
        env.set(e.name, v);
      } else if (vf.resourceFieldRef) {
        env.set(e.name, resourceValue(container, vf.resourceFieldRef.resource));
      } else if (vf.configMapKeyRef || vf.secretKeyRef) {
        const ref = vf.configMapKeyRef ?? vf.secretKeyRef;
        const data = await get(vf.configMapKeyRef ? 'configmaps' : 'secrets', ref.name, !!ref.optional);
        if (data && ref.key in data) env.set(e.name, data[ref.key] as string);
        else if (!ref.optional) throw new ConfigError(`env ${e.name}: key "${ref.key}" not found in ${ref.name}`);
      }
    } else {
      const scope = new Map([...Object.entries(serviceEnv), ...env]);
      env.set(e.name, expandVars(String(e.value ?? ''), scope));
    }
  }
  for (const [k, v] of Object.entries(serviceEnv)) if (!env.has(k)) env.set(k, v);
  return env;
}

/** A volume prepared on the node: a directory (or file) to bind-mount. */
export interface PreparedVolume {
  src: string;
  /** The source is a file (hostPath File/FileOrCreate/Socket...). */
  file: boolean;
}

export interface VolumeContext extends FieldContext {
  /** The node's state root (hostPaths live under it). */
  root: string;
  /** Per-pod directory for emptyDir/configMap/secret/projected contents. */
  podVolumesDir: string;
  /** The cluster CA, for kube-root-ca.crt when the ConfigMap is not there yet. */
  caFile: string;
  fetch: ObjectFetcher;
  /** A bound service-account token for the pod. */
  token: (serviceAccount: string, audience: string | undefined, seconds: number) => Promise<string>;
}

function writeFiles(dir: string, files: Record<string, { data: string; mode?: number }>): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const [rel, f] of Object.entries(files)) {
    const p = path.join(dir, rel);
    if (!p.startsWith(dir + path.sep)) throw new ConfigError(`volume item path ${rel} escapes the volume`);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, f.data, { mode: f.mode ?? 0o644 });
  }
}

function itemsOf(data: Record<string, string>, items: { key: string; path: string; mode?: number }[] | undefined, what: string, optional: boolean): Record<string, { data: string; mode?: number }> {
  const out: Record<string, { data: string; mode?: number }> = {};
  if (!items || items.length === 0) {
    for (const [k, v] of Object.entries(data)) out[k] = { data: v };
    return out;
  }
  for (const it of items) {
    if (!(it.key in data)) {
      if (optional) continue;
      throw new ConfigError(`${what}: key "${it.key}" not found`);
    }
    out[it.path] = { data: data[it.key] as string, ...(it.mode !== undefined ? { mode: it.mode } : {}) };
  }
  return out;
}

async function downwardFiles(pod: any, items: any[] | undefined, ctx: VolumeContext): Promise<Record<string, { data: string }>> {
  const out: Record<string, { data: string }> = {};
  for (const it of items ?? []) {
    if (it.fieldRef) {
      const v = fieldValue(pod, it.fieldRef.fieldPath, ctx);
      if (v === undefined) throw new ConfigError(`downwardAPI ${it.path}: unsupported fieldRef ${it.fieldRef.fieldPath}`);
      out[it.path] = { data: v };
    } else if (it.resourceFieldRef) {
      const c = ((pod?.spec?.containers ?? []) as any[]).find((x) => x.name === it.resourceFieldRef.containerName);
      out[it.path] = { data: resourceValue(c, it.resourceFieldRef.resource) };
    }
  }
  return out;
}

async function configData(ctx: VolumeContext, kind: 'configmaps' | 'secrets', ns: string, name: string, optional: boolean): Promise<Record<string, string> | undefined> {
  const obj = await ctx.fetch(kind, ns, name);
  if (obj) return objectData(kind, obj);
  // The root-CA publisher may not have run yet: the CA file is the same content.
  if (kind === 'configmaps' && name === 'kube-root-ca.crt') return { 'ca.crt': fs.readFileSync(ctx.caFile, 'utf8') };
  if (optional) return undefined;
  throw new ConfigError(`${kind === 'secrets' ? 'secret' : 'configmap'} "${name}" not found`);
}

/** Prepares every volume of the pod that the stand-in supports; unknown types are skipped (not mounted). */
export async function prepareVolumes(pod: any, ctx: VolumeContext): Promise<Map<string, PreparedVolume>> {
  const ns = pod?.metadata?.namespace ?? 'default';
  const sa = pod?.spec?.serviceAccountName ?? 'default';
  const out = new Map<string, PreparedVolume>();
  for (const v of (pod?.spec?.volumes ?? []) as any[]) {
    const dir = path.join(ctx.podVolumesDir, v.name);
    if (v.hostPath) {
      const src = hostPathOnNode(ctx.root, v.hostPath.path);
      const type = String(v.hostPath.type ?? '');
      if (type === 'DirectoryOrCreate' || (type === '' && !fs.existsSync(src))) fs.mkdirSync(src, { recursive: true });
      else if (type === 'FileOrCreate' && !fs.existsSync(src)) {
        fs.mkdirSync(path.dirname(src), { recursive: true });
        fs.writeFileSync(src, '');
      } else if (type && !fs.existsSync(src)) throw new ConfigError(`hostPath type check failed: ${v.hostPath.path} (${src}) is not a ${type}`);
      out.set(v.name, { src, file: !fs.statSync(src).isDirectory() });
    } else if (v.emptyDir) {
      fs.mkdirSync(dir, { recursive: true });
      out.set(v.name, { src: dir, file: false });
    } else if (v.configMap || v.secret) {
      const kind = v.configMap ? 'configmaps' : 'secrets';
      const ref = v.configMap ?? v.secret;
      const name = v.configMap ? ref.name : ref.secretName;
      const data = await configData(ctx, kind, ns, name, !!ref.optional);
      writeFiles(dir, itemsOf(data ?? {}, ref.items, `${v.name}`, !!ref.optional));
      out.set(v.name, { src: dir, file: false });
    } else if (v.downwardAPI) {
      writeFiles(dir, await downwardFiles(pod, v.downwardAPI.items, ctx));
      out.set(v.name, { src: dir, file: false });
    } else if (v.projected) {
      const files: Record<string, { data: string; mode?: number }> = {};
      for (const s of (v.projected.sources ?? []) as any[]) {
        if (s.serviceAccountToken) {
          // The lab outlives an hour: ask for a day (the apiserver may cap it).
          const secs = Math.max(Number(s.serviceAccountToken.expirationSeconds ?? 0), 24 * 3600);
          files[s.serviceAccountToken.path] = { data: await ctx.token(sa, s.serviceAccountToken.audience, secs), mode: 0o600 };
        } else if (s.configMap || s.secret) {
          const kind = s.configMap ? 'configmaps' : 'secrets';
          const ref = s.configMap ?? s.secret;
          const data = await configData(ctx, kind, ns, ref.name, !!ref.optional);
          Object.assign(files, itemsOf(data ?? {}, ref.items, `${v.name}/${ref.name}`, !!ref.optional));
        } else if (s.downwardAPI) {
          Object.assign(files, await downwardFiles(pod, s.downwardAPI.items, ctx));
        }
      }
      writeFiles(dir, files);
      out.set(v.name, { src: dir, file: false });
    }
  }
  return out;
}

export interface BindMount {
  src: string;
  dst: string;
  readOnly: boolean;
  file: boolean;
}

/** The container's bind mounts from its volumeMounts (subPath honoured), sorted by destination depth as runtimes do. */
export function containerMounts(container: any, volumes: ReadonlyMap<string, PreparedVolume>): BindMount[] {
  const out: BindMount[] = [];
  for (const m of (container?.volumeMounts ?? []) as any[]) {
    const v = volumes.get(m.name);
    if (!v || !m.mountPath) continue;
    let src = v.src;
    let file = v.file;
    if (m.subPath) {
      src = path.join(v.src, m.subPath);
      if (!src.startsWith(v.src)) continue;
      if (!fs.existsSync(src)) fs.mkdirSync(src, { recursive: true });
      file = !fs.statSync(src).isDirectory();
    }
    out.push({ src, dst: path.posix.normalize(m.mountPath), readOnly: !!m.readOnly, file });
  }
  return out.sort((a, b) => a.dst.split('/').length - b.dst.split('/').length);
}
