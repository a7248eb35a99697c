// scripts/lab: the weir lab's command line. The lab is a real kind cluster
// (scripts/kind-up.sh: kind over podman inside a network namespace, real
// kubelets and containerd, weir installed from deploy/weir.yaml). The command
// words are a contract (other tools and the README call them):
//
//   up [--nodes N] [--host-firewall]   create it (idempotent); progress shown live
//   down                               remove it and leave the machine as it was (idempotent)
//   kubectl ARGS...                    the pinned kubectl as cluster admin, in the cluster's namespace
//   exec NAMESPACE/POD -- CMD...       a command of this machine in the pod's network namespace
//   node NODE -- CMD...                a command of this machine in the node's network namespace, with its view of weir's paths
//   wait [--timeout 120]               until every pod runs and every agent applied the API state
//   matrix [--namespaces a,b] [--ports 80,81] [--protocols TCP,UDP,SCTP] [-o json|table]
//                                      probe every ordered pod pair (lab/commands/matrix.ts)
//   demo                               the NetworkPolicy walk-through (lab/commands/demo.ts)
//
// Every command's exit code is the child's where there is one (kubectl, exec,
// node), else 0 for success and 1 for failure.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yargs, { type ArgumentsCamelCase, type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { kubectlArgv, userEnv } from './commands/common.ts';
import { kindPaths, labKindConfig, nodeRootDir, REPO, ROOTFS_NODE_PATHS, SHARED_NODE_PATHS } from './kind.ts';
import { type LabState, labPods, readRecord, readState, recordPath, writeRecord } from './state.ts';

const err = (msg: string): void => void process.stderr.write(`lab: ${msg}\n`);
const out = (msg: string): void => void process.stdout.write(`${msg}\n`);

/** The exit code of a finished child, shell-style (128+n for a signal). */
function exitCode(r: { status: number | null; signal: NodeJS.Signals | null; error?: Error }): number {
  if (r.error) {
    err(r.error.message);
    return 127;
  }
  if (r.status !== null) return r.status;
  const signals: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGPIPE: 13, SIGTERM: 15 };
  return 128 + (signals[r.signal ?? ''] ?? 1);
}

/** The args after the first `--` in the raw command line (yargs would take options meant for CMD). */
function argsAfterDashDash(): string[] {
  const raw = hideBin(process.argv);
  const i = raw.indexOf('--');
  return i < 0 ? [] : raw.slice(i + 1);
}

/** A state that allows the commands that need a running lab, or exits 1 saying why. */
function requireLab(): LabState {
  const state = readState();
  if (!state || state.nodes.length === 0) {
    err(`the lab is not up (no ${recordPath()}, or no node runs); run \`scripts/lab up\``);
    process.exit(1);
  }
  return state;
}

/** A lab that is up: recorded, every recorded node running, the API server ready. */
function health(): { ok: true; state: LabState } | { ok: false; why: string } {
  const state = readState();
  if (!state) return { ok: false, why: 'no lab recorded' };
  if (state.nodes.length !== readRecord()?.nodes.length) return { ok: false, why: 'not every node container runs' };
  const argv = kubectlArgv(state, ['get', '--raw=/readyz', '--request-timeout=5s']);
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: 15_000, env: userEnv() });
  if (r.status !== 0) return { ok: false, why: `apiserver /readyz: ${r.stderr.trim() || `exit ${r.status}`}` };
  return { ok: true, state };
}

/** Runs a repository script with the terminal: its progress is the user's. */
function script(rel: string, args: string[], env: Record<string, string> = {}): number {
  return exitCode(spawnSync(path.join(REPO, rel), args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } }));
}

// ---- up, down ----
function down(): number {
  return script('scripts/kind-down.sh', []);
}

function up(a: { nodes: number | undefined; hostFirewall: boolean }): number {
  const t0 = Date.now();
  const p = kindPaths();
  const h = health();
  if (h.ok) {
    const n = h.state.nodes.length;
    if (a.nodes !== undefined && a.nodes !== n) {
      err(`the lab is already up with ${n} node(s), not ${a.nodes}; run \`scripts/lab down\` first to change it`);
      return 1;
    }
    if (a.hostFirewall !== h.state.hostFirewall) {
      err(`the lab is already up with host-firewall mode ${h.state.hostFirewall ? 'on' : 'off'}; run \`scripts/lab down\` first to change it`);
      return 1;
    }
    out(`the lab is already up: ${n} node(s) (${h.state.nodes.map((x) => x.name).join(', ')}); \`scripts/lab kubectl get nodes\``);
    return 0;
  }
  if (readRecord() || fs.existsSync(`/run/netns/${p.netns}`)) {
    out(`cleaning up a previous lab (${h.why})`);
    if (down() !== 0) {
      err('could not clean up the previous lab');
      return 1;
    }
  }
  const nodes = a.nodes ?? 3;
  const base = process.env['KIND_CONFIG'] || path.join(REPO, 'kind-config.yaml');
  const cfg = labKindConfig(fs.readFileSync(base, 'utf8'), p, nodes);
  for (const n of cfg.names) for (const rel of SHARED_NODE_PATHS) fs.mkdirSync(path.join(nodeRootDir(p, n), rel), { recursive: true });
  const cfgFile = path.join(p.run, 'lab-kind-config.yaml');
  fs.writeFileSync(cfgFile, cfg.yaml);
  out(`lab: a kind cluster of ${nodes} node(s) (${cfg.names.join(', ')}) from ${path.relative(REPO, base)}${a.hostFirewall ? ', host firewall on' : ''}`);
  const startedAt = new Date().toISOString();
  if (script('scripts/kind-up.sh', [], { KIND_CONFIG: cfgFile, KIND_CLUSTER: p.cluster }) !== 0) {
    err('lab up FAILED (scripts/kind-up.sh); `scripts/lab down` removes what was made');
    return 1;
  }
  writeRecord({ cluster: p.cluster, hostFirewall: a.hostFirewall, nodes: cfg.names, startedAt });
  const state = readState();
  if (!state || state.nodes.length !== nodes) {
    err('lab up FAILED: the node containers are not all running');
    return 1;
  }
  const k = (args: string[]): number => {
    const argv = kubectlArgv(state, args);
    return exitCode(spawnSync(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], env: userEnv() }));
  };
  // The lab's control plane runs pods too (as the lab always has): more pods per node pair on few nodes.
  if (k(['taint', 'nodes', `${p.cluster}-control-plane`, 'node-role.kubernetes.io/control-plane:NoSchedule-']) !== 0)
    out('lab: (the control plane had no NoSchedule taint)');
  if (a.hostFirewall) {
    // The manifest's own switch, as a user would flip it.
    out('lab: host-firewall mode: WEIR_HOST_FIREWALL=true on the agent');
    if (
      k(['-n', 'kube-system', 'set', 'env', 'ds/weir', '-c', 'agent', 'WEIR_HOST_FIREWALL=true']) !== 0 ||
      k(['-n', 'kube-system', 'rollout', 'status', 'ds/weir', '--timeout=300s']) !== 0
    ) {
      err('lab up FAILED: could not turn host-firewall mode on');
      return 1;
    }
  }
  const upMs = Date.now() - t0;
  writeRecord({ cluster: p.cluster, hostFirewall: a.hostFirewall, nodes: cfg.names, startedAt, readyAt: new Date().toISOString(), upMs });
  out(`lab up in ${(upMs / 1000).toFixed(1)} s: ${state.nodes.map((n) => `${n.name} ${n.ip}`).join(', ')}`);
  return 0;
}

// ---- kubectl, exec, node ----
function kubectlCmd(args: string[]): number {
  const state = requireLab();
  const argv = kubectlArgv(state, args);
  return exitCode(spawnSync(argv[0] as string, argv.slice(1), { stdio: 'inherit', env: userEnv() }));
}

async function execCmd(target: string, cmd: string[]): Promise<number> {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(target);
  if (!m) {
    err(`exec: expected NAMESPACE/POD, got ${JSON.stringify(target)}`);
    return 2;
  }
  if (cmd.length === 0) {
    err('exec: no command; usage: scripts/lab exec NAMESPACE/POD -- CMD...');
    return 2;
  }
  requireLab();
  const [, ns, name] = m;
  let pods: Awaited<ReturnType<typeof labPods>>;
  try {
    pods = await labPods();
  } catch (e) {
    err(`exec: cannot list the pods: ${(e as Error).message}`);
    return 1;
  }
  const pod = pods.find((p) => p.namespace === ns && p.name === name);
  if (!pod) {
    err(`exec: no pod ${ns}/${name} runs on any lab node`);
    return 1;
  }
  if (!pod.netnsPath || !fs.existsSync(pod.netnsPath)) {
    err(`exec: pod ${ns}/${name} has no network namespace (phase ${pod.phase})`);
    return 1;
  }
  return exitCode(spawnSync('nsenter', [`--net=${pod.netnsPath}`, '--', ...cmd], { stdio: 'inherit', env: process.env }));
}

/**
 * The shell run in the node's namespace: bind the node's weir paths over the
 * machine's, in a private mount namespace, then exec CMD.
 */
export function nodeShell(root: string, rootfs: string): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const bind = (from: string, rel: string): string => `mkdir -p ${q(`/${rel}`)} && mount --bind ${q(from)} ${q(`/${rel}`)}`;
  const steps = [
    ...SHARED_NODE_PATHS.map((p) => `mkdir -p ${q(`${root}/${p}`)} && ${bind(`${root}/${p}`, p)}`),
    ...ROOTFS_NODE_PATHS.map((p) => bind(`${rootfs}/${p}`, p)),
  ];
  return `${steps.join(' && ')} && exec "$@"`;
}

function nodeCmd(node: string, cmd: string[]): number {
  if (cmd.length === 0) {
    err('node: no command; usage: scripts/lab node NODE -- CMD...');
    return 2;
  }
  const state = requireLab();
  const n = state.nodes.find((x) => x.name === node);
  if (!n) {
    err(`node: no node ${JSON.stringify(node)}; the lab's nodes are ${state.nodes.map((x) => x.name).join(', ')}`);
    return 1;
  }
  const env = { ...process.env, PATH: `${path.join(REPO, 'dist/bin')}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
  const r = spawnSync(
    'nsenter',
    [`--net=${n.netns}`, '--', 'unshare', '-m', '--propagation', 'private', 'sh', '-c', nodeShell(n.root, n.rootfs), 'sh', ...cmd],
    { stdio: 'inherit', env },
  );
  return exitCode(r);
}

// ---- command table ----
/** One command word: its yargs usage (the word and its positionals), help, options, and what it runs, returning the exit code. */
interface LabCommand<A> {
  usage: string;
  describe: string;
  /** Refused without root before any parsing (the lab lives in network namespaces). */
  needsRoot?: boolean;
  builder: (y: Argv) => Argv<A>;
  run: (a: ArgumentsCamelCase<A>) => number | Promise<number>;
}

interface TableEntry {
  needsRoot: boolean;
  /** Adds the command to `y`; its exit code goes to `exit`. */
  register: (y: Argv, exit: (code: number) => void) => Argv;
}

/** Checks a command's builder and handler against each other, then keeps only what the table needs. */
function labCommand<A>(c: LabCommand<A>): TableEntry {
  return {
    needsRoot: c.needsRoot ?? false,
    register: (y, exit) =>
      y.command(c.usage, c.describe, c.builder, async (a) => {
        exit(await c.run(a));
      }),
  };
}

/** Options that belong to the command, not to a child process. */
const ownOptions = <A>(y: Argv<A>): Argv<A> => y.parserConfiguration({ 'unknown-options-as-args': false }).strict();

const upCommand = labCommand({
  usage: 'up',
  describe: 'Start the lab (idempotent); shows progress until it is ready',
  needsRoot: true,
  builder: (y) =>
    ownOptions(
      y
        .option('nodes', { type: 'number', describe: 'Number of nodes, the control plane included (default 3)' })
        .option('host-firewall', { type: 'boolean', default: false, describe: "Run weir's agent with --host-firewall" }),
    ),
  run: (a) => {
    if (a.nodes !== undefined && (!Number.isInteger(a.nodes) || a.nodes < 1 || a.nodes > 50)) {
      err('--nodes must be an integer 1..50');
      return 2;
    }
    return up({ nodes: a.nodes, hostFirewall: a['host-firewall'] });
  },
});

const downCommand = labCommand({
  usage: 'down',
  describe: 'Stop the lab and remove all of it (safe to run twice)',
  needsRoot: true,
  builder: ownOptions,
  run: () => {
    const code = down();
    if (code === 0) out('the lab is down');
    return code;
  },
});

const kubectlCommand = labCommand({
  usage: 'kubectl [args..]',
  describe: "Run the pinned kubectl as cluster admin (in the cluster's namespace); all arguments go to kubectl",
  needsRoot: true,
  builder: (y) => y.positional('args', { type: 'string', array: true, describe: "kubectl's arguments" }),
  run: () => {
    const raw = hideBin(process.argv);
    return kubectlCmd(raw.slice(raw.indexOf('kubectl') + 1));
  },
});

const execCommand = labCommand({
  usage: 'exec <pod>',
  describe: "Run a command in a pod's network namespace: exec NAMESPACE/POD -- CMD...",
  needsRoot: true,
  builder: (y) => y.positional('pod', { type: 'string', describe: 'NAMESPACE/POD', demandOption: true }),
  run: (a) => execCmd(a.pod, argsAfterDashDash()),
});

const nodeCommand = labCommand({
  usage: 'node <node>',
  describe: "Run a command in a node's namespace with its view of weir's paths: node NODE -- CMD...",
  needsRoot: true,
  builder: (y) => y.positional('node', { type: 'string', describe: 'Node name, e.g. weir-worker', demandOption: true }),
  run: (a) => nodeCmd(a.node, argsAfterDashDash()),
});

const waitLabCommand = labCommand({
  usage: 'wait',
  describe: "Wait until every pod is Running with its addresses and every node's agent has applied the API state as it is now",
  builder: (y) =>
    ownOptions(
      y.option('timeout', { type: 'string', default: '120', describe: 'Give up after this long (seconds, or 500ms / 2m); exit 1 saying what is pending' }),
    ),
  run: async (a) => {
    const { waitCommand } = await import('./commands/wait.ts');
    return waitCommand({ timeout: a.timeout });
  },
});

const matrixLabCommand = labCommand({
  usage: 'matrix',
  describe: 'Probe every ordered pair of pods (TCP/UDP with agnhost connect, SCTP with a raw INIT) and print the connectivity tables',
  builder: (y) =>
    ownOptions(
      y
        .option('namespaces', { type: 'string', describe: 'Comma-separated namespaces (default: all but kube-*)' })
        .option('ports', { type: 'string', default: '80,81', describe: 'Comma-separated ports' })
        .option('protocols', { type: 'string', default: 'TCP,UDP,SCTP', describe: 'Comma-separated protocols: TCP, UDP, SCTP' })
        .option('output', {
          alias: 'o',
          type: 'string',
          default: 'table',
          choices: ['table', 'json'],
          describe: 'table: upstream-style truth tables; json: {"probes":[...]}',
        })
        .option('host-network', { type: 'boolean', default: false, describe: 'Include hostNetwork pods' })
        .option('prober', {
          type: 'string',
          default: 'agnhost',
          choices: ['agnhost', 'netprobe'],
          describe: 'How TCP/UDP are probed (SCTP always by raw INIT)',
        })
        .option('timeout', { type: 'string', default: '1', describe: 'Per-probe timeout (seconds, or e.g. 500ms)' }),
    ),
  run: async (a) => {
    const { matrixCommand } = await import('./commands/matrix.ts');
    return matrixCommand({
      ...(a.namespaces !== undefined ? { namespaces: a.namespaces } : {}),
      ports: a.ports,
      protocols: a.protocols,
      output: a.output,
      hostNetwork: a['host-network'],
      prober: a.prober,
      timeout: a.timeout,
    });
  },
});

const demoLabCommand = labCommand({
  usage: 'demo',
  describe: 'The NetworkPolicy walk-through (netpol-demo: web, db, a client in default), narrated, checked step by step',
  builder: ownOptions,
  run: async () => {
    const { demoCommand } = await import('./commands/demo.ts');
    return demoCommand();
  },
});

/** Every command word, in the order help lists them. */
const COMMANDS: Readonly<Record<string, TableEntry>> = {
  up: upCommand,
  down: downCommand,
  kubectl: kubectlCommand,
  exec: execCommand,
  node: nodeCommand,
  wait: waitLabCommand,
  matrix: matrixLabCommand,
  demo: demoLabCommand,
};

async function main(): Promise<void> {
  // kubectl's arguments go to kubectl untouched (--help included): no yargs parsing at all.
  const raw = hideBin(process.argv);
  if (COMMANDS[raw[0] ?? '']?.needsRoot && !raw.includes('--help') && process.getuid?.() !== 0) {
    err(`${raw[0]}: the lab needs root (network namespaces); try sudo`);
    process.exit(1);
  }
  if (raw[0] === 'kubectl') process.exit(kubectlCmd(raw.slice(1)));

  let code = 0;
  let y: Argv = yargs(hideBin(process.argv))
    .scriptName('scripts/lab')
    .usage("$0 <command>\n\nweir's lab: a kind cluster (real kubelets and containerd, podman, inside a network namespace) running weir from its manifests.")
    .parserConfiguration({ 'populate--': true, 'unknown-options-as-args': true });
  for (const c of Object.values(COMMANDS)) y = c.register(y, (n) => (code = n));
  await y
    .demandCommand(1, `give a command: ${Object.keys(COMMANDS).join(', ')}`)
    .strictCommands()
    .help()
    .version(false)
    .fail((msg, e, y) => {
      if (e) throw e;
      y.showHelp('error');
      err(msg);
      process.exit(2);
    })
    .parseAsync();
  process.exit(code);
}

main().catch((e: unknown) => {
  err(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
