// `log.format: text`: one human line per record, Exim-style for sessions.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/observe/logger.js';
import { anomalyRecord, backendStateRecord, sessionRecord, transactionRecord, type SessionRecord } from '../../src/observe/records.js';
import { formatTextLine, type LogLine } from '../../src/observe/text-format.js';
import { parseTextRecord } from '../../src/tools/text-parse.js';

const T = '2026-11-23T11:17:38.927Z';
const f = (r: object, level = 'info') => formatTextLine({ level, time: T, ...r } as LogLine);

const session: SessionRecord = {
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
  limit_rejections: {},
};

describe('text format', () => {
  it('a plain session line', () => {
    assert.equal(
      f(session),
      `${T} info [118f1200001] session H=(vm) [127.0.0.2]:57703 L=smtp B=127.0.0.1:2526 BI=xclient T=1 R=2 in=302 out=295 D=114ms close=quit`,
    );
  });

  it('PRX, TLS with * when resumed, SNI, AUTH, anomalies, IPv6, and unknown fields kept', () => {
    const line = f({
      ...session,
      client: { address: '2001:db8::1', port: 25 },
      proxy: '10.0.0.5:40000',
      tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', resumed: true, sni: 'mx.example.net' },
      auth: { user: 'alice', mechanism: 'PLAIN' },
      duration_ms: 61_500,
      close: 'client_closed',
      anomalies: ['no_quit', 'bare_lf'],
      limit: 'rcptmax',
      screen: { result: 'pass', score: 0 },
    });
    assert.equal(
      line,
      `${T} info [118f1200001] session H=(vm) [2001:db8::1]:25 L=smtp PRX=10.0.0.5:40000 X=TLS_AES_256_GCM_SHA384* TLS=TLSv1.3 SNI=mx.example.net A=alice mech=PLAIN B=127.0.0.1:2526 BI=xclient T=1 R=2 in=302 out=295 D=61.500s close=client_closed anomalies=no_quit,bare_lf limit=rcptmax screen={"result":"pass","score":0}`,
    );
  });

  it('no * without resumption; PRX as a string; no HELO and no backend', () => {
    const line = f({ ...session, proxy: '10.0.0.5', helo: null, backend: null, tls: { version: 'TLSv1.2', cipher: 'ECDHE-RSA-AES128-GCM-SHA256', resumed: false, sni: null } });
    assert.match(line, / session H=\[127\.0\.0\.2\]:57703 L=smtp PRX=10\.0\.0\.5 X=ECDHE-RSA-AES128-GCM-SHA256 TLS=TLSv1\.2 T=1 /);
    assert.doesNotMatch(line, /\*|B=|SNI=/);
  });

  it("the backend's other fields as backend.KEY (a newer field too)", () => {
    const line = f({
      ...session,
      backend: { address: '127.0.0.1:2526', identity: 'proxy-v2', local: '127.0.0.1:40312', handshake_ms: 12, reused: 3, attempts: [{ server: '127.0.0.1:2527', stage: 'connect', error: 'ECONNREFUSED' }] },
    });
    assert.match(line, / B=127\.0\.0\.1:2526 BL=127\.0\.0\.1:40312 BI=proxy-v2 backend\.handshake_ms=12 backend\.reused=3 backend\.attempts=\[\{"server":"127\.0\.0\.1:2527","stage":"connect","error":"ECONNREFUSED"\}\] T=1 /);
  });

  it('client-chosen text is quoted and escaped: one record, one line', () => {
    const line = f({ ...session, helo: 'evil\r\n2026-01-01 info fake record', anomalies: ['x y'] as unknown as SessionRecord['anomalies'] });
    assert.ok(!/[\r\n]/.test(line));
    assert.match(line, /H=\("evil\\r\\n2026-01-01 info fake record"\) \[127\.0\.0\.2\]/);
    assert.match(line, /anomalies="x y"$/);
    const u = f({ ...session, helo: 'a\u2028b\u0085c' });
    assert.match(u, /H=\("a\\u2028b\\u0085c"\)/);
  });

  it('a transaction line with Exim C="..." for the reply', () => {
    assert.equal(
      f(transactionRecord({ conn: 'c1', from: 'alice@example.org', rcpts: 3, size: 240, reply: '250 2.6.0 Ok: queued as 8024FCEFD3', backend: '127.0.0.1:2526', queue_id: null, recipients: [] })),
      `${T} info [c1] transaction F=<alice@example.org> R=3 S=240 B=127.0.0.1:2526 C="250 2.6.0 Ok: queued as 8024FCEFD3" result=accepted`,
    );
    assert.match(f(transactionRecord({ conn: 'c1', from: '', rcpts: 1, size: 0, reply: '554 5.7.1 "no"', backend: null, queue_id: null, recipients: [] })), / F=<> R=1 S=0 C="554 5\.7\.1 \\"no\\"" result=rejected$/);
  });

  it('an anomaly line', () => {
    assert.equal(
      f(anomalyRecord('c2', 'non_smtp', 'GET / HTTP/1.1')),
      `${T} info [c2] anomaly non_smtp severity=warning detail="GET / HTTP/1.1"`,
    );
  });

  it('a backend line', () => {
    assert.equal(
      f(backendStateRecord('10.0.0.11:25', false, 'health check: connect ECONNREFUSED'), 'warn'),
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
      f({ event: 'reload_failed', err: 'bad\nconfig', msg: 'reload failed' }, 'error'),
      `${T} error reload_failed: reload failed err="bad\\nconfig"`,
    );
    assert.equal(f({ err: new Error('EACCES: key'), msg: 'x\ny' }), `${T} info x\\u000ay err="EACCES: key"`);
  });

  it('new fields: auth {user, mechanism}, backend.local, anomaly severity, queue_id and recipients', () => {
    const line = f({ ...session, auth: { user: 'alice@example.org', mechanism: 'PLAIN' }, backend: { address: '127.0.0.1:2526', identity: 'xclient', local: '127.0.0.1:40312' } });
    assert.match(line, / A=alice@example\.org mech=PLAIN B=127\.0\.0\.1:2526 BL=127\.0\.0\.1:40312 BI=xclient T=1 /);
    assert.equal(
      f(anomalyRecord('c2', 'rst_after_quit', 'reset after the 221')),
      `${T} info [c2] anomaly rst_after_quit severity=notice detail="reset after the 221"`,
    );
    const tx = {
      event: 'transaction' as const,
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
    log.info(session, 'session');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT[\d:.]+Z info \[118f1200001\] session H=\(vm\) \[127\.0\.0\.2\]:57703 .* close=quit\n$/);
  });

  it('the logger: each typed record reads back equal from its text line, child bindings and plain messages too', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', format: 'text' }, { write: (s: string) => void lines.push(s) });
    const recs = [
      sessionRecord({
        conn: 'c9',
        client: { address: '2001:db8::7', port: 50000 },
        listener: 'submission',
        proxy: '10.0.0.5:40000',
        tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', resumed: true, sni: 'mx.example' },
        helo: 'client (laptop)',
        auth: { user: 'alice@example.org', mechanism: 'LOGIN' },
        backend: { address: '10.0.0.11:25', identity: 'xclient', local: '10.0.0.1:40000', handshake_ms: 7 },
        transactions: 1,
        rcpts: 2,
        duration_ms: 1234,
        close: 'quit',
        anomalies: ['pipelining_violation'],
        limit_rejections: { rcptmax: 2 },
      }),
      transactionRecord({ conn: 'c9', from: '', rcpts: 1, size: 99, reply: '250 2.0.0 Ok: queued as 4XyZ', backend: '10.0.0.11:25', queue_id: '4XyZ', recipients: [{ address: 'b@example.net', code: 250, reply: '250 2.1.5 Ok' }, { address: 'c@example.net', code: 554, reply: '554 5.7.1 <c@example.net>: Recipient address rejected' }] }),
      anomalyRecord('c9', 'pregreet', 'spoke first: "EHLO x"'),
      backendStateRecord('10.0.0.11:25', true, 'health check passed'),
    ];
    for (const r of recs) log.info(r, 'msg the text form leaves out');
    log.child({ conn: 'c10' }).warn({ backend: '10.0.0.11:25' }, 'backend lost %s', 'mid-session');
    assert.equal(lines.length, 5);
    for (let i = 0; i < recs.length; i++) {
      const back = parseTextRecord(lines[i]!.trimEnd());
      assert.ok(back, lines[i]);
      const { time, level, ...rec } = back;
      assert.ok(!Number.isNaN(Date.parse(time)));
      assert.equal(level, 'info');
      assert.deepEqual(rec, recs[i], lines[i]);
    }
    assert.match(lines[4]!, /^\S+ warn \[c10\] backend lost mid-session backend=10\.0\.0\.11:25\n$/);
  });
});
