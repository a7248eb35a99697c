// weir-agent: parse flags, log as JSON, run until SIGTERM. Everything else
// lives in src/agent.
import pino from 'pino';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { agentOptions, toConfig } from '../src/agent/config.ts';
import { installCni, runAgent } from '../src/agent/run.ts';

async function main(): Promise<void> {
  const argv = await agentOptions(yargs(hideBin(process.argv)))
    .scriptName('weir-agent')
    .usage('$0 [options]\n\nKeeps a node in line with the cluster: CNI config, routes to other nodes, masquerade, and NetworkPolicy in nftables.')
    .command('install-cni', 'Install the weir plugin into --cni-bin-dir from --install-cni-from and exit (DaemonSet init step)')
    .strict()
    .help()
    .parseAsync();

  const cfg = toConfig(argv as Record<string, unknown>);
  const log = pino({ name: 'weir-agent', level: cfg.logLevel }, pino.destination({ fd: 2, sync: true }));

  if (argv._[0] === 'install-cni') {
    if (!cfg.installCniFrom) {
      log.error('install-cni needs --install-cni-from');
      process.exit(2);
    }
    log.info({ changed: installCni(cfg.installCniFrom, cfg.cniBinDir) }, 'CNI plugin installed');
    process.exit(0);
  }

  const agent = await runAgent(cfg, log);
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    process.once(sig, () => {
      log.info({ signal: sig }, 'stopping; rules stay in place');
      void agent.stop().then(() => process.exit(0));
    });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`weir-agent: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
