// `postern report [FILE...] [--json] [--top N] [--since WHEN] [--until WHEN]`: a pflogsumm/eximstats-style summary of
// Postern's JSON log, read as a stream (files, `.gz` files, or stdin) in bounded memory.

import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { createGunzip } from 'node:zlib';
import { ReportAggregator, type Report, type ReportWindow } from './report-aggregate.js';
import { eachLine } from './report-lines.js';
import { renderReport } from './report-text.js';
import { watchReader, type Out } from './output.js';
import { REPORT_USAGE } from './usage.js';

export type { Report } from './report-aggregate.js';
export { ReportAggregator } from './report-aggregate.js';
export { renderReport } from './report-text.js';


const USAGE = REPORT_USAGE;

interface ReportArgs {
  files: string[];
  json: boolean;
  top: number;
  window: ReportWindow;
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A --since/--until value as ms since the epoch: an ISO 8601 time (`2026-03-01`,
 * `2026-03-01T10:00`, `2026-03-01T10:00:00Z`; without a zone it is UTC, as the log's times
 * are), `now`, or a time relative to `now` (`-1h`, `-30m`, `-2d`, `-1w`); null if unreadable.
 */
export function parseWhen(v: string, now = Date.now()): number | null {
  if (v === 'now') return now;
  const rel = /^-(\d{1,9})([smhdw])$/.exec(v);
  if (rel) return now - Number(rel[1]) * UNIT_MS[rel[2]!]!;
  if (!/^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:?\d\d)?$/.test(v)) return null;
  const iso = v.replace(' ', 'T');
  const zoned = /(Z|[+-]\d\d:?\d\d)$/.test(iso) || !iso.includes('T') ? iso : `${iso}Z`;
  const t = Date.parse(zoned);
  return Number.isNaN(t) ? null : t;
}

export function parseReportArgs(argv: string[]): ReportArgs | string {
  const args: ReportArgs = { files: [], json: false, top: 10, window: {} };
  let onlyFiles = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (onlyFiles || a === '-' || !a.startsWith('-')) args.files.push(a);
    else if (a === '--') onlyFiles = true;
    else if (a === '--json') args.json = true;
    else if (a === '--top' || a.startsWith('--top=')) {
      const v = a.includes('=') ? a.slice(6) : argv[++i];
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 1000) return `--top wants a number from 1 to 1000, not ${String(v)}`;
      args.top = n;
    } else if (a === '--since' || a.startsWith('--since=') || a === '--until' || a.startsWith('--until=')) {
      const name = a.startsWith('--since') ? 'since' : 'until';
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      const t = v === undefined ? null : parseWhen(v);
      if (t === null) return `--${name} wants an ISO time (2026-03-01T10:00Z) or a relative one (-1h, -2d), not ${String(v)}`;
      args.window[name] = t;
    } else return `unknown option ${a}`;
  }
  if (args.window.since !== undefined && args.window.until !== undefined && args.window.since >= args.window.until) return '--since must be before --until';
  return args;
}

type Source = AsyncIterable<Buffer | string>;

/** Aggregates every line of `sources` (in order; each opened only when its turn comes) into a report. */
export async function buildReport(sources: (Source | (() => Source))[], top = 10, window: ReportWindow = {}): Promise<Report> {
  const agg = new ReportAggregator(window);
  for (const s of sources) {
    const src = typeof s === 'function' ? s() : s;
    const { tooLong } = await eachLine(src, (l) => agg.line(l));
    agg.tooLong(tooLong);
  }
  return agg.result({ top });
}

export async function reportMain(
  argv: string[],
  stdin: NodeJS.ReadableStream = process.stdin,
  io: { out?: Out; err?: Out } = {},
): Promise<number> {
  const out = io.out ?? process.stdout;
  const err = io.err ?? process.stderr;
  const args = parseReportArgs(argv);
  if (typeof args === 'string') {
    err.write(`postern report: ${args}\n${USAGE}`);
    return 1;
  }
  const files = args.files.length > 0 ? args.files : ['-'];
  // Every file must be readable before the first is read: no half report.
  for (const f of files) {
    if (f === '-') continue;
    try {
      await access(f);
    } catch (e) {
      err.write(`postern report: ${f}: ${(e as NodeJS.ErrnoException).code ?? String(e)}\n`);
      return 1;
    }
  }
  if (files.includes('-') && (stdin as { isTTY?: boolean }).isTTY) err.write('postern report: reading the log from stdin (Ctrl-D ends it)\n');
  let stdinUsed = false;
  let current = '';
  const sources = files.map((f) => (): Source => {
    current = f === '-' ? 'stdin' : f;
    if (f === '-') {
      if (stdinUsed) return emptySource();
      stdinUsed = true;
      return stdin as Source;
    }
    const s = createReadStream(f, { highWaterMark: 1 << 16 });
    if (!f.endsWith('.gz')) return s;
    const gz = createGunzip();
    s.on('error', (e) => gz.destroy(e));
    return s.pipe(gz);
  });
  let report: Report;
  try {
    report = await buildReport(sources, args.top, args.window);
  } catch (e) {
    err.write(`postern report: ${current}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  // `postern report | head`: the reader leaving is no error.
  watchReader(out);
  out.write(args.json ? JSON.stringify(report) + '\n' : renderReport(report));
  return 0;
}

async function* emptySource(): AsyncGenerator<Buffer> {}
