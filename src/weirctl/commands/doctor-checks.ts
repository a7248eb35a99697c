// The checks of `weirctl doctor`, each a function returning OK or FAIL with
// what was seen and how to fix it. They read the kernel (sysctls, links,
// routes, nftables), the conflist and the plugin binary, and what the agent
// reports; none of them changes anything.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type CacheComparison, describeDifferences } from '../../agent/cache-digest.ts';
import type { CheckResult } from '../../agent/kernel-verifier.ts';
import { desiredNodeRoutes, RTPROT_WEIR_NODE } from '../../agent/routes.ts';
import { AGENT_VERSION } from '../../agent/status-api.ts';
import { SUPPORTED_VERSIONS } from '../../cni/version.ts';
import { formatCidr, formatIp } from '../../ip.ts';
import { NetlinkHandle } from '../../netlink/rtnl-handle.ts';
import { LibNftables } from '../../nft/libnftables.ts';
import { isHostVethName } from '../../plugin/names.ts';
import { readSysctl } from '../../sys/sysctl.ts';
import type { LoadedConflist } from '../conflist.ts';
import type { AgentStatus, StateReply } from '../context.ts';
import { byLabel, parsePrometheus } from '../metrics.ts';
import { kindsOf } from './status.ts';

export interface Check {
  name: string;
  ok: boolean;
  /** What was found. */
  detail: string;
  /** How to repair it (FAIL only). */
  fix?: string;
}

const pass = (name: string, detail: string): Check => ({ name, ok: true, detail });
const fail = (name: string, detail: string, fix: string): Check => ({ name, ok: false, detail, fix });

function sysctl(key: string): string | undefined {
  try {
    return readSysctl(key);
  } catch {
    return undefined;
  }
}

export function checkForwarding(family: 4 | 6): Check {
  const key = family === 4 ? 'net/ipv4/ip_forward' : 'net/ipv6/conf/all/forwarding';
  const dotted = key.replaceAll('/', '.');
  const name = family === 4 ? 'net.ipv4.ip_forward' : 'net.ipv6.conf.all.forwarding';
  const v = sysctl(key);
  if (v === '1') return pass(name, `${dotted} = 1`);
  return fail(
    name,
    `${dotted} = ${v ?? '(unreadable)'}: the node does not forward IPv${family} packets, so no pod can reach anything beyond its node`,
    `sysctl -w ${dotted}=1, and make it permanent in /etc/sysctl.d/ (e.g. 99-weir.conf)`,
  );
}

export function checkRpFilter(linkNames: readonly string[]): Check {
  const name = 'rp_filter on weir veths';
  const all = Number(sysctl('net/ipv4/conf/all/rp_filter') ?? 0);
  const veths = linkNames.filter(isHostVethName);
  // The kernel applies the larger of conf/all and conf/<dev>: 1 is strict, 2
  // loose, 0 off. Each pod address is routed back through its own veth (a
  // /32 or /128), so strict mode passes every packet a pod may send and drops
  // the ones with another pod's source address: it is the safe setting, and
  // never the cause of a lost connection (the upstream suite passes under it
  // on kind, whose nodes default to 1). Loose or off is reported, not failed:
  // it is the kernel's default, and the policy then trusts the sources.
  const mode = (v: string): number => Math.max(all, Number(sysctl(`net/ipv4/conf/${v}/rp_filter`) ?? 0));
  const strict = veths.filter((v) => mode(v) === 1).length;
  const detail = `${strict} of ${veths.length} weir veth(s) in strict mode (conf.all.rp_filter=${all})`;
  return pass(
    name,
    strict === veths.length
      ? `${detail}: a pod cannot send with another pod's source address`
      : `${detail}: on the others the kernel does not check a pod's source address`,
  );
}

export function checkConflist(dir: string, network: string, load: () => LoadedConflist | undefined): { check: Check; conflist?: LoadedConflist } {
  const name = 'CNI config';
  try {
    const c = load();
    if (!c)
      return {
        check: fail(
          name,
          `no configuration for network "${network}" in ${dir}`,
          "weir-agent writes it once its Node has spec.podCIDRs: check the agent's log and that the controller manager allocates node CIDRs (--allocate-node-cidrs)",
        ),
      };
    const first = fs
      .readdirSync(dir)
      .filter((n) => /\.(conflist|conf|json)$/.test(n))
      .sort()[0];
    const shadowed = first !== undefined && path.join(dir, first) !== c.file;
    if (shadowed) {
      return {
        check: fail(
          name,
          `${c.file} is valid, but the runtime loads ${first} first (the lexically first file of ${dir})`,
          `remove or rename ${path.join(dir, first)}, or name weir's file so that it sorts first`,
        ),
        conflist: c,
      };
    }
    return {
      check: pass(name, `${c.file}: network ${c.name}, cniVersion ${c.cniVersion ?? '?'}, plugins ${c.plugins.join(', ')}, podCIDRs ${c.podCIDRs.join(', ')}`),
      conflist: c,
    };
  } catch (e) {
    return { check: fail(name, (e as Error).message, 'fix or delete the file; weir-agent rewrites it at its next sync') };
  }
}

export function checkPlugin(binDir: string, conflist: LoadedConflist | undefined, status: AgentStatus | undefined): Check {
  const name = 'weir plugin binary';
  const bin = path.join(binDir, 'weir');
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch {
    return fail(
      name,
      `${bin} is missing or not executable`,
      "install it: weir-agent --install-cni-from DIR (the DaemonSet's init step) copies weir and koffi.node into --cni-bin-dir",
    );
  }
  if (!fs.existsSync(path.join(binDir, 'koffi.node')))
    return fail(
      name,
      `${path.join(binDir, 'koffi.node')} is missing; the plugin cannot load its FFI addon`,
      'install koffi.node beside the weir executable (weir-agent --install-cni-from does both)',
    );
  const want = conflist?.cniVersion ?? '1.0.0';
  const r = spawnSync(bin, [], {
    input: JSON.stringify({ cniVersion: want }),
    env: { ...process.env, CNI_COMMAND: 'VERSION' },
    encoding: 'utf8',
    timeout: 10_000,
  });
  let supported: string[] = [];
  try {
    supported = (JSON.parse(r.stdout) as { supportedVersions?: string[] }).supportedVersions ?? [];
  } catch {
    return fail(
      name,
      `${bin} VERSION did not answer with JSON (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error ?? '')).trim().slice(0, 200)}`,
      'reinstall the plugin from the same release as the agent',
    );
  }
  if (!supported.includes(want))
    return fail(
      name,
      `${bin} supports CNI ${supported.join(', ')}, but the conflist says ${want}`,
      "install the plugin of the agent's release (weir-agent --install-cni-from)",
    );
  // The plugin reports CNI versions, not its release: compare it with this
  // weirctl's release, and that with the agent's.
  const sameSet = supported.join(',') === SUPPORTED_VERSIONS.join(',');
  const agent = status?.version;
  if (!sameSet) {
    return fail(
      name,
      `${bin} speaks CNI ${supported.join(', ')}; weir ${AGENT_VERSION} speaks ${SUPPORTED_VERSIONS.join(', ')}: the plugin is from another release than weirctl${agent ? ` (agent ${agent})` : ''}`,
      "reinstall the plugin of the agent's release (weir-agent --install-cni-from)",
    );
  }
  if (agent !== undefined && agent !== AGENT_VERSION) {
    return fail(
      name,
      `the agent is weir ${agent}, weirctl and the plugin's CNI versions match weir ${AGENT_VERSION}`,
      'upgrade the agent and the plugin together (the DaemonSet installs both)',
    );
  }
  return pass(
    name,
    `${bin} answers VERSION: CNI ${supported.join(', ')} (includes the conflist's ${want}); agent is weir ${agent ?? '?'}; the plugin does not report its own release, so this is as far as VERSION lets one compare`,
  );
}

export function checkRoutes(state: StateReply | undefined, status: AgentStatus | undefined): Check {
  const name = 'routes to other nodes';
  if (!state || !status) return fail(name, 'unknown: the agent is unreachable', 'start weir-agent on this node');
  const self = status.node;
  const others = (state.nodes ?? []).filter((n) => n.name !== self);
  const h = NetlinkHandle.open();
  let present: Set<string>;
  try {
    present = new Set(
      [...h.routeList(4), ...h.routeList(6)].filter((r) => r.protocol === RTPROT_WEIR_NODE && r.dst).map((r) => `${formatIp(r.dst as Uint8Array)}/${r.dstLen}`),
    );
  } finally {
    h.close();
  }
  if (others.length === 0) return pass(name, 'no other nodes');
  const errs = status.errors.routes;
  if (others.some((n) => n.podCIDRs !== undefined)) {
    const want = desiredNodeRoutes(
      others.map((n) => ({ name: n.name, podCIDRs: n.podCIDRs ?? [], internalIPs: n.internalIPs })).concat([{ name: self, podCIDRs: [], internalIPs: [] }]),
      self,
    );
    const missing = want.filter((r) => !present.has(formatCidr(r.dst)));
    if (missing.length === 0) return pass(name, `${want.length} route(s) (proto ${RTPROT_WEIR_NODE}) present for ${others.length} other node(s)`);
    return fail(
      name,
      `missing: ${missing.map((r) => `${formatCidr(r.dst)} via ${formatIp(r.via.bytes)} (node ${r.node})`).join(', ')}${errs.length ? `; agent: ${errs.join('; ')}` : ''}`,
      "the other nodes' InternalIPs must be directly reachable (host-gw routing); see the agent's route errors in `weirctl status`",
    );
  }
  // Agents that do not serve the nodes' podCIDRs in /state: rely on their own report.
  if (errs.length > 0)
    return fail(name, `the agent could not program: ${errs.join('; ')}`, "the other nodes' InternalIPs must be directly reachable (host-gw routing)");
  return pass(
    name,
    `${present.size} route(s) with proto ${RTPROT_WEIR_NODE} for ${others.length} other node(s); the agent reports no route errors (its /state does not list podCIDRs, so the set itself was not compared)`,
  );
}

/**
 * The agent's own comparison of the kernel's table with the ruleset it
 * applied (GET /verify/kernel), when it has one; else checkTable's counts.
 */
export function checkKernelTable(status: AgentStatus | undefined, verify: CheckResult | undefined): Check {
  if (!verify) return checkTable(status);
  const name = 'table inet weir';
  if (verify.error)
    return fail(name, `the agent cannot compare the table with what it applied: ${verify.error}`, "read the agent's log; `weirctl status` shows its last sync");
  if (verify.clean) return pass(name, `matches the ruleset the agent applied, element by element and rule by rule (checked in ${Math.round(verify.ms)} ms)`);
  const reasons = Object.entries(verify.drift.counts)
    .map(([r, n]) => `${r} ${n}`)
    .join(', ');
  const examples = verify.drift.examples
    .slice(0, 5)
    .map((e) => `${e.object}: ${e.detail}`)
    .join('; ');
  return fail(
    name,
    `differs from what the agent applied (${reasons}): ${examples}`,
    "something edited the table behind weir's back; the agent replaces it whole at its next check (or now: curl --unix-socket /run/weir/agent.sock -X POST http://agent/verify/kernel)",
  );
}

/** The agent's cache against a fresh list from the API (GET /verify/cache, done by the agent with its credentials). */
export function checkCache(reply: (CacheComparison & { attempts?: number }) | undefined, why?: string): Check {
  const name = 'agent cache = API';
  if (!reply)
    return fail(
      name,
      `not checked: ${why ?? 'the agent is unreachable'}`,
      'upgrade the agent (GET /verify/cache), and check its API access (`weirctl status`)',
    );
  if (reply.ok) return pass(name, `${reply.kinds.join(', ')}: the cache holds exactly what the API lists (uid and resourceVersion of every object)`);
  return fail(
    name,
    `differs from the API: ${describeDifferences(reply).join(' | ')}`,
    "the agent's watch missed or misapplied events; restarting the agent relists everything (and report it: this is a bug)",
  );
}

export function checkTable(status: AgentStatus | undefined): Check {
  const name = 'table inet weir';
  let json: ReturnType<LibNftables['listJson']>;
  const nft = new LibNftables();
  try {
    json = nft.listJson('inet', 'weir');
  } catch (e) {
    return fail(
      name,
      `cannot list table inet weir: ${(e as Error).message}`,
      'weir-agent creates it at its first full sync: check that the agent runs and is ready (`weirctl status`)',
    );
  } finally {
    nft.close();
  }
  const count = (k: string): number => json.nftables.filter((o) => k in o).length;
  const have = { chains: count('chain'), rules: count('rule'), sets: count('set') + count('map') };
  if (!status)
    return fail(
      name,
      `present (${have.chains} chains, ${have.rules} rules), but its sync state is unknown: the agent is unreachable`,
      'start weir-agent on this node',
    );
  if (!status.ready)
    return fail(name, 'present, but the agent has not completed its first full sync', "wait, or check the agent's API access (`weirctl status`)");
  if (status.errors.sync)
    return fail(
      name,
      `the agent's last sync failed (the previous rules stay in force): ${status.errors.sync}`,
      "read the agent's log for the failing nft transaction",
    );
  const c = status.counts;
  const diff = (['chains', 'rules', 'sets'] as const).filter((k) => c[k] !== undefined && c[k] !== have[k]);
  if (diff.length > 0) {
    return fail(
      name,
      `out of sync: the kernel has ${diff.map((k) => `${have[k]} ${k}`).join(', ')}, the agent applied ${diff.map((k) => `${c[k]} ${k}`).join(', ')} (edited by hand?)`,
      'restart weir-agent: its first sync replaces the table whole',
    );
  }
  return pass(name, `present and in sync: ${have.chains} chains, ${have.rules} rules, ${have.sets} sets/maps; last sync ${status.applied?.at ?? '?'}`);
}

export function checkApi(status: AgentStatus | undefined, metricsText: string | undefined): Check {
  const name = 'API reachable';
  if (!status) return fail(name, 'unknown: the agent is unreachable', 'start weir-agent on this node');
  const up = byLabel(parsePrometheus(metricsText ?? ''), 'weir_api_watch_up', 'kind');
  const kinds = kindsOf(status);
  const bad = kinds.filter((k) => !status.api.synced.includes(k) || up.get(k) === 0);
  if (bad.length === 0) return pass(name, `watches up: ${kinds.join(', ')}`);
  return fail(
    name,
    `watch down or never listed: ${bad.join(', ')}`,
    "check the agent's kubeconfig/service account, its RBAC (deploy/parts/20-clusterrole.yaml) and that the API server is reachable from the node; the last rules stay in force meanwhile",
  );
}

export function checkNflog(dropsStatus: number | undefined, body: string, group: number | undefined): Check {
  const name = 'nflog drop log';
  if (dropsStatus === undefined) return fail(name, 'unknown: the agent is unreachable', 'start weir-agent on this node');
  if (dropsStatus === 200) return pass(name, `the agent reads denied packets from nflog group ${group ?? '?'}`);
  return fail(
    name,
    `not running (${dropsStatus}): ${body.trim()}`,
    `another process may own nflog group ${group ?? '?'} in this network namespace (ulogd?): free it, or give the agent another --nflog-group, then restart the agent`,
  );
}
