// weirctl: looks at one node's weir from the node itself: the agent's status
// socket, the kernel and the plugin's IPAM store. Parse, dispatch, print;
// everything else lives in src/weirctl.
import yargs from 'yargs';
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

async function main(): Promise<number> {
  // `weirctl drops -f | head`: a closed pipe ends the command quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : 1));
  const argv = await yargs(hideBin(process.argv))
    .scriptName('weirctl')
    .usage('$0 <command> [options]\n\nInspects weir on this node: the agent (its local socket), the kernel and the IPAM store.')
    .option('output', { alias: 'o', choices: ['table', 'json'] as const, default: 'table' as const, describe: 'table for people, json for scripts' })
    .option('socket', { type: 'string', default: DEFAULTS.socket, describe: 'The agent\'s local status socket' })
    .option('data-dir', { type: 'string', describe: `The plugin's IPAM directory (default: the conflist's dataDir, else ${DEFAULTS.dataDir})` })
    .option('cni-conf-dir', { type: 'string', default: DEFAULTS.cniConfDir, describe: 'Where the CNI conflist lives' })
    .option('network', { type: 'string', default: DEFAULTS.network, describe: 'The CNI network name' })
    .command('status', 'Agent health, API connection per kind, applied state, counts, last sync, errors')
    .command('endpoints', 'This node\'s pods: addresses, host veth, isolation, selecting policies')
    .command('policy <pod>', 'The effective ingress and egress allowances of NAMESPACE/POD, rule by rule', (y) =>
      y.positional('pod', { type: 'string', demandOption: true, describe: 'NAMESPACE/POD' }),
    )
    .command('trace', 'The verdict for one connection: the reference evaluator\'s reasons and the kernel\'s own answer', (y) =>
      y
        .option('from', { type: 'string', demandOption: true, describe: 'Source: NAMESPACE/POD or an IP address' })
        .option('to', { type: 'string', demandOption: true, describe: 'Destination: NAMESPACE/POD or an IP address' })
        .option('port', { type: 'number', demandOption: true, describe: 'Destination port' })
        .option('protocol', { type: 'string', default: 'TCP', describe: 'TCP, UDP or SCTP' }),
    )
    .command('drops', 'Denied packets, resolved to pods and the policies that selected the denying pod (newest first)', (y) =>
      y
        .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'Keep printing new drops as they happen (until interrupted)' })
        .option('limit', { type: 'number', default: 50, describe: 'How many recent drops to show' }),
    )
    .command('ipam', 'Allocations, free addresses per range, and leaks')
    .command('gc', 'Release leaked IPAM records and delete orphan host veths, printing what was done')
    .command('doctor', 'Checks that break a node, each OK or FAIL with a fix (exit 1 when any fails)', (y) =>
      y.option('cni-bin-dir', { type: 'string', default: DEFAULTS.cniBinDir, describe: 'Where the weir plugin is installed' }),
    )
    .demandCommand(1, 'name a command')
    .strict()
    .help()
    .alias('h', 'help')
    .parseAsync();

  const output = argv.output as OutputFormat;
  const ctx = new Context({
    socket: argv.socket,
    dataDir: argv['data-dir'],
    cniConfDir: argv['cni-conf-dir'],
    network: argv.network,
    output,
    color: output === 'table' && colorEnabled(),
  });
  const a = argv as Record<string, unknown>;
  let r: CommandResult;
  switch (argv._[0]) {
    case 'status':
      r = await runStatus(ctx);
      break;
    case 'endpoints':
      r = await runEndpoints(ctx);
      break;
    case 'policy':
      r = await runPolicy(ctx, String(a['pod']));
      break;
    case 'trace':
      r = await runTrace(ctx, { from: String(a['from']), to: String(a['to']), port: Number(a['port']), protocol: String(a['protocol']) });
      break;
    case 'drops': {
      const limit = Number(a['limit']);
      if (!Number.isInteger(limit) || limit < 1) throw new CtlError(`--limit must be a positive integer, got ${String(a['limit'])}`);
      if (a['follow']) await followDrops(ctx, limit, (line) => process.stdout.write(`${line}\n`));
      r = await runDrops(ctx, limit);
      break;
    }
    case 'ipam':
      r = await runIpam(ctx);
      break;
    case 'gc':
      r = await runGc(ctx);
      break;
    case 'doctor':
      r = await runDoctor(ctx, String(a['cni-bin-dir']));
      break;
    default:
      throw new CtlError(`unknown command ${JSON.stringify(argv._[0])}; see weirctl --help`);
  }
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
