// A load generator process: runs the jobs the harness sends over IPC (see protocol.ts).

import { IdleHolder } from './idle.js';
import { latencyRun } from './latency.js';
import type { FromWorker, TimedJob, ToWorker } from './protocol.js';
import { errorText } from './smtp-wire.js';
import { timedLoop } from './timed.js';
import { handshakeOnce, starttlsOnce, type SessionSlot, type TlsTarget } from './tls-ops.js';

function send(msg: FromWorker): void {
  process.send?.(msg);
}

function operation(job: TimedJob): () => Promise<boolean> {
  const target: TlsTarget = { host: job.host, port: job.port, version: job.tls, resumed: job.resumed, noTicket: job.noTicket ?? false };
  const slot: SessionSlot = { session: null };
  const op = job.kind === 'tls-handshake' ? handshakeOnce : starttlsOnce;
  return () => op(target, slot);
}

/** One operation (two in resumed mode: the second must resume the first's session). */
async function probe(job: TimedJob): Promise<FromWorker> {
  try {
    const once = operation(job);
    let reused = await once();
    if (job.resumed) reused = await once();
    return { type: 'probe', ok: true, reused, error: null };
  } catch (err) {
    return { type: 'probe', ok: false, reused: false, error: errorText(err) };
  }
}

const holder = new IdleHolder();

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case 'timed': {
      const once = operation(msg.job);
      // Resumed mode starts from a session obtained before the window opens.
      if (msg.job.resumed) await once().catch(() => false);
      send({ type: 'timed', result: await timedLoop(msg.job, once) });
      return;
    }
    case 'probe':
      send(await probe(msg.job));
      return;
    case 'idle':
      send({ type: 'idle-ready', result: await holder.open(msg.job) });
      return;
    case 'release':
      holder.release();
      send({ type: 'released' });
      return;
    case 'latency':
      send({ type: 'latency', result: await latencyRun(msg.job) });
      return;
    case 'exit':
      holder.release();
      process.disconnect?.();
      process.exit(0);
  }
}

process.on('message', (msg: ToWorker) => {
  handle(msg).catch((err: unknown) => send({ type: 'error', message: errorText(err) }));
});
// The harness went away: so do we.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
