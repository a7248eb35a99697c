// CNI ADD/DEL wall latency of weir against the reference ptp + host-local and
// against a bare start of weir's own Node runtime (the floor of any Node-based
// plugin). Run through scripts/bench-cni. Everything happens inside network
// namespaces made here: one "node" netns where the plugins run, and one netns
// per pod per plugin. Nothing is done in the root namespace; it is snapshotted
// before and compared after.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { f1 as f } from './lib/format.ts';
import { BASE_ENV, benchTag, IP, interruptible, linkChange, rootLinks, run, taggedNetns } from './lib/host.ts';
import { pct } from './lib/stats.ts';
import { benchOptions } from './options.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const USAGE = `usage: scripts/bench-cni [--pods N] [--rounds R] [--build] [--compare FILE]
  --pods N        pods per round (default 50, at most 250: each plugin has a /24)
  --rounds R      rounds of N ADDs then N DELs; samples are pooled (default 1)
  --build         rebuild dist/bin/weir first (otherwise only when it is missing)
  --compare FILE  also time another weir executable (e.g. a copy of an older
                  build, with its koffi.node beside it) in the same run`;
const { opt, int } = benchOptions('bench-cni', USAGE, {
  pods: { type: 'string', default: '50' },
  rounds: { type: 'string', default: '1' },
  build: { type: 'boolean' },
  compare: { type: 'string' },
});
const PODS = int('pods', 1, 250);
const ROUNDS = int('rounds', 1);
if (process.getuid?.() !== 0) {
  console.error('bench-cni: needs root (network namespaces)');
  process.exit(1);
}

const started = process.hrtime.bigint();
const NODE = path.join(root, 'node_modules/.bin/node');
const WEIR = path.join(root, 'dist/bin/weir');
const PTP = '/usr/lib/cni/ptp';
const OTHER = opt.compare ? path.resolve(opt.compare) : undefined;
const TAG = benchTag('wbench');
const NODE_NS = `${TAG}-node`;
const made = []; // namespaces this run created, in order
let tmp;

if (!fs.existsSync(PTP)) {
  console.error(`bench-cni: ${PTP} missing (apt-get install containernetworking-plugins)`);

  process.exit(1);
}
if (OTHER && !fs.existsSync(OTHER)) {
  console.error(`bench-cni: ${OTHER} missing`);
  process.exit(1);
}
if (opt.build || !fs.existsSync(WEIR)) execFileSync(NODE, [path.join(root, 'scripts/build.mjs')], { cwd: root, stdio: ['ignore', 2, 2] });
const newest = (d) => fs.readdirSync(d, { recursive: true }).reduce((m, f) => Math.max(m, fs.statSync(path.join(d, f)).mtimeMs), 0);
const stale = Math.max(newest(path.join(root, 'src')), newest(path.join(root, 'cni'))) > fs.statSync(WEIR).mtimeMs;

// ---- processes and namespaces ----------------------------------------------
const sh = (args) => run(IP, args);
function addNs(name) {
  sh(['netns', 'add', name]);
  made.push(name);
  sh(['-n', name, 'link', 'set', 'lo', 'up']);
}
const vethCount = () => sh(['-n', NODE_NS, '-o', 'link', 'show', 'type', 'veth']).split('\n').filter(Boolean).length;

// CPU time of this process's reaped children: `ip netns exec` execs env, which
// execs the command, so one spawn's delta is the command's own CPU plus that of
// the children it waited for (host-local under ptp). On a shared machine wall
// time is mostly waiting for a core; CPU time is what a start costs.
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
function childCpuMs() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state) on
  return (Number(fields[13]) + Number(fields[14])) * TICK_MS; // cutime, cstime: fields 16 and 17
}

/** Every sample is timed this one way: wall time of `ip netns exec NODE env VARS... cmd` run to completion. */
function timed(what, vars, cmd, input = '') {
  const argv = ['netns', 'exec', NODE_NS, 'env', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), ...cmd];
  const c0 = childCpuMs();
  const t0 = process.hrtime.bigint();
  const r = spawnSync(IP, argv, { env: BASE_ENV, input, encoding: 'utf8', maxBuffer: 1 << 22 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = childCpuMs() - c0;
  if (r.error || r.status !== 0)
    throw new Error(`${what} failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}): ${r.error ?? ''}${r.stdout}${r.stderr}`.trim());
  return { ms, cpu, out: r.stdout };
}

const { aborted, checkpoint } = interruptible();

// ---- the plugins -------------------------------------------------------------
const confs = () => ({
  weir: JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'weir', podCIDRs: ['10.244.1.0/24'], dataDir: `${tmp}/weir` }),
  // Its own range and store: both weirs wire pods into the same node netns.
  other: JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'weir', podCIDRs: ['10.246.1.0/24'], dataDir: `${tmp}/other` }),
  ptp: JSON.stringify({
    cniVersion: '1.0.0',
    name: 'bench',
    type: 'ptp',
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.245.1.0/24' }]], dataDir: `${tmp}/ptp` },
  }),
});
const ROWS = [
  { key: 'weir', label: 'weir (`dist/bin/weir`)' },
  ...(OTHER ? [{ key: 'other', label: `weir (\`${path.relative(root, OTHER)}\`)` }] : []),
  { key: 'ptp', label: 'ptp + host-local 1.1.1' },
  { key: 'bare', label: 'bare start: `CNI_COMMAND=VERSION dist/bin/weir`' },
  { key: 'node', label: 'ref: `node -e 0`' },
  { key: 'exec', label: 'ref: `ip netns exec … env true`' },
];
const samples = { ADD: {}, DEL: {} };
const cpuSamples = { ADD: {}, DEL: {} };
for (const v of ['ADD', 'DEL'])
  for (const r of ROWS) {
    samples[v][r.key] = [];
    cpuSamples[v][r.key] = [];
  }

function tasks(verb, pod, cid, conf, record = true) {
  const env = (ns, ifname) => ({ CNI_COMMAND: verb, CNI_CONTAINERID: cid, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: ifname, CNI_PATH: '/usr/lib/cni' });
  const expect = (prefix) => (out) => {
    if (verb !== 'ADD') return;
    const ip = JSON.parse(out).ips?.[0]?.address ?? '';
    if (!ip.startsWith(prefix)) throw new Error(`${verb} ${cid}: unexpected result ${out}`);
  };
  const t =
    (key, vars, cmd, input, check = () => {}) =>
    () => {
      const { ms, cpu, out } = timed(`${key} ${verb} ${cid}`, vars, cmd, input);
      check(out);
      if (record) {
        samples[verb][key].push(ms);
        cpuSamples[verb][key].push(cpu);
      }
    };
  // The other weir's container IDs differ, so its host veth names (a hash of the ID) do not collide with weir's.
  const other = () => t('other', { ...env(`${pod}o`, 'eth0'), CNI_CONTAINERID: `${cid}-o` }, [OTHER], conf.other, expect('10.246.1.'));
  return [
    t('weir', env(`${pod}w`, 'eth0'), [WEIR], conf.weir, expect('10.244.1.')),
    ...(OTHER ? [other()] : []),
    t('ptp', env(`${pod}p`, 'eth0'), [PTP], conf.ptp, expect('10.245.1.')),
    t('bare', { CNI_COMMAND: 'VERSION' }, [WEIR], conf.weir),
    t('node', {}, [NODE, '-e', '0']),
    t('exec', {}, ['true']),
  ];
}

// ---- the run -------------------------------------------------------------------
let exitCode = 0;
const rootBefore = rootLinks();
try {
  tmp = fs.mkdtempSync(`/tmp/${TAG}.`);
  const conf = confs();
  addNs(NODE_NS);
  for (let i = 0; i < PODS; i++) {
    addNs(`${TAG}-${i}w`);
    addNs(`${TAG}-${i}p`);
    if (OTHER) addNs(`${TAG}-${i}o`);
  }
  addNs(`${TAG}-warmw`);
  addNs(`${TAG}-warmp`);
  if (OTHER) addNs(`${TAG}-warmo`);
  // Warm-up, not recorded: page cache for the 120 MB SEA binary, host-local's dirs, sysctls.
  for (const verb of ['ADD', 'DEL']) {
    for (const f of tasks(verb, `${TAG}-warm`, 'warmup', conf, false)) {
      f();
      await checkpoint();
    }
  }

  for (let round = 0; round < ROUNDS; round++) {
    for (const verb of ['ADD', 'DEL']) {
      for (let i = 0; i < PODS; i++) {
        const list = tasks(verb, `${TAG}-${i}`, `bench-r${round}-p${i}`, conf);
        // Interleaved, with the order rotated per pod so no row always runs first or after the same neighbour.
        for (let k = 0; k < list.length; k++) {
          list[(i + k) % list.length]();
          await checkpoint();
        }
      }
      const want = verb === 'ADD' ? (OTHER ? 3 : 2) * PODS : 0;
      if (vethCount() !== want) throw new Error(`after ${verb} round ${round}: ${vethCount()} veths in the node netns, expected ${want}`);
    }
    process.stderr.write(`bench-cni: round ${round + 1}/${ROUNDS} done\n`);
  }
  report();
} catch (e) {
  await new Promise((r) => setImmediate(r)); // let a pending signal handler run
  console.error(`bench-cni: ${aborted() ? `interrupted (${aborted()}): ` : ''}${e.message}`);
  exitCode = aborted() ? 130 : 1;
} finally {
  for (const n of made.reverse()) spawnSync(IP, ['netns', 'del', n], { env: BASE_ENV });
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  const left = taggedNetns(TAG);
  const links = linkChange(rootBefore, rootLinks());
  console.log(`\ncleanup: ${made.length} netns created and deleted; left over: ${left.length ? left.join(' ') : 'none'}; root netns links ${links.text}`);
  if (left.length || links.leaked.length) exitCode ||= 1;
  console.log(`total time: ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`);
  process.exit(exitCode);
}

// ---- the report ----------------------------------------------------------------
function report() {
  const st = (verb, key) => ({ p50: pct(samples[verb][key], 0.5), p99: pct(samples[verb][key], 0.99), n: samples[verb][key].length });
  const mean = (verb, key) => cpuSamples[verb][key].reduce((a, b) => a + b, 0) / cpuSamples[verb][key].length;
  const n = samples.ADD.weir.length;
  const cpu = (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) ?? [])[1] ?? '?';
  const out = [];
  out.push(`### CNI ADD/DEL wall latency: weir vs ptp + host-local vs bare Node start\n`);
  out.push(`machine: nproc ${os.availableParallelism()}, kernel ${os.release()}, ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB; node ${process.version}`);
  out.push(
    `samples: ${PODS} pods x ${ROUNDS} round(s) = ${n} ADD + ${n} DEL per plugin, ${n} bare starts in each phase (${ROWS.length * 2 * n} timed spawns, 0 failed); 1 warm-up each, not counted`,
  );
  if (stale) out.push(`WARNING: dist/bin/weir is older than src/ or cni/; rerun with --build to measure the current code`);
  out.push('', '| what | ADD p50 ms | ADD p99 ms | ADD CPU ms | DEL p50 ms | DEL p99 ms | DEL CPU ms |', '|---|---:|---:|---:|---:|---:|---:|');
  for (const r of ROWS) {
    const a = st('ADD', r.key),
      d = st('DEL', r.key);
    out.push(`| ${r.label} | ${f(a.p50)} | ${f(a.p99)} | ${f(mean('ADD', r.key))} | ${f(d.p50)} | ${f(d.p99)} | ${f(mean('DEL', r.key))} |`);
  }
  out.push(
    '',
    `Each sample is the wall time of one spawnSync of \`ip netns exec <node-netns> env CNI_… <cmd>\`, the same for every row (so each includes the netns-exec cost of the last row). Rows are interleaved per pod, order rotated; bare/ref rows in the DEL columns were measured during the DEL phase. p99 is nearest-rank (= max for n ≤ 100). CPU ms is the mean user+system time of the spawn and the children it waited for, from this process's children's times in clock ticks (${f(TICK_MS)} ms each; the mean of n samples is good to about a tick over √n).`,
    '',
  );
  for (const verb of ['ADD', 'DEL']) {
    const w = st(verb, 'weir').p50,
      p = st(verb, 'ptp').p50,
      b = st(verb, 'bare').p50;
    const o = OTHER ? `, other weir/ptp = ${(st(verb, 'other').p50 / p).toFixed(2)}` : '';
    out.push(`${verb}: weir/ptp = ${(w / p).toFixed(2)}, weir/(bare+ptp) = ${(w / (b + p)).toFixed(2)}, weir - bare = ${f(w - b)} ms${o}`);
    const oc = OTHER ? `, other weir/ptp = ${(mean(verb, 'other') / mean(verb, 'ptp')).toFixed(2)}` : '';
    out.push(
      `${verb} CPU: weir/ptp = ${(mean(verb, 'weir') / mean(verb, 'ptp')).toFixed(2)}, weir - bare = ${f(mean(verb, 'weir') - mean(verb, 'bare'))} ms${oc}`,
    );
  }
  for (const verb of ['ADD', 'DEL']) {
    const w = st(verb, 'weir').p50,
      p = st(verb, 'ptp').p50,
      b = st(verb, 'bare').p50;
    out.push(
      `${w <= b + p ? 'PASS' : 'FAIL'}: weir ${verb} p50 ${f(w)} ms ${w <= b + p ? '<=' : '>'} bare-start p50 ${f(b)} + ptp ${verb} p50 ${f(p)} = ${f(b + p)} ms`,
    );
  }
  console.log(out.join('\n'));
}
