// Readiness probes, run the way kubelet runs them: from the node (its network
// namespace) against the pod's IP. httpGet with curl, tcpSocket with bash's
// /dev/tcp; exec probes are not run (they count as success).
import { runCommand, tool } from './proc.ts';

export interface ProbeTarget {
  nodeNetns: string;
  podIP: string;
  /** The container's declared ports, for named probe ports. */
  ports: { name?: string; containerPort: number }[];
}

function resolvePort(port: unknown, t: ProbeTarget): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port === 'string') {
    if (/^\d+$/.test(port)) return Number(port);
    return t.ports.find((p) => p.name === port)?.containerPort;
  }
  return undefined;
}

/** One probe attempt; true on success. */
export async function runProbe(probe: any, t: ProbeTarget): Promise<boolean> {
  const timeoutS = Math.max(1, Number(probe?.timeoutSeconds ?? 1));
  if (probe?.httpGet) {
    const g = probe.httpGet;
    const port = resolvePort(g.port, t);
    if (!port) return false;
    const host = g.host || t.podIP;
    const scheme = String(g.scheme ?? 'HTTP').toLowerCase();
    const h = host.includes(':') ? `[${host}]` : host;
    const p = String(g.path ?? '/');
    const url = `${scheme}://${h}:${port}${p.startsWith('/') ? p : `/${p}`}`;
    const headers = ((g.httpHeaders ?? []) as { name: string; value: string }[]).flatMap((x) => ['-H', `${x.name}: ${x.value}`]);
    const r = await runCommand(
      [tool('ip'), 'netns', 'exec', t.nodeNetns, tool('curl'), '-sS', '-k', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', String(timeoutS), ...headers, url],
      { timeoutMs: (timeoutS + 5) * 1000 },
    );
    const code = Number(r.stdout.trim());
    return code >= 200 && code < 400;
  }
  if (probe?.tcpSocket) {
    const port = resolvePort(probe.tcpSocket.port, t);
    if (!port) return false;
    const host = probe.tcpSocket.host || t.podIP;
    const r = await runCommand(
      [tool('ip'), 'netns', 'exec', t.nodeNetns, tool('timeout'), String(timeoutS), tool('bash'), '-c', 'exec 3<>"/dev/tcp/$0/$1"', host, String(port)],
      { timeoutMs: (timeoutS + 5) * 1000 },
    );
    return r.code === 0;
  }
  if (probe?.grpc) {
    const port = resolvePort(probe.grpc.port, t);
    if (!port) return false;
    const r = await runCommand([tool('ip'), 'netns', 'exec', t.nodeNetns, tool('timeout'), String(timeoutS), tool('bash'), '-c', 'exec 3<>"/dev/tcp/$0/$1"', t.podIP, String(port)]);
    return r.code === 0;
  }
  return true; // exec: not run in the lab
}
