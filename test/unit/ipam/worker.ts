// Child process for the DiskStore concurrency and crash tests, run bundled
// (helpers.ts) as `node worker.mjs '<job json>'`; by hand, unbundled, as
//   node --experimental-transform-types worker.ts '<job json>'
// (transform, not just strip: src/errors.ts uses parameter properties).
// Protocol: prints "ready" once its modules are loaded, then one JSON line of
// results for the jobs that finish.
import fs from 'node:fs';
import { RangeExhaustedError } from '../../../src/errors.ts';
import { allocate, gc, release } from '../../../src/ipam/allocator.ts';
import { DiskStore, type DiskStoreStep } from '../../../src/ipam/disk-store.ts';
import { PodRange } from '../../../src/ipam/range.ts';

export type Job =
  | { mode: 'allocate'; dataDir: string; network: string; ranges: string[]; prefix: string; count: number; goFile: string }
  | { mode: 'loop'; dataDir: string; network: string; ranges: string[]; prefix: string }
  | {
      mode: 'crash';
      dataDir: string;
      network: string;
      ranges: string[];
      op: 'allocate' | 'release';
      containerID: string;
      step: DiskStoreStep;
      nth: number;
    };

const sleep = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};
const say = (line: string): void => {
  fs.writeSync(1, `${line}\n`);
};

function run(job: Job): void {
  const ranges = job.ranges.map((r) => PodRange.parse(r));
  const pod = (containerID: string) => ({ containerID, ifname: 'eth0', network: job.network });

  if (job.mode === 'allocate') {
    const store = new DiskStore(job.dataDir, job.network);
    say('ready');
    // Start barrier, so all workers contend for the lock at once.
    while (!fs.existsSync(job.goFile)) sleep(2);
    const addresses: string[] = [];
    let exhausted = 0;
    for (let i = 0; i < job.count; i++) {
      try {
        addresses.push(...allocate(store, ranges, pod(`${job.prefix}-${i}`)).addresses);
      } catch (e) {
        if (!(e instanceof RangeExhaustedError)) throw e;
        exhausted++;
      }
    }
    say(JSON.stringify({ addresses, exhausted }));
    return;
  }

  if (job.mode === 'loop') {
    // Allocate, release and gc forever until SIGKILLed, keeping a few live.
    const store = new DiskStore(job.dataDir, job.network);
    for (let i = 0; ; i++) {
      allocate(store, ranges, pod(`${job.prefix}-${i}`));
      if (i === 0) say('ready');
      if (i >= 3) release(store, `${job.prefix}-${i - 3}`, 'eth0');
      if (i % 10 === 9)
        gc(
          store,
          [0, 1, 2].map((k) => ({ containerID: `${job.prefix}-${i - k}`, ifname: 'eth0' })),
        );
    }
  }

  let seen = 0;
  const store = new DiskStore(job.dataDir, job.network, {
    onStep: (step) => {
      if (step === job.step && ++seen === job.nth) process.kill(process.pid, 'SIGKILL');
    },
  });
  say('ready');
  if (job.op === 'allocate') allocate(store, ranges, pod(job.containerID));
  else release(store, job.containerID, 'eth0');
  // Reaching here means the crash point was never hit: the test must notice.
  say(JSON.stringify({ survived: true }));
  process.exitCode = 3;
}

const arg = process.argv[2];
if (arg === undefined) throw new Error('usage: worker.ts <job json>');
run(JSON.parse(arg) as Job);
