// One timed smtp-source run (W1, W2): wall time from spawn to exit.

import { runCommand } from './procs.js';

export interface SourceRun {
  /** Wall time in ms, or NaN when the run failed. */
  ms: number;
  error: string | null;
}

export async function smtpSource(
  bin: string,
  port: number,
  p: { sessions: number; messages: number; size: number },
  timeoutMs: number,
): Promise<SourceRun> {
  const args = ['-s', String(p.sessions), '-m', String(p.messages), '-l', String(p.size),
    '-f', 'bench@example.com', '-t', 'sink@example.com', `127.0.0.1:${port}`];
  const r = await runCommand(bin, args, timeoutMs);
  if (r.code === 0) return { ms: r.ms, error: null };
  const why = r.signal === 'SIGKILL' ? `timed out after ${timeoutMs} ms` : (r.stderr || r.stdout).trim().split('\n')[0] || `exit ${String(r.code)}`;
  return { ms: Number.NaN, error: why };
}
