// libnftables under a storm of signals. Its acknowledgement loop gives up
// when a signal interrupts select(2), after the kernel committed the batch,
// so an unguarded caller is told "Interrupted system call" for a change that
// was made (found by the policy matrix suite: a child process exiting during
// a transaction). LibNftables blocks the asynchronous signals on its thread
// around each call (src/sys/signals.ts): every transaction must succeed,
// while the process still receives and handles every signal.
// Needs root (a network namespace).
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LibNftables } from '../../src/nft/libnftables.ts';
import { Netns } from '../../src/sys/netns.ts';
import { createNetns, type TestNetns } from '../helpers/netns.ts';
import { waitFor } from '../helpers/wait.ts';

const RULES = Array.from({ length: 10 }, (_, k) => `add rule inet sigtest c tcp dport ${k + 1} accept`).join('\n');
const STORM_MS = 5000;

describe('LibNftables while signals keep arriving (kernel)', () => {
  let netns: TestNetns;
  let ns: Netns;
  let nft: LibNftables;
  let storm: ChildProcess | undefined;
  let received = 0;
  const onSignal = (): void => {
    received++;
  };

  beforeAll(() => {
    netns = createNetns('nftsig');
    ns = Netns.open(netns.path);
    nft = new LibNftables({ netns: ns });
    nft.runScript('add table inet sigtest\nadd chain inet sigtest c');
  });

  afterAll(() => {
    storm?.kill('SIGKILL');
    process.off('SIGUSR2', onSignal);
    nft?.close();
    ns?.close();
    netns?.destroy();
  });

  it('every transaction succeeds and reads back, and every signal is still handled', async () => {
    process.on('SIGUSR2', onSignal);
    // A builtin kill in a loop: tens of thousands of signals a second at this process.
    storm = spawn('bash', ['-c', `while :; do kill -USR2 ${process.pid} || exit; done`], { stdio: 'ignore' });
    await waitFor('the first signals', () => received > 100, 10_000);
    let runs = 0;
    const failures: string[] = [];
    const end = Date.now() + STORM_MS;
    while (Date.now() < end) {
      runs++;
      try {
        nft.runScript(`flush chain inet sigtest c\n${RULES}`);
      } catch (e) {
        failures.push(e instanceof Error ? e.message : String(e));
      }
      // Let the event loop run the handlers now and then, as the agent's loop does.
      if (runs % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    storm.kill('SIGKILL');
    const during = received;
    expect(failures, `${failures.length} of ${runs} transactions reported failed`).toEqual([]);
    expect(nft.list('inet', 'sigtest').match(/tcp dport \d+ accept/g)).toHaveLength(10);
    // The storm reached the process throughout: the guard defers signals, it does not lose them.
    expect(during).toBeGreaterThan(runs);
  }, 30_000);
});
