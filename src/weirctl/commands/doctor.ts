// weirctl doctor: the checks whose failure breaks a node, each OK or FAIL
// with a fix. Exit 0 when all pass, 1 otherwise. Unlike the other commands
// an unreachable agent is one failed check here, not exit 2: the rest of the
// node can still be examined.

import type { CacheComparison } from '../../agent/cache-digest.ts';
import type { CheckResult } from '../../agent/kernel-verifier.ts';
import type { AgentStatus, CommandResult, Context, StateReply } from '../context.ts';
import { AgentUnreachableError } from '../context.ts';
import { okFail, paint, renderTable } from '../table.ts';
import {
  type Check,
  checkApi,
  checkCache,
  checkConflist,
  checkForwarding,
  checkKernelTable,
  checkNflog,
  checkPlugin,
  checkRoutes,
  checkRpFilter,
} from './doctor-checks.ts';
import { linkNames } from './endpoints.ts';

export type { Check } from './doctor-checks.ts';

export interface DoctorReport {
  ok: boolean;
  checks: Check[];
}

export function formatDoctor(r: DoctorReport, color: boolean): string {
  const rows = r.checks.map((c) => [okFail(c.ok, color), c.name, c.ok ? c.detail : `${c.detail}\nfix: ${c.fix ?? '-'}`]);
  const summary = r.ok
    ? paint('All checks passed.', 'green', color)
    : paint(`${r.checks.filter((c) => !c.ok).length} of ${r.checks.length} checks failed.`, 'red', color);
  return `${renderTable(['', 'CHECK', 'DETAIL'], rows, { color })}\n\n${summary}`;
}

export async function runDoctor(ctx: Context, cniBinDir: string): Promise<CommandResult> {
  const checks: Check[] = [];
  let status: AgentStatus | undefined;
  let state: StateReply | undefined;
  let metrics: string | undefined;
  let drops: { status: number; text: string } | undefined;
  let kernel: CheckResult | undefined;
  let cache: CacheComparison | undefined;
  let cacheWhy: string | undefined;
  try {
    const health = await ctx.call('/healthz', { accept: [500, 503] });
    status = await ctx.status();
    state = await ctx.state();
    metrics = (await ctx.call('/metrics', { accept: [500, 503] })).text;
    drops = await ctx.call('/drops?limit=1', { accept: [503] });
    // Agents before the self-checks answer 404: fall back to the counts, and say so.
    const k = await ctx.call('/verify/kernel', { accept: [404, 503], timeoutMs: 30_000 });
    if (k.status === 200) kernel = k.json as CheckResult;
    const c = await ctx.call('/verify/cache', { accept: [404, 500, 503], timeoutMs: 120_000 });
    if (c.status === 200) cache = c.json as CacheComparison;
    else cacheWhy = `GET /verify/cache answered ${c.status}: ${(c.json as { error?: string } | undefined)?.error ?? c.text.trim()}`;
    checks.push(
      health.status === 200
        ? { name: 'agent', ok: true, detail: `weir-agent ${status.version} on node ${status.node} answers on ${ctx.opts.socket}` }
        : { name: 'agent', ok: false, detail: `/healthz answered ${health.status}`, fix: "read the agent's log (kubectl -n kube-system logs ds/weir-agent)" },
    );
  } catch (e) {
    if (!(e instanceof AgentUnreachableError)) throw e;
    checks.push({ name: 'agent', ok: false, detail: e.message, fix: 'start weir-agent on this node (the weir DaemonSet), or point --socket at its socket' });
  }

  const { check: confCheck, conflist } = checkConflist(ctx.opts.cniConfDir, ctx.opts.network, () => ctx.conflist());
  checks.push(checkForwarding(4));
  if (conflist?.conf.podCIDRs.some((c) => c.family === 6)) checks.push(checkForwarding(6));
  checks.push(checkRpFilter([...linkNames()]));
  checks.push(confCheck);
  checks.push(checkPlugin(cniBinDir, conflist, status));
  checks.push(checkRoutes(state, status));
  checks.push(checkKernelTable(status, kernel));
  checks.push(checkCache(cache, cacheWhy));
  checks.push(checkApi(status, metrics));
  checks.push(checkNflog(drops?.status, drops?.text ?? '', status?.config.nflogGroup));

  const report: DoctorReport = { ok: checks.every((c) => c.ok), checks };
  return { json: report, text: formatDoctor(report, ctx.opts.color), exitCode: report.ok ? 0 : 1 };
}
