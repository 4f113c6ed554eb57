// A `log.format: text` line reads back to the record it was printed from (what `postern
// report` needs of it), whatever text the client chose.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { readRecord, type ReadSession } from '../../src/tools/record-read.js';
import type { AnomalyRecord, BackendStateRecord, SessionRecord, TransactionRecord } from '../../src/observe/records.js';
import { formatTextLine, type LogLine, type OtherRecord } from '../../src/observe/text-format.js';
import { isTextRecordLine, parseTextRecord } from '../../src/tools/text-parse.js';

const T = '2026-11-23T11:17:38.927Z';

type Typed = SessionRecord | TransactionRecord | AnomalyRecord | BackendStateRecord;

/** record -> text -> parse: the same typed record (and head), on one line, that the report reads. */
function roundTrip(rec: Typed | OtherRecord, level = 'info') {
  const input = { level, time: T, ...rec } as LogLine;
  const line = formatTextLine(input);
  assert.ok(!/[\r\n]/.test(line), 'one line');
  const parsed = parseTextRecord(line);
  assert.ok(parsed, `not read back: ${line}`);
  const read = readRecord(parsed);
  assert.ok(read, `not a Postern record: ${line}`);
  assert.equal(read.time, Date.parse(T));
  return { line, input, parsed, rec: read.rec };
}

// Client-chosen text: anything, control characters, quotes, brackets and separators included.
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 24 }),
  fc.constantFrom('-', 'true', 'false', '', '0123', '42', '(x)', 'a,b', '[::1]:25', '{"a":1}', '<x>', 'x=y z', 'H=(a)', '\u2028', '"'),
);
const addr = fc.oneof(fc.constantFrom('192.0.2.1', '2001:db8::1', '::1', ''), text);
const port = fc.integer({ min: 0, max: 65535 });
const count = fc.nat({ max: 1_000_000 });
const kinds = fc.array(fc.oneof(fc.constantFrom('no_quit', 'pregreet', 'bare_lf'), text.filter((s) => s !== '')), { maxLength: 4 });
const replyCode = fc.integer({ min: 200, max: 599 });

describe('text format read back', () => {
  it('session records, property-based', () => {
    fc.assert(
      fc.property(
        fc.record({
          client: fc.record({ address: addr, port }),
          listener: fc.oneof(fc.constantFrom('smtp', 'submission'), text),
          helo: fc.option(text, { nil: null }),
          tls: fc.option(fc.record({ version: fc.constantFrom('TLSv1.2', 'TLSv1.3'), cipher: fc.constantFrom('TLS_AES_256_GCM_SHA384', 'ECDHE-RSA-AES128-GCM-SHA256'), resumed: fc.boolean(), sni: fc.option(fc.constantFrom('mx.example.net', 'a.b'), { nil: null }) }), { nil: null }),
          auth: fc.option(fc.record({ user: text, mechanism: fc.constantFrom('PLAIN', 'LOGIN') }), { nil: null }),
          proxy: fc.option(fc.oneof(fc.constantFrom('10.0.0.5:40000', '[2001:db8::5]:1', 'xclient'), text), { nil: null }),
          backend: fc.option(
            fc.record(
              {
                address: fc.constantFrom('10.0.0.11:25', '[2001:db8::25]:25'),
                identity: fc.constantFrom('xclient', 'proxy-v2', 'none'),
                local: fc.constantFrom('10.0.0.1:40000', '[2001:db8::1]:1025'),
                reused: fc.nat({ max: 99 }),
                handshake_ms: fc.nat({ max: 9999 }),
                tls: fc.record({ version: fc.constant('TLSv1.3'), cipher: fc.constant('TLS_AES_128_GCM_SHA256'), resumed: fc.boolean() }),
                // A field a newer Postern adds (records helper: backend.attempts).
                attempts: fc.array(fc.record({ server: fc.constant('10.0.0.12:25'), stage: fc.constantFrom('connect', 'greeting'), error: text }), { maxLength: 2 }),
              },
              { requiredKeys: ['address', 'identity'] },
            ),
            { nil: null },
          ),
          transactions: count,
          rcpts: count,
          bytes_in: count,
          bytes_out: count,
          duration_ms: fc.oneof(fc.nat({ max: 10_000_000 }), fc.nat({ max: 40_000_000 }).map((x) => x / 4)),
          close: fc.constantFrom('quit', 'client_closed', 'limit', 'timeout'),
          anomalies: kinds,
          limit: fc.option(fc.constantFrom('mailmax', 'per_ip_rate'), { nil: undefined }),
          limit_rejections: fc.dictionary(fc.constantFrom('mailmax', 'rcptmax', 'rcptdomainmax'), fc.integer({ min: 1, max: 99 })),
        }),
        (generated) => {
          // Plain objects, as JSON.parse makes them (fast-check may make null-prototype ones).
          const s = JSON.parse(JSON.stringify(generated)) as typeof generated;
          const anomalies = [...new Set(s.anomalies)];
          const { limit, ...rest } = s;
          const input = { event: 'session', conn: 'c0ffee01', ...rest, anomalies, ...(limit === undefined ? {} : { limit }) } as SessionRecord;
          const { line, rec, parsed } = roundTrip(input);
          assert.deepEqual(parsed, { level: 'info', time: T, ...input }, line);
          const r = rec as ReadSession;
          assert.equal(r.event, 'session', line);
          assert.equal(r.conn, 'c0ffee01');
          assert.deepEqual(r.client, s.client, line);
          assert.equal(r.listener, s.listener, line);
          assert.equal(r.helo, s.helo, line);
          assert.deepEqual(r.tls, s.tls, line);
          assert.deepEqual(r.auth, s.auth, line);
          // record-read keeps what the report uses of the backend.
          const b = s.backend;
          assert.deepEqual(
            r.backend,
            b && { address: b.address, identity: b.identity, ...(b.local !== undefined ? { local: b.local } : {}), ...(b.attempts?.length ? { attempts: b.attempts } : {}) },
            line,
          );
          for (const k of ['transactions', 'rcpts', 'bytes_in', 'bytes_out'] as const) assert.equal(r[k], s[k], k);
          // The text form keeps milliseconds.
          assert.equal(r.duration_ms, s.duration_ms, line);
          assert.equal(r.close, s.close);
          assert.deepEqual(r.anomalies, anomalies, line);
          assert.equal(r.limit, s.limit ?? null);
          assert.deepEqual(r.limit_rejections, s.limit_rejections);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('transaction records, property-based', () => {
    fc.assert(
      fc.property(
        fc.record({
          from: fc.option(text, { nil: null }),
          rcpts: count,
          size: count,
          reply: fc.tuple(replyCode, text).map(([c, t]) => `${c} ${t}`),
          backend: fc.option(fc.constantFrom('10.0.0.11:25', '[2001:db8::25]:25'), { nil: null }),
          queue_id: fc.option(fc.oneof(fc.constantFrom('4XyZ1', '1abcDE-000123-XY', '0123'), text), { nil: null }),
          recipients: fc.array(fc.record({ address: fc.option(text, { nil: null }), code: replyCode, reply: text }).map((x) => ({ ...x, reply: `${x.code} ${x.reply}` })), { maxLength: 4 }),
          // A field a newer Postern adds (records helper: a refused held sender).
          result: fc.option(fc.constantFrom('rejected', 'accepted'), { nil: undefined }),
        }),
        (generated) => {
          const { result, ...t } = JSON.parse(JSON.stringify(generated)) as typeof generated;
          const input = { event: 'transaction', conn: 'c1', ...t, ...(result === undefined ? {} : { result }) } as TransactionRecord;
          const { line, rec, parsed } = roundTrip(input);
          assert.deepEqual(parsed, { level: 'info', time: T, ...input }, line);
          // record-read keeps what the report counts, and nothing it does not know.
          assert.deepEqual(rec, { event: 'transaction', conn: 'c1', ...t, result: result ?? null }, line);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('anomaly and backend records', () => {
    fc.assert(
      fc.property(fc.constantFrom('pregreet', 'rst_after_quit', 'made_up'), fc.constantFrom('notice', 'warning'), text, (kind, severity, detail) => {
        const input = { event: 'anomaly', conn: 'c2', kind, severity, detail, client: { address: '192.0.2.9', port: 25 } } as AnomalyRecord;
        const { line, rec, parsed } = roundTrip(input);
        assert.deepEqual(parsed, { level: 'info', time: T, ...input }, line);
        assert.deepEqual(rec, { event: 'anomaly', conn: 'c2', kind, detail }, line);
      }),
      { numRuns: 200 },
    );
    const b: BackendStateRecord = { event: 'backend', address: '[::1]:25', state: 'down', reason: 'health check: connect ECONNREFUSED' };
    const { rec, parsed } = roundTrip(b, 'warn');
    assert.deepEqual(parsed, { level: 'warn', time: T, ...b });
    assert.deepEqual(rec, b);
  });

  it('other lines: records of other events, and lines that are no record', () => {
    const reload = parseTextRecord(formatTextLine({ level: 'info', time: T, event: 'reload', msg: 'configuration reloaded' }));
    assert.equal(reload?.event, 'reload');
    // A message that starts like an event word is no event record.
    const lost = parseTextRecord(formatTextLine({ level: 'warn', time: T, conn: 'c', backend: 'b:25', reason: 'x', msg: 'backend lost mid-session' }));
    assert.equal(lost?.event, undefined);
    assert.deepEqual(readRecord(lost)?.rec, { event: null, limit: null });
    for (const l of ['Mar  1 10:00:00 mx postfix/smtpd[1]: connect from x', '{"a":1}', '', '2026-11-23 info session']) {
      assert.equal(isTextRecordLine(l), false, l);
      assert.equal(parseTextRecord(l), null, l);
    }
  });
});
