// W1 and W2: smtp-source through every plain contender, alternating A B C A B C; the per-core
// twins run in the same rounds, and get their own table.

import type { WorkloadId } from '../lib/options.js';
import { treeCpuSeconds } from '../lib/proc-stats.js';
import { smtpSource } from '../lib/smtp-source.js';
import { countSyscalls, type SyscallCount } from '../lib/strace.js';
import { fmt, markdownTable, type Cell } from '../lib/table.js';
import { ALL_CORES_PAIRS, PER_CORE_PAIRS, contenderTable, medianOf, push, ratioTable, runsText, subset, type Samples } from './report.js';
import { perCoreContenders, plainContenders, type BenchContext } from './types.js';

export interface SourceResult {
  /** Median per available contender. */
  medians: Map<string, number>;
  /**
   * Median CPU time (user + system of the contender's whole process tree, from /proc) per
   * message, in µs (issue 26): what a session costs, whatever the concurrency; `direct` has none.
   */
  cpuMedians: Map<string, number>;
  body: string;
  raw: string[];
}

/**
 * Runs smtp-source `rounds` times per contender; `figure(ms)` turns wall time into the
 * reported number (sessions/s or MB/s).
 */
export async function sourceRounds(
  ctx: BenchContext,
  label: WorkloadId,
  params: { sessions: number; messages: number; size: number },
  unit: string,
  digits: number,
  figure: (ms: number) => number,
  timeoutMs: number,
  /** Messages of a separate pass under `strace -c -f` per contender (0: none). */
  syscallMessages = 0,
): Promise<SourceResult> {
  const allCores = plainContenders(ctx);
  const perCore = perCoreContenders(ctx.opts, label);
  const contenders = [...allCores, ...perCore];
  const unavailable = new Map<string, string>();
  const samples: Samples = new Map();
  const cpuUs: Samples = new Map();
  const cpuShare: Samples = new Map();
  const errors: string[] = [];
  for (const c of contenders) {
    const slot = ctx.fleet.get(c);
    if (!slot.ok) unavailable.set(c, slot.reason);
  }
  // One unmeasured run each first (a fifth of the messages): JIT warm-up for Postern, and
  // connection pools, caches and page faults for everyone.
  const warm = { ...params, messages: Math.max(params.sessions, Math.floor(params.messages / 5)) };
  for (const c of contenders) {
    const slot = ctx.fleet.get(c);
    if (!slot.ok || slot.inst.plain === null) continue;
    const run = await smtpSource(ctx.launch.tools.smtpSource, slot.inst.plain, warm, timeoutMs);
    ctx.log(`${label} warm-up ${c}: ${run.error ? `failed (${run.error})` : `${(run.ms / 1000).toFixed(2)} s`}`);
  }
  for (let round = 1; round <= ctx.opts.rounds; round++) {
    for (const c of contenders) {
      const slot = ctx.fleet.get(c);
      if (!slot.ok || slot.inst.plain === null) continue;
      const roots = slot.inst.procs.map((p) => p.pid);
      const cpu0 = roots.length ? treeCpuSeconds(roots) : Number.NaN;
      const run = await smtpSource(ctx.launch.tools.smtpSource, slot.inst.plain, params, timeoutMs);
      const cpu = roots.length ? treeCpuSeconds(roots) - cpu0 : Number.NaN;
      const v = run.error ? Number.NaN : figure(run.ms);
      push(samples, c, v);
      if (roots.length) {
        push(cpuUs, c, run.error ? Number.NaN : (cpu * 1e6) / params.messages);
        push(cpuShare, c, run.error ? Number.NaN : (100 * cpu) / (run.ms / 1000));
      }
      if (run.error) errors.push(`${c} round ${round}: ${run.error}`);
      ctx.log(`${label} round ${round}/${ctx.opts.rounds} ${c}: ${run.error ? `failed (${run.error})` : `${fmt(v, digits)} ${unit} (${(run.ms / 1000).toFixed(2)} s)`}`);
    }
  }
  const medians = new Map<string, number>();
  for (const c of contenders) if (!unavailable.has(c)) medians.set(c, medianOf(samples, c));
  const cpuMedians = new Map<string, number>();
  for (const c of contenders) if (!unavailable.has(c) && cpuUs.has(c)) cpuMedians.set(c, medianOf(cpuUs, c));
  const parts = [
    perCore.length ? '**All cores** (every contender may use every core):' : '',
    contenderTable(samples, allCores, unit, digits, subset(unavailable, allCores)),
    ratioTable(medians, ALL_CORES_PAIRS),
  ];
  if (perCore.length) {
    const rows = ['direct', ...perCore];
    parts.push(
      '**Per core** (`-1`: one process or one thread: Postern `workers: 1`, HAProxy `nbthread 1`, nginx `worker_processes 1`, ' +
        'node-pipe without cluster; same rounds as above, direct repeated):',
      contenderTable(samples, rows, unit, digits, subset(unavailable, rows)),
      ratioTable(medians, PER_CORE_PAIRS),
    );
  }
  parts.push(
    '**CPU per session** (user + system time of the contender\'s whole process tree, read from /proc around each run, ' +
      'divided by the messages sent; utilisation = that CPU time over the run\'s wall time, 100 % = one core busy):',
    cpuTable(cpuUs, cpuShare, contenders.filter((c) => cpuUs.has(c) && !unavailable.has(c))),
    ratioTable(cpuMedians, [...ALL_CORES_PAIRS, ...(perCore.length ? PER_CORE_PAIRS : [])], ' (CPU per session; lower is better)'),
  );
  if (syscallMessages > 0) parts.push(await syscallPass(ctx, label, contenders, params, syscallMessages, timeoutMs));
  if (errors.length > 0) parts.push('Failed runs:\n' + errors.map((e) => `- ${e}`).join('\n'));
  const raw = [...samples.entries()].map(([c, v]) => `${label} ${c}: ${v.map((x) => fmt(x, digits)).join(', ')} ${unit}`);
  raw.push(...[...cpuUs.entries()].map(([c, v]) => `${label} ${c} cpu: ${v.map((x) => fmt(x, 0)).join(', ')} µs/session`));
  return { medians, cpuMedians, body: parts.filter(Boolean).join('\n\n'), raw };
}

/** Rows: contender, median µs per session, each run, median utilisation. */
function cpuTable(us: Samples, share: Samples, contenders: string[]): string {
  const rows: Cell[][] = contenders.map((c) => [c, fmt(medianOf(us, c), 0), runsText(us.get(c), 0), fmt(medianOf(share, c), 0) + ' %']);
  return markdownTable(['contender', 'CPU µs / session (median)', 'runs', 'CPU utilisation'], rows);
}

/** One smtp-source pass of `messages` per contender under strace: system calls per session. */
async function syscallPass(
  ctx: BenchContext,
  label: WorkloadId,
  contenders: string[],
  params: { sessions: number; size: number },
  messages: number,
  timeoutMs: number,
): Promise<string> {
  const strace = ctx.launch.tools.strace;
  if (!strace) return '**System calls per session**: n/a (strace is not installed: `apt-get install -y strace`).';
  const rows: Cell[][] = [];
  for (const c of contenders) {
    const slot = ctx.fleet.get(c);
    if (!slot.ok || slot.inst.plain === null || slot.inst.procs.length === 0) continue;
    const port = slot.inst.plain;
    let error: string | null = null;
    const count: SyscallCount | null = await countSyscalls(strace, slot.inst.procs.map((p) => p.pid), async () => {
      error = (await smtpSource(ctx.launch.tools.smtpSource, port, { ...params, messages }, timeoutMs)).error;
    });
    ctx.log(`${label} strace ${c}: ${count ? `${count.calls} calls` : 'no summary'}${error ? ` (run failed: ${String(error)})` : ''}`);
    rows.push([c, count && !error ? fmt(count.calls / messages, 1) : 'n/a', count ? count.top.join(', ') : '']);
  }
  return (
    `**System calls per session** (a separate pass of ${messages} messages with \`strace -c -f\` attached to every process of the contender; ` +
    'strace slows what it traces, so this pass is not timed):\n\n' +
    markdownTable(['contender', 'syscalls / session', 'most frequent (whole pass)'], rows)
  );
}
