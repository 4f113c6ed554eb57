// W1 and W2: smtp-source through every plain contender, alternating A B C A B C.

import { smtpSource } from '../lib/smtp-source.js';
import { fmt } from '../lib/table.js';
import { contenderTable, medianOf, push, ratioTable, type Samples } from './report.js';
import { plainContenders, type BenchContext } from './types.js';

export interface SourceResult {
  /** Median per available contender. */
  medians: Map<string, number>;
  body: string;
  raw: string[];
}

/**
 * Runs smtp-source `rounds` times per contender; `figure(ms)` turns wall time into the
 * reported number (sessions/s or MB/s).
 */
export async function sourceRounds(
  ctx: BenchContext,
  label: string,
  params: { sessions: number; messages: number; size: number },
  unit: string,
  digits: number,
  figure: (ms: number) => number,
  timeoutMs: number,
): Promise<SourceResult> {
  const contenders = plainContenders(ctx);
  const unavailable = new Map<string, string>();
  const samples: Samples = new Map();
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
      const run = await smtpSource(ctx.launch.tools.smtpSource, slot.inst.plain, params, timeoutMs);
      const v = run.error ? Number.NaN : figure(run.ms);
      push(samples, c, v);
      if (run.error) errors.push(`${c} round ${round}: ${run.error}`);
      ctx.log(`${label} round ${round}/${ctx.opts.rounds} ${c}: ${run.error ? `failed (${run.error})` : `${fmt(v, digits)} ${unit} (${(run.ms / 1000).toFixed(2)} s)`}`);
    }
  }
  const medians = new Map<string, number>();
  for (const c of contenders) if (!unavailable.has(c)) medians.set(c, medianOf(samples, c));
  const parts = [contenderTable(samples, contenders, unit, digits, unavailable), ratioTable(medians)];
  if (errors.length > 0) parts.push('Failed runs:\n' + errors.map((e) => `- ${e}`).join('\n'));
  const raw = [...samples.entries()].map(([c, v]) => `${label} ${c}: ${v.map((x) => fmt(x, digits)).join(', ')} ${unit}`);
  return { medians, body: parts.filter(Boolean).join('\n\n'), raw };
}
