// weirctl: looks at one node's weir from the node itself: the agent's status
// socket, the kernel and the plugin's IPAM store. Parse, dispatch, print;
// everything else lives in src/weirctl.
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runDoctor } from '../src/weirctl/commands/doctor.ts';
import { followDrops, runDrops } from '../src/weirctl/commands/drops.ts';
import { runEndpoints } from '../src/weirctl/commands/endpoints.ts';
import { runGc } from '../src/weirctl/commands/gc.ts';
import { runIpam } from '../src/weirctl/commands/ipam.ts';
import { runPolicy } from '../src/weirctl/commands/policy.ts';
import { runStatus } from '../src/weirctl/commands/status.ts';
import { runTrace } from '../src/weirctl/commands/trace.ts';
import { type CommandResult, Context, CtlError, DEFAULTS, type OutputFormat } from '../src/weirctl/context.ts';
import { colorEnabled } from '../src/weirctl/table.ts';

function print(r: CommandResult, output: OutputFormat): void {
  process.stdout.write(output === 'json' ? `${JSON.stringify(r.json, null, 2)}\n` : `${r.text}\n`);
}

type Args = Record<string, unknown>;

/** One weirctl command: its words and flags for yargs, and what it runs. Declared once, here. */
interface Command {
  /** yargs' command string: the name and its positionals. */
  command: string;
  describe: string;
  flags?: (y: Argv) => Argv;
  run(ctx: Context, a: Args): Promise<CommandResult>;
}

function positiveLimit(a: Args): number {
  const limit = Number(a['limit']);
  if (!Number.isInteger(limit) || limit < 1) throw new CtlError(`--limit must be a positive integer, got ${String(a['limit'])}`);
  return limit;
}

const COMMANDS: Command[] = [
  { command: 'status', describe: 'Agent health, API connection per kind, applied state, counts, last sync, errors', run: (ctx) => runStatus(ctx) },
  { command: 'endpoints', describe: "This node's pods: addresses, host veth, isolation, selecting policies", run: (ctx) => runEndpoints(ctx) },
  {
    command: 'policy <pod>',
    describe: 'The effective ingress and egress allowances of NAMESPACE/POD, rule by rule',
    flags: (y) => y.positional('pod', { type: 'string', demandOption: true, describe: 'NAMESPACE/POD' }),
    run: (ctx, a) => runPolicy(ctx, String(a['pod'])),
  },
  {
    command: 'trace',
    describe: "The verdict for one connection: the reference evaluator's reasons and the kernel's own answer",
    flags: (y) =>
      y
        .option('from', { type: 'string', demandOption: true, describe: 'Source: NAMESPACE/POD or an IP address' })
        .option('to', { type: 'string', demandOption: true, describe: 'Destination: NAMESPACE/POD or an IP address' })
        .option('port', { type: 'number', demandOption: true, describe: 'Destination port' })
        .option('protocol', { type: 'string', default: 'TCP', describe: 'TCP, UDP or SCTP' }),
    run: (ctx, a) => runTrace(ctx, { from: String(a['from']), to: String(a['to']), port: Number(a['port']), protocol: String(a['protocol']) }),
  },
  {
    command: 'drops',
    describe: 'Denied packets, resolved to pods and the policies that selected the denying pod (newest first)',
    flags: (y) =>
      y
        .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'Keep printing new drops as they happen (until interrupted)' })
        .option('limit', { type: 'number', default: 50, describe: 'How many recent drops to show' }),
    run: async (ctx, a) => {
      const limit = positiveLimit(a);
      if (a['follow']) await followDrops(ctx, limit, (line) => process.stdout.write(`${line}\n`));
      return runDrops(ctx, limit);
    },
  },
  { command: 'ipam', describe: 'Allocations, free addresses per range, and leaks', run: (ctx) => runIpam(ctx) },
  { command: 'gc', describe: 'Release leaked IPAM records and delete orphan host veths, printing what was done', run: (ctx) => runGc(ctx) },
  {
    command: 'doctor',
    describe: 'Checks that break a node, each OK or FAIL with a fix (exit 1 when any fails)',
    flags: (y) => y.option('cni-bin-dir', { type: 'string', default: DEFAULTS.cniBinDir, describe: 'Where the weir plugin is installed' }),
    run: (ctx, a) => runDoctor(ctx, String(a['cni-bin-dir'])),
  },
];

async function main(): Promise<number> {
  // `weirctl drops -f | head`: a closed pipe ends the command quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  let chosen: Command | undefined;
  let y: Argv = yargs(hideBin(process.argv))
    .scriptName('weirctl')
    .usage('$0 <command> [options]\n\nInspects weir on this node: the agent (its local socket), the kernel and the IPAM store.')
    .option('output', { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as const, describe: 'table for people, json for scripts' })
    .option('socket', { type: 'string', default: DEFAULTS.socket, describe: "The agent's local status socket" })
    .option('data-dir', { type: 'string', describe: `The plugin's IPAM directory (default: the conflist's dataDir, else ${DEFAULTS.dataDir})` })
    .option('cni-conf-dir', { type: 'string', default: DEFAULTS.cniConfDir, describe: 'Where the CNI conflist lives' })
    .option('network', { type: 'string', default: DEFAULTS.network, describe: 'The CNI network name' });
  for (const c of COMMANDS) {
    y = y.command(
      c.command,
      c.describe,
      (b) => (c.flags ? c.flags(b) : b),
      () => {
        chosen = c;
      },
    );
  }
  const argv = (await y.demandCommand(1, 'name a command').strict().help().alias('h', 'help').parseAsync()) as Args;
  if (!chosen) throw new CtlError(`unknown command ${JSON.stringify((argv['_'] as unknown[] | undefined)?.[0])}; see weirctl --help`);

  const output = argv['output'] as OutputFormat;
  const ctx = new Context({
    socket: String(argv['socket']),
    dataDir: argv['data-dir'] as string | undefined,
    cniConfDir: String(argv['cni-conf-dir']),
    network: String(argv['network']),
    output,
    color: output === 'table' && colorEnabled(),
  });
  const r = await chosen.run(ctx, argv);
  print(r, output);
  return r.exitCode ?? 0;
}

// Exit explicitly: nothing the command opened (a kept-alive socket, a
// finished subprocess) should hold the process after the output is written.
main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof CtlError) {
      process.stderr.write(`weirctl: ${e.message}\n`);
      process.exit(e.exitCode);
    }
    const debug = process.env['WEIRCTL_DEBUG'] === '1';
    process.stderr.write(`weirctl: ${e instanceof Error ? (debug ? (e.stack ?? e.message) : e.message) : String(e)}\n`);
    process.exit(1);
  },
);
