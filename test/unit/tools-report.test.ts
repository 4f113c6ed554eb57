// `postern report`: bounded counters, the line reader, and exact counts on a generated log.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ReportAggregator, type Report } from '../../src/tools/report-aggregate.js';
import { eachLine } from '../../src/tools/report-lines.js';
import { CappedMap, OTHER, SpaceSaving } from '../../src/tools/report-topk.js';
import { parseWhen, reportMain } from '../../src/tools/report.js';
import { ANOMALY_CATALOG } from '../../src/config/anomalies.js';
import { formatTextLine, type LogLine } from '../../src/observe/text-format.js';
import { topOf, writeLog, type LogExpect } from '../helpers/loggen.js';

function sink(): { write(s: string): boolean; text: () => string } {
  let s = '';
  return {
    write: (x: string) => ((s += x), true),
    text: () => s,
  };
}

async function runReport(argv: string[], stdin?: NodeJS.ReadableStream): Promise<{ code: number; out: string; err: string }> {
  const out = sink();
  const err = sink();
  const code = await reportMain(argv, stdin ?? Readable.from([]), { out, err });
  return { code, out: out.text(), err: err.text() };
}

describe('SpaceSaving', () => {
  it('counts exactly while the distinct keys fit', () => {
    const s = new SpaceSaving(10);
    for (let i = 0; i < 10; i++) for (let j = 0; j <= i; j++) s.add(`k${i}`);
    const t = s.top(3);
    assert.equal(t.approximate, false);
    assert.deepEqual(t.items, [
      { name: 'k9', count: 10, error: 0 },
      { name: 'k8', count: 9, error: 0 },
      { name: 'k7', count: 8, error: 0 },
    ]);
  });

  it('keeps heavy hitters among a flood of one-off keys, with honest error bounds', () => {
    const s = new SpaceSaving(100);
    const truth = new Map<string, number>();
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let i = 0; i < 200_000; i++) {
      const k = rnd() < 0.2 ? `heavy${Math.floor(rnd() * 5)}` : `noise${i}`;
      truth.set(k, (truth.get(k) ?? 0) + 1);
      s.add(k);
    }
    assert.equal(s.size, 100);
    const t = s.top(5);
    assert.equal(t.approximate, true);
    assert.deepEqual(t.items.map((x) => x.name).sort(), ['heavy0', 'heavy1', 'heavy2', 'heavy3', 'heavy4']);
    for (const x of t.items) {
      const real = truth.get(x.name)!;
      assert.ok(x.count >= real && x.count - x.error <= real, `${x.name}: ${x.count}-${x.error} vs ${real}`);
    }
  });

  it('cuts long keys so the cap bounds bytes too', () => {
    const s = new SpaceSaving(2);
    s.add('x'.repeat(100_000));
    assert.equal(s.top(1).items[0]!.name.length, 256);
  });

  it('CappedMap sends labels past the cap to (other)', () => {
    const m = new CappedMap<{ n: number }>(3, () => ({ n: 0 }));
    for (let i = 0; i < 10; i++) m.get(`l${i}`).n++;
    assert.equal(m.map.size, 4);
    assert.equal(m.peek(OTHER)!.n, 7);
  });
});

describe('eachLine', () => {
  async function lines(chunks: (string | Buffer)[], max?: number) {
    const got: string[] = [];
    const r = await eachLine(Readable.from(chunks), (l) => got.push(l), max);
    return { got, tooLong: r.tooLong };
  }

  it('splits across chunks, strips CR, keeps a last line without newline', async () => {
    const { got, tooLong } = await lines(['a\r\nb', 'c\n', '\nd', 'é', Buffer.from([0xc3]), Buffer.from([0xa9, 0x0a]), 'tail']);
    assert.deepEqual(got, ['a', 'bc', '', 'déé', 'tail']);
    assert.equal(tooLong, 0);
  });

  it('drops lines over the limit, wherever the chunks break them', async () => {
    const { got, tooLong } = await lines(['ok\n' + 'x'.repeat(5), 'x'.repeat(10), 'x\nfine\n', 'y'.repeat(20)], 8);
    assert.deepEqual(got, ['ok', 'fine']);
    assert.equal(tooLong, 2);
  });
});

describe('ReportAggregator on hand-made records', () => {
  const at = (s: string) => `2026-03-01T${s}Z`;
  const recs = [
    { level: 'warn', time: at('10:00:00.000'), event: 'backend', address: 'b1:25', state: 'down', reason: 'refused' },
    { level: 'warn', time: at('10:00:05.000'), event: 'backend', address: 'b1:25', state: 'down', reason: 'still refused' },
    { level: 'info', time: at('10:01:00.000'), event: 'backend', address: 'b1:25', state: 'up', reason: 'ok' },
    { level: 'warn', time: at('10:30:00.000'), event: 'backend', address: 'b2:25', state: 'down', reason: 'timeout' },
    { level: 'info', time: at('10:40:00.000'), event: 'session', conn: 'x', client: { address: '::1', port: 5 }, listener: 'smtp', tls: null, helo: null, backend: null, close: 'limit', limit: 'per_ip_rate', anomalies: [] },
    { level: 'info', time: at('10:41:00.000'), event: 'anomaly', conn: 'y', kind: 'line_too_long', severity: 'warning', detail: 'over 4096' },
    { level: 'info', time: at('10:41:30.000'), event: 'session', conn: 'y', client: { address: '::1', port: 6 }, listener: 'smtp', tls: null, helo: 'big.sender', backend: { address: 'b1:25', identity: 'xclient' }, transactions: 1000, close: 'limit', limit: 'mailmax', limit_rejections: { mailmax: 1 }, anomalies: ['line_too_long', 'no_quit'] },
    { level: 'info', time: at('10:42:00.000'), event: 'transaction', conn: 'z', from: '', rcpts: 2, size: 10, reply: 'garbled', backend: 'b1:25' },
    { level: 30, time: at('11:00:00.000'), event: 'session', conn: 'z', client: { address: '10.0.0.1', port: 5 }, listener: 'smtp', tls: { version: 'TLSv1.3', cipher: 'C', resumed: true, sni: null }, helo: 'h', backend: { address: 'b1:25', identity: 'xclient' }, transactions: 1, rcpts: 2, close: 'backend_failed', anomalies: ['no_quit', 'no_quit', 7] },
  ];

  it('pairs down/up records into time down and counts limits, failures and odd records', () => {
    const agg = new ReportAggregator();
    for (const r of recs) agg.line(JSON.stringify(r));
    agg.line('[1,2]');
    agg.line('{"time":"not a time","level":"info"}');
    agg.line('{broken');
    const rep = agg.result({ top: 5 });
    assert.deepEqual(rep.period, { first: '2026-03-01T10:00:00.000Z', last: '2026-03-01T11:00:00.000Z' });
    assert.deepEqual(rep.input.skipped, { not_json: 1, not_postern: 2, too_long: 0, blank: 0 });
    const b1 = rep.backends['b1:25']!;
    assert.equal(b1.down_ms, 60_000);
    assert.equal(b1.down_events, 2);
    assert.equal(b1.last_down_reason, 'still refused');
    assert.equal(b1.failed_sessions, 1);
    assert.equal(b1.transactions, 1);
    assert.equal(b1.down_at_end, false);
    const b2 = rep.backends['b2:25']!;
    assert.equal(b2.down_ms, 30 * 60_000, 'still down: counted to the last record');
    assert.equal(b2.down_at_end, true);
    // The MAILMAX close by name, not (unknown).
    assert.deepEqual(rep.limits, { per_ip_rate: { sessions_closed: 1, records: 0 }, mailmax: { sessions_closed: 1, records: 0, rejections: 1 } });
    assert.deepEqual(rep.totals.messages, { accepted: 0, tempfail: 0, rejected: 0, unknown: 1, total: 1 });
    assert.equal(rep.anomalies['no_quit']!.sessions, 2);
    assert.equal(rep.anomalies['no_quit']!.severity, 'notice');
    assert.equal(rep.anomalies['line_too_long']!.example, 'over 4096');
    assert.equal(rep.anomalies['line_too_long']!.severity, 'warning');
    // One session with a warning (line_too_long beside no_quit), one with a notice only.
    assert.equal(rep.totals.sessions_with_anomalies, 2);
    assert.equal(rep.totals.sessions_suspicious, 1);
    assert.equal(rep.totals.sessions_notice_only, 1);
    assert.equal(rep.totals.suspicious_share, 0.3333);
    assert.deepEqual(rep.tls['smtp'], { sessions: 3, tls: 1, resumed: 1, tls_share: 0.3333, resumption_rate: 1, versions: { 'TLSv1.3': 1 } });
    assert.equal(rep.totals.sessions_without_helo, 1);
    assert.deepEqual(rep.top_clients.items.map((i) => i.name), ['::1', '10.0.0.1']);
  });

  it("takes fields a newer Postern adds in its stride: a refused held sender, backend attempts, screening", () => {
    const agg = new ReportAggregator();
    const T = at('12:00:00.000');
    agg.line(JSON.stringify({ level: 'info', time: T, event: 'transaction', conn: 'h', from: 'x@y.example', rcpts: 0, size: 0, reply: '554 5.7.1 <x@y.example>: Sender address rejected: Access denied', backend: 'b1:25', queue_id: null, recipients: [], result: 'rejected', pool: 'default', client: { address: '192.0.2.1', port: 1 } }));
    agg.line(JSON.stringify({ level: 'info', time: T, event: 'session', conn: 'h', client: { address: '192.0.2.1', port: 1 }, listener: 'smtp', proxy: null, tls: null, helo: 'h', auth: { user: 'ann', mechanism: 'PLAIN' }, backend: { address: 'b1:25', identity: 'xclient', attempts: [{ server: 'b2:25', stage: 'connect', error: 'ECONNREFUSED' }] }, transactions: 1, rcpts: 0, bytes_in: 1, bytes_out: 1, duration_ms: 5, close: 'quit', anomalies: [], limit_rejections: {}, screen: { result: 'pass', score: 0 } }));
    const rep = agg.result({ top: 5 });
    assert.equal(rep.input.records, 2);
    assert.deepEqual(rep.totals.messages, { accepted: 0, tempfail: 0, rejected: 1, unknown: 0, total: 1 });
    assert.deepEqual(rep.refusals.message, [{ reason: '554 5.7.1 <->: Sender address rejected: Access denied', source: 'backend', code: 554, count: 1 }]);
    assert.deepEqual(rep.top_senders.items, [{ name: 'x@y.example', count: 1, error: 0 }]);
    assert.deepEqual(rep.top_users.items, [{ name: 'ann', count: 1, error: 0 }]);
    assert.equal(rep.recipients.abandoned, 0);
  });

  it('--since/--until: a record outside the period counts nowhere but outside_period', () => {
    const agg = new ReportAggregator({ since: Date.parse(at('10:30:00.000')), until: Date.parse(at('11:00:00.000')) });
    for (const r of recs) agg.line(JSON.stringify(r));
    const rep = agg.result({ top: 5 });
    assert.equal(rep.input.outside_period, 4);
    assert.equal(rep.input.records, 5);
    assert.equal(rep.totals.sessions, 2);
    assert.deepEqual(rep.period, { first: '2026-03-01T10:30:00.000Z', last: '2026-03-01T10:42:00.000Z' });
  });
});

describe('postern report on a generated log of 100,000 sessions', () => {
  let dir: string;
  let file: string;
  let expect: LogExpect;
  let rep: Report;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'postern-report-'));
    file = path.join(dir, 'postern.log');
    expect = await writeLog(file, { sessions: 100_000, seed: 42 });
    const r = await runReport([file, '--json', '--top', '10']);
    assert.equal(r.code, 0, r.err);
    rep = JSON.parse(r.out) as Report;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads every line and skips exactly the foreign ones', () => {
    assert.equal(rep.input.lines, expect.lines);
    assert.equal(rep.input.records, expect.records);
    assert.deepEqual(rep.input.skipped, { not_json: expect.not_json, not_postern: expect.not_postern, too_long: 0, blank: 0 });
    assert.ok(expect.not_json > 0 && expect.not_postern > 0);
    assert.equal(rep.input.other_records, expect.other_records);
    assert.equal(rep.period.first, new Date(expect.first).toISOString());
    assert.equal(rep.period.last, new Date(expect.last).toISOString());
  });

  it('totals', () => {
    assert.equal(rep.totals.sessions, 100_000);
    assert.equal(rep.totals.sessions, expect.sessions);
    assert.equal(rep.totals.session_transactions, expect.session_transactions);
    assert.deepEqual(rep.totals.messages, {
      ...expect.messages,
      unknown: 0,
      total: expect.messages.accepted + expect.messages.tempfail + expect.messages.rejected,
    });
    assert.equal(rep.totals.recipients, expect.recipients);
    assert.equal(rep.totals.accepted_recipients, expect.accepted_recipients);
    assert.equal(rep.totals.accepted_bytes, expect.accepted_bytes);
    assert.equal(rep.totals.bytes_in, expect.bytes_in);
    assert.equal(rep.totals.bytes_out, expect.bytes_out);
    assert.equal(rep.totals.max_duration_ms, expect.max_duration_ms);
    assert.equal(rep.totals.sessions_with_anomalies, expect.sessions_with_anomalies);
    assert.equal(rep.totals.sessions_suspicious, expect.sessions_suspicious);
    assert.equal(rep.totals.sessions_notice_only, expect.sessions_notice_only);
    assert.ok(expect.sessions_suspicious > 0 && expect.sessions_notice_only > 0);
    assert.equal(expect.sessions_suspicious + expect.sessions_notice_only, expect.sessions_with_anomalies);
    assert.equal(rep.totals.suspicious_share, Math.round((expect.sessions_suspicious / 100_000) * 10_000) / 10_000);
    assert.equal(rep.totals.notice_only_share, Math.round((expect.sessions_notice_only / 100_000) * 10_000) / 10_000);
    assert.equal(rep.totals.sessions_without_helo, expect.sessions_without_helo);
    assert.deepEqual(rep.close, expect.close);
  });

  it('per hour', () => {
    assert.equal(rep.per_hour_truncated, false);
    const want = [...expect.per_hour.entries()].sort().map(([hour, t]) => ({ hour, ...t }));
    assert.deepEqual(rep.per_hour, want);
    assert.ok(want.length > 24, 'the log spans more than a day');
    const sum = rep.hour_of_day.reduce((a, h) => a + h.sessions, 0);
    assert.equal(sum, expect.sessions);
    assert.equal(rep.per_day.reduce((a, d) => a + d.messages, 0), rep.totals.messages.total);
  });

  it('top clients and HELO names, exactly', () => {
    assert.equal(rep.top_clients.approximate, false);
    assert.deepEqual(rep.top_clients.items, topOf(expect.clients, 10));
    assert.equal(rep.top_helo.approximate, false);
    assert.deepEqual(rep.top_helo.items, topOf(expect.helos, 10));
  });

  it('anomalies by kind with their top offenders', () => {
    assert.deepEqual(Object.keys(rep.anomalies).sort(), Object.keys(expect.anomalies).sort());
    for (const [kind, a] of Object.entries(expect.anomalies)) {
      const got = rep.anomalies[kind]!;
      assert.equal(got.sessions, a.sessions, kind);
      assert.equal(got.records, a.records, kind);
      assert.deepEqual(got.top_offenders.items, topOf(expect.offenders[kind]!, 10), kind);
      assert.equal(got.severity, ANOMALY_CATALOG[kind as keyof typeof ANOMALY_CATALOG], kind);
    }
  });

  it('TLS share and resumption per listener', () => {
    for (const [l, x] of Object.entries(expect.tls)) {
      const got = rep.tls[l]!;
      assert.deepEqual({ sessions: got.sessions, tls: got.tls, resumed: got.resumed, versions: got.versions }, x, l);
      assert.equal(got.tls_share, Math.round((x.tls / x.sessions) * 10_000) / 10_000);
      assert.equal(got.resumption_rate, Math.round((x.resumed / x.tls) * 10_000) / 10_000);
    }
    assert.equal(rep.tls['smtps']!.tls_share, 1);
  });

  it('backends: sessions, failures and time down', () => {
    assert.deepEqual(rep.backends, Object.fromEntries(Object.entries(expect.backends).map(([a, b]) => [a, { ...b, last_down_reason: b.down_events ? 'health check: connect ECONNREFUSED' : null }])));
    assert.ok(Object.values(expect.backends).some((b) => b.down_ms > 0));
  });

  it('LIMITS rejections, the MAILMAX close by name', () => {
    assert.deepEqual(rep.limits, expect.limits);
    assert.ok(rep.limits['mailmax']!.sessions_closed > 0);
    assert.equal(rep.limits['(unknown)'], undefined);
  });

  it('recipients: accepted, delivered, refused and abandoned, apart (issue 25: "recipients 61 / accepted 60")', () => {
    assert.deepEqual(rep.recipients, expect.rcpt);
    assert.ok(expect.rcpt.abandoned > 0 && expect.rcpt.refused > 0 && expect.rcpt.not_delivered > 0);
    // The sessions' accepted RCPTs are the transactions' accepted ones plus the abandoned ones.
    assert.equal(rep.totals.recipients, expect.rcpt.accepted + expect.rcpt.abandoned);
    assert.equal(rep.totals.accepted_recipients, expect.rcpt.delivered);
  });

  it("refusals grouped by reason, the backend's and Postern's own", () => {
    const want = (m: LogExpect['rcpt_refusals']) =>
      [...m.entries()]
        .map(([reason, v]) => ({ reason, source: v.source, code: v.code, count: v.count }))
        .sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1))
        .slice(0, 10);
    assert.deepEqual(rep.refusals.rcpt, want(expect.rcpt_refusals));
    assert.deepEqual(rep.refusals.message, want(expect.message_refusals));
    assert.ok(rep.refusals.rcpt.some((x) => x.source === 'postern') && rep.refusals.rcpt.some((x) => x.source === 'backend'));
    assert.ok(rep.refusals.message.some((x) => x.source === 'postern'));
  });

  it('top senders, recipients, recipient domains and authenticated users, exactly', () => {
    assert.deepEqual(rep.top_senders, { approximate: false, items: topOf(expect.senders, 10) });
    assert.deepEqual(rep.top_recipients, { approximate: false, items: topOf(expect.recipients_top, 10) });
    assert.deepEqual(rep.top_recipient_domains, { approximate: false, items: topOf(expect.domains, 10) });
    assert.deepEqual(rep.top_users, { approximate: false, items: topOf(expect.users, 10) });
    assert.ok(expect.users.size > 10 && expect.senders.has('<>'));
  });

  it('TLS share and resumption share over all listeners', () => {
    assert.equal(rep.totals.tls_sessions, expect.tls_sessions);
    assert.equal(rep.totals.tls_resumed, expect.tls_resumed);
    assert.equal(rep.totals.tls_share, Math.round((expect.tls_sessions / 100_000) * 10_000) / 10_000);
    assert.equal(rep.totals.resumption_share, Math.round((expect.tls_resumed / expect.tls_sessions) * 10_000) / 10_000);
  });

  it('--since/--until keep the records of the period', async () => {
    const hours = [...expect.per_hour.keys()].sort();
    const since = hours[5]!;
    const until = hours[20]!;
    const inside = hours.filter((h) => h >= since && h < until);
    const want = inside.reduce(
      (a, h) => {
        const x = expect.per_hour.get(h)!;
        return { sessions: a.sessions + x.sessions, messages: a.messages + x.messages, accepted: a.accepted + x.accepted };
      },
      { sessions: 0, messages: 0, accepted: 0 },
    );
    const r = await runReport([file, '--json', '--since', `${since}:00`, `--until=${until}:00:00Z`]);
    assert.equal(r.code, 0, r.err);
    const w = JSON.parse(r.out) as Report;
    assert.equal(w.totals.sessions, want.sessions);
    assert.equal(w.totals.messages.total, want.messages);
    assert.equal(w.totals.messages.accepted, want.accepted);
    assert.deepEqual(w.per_hour.map((h) => h.hour), inside);
    assert.ok(w.input.outside_period > 0);
    assert.equal(w.input.records + w.input.outside_period, expect.records);
  });

  it('the text report carries the same numbers', async () => {
    const r = await runReport([file]);
    assert.equal(r.code, 0);
    assert.match(r.out, /^Postern log report: 2026-01-01 00:00:00Z \.\. /);
    assert.match(r.out, new RegExp(`sessions\\s+100,000\\n`));
    assert.match(r.out, new RegExp(`accepted\\s+${expect.messages.accepted.toLocaleString('en-US')}  `));
    for (const h of ['Grand totals', 'Refused recipients by reason', 'Refused messages by reason', 'Per-hour traffic', 'Top senders by messages', 'Top recipients by delivered messages', 'Top recipient domains', 'Top clients by sessions', 'Top authenticated users by sessions', 'Top HELO names', 'Anomalies', 'TLS by listener', 'Backends', 'LIMITS rejections']) assert.ok(r.out.includes(h), h);
    // The headline is the suspicious share, before everything else.
    assert.match(r.out.split('Grand totals')[0]!, new RegExp(`\\nSuspicious sessions \\(a warning-severity anomaly\\): ${expect.sessions_suspicious.toLocaleString('en-US')} of 100,000 `));
    assert.match(r.out, new RegExp(`\\n +abandoned recipients \\(no DATA end\\) +${expect.rcpt.abandoned.toLocaleString('en-US')}\\n`));
    assert.match(r.out, new RegExp(`\\n +${topOf(expect.users, 1)[0]!.count.toLocaleString('en-US')}  ${topOf(expect.users, 1)[0]!.name.replace(/\\./g, '\\.')}\\n`));
    assert.ok(r.out.includes(topOf(expect.clients, 1)[0]!.name));
    const share = (n: number) => `${((n / 100_000) * 100).toFixed(1)}%`;
    assert.match(r.out, new RegExp(`\\n +suspicious \\(a warning\\) +${expect.sessions_suspicious.toLocaleString('en-US')}  +${share(expect.sessions_suspicious).replace('.', '\\.')}\\n`));
    assert.match(r.out, new RegExp(`\\n +notices only +${expect.sessions_notice_only.toLocaleString('en-US')}  +${share(expect.sessions_notice_only).replace('.', '\\.')}\\n`));
    // Warnings are listed before notices, each with its severity.
    const section = r.out.split('Anomalies (warnings first)\n')[1]!.split('\n\n')[0]!;
    const kinds = [...section.matchAll(/^  (\w+) \((notice|warning)\): /gm)].map((m) => m[2]);
    assert.ok(kinds.length > 5);
    assert.deepEqual(kinds, [...kinds].sort((a, b) => (a === b ? 0 : a === 'warning' ? -1 : 1)));
    assert.match(r.out, /\n  mailmax +[1-9][\d,]* /);
  });

  it('reads stdin, and gzip files, to the same result', async () => {
    const r = await runReport(['--json'], createReadStream(file));
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.out), rep);
  });
});

describe('postern report on a log.format: text log', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'postern-report-text-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the text lines back to the same report as the JSON log', async () => {
    const json = path.join(dir, 'json.log');
    const text = path.join(dir, 'text.log');
    const e = await writeLog(json, { sessions: 20_000, seed: 7 });
    await writeLog(text, { sessions: 20_000, seed: 7, text: true });
    const a = await runReport([json, '--json']);
    const b = await runReport([text, '--json']);
    assert.equal(a.code, 0, a.err);
    assert.equal(b.code, 0, b.err);
    const fromJson = JSON.parse(a.out) as Report;
    const fromText = JSON.parse(b.out) as Report;
    assert.equal(fromText.totals.sessions, 20_000);
    assert.equal(fromText.input.records, e.records);
    assert.equal(fromText.input.text_records, e.records);
    // Lines from elsewhere (syslog, another program's JSON) are in the text log as they were.
    assert.deepEqual(fromText.input.skipped, { not_json: e.not_json, not_postern: e.not_postern, too_long: 0, blank: 0 });
    const { input: _i, ...restText } = fromText;
    const { input: _j, ...restJson } = fromJson;
    assert.deepEqual(restText, restJson);
    const t = await runReport([text]);
    assert.match(t.out, /\d+ Postern records \([\d,]+ in the text format\)/);
  });

  it('text lines and JSON lines in one input are both read', async () => {
    const T = '2026-05-01T10:00:00.000Z';
    const recs = [
      { level: 'info', time: T, event: 'session', conn: 'a1', client: { address: '192.0.2.7', port: 4000 }, listener: 'smtp', proxy: null, tls: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', resumed: true, sni: 'mx.example' }, helo: 'odd (helo) "name"', auth: { user: '1234', mechanism: 'PLAIN' }, backend: { address: '[2001:db8::25]:25', identity: 'xclient', local: '[2001:db8::1]:40000' }, transactions: 2, rcpts: 3, bytes_in: 100, bytes_out: 50, duration_ms: 61_500, close: 'limit', limit: 'mailmax', limit_rejections: { mailmax: 1 }, anomalies: ['pregreet', 'no_quit'], msg: 'session' },
      { level: 'info', time: T, event: 'transaction', conn: 'a1', from: '', rcpts: 1, size: 10, reply: '250 2.0.0 Ok: queued as 4XyZ', backend: '[2001:db8::25]:25', queue_id: '4XyZ', recipients: [{ address: 'a,b@example.net', code: 250, reply: '250 2.1.5 Ok' }, { address: null, code: 550, reply: '550 5.1.1 <->: unknown' }], msg: 'transaction' },
      { level: 'info', time: T, event: 'transaction', conn: 'a1', from: null, rcpts: 0, size: 0, reply: '354 odd', backend: null, queue_id: null, recipients: [], msg: 'transaction' },
      { level: 'info', time: T, event: 'anomaly', conn: 'a1', kind: 'pregreet', severity: 'warning', detail: 'spoke "early"', msg: 'anomaly pregreet' },
      { level: 'warn', time: T, event: 'backend', address: '[2001:db8::25]:25', state: 'down', reason: 'health check: refused', msg: 'backend down' },
      { level: 'warn', time: T, conn: 'a1', backend: '[2001:db8::25]:25', reason: 'reset', msg: 'backend lost mid-session' },
    ];
    const lines = recs.flatMap((r) => [JSON.stringify(r), formatTextLine(r as LogLine)]);
    const r = await runReport(['--json'], Readable.from([lines.join('\n') + '\n']));
    assert.equal(r.code, 0, r.err);
    const rep = JSON.parse(r.out) as Report;
    assert.equal(rep.input.records, 12);
    assert.equal(rep.input.text_records, 6);
    assert.equal(rep.input.other_records, 2, 'the backend-lost line is no backend state record, in either form');
    assert.equal(rep.totals.sessions, 2);
    assert.equal(rep.totals.sessions_suspicious, 2);
    assert.equal(rep.totals.max_duration_ms, 61_500);
    assert.deepEqual(rep.totals.messages, { accepted: 2, tempfail: 2, rejected: 0, unknown: 0, total: 4 });
    assert.deepEqual(rep.limits, { mailmax: { sessions_closed: 2, records: 0, rejections: 2 } });
    assert.deepEqual(rep.top_helo.items, [{ name: 'odd (helo) "name"', count: 2, error: 0 }]);
    assert.deepEqual(rep.anomalies['pregreet']!.records, 2);
    assert.equal(rep.anomalies['pregreet']!.example, 'spoke "early"');
    assert.deepEqual(rep.tls['smtp'], { sessions: 2, tls: 2, resumed: 2, tls_share: 1, resumption_rate: 1, versions: { 'TLSv1.3': 2 } });
    const b = rep.backends['[2001:db8::25]:25']!;
    assert.deepEqual([b.sessions, b.transactions, b.accepted, b.down_events, b.last_down_reason], [2, 2, 2, 2, 'health check: refused']);
  });
});

describe('postern report --since/--until values', () => {
  it('ISO times (UTC without a zone), now, and times relative to now', () => {
    const now = Date.UTC(2026, 2, 1, 12, 0, 0);
    assert.equal(parseWhen('2026-03-01', now), Date.UTC(2026, 2, 1));
    assert.equal(parseWhen('2026-03-01T10:00', now), Date.UTC(2026, 2, 1, 10));
    assert.equal(parseWhen('2026-03-01 10:00:30', now), Date.UTC(2026, 2, 1, 10, 0, 30));
    assert.equal(parseWhen('2026-03-01T10:00:00+02:00', now), Date.UTC(2026, 2, 1, 8));
    assert.equal(parseWhen('now', now), now);
    assert.equal(parseWhen('-90m', now), now - 90 * 60_000);
    assert.equal(parseWhen('-1h', now), now - 3_600_000);
    assert.equal(parseWhen('-2d', now), now - 2 * 86_400_000);
    assert.equal(parseWhen('-1w', now), now - 7 * 86_400_000);
    for (const bad of ['yesterday', '1h', '-1y', '2026-13-01', '']) assert.equal(parseWhen(bad, now), null, bad);
  });

  it('refuses an unreadable or empty period', async () => {
    const a = await runReport(['--since', 'yesterday']);
    assert.equal(a.code, 1);
    assert.match(a.err, /--since wants an ISO time/);
    const b = await runReport(['--since', '2026-03-02', '--until', '2026-03-01']);
    assert.equal(b.code, 1);
    assert.match(b.err, /--since must be before --until/);
  });
});

describe('postern report input handling', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'postern-report-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('sums several files, plain and gzip', async () => {
    const a = path.join(dir, 'a.log');
    const b = path.join(dir, 'b.log.gz');
    const ea = await writeLog(a, { sessions: 300, seed: 1 });
    const eb = await writeLog(path.join(dir, 'b.log'), { sessions: 200, seed: 2, start: Date.UTC(2026, 1, 1) });
    const { readFileSync } = await import('node:fs');
    writeFileSync(b, gzipSync(readFileSync(path.join(dir, 'b.log'))));
    const r = await runReport([a, b, '--json']);
    assert.equal(r.code, 0, r.err);
    const rep = JSON.parse(r.out) as Report;
    assert.equal(rep.totals.sessions, 500);
    assert.equal(rep.input.lines, ea.lines + eb.lines);
  });

  it('exits 1 with a clear line for a missing file or a bad option', async () => {
    const r = await runReport([path.join(dir, 'nope.log')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /nope\.log: ENOENT/);
    const o = await runReport(['--frobnicate']);
    assert.equal(o.code, 1);
    assert.match(o.err, /unknown option --frobnicate/);
    assert.equal((await runReport(['--top', '0'])).code, 1);
  });

  it('a log over three days long is shown per day and per hour of day', async () => {
    const f = path.join(dir, 'long.log');
    const e = await writeLog(f, { sessions: 400, seed: 3, meanGapMs: 1_800_000 });
    const r = await runReport([f, '--top', '3']);
    assert.equal(r.code, 0, r.err);
    assert.ok(!r.out.includes('Per-hour traffic (UTC)\n'));
    assert.match(r.out, /Per-day traffic \(UTC\)\n-+\n  day +sessions +messages +accepted\n  2026-01-01 /);
    assert.match(r.out, /Per-hour-of-day traffic \(UTC, all days\)\n-+\n  hour +sessions +messages +accepted\n  00:00 /);
    const top = r.out.split('Top clients by sessions\n')[1]!.split('\n').slice(1, 5);
    assert.equal(top.filter((l) => /^ +\d+  \S+$/.test(l)).length, 3, top.join('|'));
    assert.match(top[0]!, new RegExp(`^ +${topOf(e.clients, 1)[0]!.count}  ${topOf(e.clients, 1)[0]!.name.replace(/\./g, '\\.')}$`));
  });

  it('an empty input gives an empty report, not an error', async () => {
    const r = await runReport([], Readable.from(['']));
    assert.equal(r.code, 0);
    assert.match(r.out, /Postern log report: - \.\. -/);
  });
});
