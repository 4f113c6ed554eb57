// W6: one client, sessions one after the other; each timed from connect to the 221.

import net from 'node:net';
import type { LatencyJob, LatencyResult } from './protocol.js';
import { ReplyReader, errorText, withTimeout } from './smtp-wire.js';

const SESSION_TIMEOUT_MS = 5_000;
const BODY = 'From: <bench@example.com>\r\nTo: <sink@example.com>\r\nSubject: latency\r\n\r\nhello\r\n.\r\n';

async function session(host: string, port: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  const s = net.connect({ host, port });
  s.setNoDelay(true);
  const run = async () => {
    const r = new ReplyReader(s);
    await r.expect(220, 'greeting');
    s.write('EHLO bench.localhost\r\n');
    await r.expect(250, 'EHLO');
    s.write('MAIL FROM:<bench@example.com>\r\n');
    await r.expect(250, 'MAIL');
    s.write('RCPT TO:<sink@example.com>\r\n');
    await r.expect(250, 'RCPT');
    s.write('DATA\r\n');
    await r.expect(354, 'DATA');
    s.write(BODY);
    await r.expect(250, 'end of data');
    s.write('QUIT\r\n');
    await r.expect(221, 'QUIT');
  };
  try {
    await withTimeout(run(), SESSION_TIMEOUT_MS, s, 'session');
    return Number(process.hrtime.bigint() - t0) / 1e6;
  } finally {
    s.destroy();
  }
}

export async function latencyRun(job: LatencyJob): Promise<LatencyResult> {
  const deadline = Date.now() + job.deadlineMs;
  const out: LatencyResult = { samples: [], errors: 0, firstError: null };
  for (let i = 0; i < job.warmup && Date.now() < deadline; i++) {
    await session(job.host, job.port).catch(() => 0);
  }
  for (let i = 0; i < job.sessions && Date.now() < deadline; i++) {
    try {
      out.samples.push(await session(job.host, job.port));
    } catch (err) {
      out.errors++;
      out.firstError ??= errorText(err);
      // Stop early against a contender that refuses every session.
      if (out.errors >= 20 && out.samples.length === 0) break;
    }
  }
  return out;
}
