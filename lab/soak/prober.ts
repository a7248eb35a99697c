// The prober: one probe loop (netns-script.ts, PROBE_STREAM) in each prober
// pod's network namespace, one prober pod per node, so that every probe
// crosses from one node's table to another's (or stays on one). Each loop
// connects to every address of every soak pod on each of PORTS, every
// INTERVAL_MS; the targets follow the API (the pods timeline) as pods come
// and go, including pods being deleted (their address must not let through
// what policy forbids the pod that gets it next).
import type { ProbeResult } from './judge.ts';
import { NetnsScript, PROBE_STREAM } from './netns-script.ts';
import { PORTS, SOAK_LABEL } from './scenario.ts';
import type { KObject, Version } from './timeline.ts';

/** A round over the targets every 2 s: ~50–150 connects per second in all at the soak's pod counts. */
export const INTERVAL_MS = 2000;
/** A connect not answered within this is a block: policy drops, it does not reject. */
export const CONNECT_TIMEOUT_MS = 1000;

export interface ProberPod {
  /** namespace/name */
  id: string;
  netnsPath: string;
}

interface Target {
  ip: string;
  port: number;
}

/** The targets in a pods version: every address of every soak pod that has one, on each port. */
export function targetsOf(pods: Version): Target[] {
  const out: Target[] = [];
  for (const o of pods.objects.values()) {
    const p = o as KObject & { status?: { podIPs?: { ip: string }[] }; spec?: { hostNetwork?: boolean } };
    if (p.metadata?.labels?.[SOAK_LABEL] !== '1' || p.spec?.hostNetwork) continue;
    for (const { ip } of p.status?.podIPs ?? []) for (const port of PORTS) out.push({ ip, port });
  }
  return out.sort((a, b) => a.ip.localeCompare(b.ip) || a.port - b.port);
}

export class Prober {
  readonly loops: { pod: ProberPod; script: NetnsScript<Omit<ProbeResult, 'from'>> }[];
  #last = '';

  constructor(pods: readonly ProberPod[], onResult: (r: ProbeResult) => void) {
    this.loops = pods.map((pod) => ({
      pod,
      script: new NetnsScript<Omit<ProbeResult, 'from'>>(pod, PROBE_STREAM, { intervalMs: INTERVAL_MS, timeoutMs: CONNECT_TIMEOUT_MS }, (l) =>
        onResult({ ...l, from: pod.id }),
      ),
    }));
  }

  /** Hands every loop the targets of this pods version (only when they changed). */
  update(pods: Version): void {
    const targets = targetsOf(pods);
    const sig = JSON.stringify(targets);
    if (sig === this.#last) return;
    this.#last = sig;
    for (const l of this.loops) l.script.send({ targets });
  }

  /** Loops that died (a prober pod's namespace gone): the run cannot vouch for its probes then. */
  dead(): string[] {
    return this.loops.filter((l) => !l.script.running).map((l) => `${l.pod.id}: probe loop exited (${l.script.stderr.trim().slice(0, 200) || 'no output'})`);
  }

  async stop(): Promise<void> {
    await Promise.all(this.loops.map((l) => l.script.stop()));
  }
}
