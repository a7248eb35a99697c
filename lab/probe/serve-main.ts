// Entry point: the probe server for one pod. Start it inside the pod's netns:
//
//   ip netns exec POD node lab/probe/serve-main.ts --name x/a --tcp 80,81 --udp 80,81 --sctp 80,81
//
// stdout is a stream of JSON lines: one `{"event":"ready",...}` once every
// listener is bound, then `{"event":"sctp-init","src":...,"dstPort":80,"tag":N,...}`
// for each SCTP INIT to a declared port. Exits 0 on SIGTERM/SIGINT (and on
// stdin EOF with --exit-on-stdin-eof, so a parent that dies takes it along);
// exits 1 with `{"event":"error",...}` when a listener cannot be bound.
import { parseArgs } from 'node:util';
import { emitLine, parsePortList, runMain } from './cli.ts';
import { startServer } from './server.ts';

const USAGE = 'usage: serve-main.ts --name NAME [--tcp P,P] [--udp P,P] [--sctp P,P] [--poll-ms N (observer poll period)] [--exit-on-stdin-eof]';

const OPTIONS = {
  name: { type: 'string' },
  tcp: { type: 'string', multiple: true },
  udp: { type: 'string', multiple: true },
  sctp: { type: 'string', multiple: true },
  'poll-ms': { type: 'string' },
  'exit-on-stdin-eof': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

async function main(): Promise<number> {
  let args: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true; allowPositionals: false }>>['values'];
  try {
    args = parseArgs({ options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!args.name) {
    process.stderr.write(`--name is required\n${USAGE}\n`);
    return 2;
  }
  const pollMs = args['poll-ms'] === undefined ? undefined : Number(args['poll-ms']);
  if (pollMs !== undefined && !(Number.isInteger(pollMs) && pollMs >= 1 && pollMs <= 10_000)) {
    process.stderr.write(`bad --poll-ms ${args['poll-ms']}\n${USAGE}\n`);
    return 2;
  }
  let ports: Record<'tcp' | 'udp' | 'sctp', ReturnType<typeof parsePortList>>;
  try {
    ports = { tcp: parsePortList(args.tcp, '--tcp'), udp: parsePortList(args.udp, '--udp'), sctp: parsePortList(args.sctp, '--sctp') };
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(
      { name: args.name, ...ports, ...(pollMs !== undefined ? { pollMs } : {}) },
      (ev) => emitLine(ev),
      (e) => {
        // An observer that stopped would report every SCTP probe as blocked: die loudly.
        emitLine({ event: 'error', message: `sctp observer: ${String((e as Error).message ?? e)}` });
        process.exit(1);
      },
    );
  } catch (e) {
    emitLine({ event: 'error', message: String((e as Error).message ?? e) });
    process.stderr.write(`serve-main: ${String(e)}\n`);
    return 1;
  }
  emitLine(server.ready);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
    if (args['exit-on-stdin-eof']) {
      process.stdin.on('data', () => {});
      process.stdin.once('end', resolve);
      process.stdin.once('error', () => resolve());
    }
  });
  await server.close();
  return 0;
}

runMain('serve-main', main);
