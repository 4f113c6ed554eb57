// W6 added latency: one client, sequential whole sessions; p50/p99 per contender minus direct,
// all cores and per core.

import { median, percentile } from '../lib/stats.js';
import { fmt, markdownTable, type Cell } from '../lib/table.js';
import { ALL_CORES_PAIRS, PER_CORE_PAIRS, naNotes, ratioTable } from './report.js';
import { ratioTarget } from './targets.js';
import { POSTERNS, perCoreContenders, plainContenders, type Section, type Workload } from './types.js';

interface Run {
  p50: number;
  p99: number;
  n: number;
  errors: number;
  firstError: string | null;
}

export const w6: Workload = async (ctx): Promise<Section> => {
  const pool = await ctx.generators();
  const sessions = ctx.opts.counts.latencySessions;
  const warmup = Math.min(100, Math.floor(sessions / 10));
  const allCores = plainContenders(ctx);
  const perCore = perCoreContenders(ctx.opts, 'W6');
  const contenders = [...allCores, ...perCore];
  const runs = new Map<string, Run[]>();
  for (let round = 1; round <= ctx.opts.rounds; round++) {
    for (const c of contenders) {
      const slot = ctx.fleet.get(c);
      if (!slot.ok || slot.inst.plain === null) continue;
      const r = await pool.latency({ kind: 'latency', host: '127.0.0.1', port: slot.inst.plain, sessions, warmup, deadlineMs: 120_000 });
      const ok = r.samples.length >= sessions / 2;
      const run: Run = {
        p50: ok ? percentile(r.samples, 50) : Number.NaN,
        p99: ok ? percentile(r.samples, 99) : Number.NaN,
        n: r.samples.length,
        errors: r.errors,
        firstError: r.firstError,
      };
      runs.set(c, [...(runs.get(c) ?? []), run]);
      ctx.log(
        `W6 round ${round}/${ctx.opts.rounds} ${c}: p50 ${fmt(run.p50, 3)} ms, p99 ${fmt(run.p99, 3)} ms over ${run.n} sessions` +
          (run.errors ? ` (${run.errors} errors: ${run.firstError ?? ''})` : ''),
      );
    }
  }
  const p50 = (c: string) => median((runs.get(c) ?? []).map((r) => r.p50));
  const p99 = (c: string) => median((runs.get(c) ?? []).map((r) => r.p99));
  const row = (c: string): Cell[] => {
    const slot = ctx.fleet.get(c);
    if (!slot.ok) return [c, 'n/a', 'n/a', '', '', '(see below)'];
    const rs = runs.get(c) ?? [];
    return [
      c,
      fmt(p50(c), 3),
      fmt(p99(c), 3),
      c === 'direct' ? '' : fmt(p50(c) - p50('direct'), 3),
      c === 'direct' ? '' : fmt(p99(c) - p99('direct'), 3),
      rs.map((r) => `${fmt(r.p50, 3)}/${fmt(r.p99, 3)}`).join(' · ') + (rs.some((r) => r.errors) ? ` (errors: ${rs.map((r) => r.errors).join('/')})` : ''),
    ];
  };
  const table = (names: string[]) => {
    const unavailable = new Map<string, string>();
    for (const c of names) {
      const slot = ctx.fleet.get(c);
      if (!slot.ok) unavailable.set(c, slot.reason);
    }
    return (
      markdownTable(['contender', 'p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', 'runs p50/p99'], names.map(row)) +
      (unavailable.size ? `\n\n${naNotes(unavailable)}` : '')
    );
  };
  // Ratios of added p50 (contender − direct): lower is better.
  const added = new Map<string, number>();
  for (const c of contenders) {
    const a = p50(c) - p50('direct');
    if (c !== 'direct' && Number.isFinite(a)) added.set(c, a);
  }
  const note = ' (added p50, lower is better)';
  const body = [
    perCore.length ? '**All cores** (every contender may use every core):' : '',
    table(allCores),
    ratioTable(added, ALL_CORES_PAIRS, note),
    ...(perCore.length
      ? ['**Per core** (`-1`: one process or one thread; same rounds as above, direct repeated):', table(['direct', ...perCore]), ratioTable(added, PER_CORE_PAIRS, note)]
      : []),
  ]
    .filter(Boolean)
    .join('\n\n');
  const targets = [
    ...POSTERNS.map((p) => ratioTarget(17, 'W6 added p50 latency', added, p, 'haproxy', 1.5, true)),
    ratioTarget(17, 'W6 added p50 latency per core', added, 'postern-xclient-1', 'haproxy-1', 1.5, true),
  ];
  return {
    id: 'W6',
    title: 'W6: added latency',
    method:
      `One client (one generator process) runs ${fmt(sessions)} sessions one after the other (after ${warmup} unrecorded ones): connect, 220, EHLO, MAIL, RCPT, ` +
      'DATA with a 4-line message, QUIT, 221; each timed from connect() to the 221. p50/p99 per run; the table shows the ' +
      'median over runs, and "added" = contender − direct.',
    body,
    raw: [...runs].map(([c, rs]) => `W6 ${c}: ${rs.map((r) => `p50 ${fmt(r.p50, 3)} p99 ${fmt(r.p99, 3)} ms (n=${r.n})`).join(', ')}`),
    targets,
  };
};
