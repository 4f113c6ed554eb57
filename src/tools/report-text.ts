// The human report, laid out like pflogsumm/eximstats: grand totals, traffic over
// time, top lists, then the proxy's own sections (anomalies, TLS, backends, limits).

import type { RefusalItem, Report } from './report-aggregate.js';
import type { TopList } from './report-topk.js';

/** Per-clock-hour rows are printed up to this many; longer logs get per-day plus hour-of-day. */
const HOUR_ROWS = 72;
/** Offenders listed per anomaly kind (the JSON has the full top list). */
const OFFENDERS_SHOWN = 5;

export function renderReport(r: Report): string {
  const out: string[] = [];
  const p = r.period;
  out.push(`Postern log report: ${p.first ? stamp(p.first) : '-'} .. ${p.last ? stamp(p.last) : '-'}`);
  const sk = r.input.skipped;
  const skipped = sk.not_json + sk.not_postern + sk.too_long;
  out.push(
    `${n(r.input.lines)} lines, ${n(r.input.records)} Postern records` +
      (r.input.text_records ? ` (${n(r.input.text_records)} in the text format)` : '') +
      (skipped ? `, ${n(skipped)} skipped (${n(sk.not_json)} not a record, ${n(sk.not_postern)} not Postern, ${n(sk.too_long)} too long)` : ''),
  );

  const t = r.totals;
  const m = t.messages;
  const rc = r.recipients;
  if (r.input.outside_period) out.push(`${n(r.input.outside_period)} records outside --since/--until left out`);
  // The headline is what needs a look: sessions with a warning (notices are what ordinary clients do).
  out.push('', `Suspicious sessions (a warning-severity anomaly): ${n(t.sessions_suspicious)} of ${n(t.sessions)}  ${pct(t.sessions_suspicious, t.sessions)}`);
  section(out, 'Grand totals');
  out.push(
    ...pairs([
      ['sessions', n(t.sessions)],
      ['messages', n(m.total)],
      ['  accepted', n(m.accepted), pct(m.accepted, m.total)],
      ['  tempfail (4xx/3xx)', n(m.tempfail), pct(m.tempfail, m.total)],
      ['  rejected (5xx)', n(m.rejected), pct(m.rejected, m.total)],
      ...(m.unknown ? [['  no reply code', n(m.unknown)]] : []),
      ['recipients (RCPT answered)', n(rc.answered)],
      ['  accepted (2xx)', n(rc.accepted), pct(rc.accepted, rc.answered)],
      ['    delivered', n(rc.delivered)],
      ['    message refused after', n(rc.not_delivered)],
      ['  refused', n(rc.refused), pct(rc.refused, rc.answered)],
      ['    tempfail (4xx)', n(rc.refused_tempfail)],
      ['    rejected (5xx)', n(rc.refused_rejected)],
      ['abandoned recipients (no DATA end)', n(rc.abandoned)],
      ['accepted bytes', size(t.accepted_bytes)],
      ['bytes in (from clients)', size(t.bytes_in)],
      ['bytes out (to clients)', size(t.bytes_out)],
      ['session duration avg', ms(t.avg_duration_ms)],
      ['session duration max', ms(t.max_duration_ms)],
      ['TLS sessions', n(t.tls_sessions), pct(t.tls_sessions, t.sessions)],
      ['  resumed', n(t.tls_resumed), pct(t.tls_resumed, t.tls_sessions)],
      ['suspicious (a warning)', n(t.sessions_suspicious), pct(t.sessions_suspicious, t.sessions)],
      ['notices only', n(t.sessions_notice_only), pct(t.sessions_notice_only, t.sessions)],
      ['sessions without HELO', n(t.sessions_without_helo)],
    ]),
  );

  section(out, 'Refused recipients by reason');
  out.push(...refusalLines(r.refusals.rcpt));
  section(out, 'Refused messages by reason');
  out.push(...refusalLines(r.refusals.message));

  section(out, 'Sessions by close reason');
  out.push(...pairs(byCount(r.close).map(([k, v]) => [k, n(v), pct(v, t.sessions)])));

  if (r.per_hour.length > 0 && r.per_hour.length <= HOUR_ROWS && !r.per_hour_truncated) {
    section(out, 'Per-hour traffic (UTC)');
    out.push(...table(['hour', 'sessions', 'messages', 'accepted'], r.per_hour.map((h) => [`${h.hour.replace('T', ' ')}:00`, n(h.sessions), n(h.messages), n(h.accepted)])));
  } else if (r.per_day.length > 0) {
    section(out, 'Per-day traffic (UTC)');
    out.push(...table(['day', 'sessions', 'messages', 'accepted'], r.per_day.map((d) => [d.day, n(d.sessions), n(d.messages), n(d.accepted)])));
    section(out, 'Per-hour-of-day traffic (UTC, all days)');
    out.push(...table(['hour', 'sessions', 'messages', 'accepted'], r.hour_of_day.map((h) => [`${String(h.hour).padStart(2, '0')}:00`, n(h.sessions), n(h.messages), n(h.accepted)])));
  }

  section(out, 'Top senders by messages');
  out.push(...topLines(r.top_senders));
  section(out, 'Top recipients by delivered messages');
  out.push(...topLines(r.top_recipients));
  section(out, 'Top recipient domains');
  out.push(...topLines(r.top_recipient_domains));
  section(out, 'Top clients by sessions');
  out.push(...topLines(r.top_clients));
  section(out, 'Top authenticated users by sessions');
  out.push(...topLines(r.top_users));
  section(out, 'Top HELO names');
  out.push(...topLines(r.top_helo));

  section(out, 'Anomalies (warnings first)');
  const rank = (sev: string) => (sev === 'warning' ? 0 : 1);
  const kinds = Object.entries(r.anomalies).sort(
    (a, b) => rank(a[1].severity) - rank(b[1].severity) || b[1].sessions - a[1].sessions || b[1].records - a[1].records,
  );
  if (kinds.length === 0) out.push('  none');
  for (const [kind, a] of kinds) {
    out.push(`  ${printable(kind)} (${a.severity}): ${n(a.sessions)} sessions, ${n(a.records)} records${a.example ? `  e.g. ${printable(a.example)}` : ''}`);
    out.push(...topLines({ ...a.top_offenders, items: a.top_offenders.items.slice(0, OFFENDERS_SHOWN) }, '      '));
  }

  section(out, 'TLS by listener');
  out.push(
    ...table(
      ['listener', 'sessions', 'TLS', 'share', 'resumed', 'rate', 'versions'],
      Object.entries(r.tls).map(([l, x]) => [
        l,
        n(x.sessions),
        n(x.tls),
        pct(x.tls, x.sessions),
        n(x.resumed),
        pct(x.resumed, x.tls),
        byCount(x.versions).map(([v, c]) => `${v}=${n(c)}`).join(' ') || '-',
      ]),
    ),
  );

  section(out, 'Backends');
  const bs = Object.entries(r.backends);
  if (bs.length === 0) out.push('  none');
  else
    out.push(
      ...table(
        ['backend', 'sessions', 'msgs', '4xx', '5xx', 'failed', 'downs', 'time down'],
        bs.map(([a, b]) => [
          a,
          n(b.sessions),
          n(b.transactions),
          n(b.tempfail),
          n(b.rejected),
          n(b.failed_sessions),
          n(b.down_events),
          ms(b.down_ms) + (b.down_at_end ? ' (still down)' : ''),
        ]),
      ),
    );

  section(out, 'LIMITS rejections');
  const ls = Object.entries(r.limits);
  if (ls.length === 0) out.push('  none');
  else out.push(...table(['limit', 'closed', 'refused', 'other'], ls.map(([l, x]) => [l, n(x.sessions_closed), n(x.rejections ?? 0), n(x.records)])));

  const sc = r.screening;
  section(out, 'Screening');
  if (!sc || sc.sessions === 0) out.push('  none');
  else {
    out.push(`  ${n(sc.sessions)} screened sessions`);
    out.push('  verdicts:');
    out.push(...pairs(byCount(sc.results).map(([k, v]) => [`  ${k}`, n(v), pct(v, sc.sessions)])));
    out.push('  failed tests:');
    out.push(...(Object.keys(sc.tests).length === 0 ? ['    none'] : pairs(byCount(sc.tests).map(([k, v]) => [`  ${k}`, n(v), pct(v, sc.sessions)]))));
    out.push('  zones (sessions listed or allowlisted):');
    const zs = Object.entries(sc.zones).sort((a, b) => b[1].hits - a[1].hits);
    out.push(...(zs.length === 0 ? ['    none'] : pairs(zs.map(([z, v]) => [`  ${z}`, n(v.hits), pct(v.hits, sc.sessions)]))));
    out.push('  top refused clients (enforced, dropped, rejected):');
    out.push(...topLines(sc.top_refused_clients, '    '));
  }
  return out.join('\n') + '\n';
}

function refusalLines(items: RefusalItem[]): string[] {
  if (items.length === 0) return ['  none'];
  const w = Math.max(...items.map((i) => n(i.count).length));
  return items.map((i) => `  ${n(i.count).padStart(w)}  ${i.source === 'postern' ? 'postern' : 'backend'}  ${printable(i.reason)}`);
}

function section(out: string[], title: string): void {
  out.push('', title, '-'.repeat(title.length));
}

/** label  value  [share], values right-aligned. */
function pairs(rows: string[][]): string[] {
  const wk = Math.max(0, ...rows.map((r) => r[0]!.length));
  const wv = Math.max(0, ...rows.map((r) => r[1]!.length));
  return rows.map(([k, v, extra]) => `  ${k!.padEnd(wk)}  ${v!.padStart(wv)}${extra ? `  ${extra.padStart(6)}` : ''}`);
}

function table(head: string[], rows: string[][]): string[] {
  const cells = rows.map((r) => r.map(printable));
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  // First column left, the rest right (numbers), the last left when it is free text.
  const fmt = (r: string[]) =>
    '  ' +
    r
      .map((c, i) => (i === 0 || (i === r.length - 1 && head[i] === 'versions') ? c.padEnd(w[i]!) : c.padStart(w[i]!)))
      .join('  ')
      .trimEnd();
  return [fmt(head), ...cells.map(fmt)];
}

function topLines(t: TopList, indent = '  '): string[] {
  if (t.items.length === 0) return [`${indent}none`];
  const w = Math.max(...t.items.map((i) => n(i.count).length));
  const lines = t.items.map((i) => `${indent}${n(i.count).padStart(w)}  ${printable(i.name)}${i.error ? `  (±${n(i.error)})` : ''}`);
  if (t.approximate) lines.push(`${indent}(too many distinct names to count all exactly; counts are upper bounds)`);
  return lines;
}

const byCount = (o: Record<string, number>) => Object.entries(o).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));

// Client-chosen text (HELO, details) must not reach the terminal as control characters.
const printable = (s: string) => s.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');

const n = (x: number) => x.toLocaleString('en-US');
const pct = (a: number, b: number) => (b > 0 ? `${((a / b) * 100).toFixed(1)}%` : '-');
const stamp = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');

function size(b: number): string {
  if (b < 1024) return `${b} B`;
  const units = ['KB', 'MB', 'GB', 'TB', 'PB'];
  let v = b / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

function ms(x: number): string {
  if (x < 1000) return `${Math.round(x)}ms`;
  const s = x / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  return `${h}h${String(m % 60).padStart(2, '0')}m`;
}
