// Entry point: the prober, run inside the SOURCE pod's netns:
//
//   ip netns exec POD node lab/probe/probe-main.ts --timeout 1000 \
//     --target 10.244.1.6:80/TCP --target 10.244.1.6:80/UDP --target '[fd00::6]:80/SCTP'
//   echo '["10.244.1.6:80/TCP", {"ip":"10.244.1.7","port":81,"protocol":"SCTP"}]' | ... probe-main.ts --stdin
//
// Probes all targets in parallel and prints one JSON line per target as its
// verdict comes in: {"index":0,"target":"10.244.1.6:80/TCP","ip":...,"port":80,
// "protocol":"TCP","connected":true,"name":"y/b","ms":2}. SCTP lines mean
// "INIT sent" and carry the `tag` to look for in the destination's observer.
// Exit status: 0 once every target was probed (whatever the verdicts), 2 on
// bad usage, 1 on an unexpected failure.
import { parseArgs } from 'node:util';
import { emitLine, readAllStdin, runMain } from './cli.ts';
import { DEFAULT_TIMEOUT_MS, type ProbeTarget, parseTarget, parseTargetsJson, probeAll } from './client.ts';

const USAGE = 'usage: probe-main.ts [--timeout MS] (--target IP:PORT/PROTO ... | --stdin)';

const OPTIONS = {
  target: { type: 'string', multiple: true, short: 't' },
  stdin: { type: 'boolean' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function main(): Promise<number> {
  let targets: ProbeTarget[];
  let timeoutMs: number;
  try {
    const args = parseArgs({ options: OPTIONS, strict: true, allowPositionals: false }).values;
    if (args.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    targets = (args.target ?? []).map(parseTarget);
    if (args.stdin) targets.push(...parseTargetsJson(await readAllStdin()));
    if (targets.length === 0) throw new Error('no targets: give --target or --stdin');
    timeoutMs = args.timeout === undefined ? DEFAULT_TIMEOUT_MS : Number(args.timeout);
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 600_000) throw new Error(`bad --timeout ${args.timeout}`);
  } catch (e) {
    process.stderr.write(`probe-main: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  await probeAll(targets, timeoutMs, (r, index) => emitLine({ index, ...r }));
  return 0;
}

runMain('probe-main', main);
