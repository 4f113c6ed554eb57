// `log.format: text`: one human line per record, Exim-style for sessions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/observe/logger.js';
import { formatTextRecord } from '../../src/observe/text-format.js';

const T = '2026-11-23T11:17:38.927Z';
const f = (r: Record<string, unknown>) => formatTextRecord(JSON.stringify({ level: 'info', time: T, ...r }));

const session = {
  event: 'session',
  conn: '118f1200001',
  client: { address: '127.0.0.2', port: 57703 },
  listener: 'smtp',
  proxy: null,
  tls: null,
  helo: 'vm',
  auth: null,
  backend: { address: '127.0.0.1:2526', identity: 'xclient' },
  transactions: 1,
  rcpts: 2,
  bytes_in: 302,
  bytes_out: 295,
  duration_ms: 114,
  close: 'quit',
  anomalies: [],
  msg: 'session',
};

describe('text format', () => {
  it('a plain session line', () => {
    assert.equal(
      f(session),
      `${T} info [118f1200001] session H=(vm) [127.0.0.2]:57703 L=smtp B=127.0.0.1:2526 T=1 R=2 in=302 out=295 D=114ms close=quit`,
    );
  });

  it('PRX, TLS with * when resumed, SNI, AUTH, anomalies, IPv6, and unknown fields kept', () => {
    const line = f({
      ...session,
      client: { address: '2001:db8::1', port: 25 },
      proxy: { address: '10.0.0.5', port: 40000 },
      tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', resumed: true, sni: 'mx.example.net' },
      auth: 'alice',
      duration_ms: 61_500,
      close: 'client_closed',
      anomalies: ['no_quit', 'bare_lf'],
      limit: 'rcptmax',
    });
    assert.equal(
      line,
      `${T} info [118f1200001] session H=(vm) [2001:db8::1]:25 L=smtp PRX=10.0.0.5:40000 X=TLS_AES_256_GCM_SHA384* TLS=TLSv1.3 SNI=mx.example.net A=alice B=127.0.0.1:2526 T=1 R=2 in=302 out=295 D=61.500s close=client_closed anomalies=no_quit,bare_lf limit=rcptmax`,
    );
  });

  it('no * without resumption; PRX as a string; no HELO and no backend', () => {
    const line = f({ ...session, proxy: '10.0.0.5', helo: null, backend: null, tls: { version: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', resumed: false, sni: null } });
    assert.match(line, / session H=\[127\.0\.0\.2\]:57703 L=smtp PRX=10\.0\.0\.5 X=ECDHE-RSA-AES128-GCM-SHA256 TLS=TLSv1\.2 T=1 /);
    assert.doesNotMatch(line, /\*|B=|SNI=/);
  });

  it('client-chosen text is quoted and escaped: one record, one line', () => {
    const line = f({ ...session, helo: 'evil\r\n2026-01-01 info fake record', anomalies: ['x y'] });
    assert.ok(!/[\r\n]/.test(line));
    assert.match(line, /H=\("evil\\r\\n2026-01-01 info fake record"\) \[127\.0\.0\.2\]/);
    assert.match(line, /anomalies="x y"$/);
    const u = f({ ...session, helo: 'a\u2028b\u0085c' });
    assert.match(u, /H=\("a\\u2028b\\u0085c"\)/);
  });

  it('a transaction line with Exim C="..." for the reply', () => {
    assert.equal(
      f({ event: 'transaction', conn: 'c1', from: 'alice@example.org', rcpts: 3, size: 240, reply: '250 2.6.0 Ok: queued as 8024FCEFD3', backend: '127.0.0.1:2526', msg: 'transaction' }),
      `${T} info [c1] transaction F=<alice@example.org> R=3 S=240 B=127.0.0.1:2526 C="250 2.6.0 Ok: queued as 8024FCEFD3"`,
    );
    assert.match(f({ event: 'transaction', conn: 'c1', from: '', rcpts: 1, size: 0, reply: '554 5.7.1 "no"' }), / F=<> R=1 S=0 C="554 5\.7\.1 \\"no\\""$/);
  });

  it('an anomaly line', () => {
    assert.equal(
      f({ event: 'anomaly', conn: 'c2', kind: 'non_smtp', detail: 'GET / HTTP/1.1', msg: 'anomaly non_smtp' }),
      `${T} info [c2] anomaly non_smtp detail="GET / HTTP/1.1"`,
    );
  });

  it('a backend line', () => {
    assert.equal(
      formatTextRecord(JSON.stringify({ level: 'warn', time: T, event: 'backend', address: '10.0.0.11:25', state: 'down', reason: 'health check: connect ECONNREFUSED', msg: 'backend 10.0.0.11:25 down' })),
      `${T} warn backend 10.0.0.11:25 down reason="health check: connect ECONNREFUSED"`,
    );
  });

  it('other records: the message and their fields', () => {
    assert.equal(
      f({ listener: 'smtp', address: { host: '127.0.0.1', port: 2525 }, msg: 'listening on 127.0.0.1:2525' }),
      `${T} info listening on 127.0.0.1:2525 listener=smtp address={"host":"127.0.0.1","port":2525}`,
    );
    assert.equal(f({ event: 'reload', msg: 'configuration reloaded' }), `${T} info reload: configuration reloaded`);
    assert.equal(f({ msg: 'stopped' }), `${T} info stopped`);
    assert.equal(
      formatTextRecord(JSON.stringify({ level: 'error', time: T, event: 'reload_failed', err: 'bad\nconfig', msg: 'reload failed' })),
      `${T} error reload_failed: reload failed err="bad\\nconfig"`,
    );
  });

  it('a line that is not a JSON object passes through on one line', () => {
    assert.equal(formatTextRecord('not json\n'), 'not json');
    assert.equal(formatTextRecord('a\nb'), 'a\\u000ab');
    assert.equal(formatTextRecord('[1]'), '[1]');
  });

  it('new fields: auth {user, mechanism}, backend.local, anomaly severity, queue_id and recipients', () => {
    const line = f({ ...session, auth: { user: 'alice@example.org', mechanism: 'PLAIN' }, backend: { address: '127.0.0.1:2526', identity: 'xclient', local: '127.0.0.1:40312' } });
    assert.match(line, / A=alice@example\.org mech=PLAIN B=127\.0\.0\.1:2526 BL=127\.0\.0\.1:40312 T=1 /);
    assert.equal(
      f({ event: 'anomaly', conn: 'c2', kind: 'rst_after_quit', severity: 'notice', detail: 'reset after the 221', msg: 'anomaly rst_after_quit' }),
      `${T} info [c2] anomaly rst_after_quit severity=notice detail="reset after the 221"`,
    );
    const tx = {
      event: 'transaction',
      conn: 'c1',
      from: 'alice@example.org',
      rcpts: 1,
      size: 240,
      reply: '250 2.0.0 Ok: queued as 8024FCEFD3',
      backend: '127.0.0.1:2526',
      queue_id: '8024FCEFD3',
      recipients: [
        { address: 'bob@example.net', code: 250, reply: '250 2.1.5 Ok' },
        { address: 'eve@example.net', code: 554, reply: '554 5.7.1 <eve@example.net>: Relay access denied' },
      ],
      msg: 'transaction',
    };
    assert.equal(
      f(tx),
      `${T} info [c1] transaction F=<alice@example.org> R=1 S=240 B=127.0.0.1:2526 Q=8024FCEFD3 ` +
        `to=<bob@example.net>:"250 2.1.5 Ok",<eve@example.net>:"554 5.7.1 <eve@example.net>: Relay access denied" C="250 2.0.0 Ok: queued as 8024FCEFD3"`,
    );
    // log.addresses: false: null addresses print as `-`; no queue id, no Q=.
    const hidden = f({ ...tx, from: null, queue_id: null, recipients: [{ address: null, code: 250, reply: '250' }] });
    assert.match(hidden, / transaction F=- R=1 S=240 B=127\.0\.0\.1:2526 to=-:250 C=/);
  });

  it('limit_rejections only when a command was refused', () => {
    assert.doesNotMatch(f({ ...session, limit_rejections: {} }), /limit_rejections/);
    assert.match(f({ ...session, close: 'limit', limit: 'mailmax', limit_rejections: { mailmax: 1 } }), / close=limit limit=mailmax limit_rejections=\{"mailmax":1\}$/);
  });

  it('the logger prints text lines when asked', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', format: 'text' }, { write: (s: string) => void lines.push(s) });
    log.info({ ...session, msg: undefined, event: 'session' }, 'session');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT[\d:.]+Z info \[118f1200001\] session H=\(vm\) \[127\.0\.0\.2\]:57703 .* close=quit\n$/);
  });
});
