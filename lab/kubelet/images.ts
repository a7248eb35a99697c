// "The image": what process a container of the lab runs. The lab has no
// images and no container runtime; each image maps to a host command:
//
//   agnhost (any image naming agnhost, e.g. registry.k8s.io/e2e-test-images/agnhost:2.53)
//       <k8sBinDir>/agnhost ARGS       (container.command, when set, runs instead,
//                                        with .../agnhost mapped to the pinned binary)
//   weir:TAG / localhost/weir:TAG       container.command + args, /usr/local/bin/X → <repo>/dist/bin/X,
//                                        in a mount namespace where <repo>/dist/bin is at
//                                        /usr/local/lib/weir and the pod's volumes at their mountPaths
//   kube-proxy (any image naming kube-proxy)
//                                        the same, /usr/local/bin/kube-proxy → <k8sBinDir>/kube-proxy
//   anything else (nginx, curl, busybox, postgres, ...)
//       netprobe: node <repo>/src/probe/serve-main.ts --name NS/POD --tcp .. --udp .. --sctp ..
//       on the container's declared containerPorts (answers each connection/datagram
//       with the pod's name); no ports: sleep infinity; as an init container: `true`.
//
// Command and args get kubelet's $(VAR) expansion from the container's environment.
import os from 'node:os';
import path from 'node:path';

export type ImageKind = 'agnhost' | 'weir' | 'kube-proxy' | 'netprobe' | 'sleep' | 'noop';

export interface ImageContext {
  repo: string;
  k8sBinDir: string;
}

export interface ContainerPlan {
  kind: ImageKind;
  /** Host argv (absolute executable). */
  argv: string[];
  /** Whether the pod's volumes are mounted at their mountPaths (image kinds that read files). */
  mountsVolumes: boolean;
  /** Image-layout bind mounts (host source → path inside). */
  imageMounts: { src: string; dst: string }[];
  /** The process is "started" once its log shows this text (netprobe prints a ready event). */
  readyText?: string;
  /** Extra environment the stand-in adds (not part of the pod spec). */
  extraEnv: Record<string, string>;
}

export const isWeirImage = (image: string): boolean => /^(localhost\/)?weir(:|@|$)/.test(image);
export const isAgnhostImage = (image: string): boolean => image.includes('agnhost');
export const isKubeProxyImage = (image: string): boolean => /(^|\/)kube-proxy(:|@|$)/.test(image);

export function imageKind(image: string): 'agnhost' | 'weir' | 'kube-proxy' | 'other' {
  if (isWeirImage(image)) return 'weir';
  if (isAgnhostImage(image)) return 'agnhost';
  if (isKubeProxyImage(image)) return 'kube-proxy';
  return 'other';
}

/**
 * kubelet's $(VAR) expansion (third_party/forked/golang/expansion): `$(NAME)`
 * becomes the value when NAME is defined and stays as written otherwise;
 * `$$` is an escaped `$`.
 */
export function expandVars(input: string, vars: ReadonlyMap<string, string> | Record<string, string>): string {
  const get = (k: string): string | undefined => (vars instanceof Map ? vars.get(k) : (vars as Record<string, string>)[k]);
  let out = '';
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== '$' || i + 1 >= input.length) {
      out += c;
      continue;
    }
    const n = input[i + 1];
    if (n === '$') {
      out += '$';
      i++;
    } else if (n === '(') {
      const close = input.indexOf(')', i + 2);
      if (close < 0) {
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, close);
      const v = name ? get(name) : undefined;
      out += v ?? `$(${name})`;
      i = close;
    } else {
      out += `$${n}`;
      i++;
    }
  }
  return out;
}

export interface PortsByProtocol {
  tcp: number[];
  udp: number[];
  sctp: number[];
}

export function declaredPorts(container: any): PortsByProtocol {
  const out: PortsByProtocol = { tcp: [], udp: [], sctp: [] };
  for (const p of (container?.ports ?? []) as { containerPort?: number; protocol?: string }[]) {
    const port = Number(p.containerPort);
    if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
    const proto = String(p.protocol ?? 'TCP').toLowerCase() as keyof PortsByProtocol;
    if (!(proto in out)) continue;
    if (!out[proto].includes(port)) out[proto].push(port);
  }
  return out;
}

/** /usr/local/bin/X (or a bare X) → DIR/X; anything else unchanged. */
function mapBin(cmd: string, dir: string, names?: readonly string[]): string {
  const base = path.posix.basename(cmd);
  if ((cmd === base || cmd === `/usr/local/bin/${base}` || cmd === `/${base}`) && (!names || names.includes(base))) return path.join(dir, base);
  return cmd;
}

/**
 * The host command of a container. `env` is the container's final
 * environment (for $(VAR) expansion); `init` says it is an init container.
 */
export function planContainer(pod: any, container: any, env: ReadonlyMap<string, string>, ctx: ImageContext, init = false): ContainerPlan {
  const image = String(container?.image ?? '');
  const command = ((container?.command ?? []) as string[]).map((s) => expandVars(String(s), env));
  const args = ((container?.args ?? []) as string[]).map((s) => expandVars(String(s), env));
  const base = { mountsVolumes: false, imageMounts: [], extraEnv: {} };
  switch (imageKind(image)) {
    case 'agnhost': {
      const agnhost = path.join(ctx.k8sBinDir, 'agnhost');
      if (command.length > 0) {
        const [c0, ...rest] = command as [string, ...string[]];
        const exe = path.posix.basename(c0) === 'agnhost' ? agnhost : c0;
        return { ...base, kind: 'agnhost', argv: [exe, ...rest, ...args] };
      }
      return { ...base, kind: 'agnhost', argv: [agnhost, ...args] };
    }
    case 'weir': {
      const dist = path.join(ctx.repo, 'dist/bin');
      const cmd = command.length > 0 ? command : ['/usr/local/bin/weir-agent'];
      const [c0, ...rest] = cmd as [string, ...string[]];
      return {
        ...base,
        kind: 'weir',
        argv: [mapBin(c0, dist, ['weir', 'weir-agent']), ...rest, ...args],
        mountsVolumes: true,
        imageMounts: [{ src: dist, dst: '/usr/local/lib/weir' }],
      };
    }
    case 'kube-proxy': {
      const cmd = command.length > 0 ? command : ['/usr/local/bin/kube-proxy'];
      const [c0, ...rest] = cmd as [string, ...string[]];
      return { ...base, kind: 'kube-proxy', argv: [mapBin(c0, ctx.k8sBinDir, ['kube-proxy']), ...rest, ...args], mountsVolumes: true };
    }
    default: {
      if (init) return { ...base, kind: 'noop', argv: ['/bin/true'] };
      const ports = declaredPorts(container);
      if (ports.tcp.length + ports.udp.length + ports.sctp.length === 0) return { ...base, kind: 'sleep', argv: ['/usr/bin/sleep', 'infinity'] };
      const list = (flag: string, p: number[]): string[] => (p.length ? [flag, p.join(',')] : []);
      const name = `${pod?.metadata?.namespace ?? 'default'}/${pod?.metadata?.name ?? ''}`;
      return {
        ...base,
        kind: 'netprobe',
        argv: [
          path.join(ctx.repo, 'node_modules/.bin/node'),
          path.join(ctx.repo, 'src/probe/serve-main.ts'),
          '--name',
          name,
          ...list('--tcp', ports.tcp),
          ...list('--udp', ports.udp),
          ...list('--sctp', ports.sctp),
        ],
        readyText: '"event":"ready"',
        extraEnv: { NODE_COMPILE_CACHE: process.env['NODE_COMPILE_CACHE'] ?? path.join(os.tmpdir(), 'weir-probe-compile-cache') },
      };
    }
  }
}
