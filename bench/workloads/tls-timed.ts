// W3 and W4: timed TLS loops from several generator processes, with the generator's and
// the proxy's CPU over the same window (to show which one is the bottleneck).

import type { CertKind } from '../lib/certs.js';
import type { GeneratorPool } from '../lib/generators.js';
import type { Managed } from '../lib/procs.js';
import { treeCpuSeconds } from '../lib/proc-stats.js';
import { closeWaitOn } from '../lib/sockets.js';
import { median, ratio } from '../lib/stats.js';
import { fmt, fmtRatio, markdownTable, type Cell } from '../lib/table.js';
import type { TimedJob, TlsVersion } from '../loadgen/protocol.js';
import type { BenchContext } from './types.js';

export interface TlsCell {
  label: string;
  version: TlsVersion;
  cert: CertKind;
  resumed: boolean;
  /** Clients without tickets: TLS 1.2 resumption by session ID. */
  noTicket?: boolean;
}

export interface TlsContender {
  name: string;
  /** Port for this cell, or the reason there is none. */
  port(cell: TlsCell): number | string;
  procs: Managed[];
}

export interface Measurement {
  rate: number;
  genCpu: number;
  proxyCpu: number;
  /** Proxy CPU time per completed operation, in µs: independent of a generator bottleneck. */
  proxyUsPerOp: number;
  reusedShare: number;
  errors: number;
  firstError: string | null;
  /** Server sockets still in CLOSE-WAIT LEFT_OPEN_AFTER_MS after the cell's last client left. */
  leftOpen: number;
}

const START_DELAY_MS = 300;
/** Long enough for any server to close what its clients closed; far below any handshake timeout. */
const LEFT_OPEN_AFTER_MS = 500;

async function measure(pool: GeneratorPool, job: TimedJob, procs: Managed[]): Promise<Measurement> {
  const roots = procs.map((p) => p.pid);
  const from = job.startAt + job.warmupMs;
  let cpu0 = Number.NaN;
  let cpu1 = Number.NaN;
  const t0 = setTimeout(() => (cpu0 = treeCpuSeconds(roots)), from - Date.now());
  const t1 = setTimeout(() => (cpu1 = treeCpuSeconds(roots)), from + job.windowMs - Date.now());
  const results = await pool.timed(job);
  clearTimeout(t0);
  clearTimeout(t1);
  await new Promise((r) => setTimeout(r, LEFT_OPEN_AFTER_MS));
  const leftOpen = closeWaitOn(job.port);
  const secs = job.windowMs / 1000;
  const count = results.reduce((a, r) => a + r.count, 0);
  const reused = results.reduce((a, r) => a + r.reused, 0);
  const errors = results.reduce((a, r) => a + r.errors, 0);
  return {
    rate: count > 0 ? count / secs : Number.NaN,
    genCpu: (100 * results.reduce((a, r) => a + r.cpuSeconds, 0)) / secs,
    proxyCpu: (100 * (cpu1 - cpu0)) / secs,
    proxyUsPerOp: count > 0 ? ((cpu1 - cpu0) * 1e6) / count : Number.NaN,
    reusedShare: count > 0 ? reused / count : Number.NaN,
    errors,
    firstError: results.find((r) => r.firstError)?.firstError ?? null,
    leftOpen,
  };
}

export interface TimedOutcome {
  /** cell label -> contender -> median rate (NaN when n/a). */
  rates: Map<string, Map<string, number>>;
  /** cell label -> contender -> median proxy CPU µs per operation. */
  costs: Map<string, Map<string, number>>;
  /** cell label -> contender -> reason it is n/a. */
  unavailable: Map<string, Map<string, string>>;
  detail: string;
  raw: string[];
}

export async function runTimedCells(
  ctx: BenchContext,
  label: string,
  kind: TimedJob['kind'],
  cells: TlsCell[],
  contenders: TlsContender[],
  unit: string,
): Promise<TimedOutcome> {
  const pool = await ctx.generators();
  const c = ctx.opts.counts;
  const job = (cell: TlsCell, port: number): TimedJob => ({
    kind,
    host: '127.0.0.1',
    port,
    tls: cell.version,
    resumed: cell.resumed,
    noTicket: cell.noTicket ?? false,
    concurrency: c.tlsConcurrency,
    startAt: Date.now() + START_DELAY_MS,
    warmupMs: c.tlsWarmupMs,
    windowMs: c.tlsWindowMs,
    maxCount: 1_000_000,
  });

  // Probe every cell once: a contender that cannot do it is n/a, not a 3-round failure.
  const unavailable = new Map<string, Map<string, string>>();
  const runnable = new Map<string, number>();
  for (const cell of cells) {
    const na = new Map<string, string>();
    unavailable.set(cell.label, na);
    for (const ct of contenders) {
      const port = ct.port(cell);
      if (typeof port === 'string') {
        na.set(ct.name, port);
        continue;
      }
      const p = await pool.probe(job(cell, port));
      // A resumed cell that does not resume would measure full handshakes under the wrong name.
      const error = !p.ok ? `failed: ${p.error ?? 'unknown'}` : cell.resumed && !p.reused ? 'the second handshake did not resume the first one\'s session' : null;
      if (error) {
        na.set(ct.name, error);
        ctx.log(`${label} ${cell.label} ${ct.name}: n/a (${error})`);
      } else {
        runnable.set(`${cell.label}|${ct.name}`, port);
      }
    }
  }

  // One unmeasured pass over every cell first. The 400 ms warm-up before each window leaves a
  // JIT-compiled contender (Postern, node-tls) cold in the first cells of a fresh instance: a
  // Postern worker takes a few thousand handshakes to settle, and the first cell measured
  // 1.5-1.9x its steady cost (issue 26). Figures are for a proxy that has been running.
  for (const cell of cells) {
    for (const ct of contenders) {
      const port = runnable.get(`${cell.label}|${ct.name}`);
      if (port === undefined) continue;
      const results = await pool.timed({ ...job(cell, port), windowMs: c.tlsWarmPassMs });
      ctx.log(`${label} warm-up pass ${cell.label} ${ct.name}: ${results.reduce((a, r) => a + r.count, 0)} ${unit.split('/')[0]} in ${c.tlsWarmPassMs} ms`);
    }
  }

  const runs = new Map<string, Measurement[]>();
  for (let round = 1; round <= ctx.opts.rounds; round++) {
    for (const cell of cells) {
      for (const ct of contenders) {
        const key = `${cell.label}|${ct.name}`;
        const port = runnable.get(key);
        if (port === undefined) continue;
        const m = await measure(pool, job(cell, port), ct.procs);
        runs.set(key, [...(runs.get(key) ?? []), m]);
        ctx.log(
          `${label} round ${round}/${ctx.opts.rounds} ${cell.label} ${ct.name}: ${fmt(m.rate)} ${unit}` +
            ` (gen ${fmt(m.genCpu)}% cpu, proxy ${fmt(m.proxyCpu)}% cpu${cell.resumed ? `, resumed ${fmt(100 * m.reusedShare)}%` : ''}` +
            `${m.errors ? `, ${m.errors} errors: ${m.firstError ?? ''}` : ''}${m.leftOpen ? `, ${m.leftOpen} sockets left open` : ''})`,
        );
      }
    }
  }

  const rates = new Map<string, Map<string, number>>();
  const costs = new Map<string, Map<string, number>>();
  const detailRows: Cell[][] = [];
  const raw: string[] = [];
  for (const cell of cells) {
    const row = new Map<string, number>();
    const costRow = new Map<string, number>();
    rates.set(cell.label, row);
    costs.set(cell.label, costRow);
    for (const ct of contenders) {
      const ms = runs.get(`${cell.label}|${ct.name}`);
      if (!ms) {
        row.set(ct.name, Number.NaN);
        continue;
      }
      const rate = median(ms.map((m) => m.rate));
      const cost = median(ms.map((m) => m.proxyUsPerOp));
      row.set(ct.name, rate);
      costRow.set(ct.name, cost);
      detailRows.push([
        cell.label,
        ct.name,
        fmt(rate),
        ms.map((m) => fmt(m.rate)).join(' / '),
        fmt(median(ms.map((m) => m.genCpu))),
        fmt(median(ms.map((m) => m.proxyCpu))),
        fmt(cost),
        cell.resumed ? fmt(100 * median(ms.map((m) => m.reusedShare))) + ' %' : '',
        String(ms.reduce((a, m) => a + m.errors, 0)),
        String(Math.max(...ms.map((m) => m.leftOpen))),
      ]);
      raw.push(`${label} ${cell.label} ${ct.name}: ${ms.map((m) => fmt(m.rate)).join(', ')} ${unit}`);
    }
  }
  const detail = markdownTable(
    ['cell', 'contender', `${unit} (median)`, 'runs', 'generator CPU %', 'proxy CPU %', 'proxy CPU µs/op', 'resumed', 'errors', 'left open'],
    detailRows,
  );
  return { rates, costs, unavailable, detail, raw };
}

/**
 * Rows = cells; columns = contenders, then postern / each peer. `which`: the rates, or the
 * proxy CPU per operation (for that one, a ratio below 1 means Postern is cheaper).
 */
export function cellTable(outcome: TimedOutcome, cells: TlsCell[], contenders: string[], peers: string[], which: 'rates' | 'costs' = 'rates'): string {
  const header = ['cell', ...contenders, ...peers.map((p) => `postern / ${p}`)];
  const rows: Cell[][] = cells.map((cell) => {
    const r = outcome[which].get(cell.label)!;
    const na = outcome.unavailable.get(cell.label)!;
    return [
      cell.label,
      ...contenders.map((ct) => (na.has(ct) ? 'n/a' : fmt(r.get(ct)))),
      ...peers.map((p) => fmtRatio(ratio(r.get('postern') ?? Number.NaN, r.get(p) ?? Number.NaN))),
    ];
  });
  return markdownTable(header, rows);
}

/** "- contender, cell: reason" lines for every n/a cell. */
export function unavailableNotes(outcome: TimedOutcome): string {
  const byReason = new Map<string, string[]>();
  for (const [cell, na] of outcome.unavailable) {
    for (const [ct, why] of na) byReason.set(`${ct}: ${why}`, [...(byReason.get(`${ct}: ${why}`) ?? []), cell]);
  }
  if (byReason.size === 0) return '';
  return 'n/a cells:\n' + [...byReason].map(([why, cells]) => `- ${why} (${cells.join(', ')})`).join('\n');
}
