// System calls per session (issue 26): `strace -c -f` attached to every process of a
// contender's tree for one short smtp-source pass, separate from the timed rounds (strace
// slows what it traces, so its figures never mix with the throughput ones).

import { spawn } from 'node:child_process';
import { processTree } from './proc-stats.js';

export interface SyscallCount {
  /** Calls over the pass, all processes, all kinds. */
  calls: number;
  /** The five most frequent calls, `name count`. */
  top: string[];
}

/**
 * The summary table strace -c prints on detach: rows `% time seconds usecs/call calls
 * [errors] syscall`, ended by a `total` row. Pure: unit-testable on strace's text.
 */
export function parseStraceSummary(text: string): SyscallCount | null {
  const rows: { name: string; calls: number }[] = [];
  let total: number | null = null;
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^[\d.]+$/.test(f[0]!)) continue;
    const name = f[f.length - 1]!;
    const calls = Number(f[3]);
    if (!Number.isFinite(calls)) continue;
    if (name === 'total') total = calls;
    else rows.push({ name, calls });
  }
  if (total === null) return null;
  rows.sort((a, b) => b.calls - a.calls);
  return { calls: total, top: rows.slice(0, 5).map((r) => `${r.name} ${r.calls}`) };
}

/** Attaches to the trees of `roots`, runs `work`, detaches; null when strace is missing or fails. */
export async function countSyscalls(strace: string, roots: number[], work: () => Promise<unknown>): Promise<SyscallCount | null> {
  const pids = roots.flatMap((r) => processTree(r));
  if (pids.length === 0) return null;
  const child = spawn(strace, ['-c', '-f', ...pids.flatMap((p) => ['-p', String(p)])], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // strace says "Process N attached" per pid once it is in place.
  const deadline = Date.now() + 5000;
  while ((err.match(/attached/g) ?? []).length < pids.length && Date.now() < deadline && child.exitCode === null) {
    await new Promise((r) => setTimeout(r, 20));
  }
  try {
    await work();
  } finally {
    child.kill('SIGINT');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
  return parseStraceSummary(err);
}
