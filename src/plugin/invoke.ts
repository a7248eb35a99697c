// One plugin invocation, from environment and stdin to exit code and stdout:
// parse, check the version, dispatch to a verb, format the result or the
// error. The verbs are passed in, so the same dispatch runs in the
// executable (real netlink) and in-process under a fuzzer (fake effects).
import { parseNetConf, type WeirNetConf } from '../cni/config.ts';
import { type CniEnvSource, parseCniEnv } from '../cni/env.ts';
import { formatError } from '../cni/errors-json.ts';
import { formatResult, type WeirResult } from '../cni/result.ts';
import { assertCommandAllowed, parseVersionRequest, versionInfo } from '../cni/version.ts';
import type { DelEnv, PodEnv } from './attachment.ts';

export interface Verbs {
  add(env: PodEnv, conf: WeirNetConf): Promise<WeirResult>;
  del(env: DelEnv, conf: WeirNetConf): Promise<void>;
  check(env: PodEnv, conf: WeirNetConf): Promise<void>;
  status(conf: WeirNetConf): Promise<void>;
  gc(conf: WeirNetConf): Promise<void>;
}

export interface Outcome {
  code: 0 | 1;
  /** What goes on stdout, newline included; empty for verbs that print nothing. */
  stdout: string;
}

const json = (v: unknown): string => `${JSON.stringify(v)}\n`;

export async function invoke(source: CniEnvSource, stdin: string, verbs: Verbs): Promise<Outcome> {
  let version: string | undefined;
  try {
    const env = parseCniEnv(source);
    if (env.command === 'VERSION') return { code: 0, stdout: json(versionInfo(parseVersionRequest(stdin))) };
    version = parseVersionRequest(stdin);
    const conf = parseNetConf(stdin);
    version = conf.cniVersion;
    assertCommandAllowed(env.command, conf.cniVersion);
    switch (env.command) {
      case 'ADD':
        return { code: 0, stdout: json(formatResult(await verbs.add(env, conf), conf.cniVersion)) };
      case 'DEL':
        await verbs.del(env, conf);
        return { code: 0, stdout: '' };
      case 'CHECK':
        await verbs.check(env, conf);
        return { code: 0, stdout: '' };
      case 'STATUS':
        await verbs.status(conf);
        return { code: 0, stdout: '' };
      case 'GC':
        await verbs.gc(conf);
        return { code: 0, stdout: '' };
    }
  } catch (e) {
    return { code: 1, stdout: json(formatError(e, version)) };
  }
}
