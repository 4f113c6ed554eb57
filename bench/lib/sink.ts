// Postfix smtp-sink: the backend of every contender, and the target of `direct`.
// It speaks XCLIENT and XFORWARD unless -C / -F are given (we give neither).

import path from 'node:path';
import type { Instance } from './instance.js';
import { freePorts } from './ports.js';
import { startManaged, waitForPorts } from './procs.js';

export async function startSink(smtpSink: string, dir: string, nofile: number, label = 'sink'): Promise<Instance> {
  const [port] = await freePorts(1);
  const args: string[] = [];
  // smtp-sink refuses to run as root without -u.
  if (process.getuid?.() === 0) args.push('-u', 'nobody');
  // -m: sessions at once (W5 holds thousands open through HAProxy); -t: idle time limit (s).
  args.push('-m', String(Math.max(256, nofile - 100)), '-t', '300', `127.0.0.1:${port}`, '4096');
  const proc = startManaged(label, smtpSink, args, path.join(dir, `${label}.log`));
  try {
    await waitForPorts(proc, [port!]);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { name: 'direct', procs: [proc], plain: port!, implicit: {}, starttls: {}, stop: () => proc.stop() };
}
