// The fuzz run itself, in a worker thread: before each input it bumps a heartbeat and copies
// the input into shared memory, so the watchdog in cli.ts can name an input that hangs.
import { parentPort, workerData } from 'node:worker_threads';
import { fuzz } from './engine.js';
import { HEADER_INTS, INPUT_CAPACITY } from './shared.js';

const { seed, runs, timeMs, targets, sab } = workerData as { seed: number; runs?: number; timeMs?: number; targets?: string[]; sab: SharedArrayBuffer };
const header = new Int32Array(sab, 0, HEADER_INTS);
const bytes = new Uint8Array(sab, HEADER_INTS * 4, INPUT_CAPACITY);
let lastLog = Date.now();

const result = fuzz({
  seed,
  runs,
  timeMs,
  targets,
  slowMs: 2000,
  onInput(target, input, execSeed) {
    const n = Math.min(input.length, INPUT_CAPACITY);
    bytes.set(input.subarray(0, n));
    Atomics.store(header, 1, target);
    Atomics.store(header, 2, n);
    Atomics.store(header, 3, execSeed | 0);
    Atomics.add(header, 0, 1);
  },
  log(line) {
    if (Date.now() - lastLog < 10_000) return;
    lastLog = Date.now();
    parentPort!.postMessage({ log: line });
  },
});
parentPort!.postMessage({ result });
