// Worker thread of the SCTP observer (observer.ts): blocks in poll(2) on the
// raw sockets opened by the main thread (fds are process-wide) and posts each
// INIT event back. Checks the shared stop flag after every poll period.
import { parentPort, workerData } from 'node:worker_threads';
import { drainSctp, type ObserverWorkerData } from './observer.ts';

const data = workerData as ObserverWorkerData;
const stop = new Int32Array(data.stop);
const ports = new Set(data.ports);
const buf = Buffer.alloc(65536);
while (Atomics.load(stop, 0) === 0) {
  for (const ev of drainSctp(data.fds, ports, buf, data.pollMs)) parentPort?.postMessage(ev);
}
