// The `weir` CNI plugin executable: parse, dispatch, print. Everything else
// lives in src/. stdout carries only the result or the error JSON; logs go to
// stderr, which runtimes capture.
import fs from 'node:fs';
import { parseCniEnv } from '../src/cni/env.ts';
import { formatError } from '../src/cni/errors-json.ts';
import { parseNetConf, type WeirNetConf } from '../src/cni/config.ts';
import { formatResult } from '../src/cni/result.ts';
import { assertCommandAllowed, parseVersionRequest, versionInfo } from '../src/cni/version.ts';
import { cmdAdd } from '../src/plugin/add.ts';
import { cmdCheck } from '../src/plugin/check.ts';
import { cmdDel } from '../src/plugin/del.ts';
import { cmdGc } from '../src/plugin/gc.ts';
import { cmdStatus } from '../src/plugin/status.ts';

function readStdin(): string {
  try {
    return fs.readFileSync(0, 'utf8');
  } catch {
    return '';
  }
}

function main(): number {
  let version: string | undefined;
  const stdin = readStdin();
  try {
    const env = parseCniEnv(process.env);
    if (env.command === 'VERSION') {
      process.stdout.write(`${JSON.stringify(versionInfo(parseVersionRequest(stdin)))}\n`);
      return 0;
    }
    version = parseVersionRequest(stdin);
    const conf: WeirNetConf = parseNetConf(stdin);
    version = conf.cniVersion;
    assertCommandAllowed(env.command, conf.cniVersion);
    switch (env.command) {
      case 'ADD':
        process.stdout.write(`${JSON.stringify(formatResult(cmdAdd(env, conf), conf.cniVersion))}\n`);
        return 0;
      case 'DEL':
        cmdDel(env, conf);
        return 0;
      case 'CHECK':
        cmdCheck(env, conf);
        return 0;
      case 'STATUS':
        cmdStatus(conf);
        return 0;
      case 'GC':
        cmdGc(conf);
        return 0;
    }
  } catch (e) {
    process.stdout.write(`${JSON.stringify(formatError(e, version))}\n`);
    return 1;
  }
}

process.exitCode = main();
