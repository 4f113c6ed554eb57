// One call per record updates the metrics that record concerns: observeSession,
// observeTransaction, observeAnomaly, observeAuth, observeHealthCheck.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Metrics } from '../../src/observe/metrics.js';
import { observeAnomaly, observeAuth, observeHealthCheck, observeSession, observeTransaction, sessionSeverity } from '../../src/observe/record-metrics.js';
import { anomalyRecord, sessionRecord, transactionRecord, type SessionFields, type TransactionRecord } from '../../src/observe/records.js';

/** The value of one series (labels matched exactly), or undefined when absent. */
async function value(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = m.registry.getSingleMetric(name.replace(/_(bucket|sum|count)$/, ''));
  assert.ok(metric, `no metric ${name}`);
  const { values } = await metric.get();
  const want = Object.entries(labels);
  const hit = values.find(
    (v) => ((v as { metricName?: string }).metricName ?? name) === name && Object.keys(v.labels).length === want.length && want.every(([k, x]) => String(v.labels[k]) === x),
  );
  return hit?.value;
}

const base: SessionFields = { conn: 'c1', client: { address: '192.0.2.1', port: 40000 }, listener: 'smtp', proxy: null, duration_ms: 1500, close: 'quit' };

const tx = (over: Partial<TransactionRecord>): Omit<TransactionRecord, 'event' | 'result'> => ({
  conn: 'c1',
  from: 'a@example.org',
  rcpts: 1,
  size: 5000,
  reply: '250 2.0.0 Ok: queued as 4Xy1Z',
  backend: '127.0.0.1:2526',
  queue_id: '4Xy1Z',
  recipients: [{ address: 'b@example.net', code: 250, reply: '250 2.1.5 Ok' }],
  ...over,
});

describe('sessionSeverity', () => {
  it('is the highest severity among the kinds; an unknown kind counts as a warning', () => {
    assert.equal(sessionSeverity([]), 'none');
    assert.equal(sessionSeverity(['rst_after_quit', 'no_quit', 'auth_failed', 'quit_no_wait']), 'notice');
    assert.equal(sessionSeverity(['no_quit', 'pregreet']), 'warning');
    assert.equal(sessionSeverity(['bare_lf']), 'warning');
    assert.equal(sessionSeverity(['made_up_by_a_newer_version']), 'warning');
  });
});

describe('observeSession', () => {
  it('duration histogram, severity counter and the backend handshake', async () => {
    const m = new Metrics();
    assert.equal(await value(m, 'postern_sessions_total', { severity: 'warning' }), 0, 'shown at 0 from the start');
    observeSession(m, sessionRecord({ ...base, duration_ms: 40 }));
    observeSession(m, sessionRecord({ ...base, duration_ms: 1500, anomalies: ['no_quit'], backend: { address: 'mx1:25', identity: 'xclient', handshake_ms: 7 } }));
    observeSession(m, sessionRecord({ ...base, duration_ms: 700_000, anomalies: ['no_quit', 'pipelining_violation'], backend: { address: 'mx1:25', identity: 'xclient', reused: 3 } }));
    assert.equal(await value(m, 'postern_session_duration_seconds_count'), 3);
    assert.equal(await value(m, 'postern_session_duration_seconds_sum'), 0.04 + 1.5 + 700);
    assert.equal(await value(m, 'postern_session_duration_seconds_bucket', { le: '0.05' }), 1);
    assert.equal(await value(m, 'postern_session_duration_seconds_bucket', { le: '2.5' }), 2);
    assert.equal(await value(m, 'postern_session_duration_seconds_bucket', { le: '600' }), 2);
    assert.equal(await value(m, 'postern_session_duration_seconds_bucket', { le: '+Inf' }), 3);
    assert.equal(await value(m, 'postern_sessions_total', { severity: 'none' }), 1);
    assert.equal(await value(m, 'postern_sessions_total', { severity: 'notice' }), 1);
    assert.equal(await value(m, 'postern_sessions_total', { severity: 'warning' }), 1);
    // Only the session that made a handshake (a reused connection made none).
    assert.equal(await value(m, 'postern_backend_handshake_seconds_count', { pool: 'default', backend: 'mx1:25' }), 1);
    assert.equal(await value(m, 'postern_backend_handshake_seconds_bucket', { pool: 'default', backend: 'mx1:25', le: '0.005' }), 0);
    assert.equal(await value(m, 'postern_backend_handshake_seconds_bucket', { pool: 'default', backend: 'mx1:25', le: '0.01' }), 1);
  });
});

describe('observeTransaction', () => {
  it('messages overall and per backend by replyResult (3xx is tempfail), size only when a body arrived', async () => {
    const m = new Metrics();
    observeTransaction(m, transactionRecord(tx({ size: 5000 })));
    observeTransaction(m, transactionRecord(tx({ size: 2_000_000, reply: '552 5.3.4 Message size exceeds fixed limit', backend: null })));
    observeTransaction(m, transactionRecord(tx({ size: 0, reply: '554 5.5.1 Error: no valid recipients' })));
    observeTransaction(m, transactionRecord(tx({ size: 300, reply: '451 4.3.0 Try again' })));
    observeTransaction(m, transactionRecord(tx({ size: 300, reply: '354 odd backend' })));
    observeTransaction(m, transactionRecord(tx({ size: 300, reply: 'garbage' })));
    assert.equal(await value(m, 'postern_messages_total', { result: 'accepted' }), 1);
    assert.equal(await value(m, 'postern_messages_total', { result: 'rejected' }), 2);
    assert.equal(await value(m, 'postern_messages_total', { result: 'tempfail' }), 3);
    assert.equal(await value(m, 'postern_backend_messages_total', { pool: 'default', backend: '127.0.0.1:2526', result: 'accepted' }), 1);
    assert.equal(await value(m, 'postern_backend_messages_total', { pool: 'default', backend: '127.0.0.1:2526', result: 'rejected' }), 1, 'the 552 had no backend');
    assert.equal(await value(m, 'postern_backend_messages_total', { pool: 'default', backend: '127.0.0.1:2526', result: 'tempfail' }), 3);
    assert.equal(await value(m, 'postern_message_size_bytes_count'), 5);
    assert.equal(await value(m, 'postern_message_size_bytes_sum'), 5000 + 2_000_000 + 900);
    assert.equal(await value(m, 'postern_message_size_bytes_bucket', { le: '1024' }), 3);
    assert.equal(await value(m, 'postern_message_size_bytes_bucket', { le: '1048576' }), 4);
    assert.equal(await value(m, 'postern_message_size_bytes_bucket', { le: '4194304' }), 5);
  });
});

describe('observeAnomaly, observeAuth, observeHealthCheck', () => {
  it('count by their labels', async () => {
    const m = new Metrics();
    observeAnomaly(m, anomalyRecord('c1', 'bare_lf', 'bare LF in body'));
    observeAnomaly(m, anomalyRecord('c2', 'bare_lf', 'again'));
    observeAuth(m, 'ok');
    observeAuth(m, 'invalid');
    observeAuth(m, 'invalid');
    observeHealthCheck(m, 'mx1:25', 'ok');
    observeHealthCheck(m, 'mx1:25', 'failed');
    observeHealthCheck(m, 'mx1:25', 'ok');
    assert.equal(await value(m, 'postern_anomalies_total', { kind: 'bare_lf' }), 2);
    assert.equal(await value(m, 'postern_auth_total', { result: 'ok' }), 1);
    assert.equal(await value(m, 'postern_auth_total', { result: 'invalid' }), 2);
    assert.equal(await value(m, 'postern_health_checks_total', { pool: 'default', backend: 'mx1:25', result: 'ok' }), 2);
    assert.equal(await value(m, 'postern_health_checks_total', { pool: 'default', backend: 'mx1:25', result: 'failed' }), 1);
  });
});

describe('transactionRecord with log.addresses: false', () => {
  it('hides the sender and every recipient address, keeps the rest', () => {
    const shown = transactionRecord(tx({}));
    const hidden = transactionRecord(tx({}), { addresses: false });
    assert.equal(shown.from, 'a@example.org');
    assert.equal(shown.recipients[0]!.address, 'b@example.net');
    assert.deepEqual(hidden, { ...shown, from: null, recipients: [{ address: null, code: 250, reply: '250 2.1.5 Ok' }] });
    assert.doesNotMatch(JSON.stringify(hidden), /example\.(org|net)/);
  });

  it('blanks addresses that replies quote', () => {
    const refused = tx({
      reply: '554 5.5.1 Error: no valid recipients',
      recipients: [
        { address: 'x@example.net', code: 550, reply: '550 5.1.1 <x@example.net>: Recipient address rejected: User unknown' },
        { address: 'y@example.net', code: 250, reply: '250 2.1.5 Ok y@example.net (Exim style), id=1abc' },
      ],
    });
    const hidden = transactionRecord(refused, { addresses: false });
    assert.deepEqual(
      hidden.recipients.map((r) => r.reply),
      ['550 5.1.1 <->: Recipient address rejected: User unknown', '250 2.1.5 Ok - (Exim style), id=1abc'],
    );
    assert.equal(hidden.reply, '554 5.5.1 Error: no valid recipients');
    assert.doesNotMatch(JSON.stringify(hidden), /@/);
  });
});
