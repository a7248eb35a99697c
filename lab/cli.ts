// scripts/lab: the weir lab's command line. The command words are a contract
// (other tools and the README call them):
//
//   up [--nodes N] [--host-firewall]   start the lab (idempotent); progress shown live
//   down                               stop it and leave the machine as it was (idempotent)
//   kubectl ARGS...                    the pinned kubectl as cluster admin, in weirlab-net
//   exec NAMESPACE/POD -- CMD...       CMD in the pod's network namespace
//   node NODE -- CMD...                CMD in the node's namespace, with its view of weir's paths
//   wait [--timeout 120]               until every pod runs and every agent applied the API state
//   matrix [--namespaces a,b] [--ports 80,81] [--protocols TCP,UDP,SCTP] [-o json|table]
//                                      probe every ordered pod pair (lab/commands/matrix.ts)
//   demo                               the NetworkPolicy walk-through (lab/commands/demo.ts)
//
// Every command's exit code is the child's where there is one (kubectl, exec,
// node), else 0 for success and 1 for failure.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { NODE_HOST_PATHS, type LabState, daemonLogPath, labDir, labPods, labRequest, pidAlive, readState, recordedPodNetns, statePath } from './state.ts';
import { BRIDGE_NETNS, NETNS_DIR, sweepLabNetns, topologyNetnsList } from './topology.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DAEMON = path.join(REPO, 'lab/daemon.ts');
/** How long `up` waits for the daemon to reach 'ready' (a first run builds the Kubernetes binaries: minutes). */
const UP_TIMEOUT_MS = Number(process.env['WEIR_LAB_UP_TIMEOUT_MS']) || 30 * 60_000;
const DOWN_TIMEOUT_MS = 3 * 60_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
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

/** A lab that is up: the state file says ready, its daemon lives and answers, the apiserver answers. */
async function health(dir: string): Promise<{ ok: true; state: LabState } | { ok: false; why: string; state: LabState | undefined }> {
  const state = readState(dir);
  if (!state) return { ok: false, why: 'no state file', state };
  if (!pidAlive(state.pid)) return { ok: false, why: `daemon (pid ${state.pid}) is not running`, state };
  if (state.phase !== 'ready') return { ok: false, why: `phase is ${state.phase}${state.error ? `: ${state.error}` : ''}`, state };
  if (state.error) return { ok: false, why: `degraded: ${state.error}`, state };
  try {
    const r = await labRequest('/state', dir, 5000);
    if (r.status !== 200) return { ok: false, why: `control socket answered HTTP ${r.status}`, state };
  } catch (e) {
    return { ok: false, why: `control socket: ${(e as Error).message}`, state };
  }
  const k = kubectlSync(state, ['get', '--raw=/readyz', '--request-timeout=5s']);
  if (k.status !== 0) return { ok: false, why: `apiserver /readyz: ${k.stderr.trim() || `exit ${k.status}`}`, state };
  return { ok: true, state };
}

function kubectlArgv(state: LabState, dir: string, args: string[]): string[] {
  return ['netns', 'exec', state.hostNetns || BRIDGE_NETNS, state.kubectl, `--kubeconfig=${state.kubeconfig}`, `--cache-dir=${path.join(dir, 'kubectl-cache')}`, ...args];
}

function kubectlSync(state: LabState, args: string[]) {
  return spawnSync('ip', kubectlArgv(state, labDir(), args), { encoding: 'utf8', timeout: 15_000, env: userEnv() });
}

/** The caller's environment minus what would point kubectl elsewhere. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env['KUBECONFIG'];
  return env;
}

/** A state that allows the commands that need a running lab, or exits 1 saying why. */
function requireLab(): LabState {
  const dir = labDir();
  const state = readState(dir);
  if (!state) {
    err(`the lab is not up (no ${statePath(dir)}); run \`scripts/lab up\``);
    process.exit(1);
  }
  if (!pidAlive(state.pid)) {
    err(`the lab's daemon (pid ${state.pid}) is not running; run \`scripts/lab down && scripts/lab up\``);
    process.exit(1);
  }
  if (state.phase === 'failed') {
    err(`the lab failed to start: ${state.error ?? '(no error recorded)'}; run \`scripts/lab down && scripts/lab up\``);
    process.exit(1);
  }
  return state;
}

// ---- down ----

/** Pids of processes whose command line names the lab directory (never this process or its ancestors). */
function labProcesses(dir: string): number[] {
  const spare = new Set<number>([process.pid]);
  for (let p = process.ppid; p > 1; ) {
    spare.add(p);
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  const pids: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (spare.has(pid)) continue;
    try {
      const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => a === dir || a.includes(`${dir}/`) || a.endsWith(`=${dir}`))) pids.push(pid);
    } catch {
      // gone
    }
  }
  return pids;
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = pids.filter(pidAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(200);
    alive = alive.filter(pidAlive);
  }
  return alive;
}

/** Mount points under the lab directory (in this mount namespace), deepest first. */
function labMounts(dir: string): string[] {
  try {
    return fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
      .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
      .sort((a, b) => b.length - a.length);
  } catch {
    return [];
  }
}

/** Stops the daemon and removes every trace of the lab; returns the problems left, if any. */
async function down(opts: { quiet?: boolean; followLog?: boolean } = {}): Promise<string[]> {
  const dir = labDir();
  const say = opts.quiet ? () => {} : out;
  const state = readState(dir);
  if (state && pidAlive(state.pid)) {
    say(`stopping the lab daemon (pid ${state.pid})…`);
    const logFile = daemonLogPath(dir);
    let offset = 0;
    try {
      offset = fs.statSync(logFile).size;
    } catch {
      // no log
    }
    kill(state.pid, 'SIGTERM');
    const deadline = Date.now() + DOWN_TIMEOUT_MS;
    while (pidAlive(state.pid) && Date.now() < deadline) {
      await sleep(250);
      if (opts.followLog !== false) offset = followLog(logFile, offset, say);
    }
    if (pidAlive(state.pid)) {
      err(`the daemon did not stop within ${DOWN_TIMEOUT_MS / 1000} s; killing it`);
      kill(state.pid, 'SIGKILL');
      await waitGone([state.pid], 10_000);
    }
  }
  // Anything still there is a leftover: processes naming the lab directory, then the lab's namespaces (and what runs in them).
  const procs = labProcesses(dir);
  if (procs.length > 0) {
    say(`killing ${procs.length} leftover lab process(es): ${procs.join(' ')}`);
    for (const p of procs) kill(p, 'SIGTERM');
    for (const p of await waitGone(procs, 5000)) kill(p, 'SIGKILL');
    await waitGone(procs, 5000);
  }
  const pods = recordedPodNetns(dir);
  const swept = sweepLabNetns(pods);
  if (swept.length > 0) say(`removed leftover namespaces: ${swept.join(' ')}`);
  for (const m of labMounts(dir)) spawnSync('umount', ['-l', m]);
  fs.rmSync(dir, { recursive: true, force: true });
  const problems: string[] = [];
  const left = [...topologyNetnsList(), ...pods.filter((n) => fs.existsSync(`${NETNS_DIR}/${n}`))];
  if (left.length > 0) problems.push(`namespaces still there: ${left.join(' ')}`);
  const leftProcs = labProcesses(dir).filter(pidAlive);
  if (leftProcs.length > 0) problems.push(`processes still running: ${leftProcs.join(' ')}`);
  if (fs.existsSync(dir)) problems.push(`${dir} still exists`);
  return problems;
}

/** Prints the lines appended to `file` since `offset`; returns the new offset (only whole lines are consumed). */
function followLog(file: string, offset: number, say: (l: string) => void): number {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return offset;
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size < offset) offset = 0;
    if (size === offset) return offset;
    const buf = Buffer.alloc(size - offset);
    fs.readSync(fd, buf, 0, buf.length, offset);
    const text = buf.toString('utf8');
    const end = text.lastIndexOf('\n');
    if (end < 0) return offset;
    for (const line of text.slice(0, end).split('\n')) say(line);
    return offset + Buffer.byteLength(text.slice(0, end + 1));
  } finally {
    fs.closeSync(fd);
  }
}

function logTail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---- up ----
async function up(a: { nodes: number | undefined; hostFirewall: boolean }): Promise<number> {
  const dir = labDir();
  const t0 = Date.now();
  const h = await health(dir);
  if (h.ok) {
    const n = h.state.nodes.length;
    if (a.nodes !== undefined && a.nodes !== n) {
      err(`the lab is already up with ${n} node(s), not ${a.nodes}; run \`scripts/lab down\` first to change it`);
      return 1;
    }
    out(`the lab is already up: ${n} node(s) (${h.state.nodes.map((x) => x.name).join(', ')}); \`scripts/lab kubectl get nodes\``);
    return 0;
  }
  let logOffset = 0;
  let pid: number;
  if (h.state && h.state.phase === 'starting' && pidAlive(h.state.pid)) {
    // Another `up` started it and it is still on its way: follow it instead of starting a second one.
    out(`the lab is starting (daemon pid ${h.state.pid}); following its progress`);
    pid = h.state.pid;
  } else {
    if (h.state || fs.existsSync(dir) || topologyNetnsList().length > 0) {
      out(`cleaning up a previous lab (${h.why})`);
      const problems = await down({ quiet: true });
      if (problems.length > 0) {
        err(`could not clean up the previous lab: ${problems.join('; ')}`);
        return 1;
      }
    }
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    const logFile = daemonLogPath(dir);
    const fd = fs.openSync(logFile, 'a');
    const nodes = a.nodes ?? 3;
    const child = spawn(process.execPath, [DAEMON, '--dir', dir, '--nodes', String(nodes)], {
      cwd: REPO,
      detached: true, // setsid(): its own session, no controlling terminal; `up` may exit
      stdio: ['ignore', fd, fd],
      env: { ...userEnv(), WEIR_LAB_DIR: dir, WEIR_LAB_HOST_FIREWALL: a.hostFirewall ? '1' : '0' },
    });
    fs.closeSync(fd);
    if (child.pid === undefined) {
      err('could not start the lab daemon');
      return 1;
    }
    pid = child.pid;
    child.unref();
    out(`lab daemon started (pid ${pid}, ${nodes} nodes, log ${logFile})`);
  }
  // Show the progress until ready or failed.
  const logFile = daemonLogPath(dir);
  const deadline = Date.now() + UP_TIMEOUT_MS;
  for (;;) {
    logOffset = followLog(logFile, logOffset, out);
    const s = readState(dir);
    if (s?.pid === pid && s.phase === 'ready') {
      out(`lab up in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${s.nodes.map((n) => `${n.name} ${n.ip}`).join(', ')}`);
      return 0;
    }
    const failed = s?.pid === pid && s.phase === 'failed';
    const dead = !pidAlive(pid);
    if (failed || dead) {
      // Let the daemon finish its teardown (it keeps logging), so the machine is clean when `up` returns.
      const until = Date.now() + DOWN_TIMEOUT_MS;
      while (pidAlive(pid) && Date.now() < until) {
        await sleep(250);
        logOffset = followLog(logFile, logOffset, out);
      }
      logOffset = followLog(logFile, logOffset, out);
      if (!readState(dir)) {
        err('the lab was stopped (`scripts/lab down`) before it was ready');
        return 1;
      }
      const error = readState(dir)?.error ?? `the daemon (pid ${pid}) exited before the lab was ready`;
      err(`last lines of ${logFile}:\n${logTail(logFile, 12)}`);
      err(`lab up FAILED: ${error}`);
      err(`logs: ${dir} (\`scripts/lab down\` removes them)`);
      return 1;
    }
    if (Date.now() > deadline) {
      err(`the lab was not ready after ${UP_TIMEOUT_MS / 1000} s; see ${logFile}; \`scripts/lab down\` stops it`);
      return 1;
    }
    await sleep(250);
  }
}

// ---- kubectl, exec, node ----
function kubectlCmd(args: string[]): number {
  const state = requireLab();
  if (!state.kubectl || !fs.existsSync(state.kubeconfig)) {
    err('the lab is still starting (no kubectl or kubeconfig yet); `scripts/lab up` follows its progress');
    return 1;
  }
  const r = spawnSync('ip', kubectlArgv(state, labDir(), args), { stdio: 'inherit', env: userEnv() });
  return exitCode(r);
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
  const state = requireLab();
  const [, ns, name] = m;
  let pods;
  try {
    pods = await labPods();
  } catch (e) {
    err(`exec: cannot ask the lab daemon for its pods: ${(e as Error).message}`);
    return 1;
  }
  const pod = pods.find((p) => p.namespace === ns && p.name === name);
  if (!pod) {
    err(`exec: no pod ${ns}/${name} runs on any lab node${pods.length > 0 ? ` (there are: ${pods.map((p) => `${p.namespace}/${p.name}`).join(' ')})` : ''}`);
    return 1;
  }
  let netnsPath = pod.netnsPath;
  if (!netnsPath && pod.hostNetwork) netnsPath = `${NETNS_DIR}/${state.nodes.find((n) => n.name === pod.node)?.netns ?? ''}`;
  if (!netnsPath || !fs.existsSync(netnsPath)) {
    err(`exec: pod ${ns}/${name} has no network namespace (phase ${pod.phase})`);
    return 1;
  }
  const r = spawnSync('nsenter', [`--net=${netnsPath}`, '--', ...cmd], { stdio: 'inherit', env: userEnv() });
  return exitCode(r);
}

/** The shell run in the node's namespace: bind the node's host paths over the real ones, in a private mount namespace, then exec CMD. */
export function nodeShell(root: string): string {
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const steps = NODE_HOST_PATHS.map((p) => `mkdir -p ${q(`/${p}`)} ${q(`${root}/${p}`)} && mount --bind ${q(`${root}/${p}`)} ${q(`/${p}`)}`);
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
  const env = userEnv({ PATH: `${path.join(REPO, 'dist/bin')}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` });
  const r = spawnSync('ip', ['netns', 'exec', n.netns, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', nodeShell(n.root), 'sh', ...cmd], { stdio: 'inherit', env });
  return exitCode(r);
}

// ---- command table ----
async function main(): Promise<void> {
  // kubectl's arguments go to kubectl untouched (--help included): no yargs parsing at all.
  const raw = hideBin(process.argv);
  if (['up', 'down', 'kubectl', 'exec', 'node'].includes(raw[0] ?? '') && !raw.includes('--help') && process.getuid?.() !== 0) {
    err(`${raw[0]}: the lab needs root (network namespaces); try sudo`);
    process.exit(1);
  }
  if (raw[0] === 'kubectl') process.exit(kubectlCmd(raw.slice(1)));
  let code = 0;
  await yargs(hideBin(process.argv))
    .scriptName('scripts/lab')
    .usage('$0 <command>\n\nweir\'s lab: a multi-node Kubernetes cluster in network namespaces (kind without Docker), running weir from its manifests.')
    .parserConfiguration({ 'populate--': true, 'unknown-options-as-args': true })
    .command(
      'up',
      'Start the lab (idempotent); shows progress until it is ready',
      (y) =>
        y
          .option('nodes', { type: 'number', describe: 'Number of nodes, the control plane included (default 3)' })
          .option('host-firewall', { type: 'boolean', default: false, describe: 'Run weir\'s agent with --host-firewall' })
          .parserConfiguration({ 'unknown-options-as-args': false })
          .strict(),
      async (a) => {
        if (a.nodes !== undefined && (!Number.isInteger(a.nodes) || a.nodes < 1 || a.nodes > 50)) {
          err('--nodes must be an integer 1..50');
          code = 2;
          return;
        }
        code = await up({ nodes: a.nodes, hostFirewall: a['host-firewall'] });
      },
    )
    .command(
      'down',
      'Stop the lab and remove all of it (safe to run twice)',
      (y) => y.parserConfiguration({ 'unknown-options-as-args': false }).strict(),
      async () => {
        const problems = await down();
        if (problems.length > 0) {
          err(`down: ${problems.join('; ')}`);
          code = 1;
        } else out('the lab is down');
      },
    )
    .command(
      'kubectl [args..]',
      'Run the pinned kubectl as cluster admin (in weirlab-net); all arguments go to kubectl',
      (y) => y.positional('args', { type: 'string', array: true, describe: 'kubectl\'s arguments' }),
      () => {
        const raw = hideBin(process.argv);
        code = kubectlCmd(raw.slice(raw.indexOf('kubectl') + 1));
      },
    )
    .command(
      'exec <pod>',
      'Run a command in a pod\'s network namespace: exec NAMESPACE/POD -- CMD...',
      (y) => y.positional('pod', { type: 'string', describe: 'NAMESPACE/POD', demandOption: true }),
      async (a) => {
        code = await execCmd(a.pod, argsAfterDashDash());
      },
    )
    .command(
      'node <node>',
      'Run a command in a node\'s namespace with its view of weir\'s paths: node NODE -- CMD...',
      (y) => y.positional('node', { type: 'string', describe: 'Node name, e.g. weir-worker', demandOption: true }),
      (a) => {
        code = nodeCmd(a.node, argsAfterDashDash());
      },
    )
    .command(
      'wait',
      'Wait until every pod is Running with its addresses and every node\'s agent has applied the API state as it is now',
      (y) =>
        y
          .option('timeout', { type: 'string', default: '120', describe: 'Give up after this long (seconds, or 500ms / 2m); exit 1 saying what is pending' })
          .parserConfiguration({ 'unknown-options-as-args': false })
          .strict(),
      async (a) => {
        const { waitCommand } = await import('./commands/wait.ts');
        code = await waitCommand({ timeout: a.timeout });
      },
    )
    .command(
      'matrix',
      'Probe every ordered pair of pods (TCP/UDP with agnhost connect, SCTP with a raw INIT) and print the connectivity tables',
      (y) =>
        y
          .option('namespaces', { type: 'string', describe: 'Comma-separated namespaces (default: all but kube-*)' })
          .option('ports', { type: 'string', default: '80,81', describe: 'Comma-separated ports' })
          .option('protocols', { type: 'string', default: 'TCP,UDP,SCTP', describe: 'Comma-separated protocols: TCP, UDP, SCTP' })
          .option('output', { alias: 'o', type: 'string', default: 'table', choices: ['table', 'json'], describe: 'table: upstream-style truth tables; json: {"probes":[...]}' })
          .option('host-network', { type: 'boolean', default: false, describe: 'Include hostNetwork pods' })
          .option('prober', { type: 'string', default: 'agnhost', choices: ['agnhost', 'netprobe'], describe: 'How TCP/UDP are probed (SCTP always by raw INIT)' })
          .option('timeout', { type: 'string', default: '1', describe: 'Per-probe timeout (seconds, or e.g. 500ms)' })
          .parserConfiguration({ 'unknown-options-as-args': false })
          .strict(),
      async (a) => {
        const { matrixCommand } = await import('./commands/matrix.ts');
        code = await matrixCommand({ namespaces: a.namespaces, ports: a.ports, protocols: a.protocols, output: a.output, hostNetwork: a['host-network'], prober: a.prober, timeout: a.timeout });
      },
    )
    .command(
      'demo',
      'The NetworkPolicy walk-through (netpol-demo: web, db, a client in default), narrated, checked step by step',
      (y) => y.parserConfiguration({ 'unknown-options-as-args': false }).strict(),
      async () => {
        const { demoCommand } = await import('./commands/demo.ts');
        code = await demoCommand();
      },
    )
    .demandCommand(1, 'give a command: up, down, kubectl, exec, node, wait, matrix, demo')
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
