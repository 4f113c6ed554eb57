// A timed loop: `concurrency` lanes repeat one operation from a shared start time; only
// operations that finish inside [startAt + warmup, + window] count. Bounded by time and count.

import type { TimedJob, TimedResult } from './protocol.js';
import { errorText } from './smtp-wire.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

export async function timedLoop(job: TimedJob, once: () => Promise<boolean>): Promise<TimedResult> {
  const from = job.startAt + job.warmupMs;
  const to = from + job.windowMs;
  const result: TimedResult = { count: 0, reused: 0, errors: 0, firstError: null, cpuSeconds: 0 };
  let started = 0;

  let cpuAtStart: NodeJS.CpuUsage | null = null;
  const cpuTimer = setTimeout(() => {
    cpuAtStart = process.cpuUsage();
  }, from - Date.now());
  let cpuWindow: NodeJS.CpuUsage | null = null;
  const cpuEnd = setTimeout(() => {
    if (cpuAtStart) cpuWindow = process.cpuUsage(cpuAtStart);
  }, to - Date.now());

  await sleep(job.startAt - Date.now());
  const lane = async () => {
    while (Date.now() < to && started < job.maxCount) {
      started++;
      try {
        const reused = await once();
        const now = Date.now();
        if (now >= from && now <= to) {
          result.count++;
          if (reused) result.reused++;
        }
      } catch (err) {
        result.errors++;
        result.firstError ??= errorText(err);
        // A refusing server must not turn the loop into a busy spin.
        await sleep(5);
      }
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, lane));
  clearTimeout(cpuTimer);
  clearTimeout(cpuEnd);
  const w = cpuWindow as NodeJS.CpuUsage | null;
  result.cpuSeconds = w ? (w.user + w.system) / 1e6 : Number.NaN;
  return result;
}
