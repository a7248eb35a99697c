// weir-agent's flags as the agent parses them, for tests of the options
// alone: node name n1 unless given, errors thrown rather than printed.
import yargs from 'yargs';
import { type AgentConfig, agentOptions, toConfig } from '../../src/agent/config.ts';

export const parseAgentFlags = async (argv: string[]): Promise<AgentConfig> =>
  toConfig(
    (await agentOptions(yargs(['--node-name=n1', ...argv]))
      .exitProcess(false)
      .fail((m, e) => {
        throw e ?? new Error(m);
      })
      .parseAsync()) as Record<string, unknown>,
  );
