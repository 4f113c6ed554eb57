// session/binding.ts: the session's side of its backend, with a real ReplyQueue, a real
// pool from a parsed config and scripted SMTP servers on loopback; a small host object
// plays the session (what it is told: wait/resume, anomalies, backend failures).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BackendPool } from '../../src/backend/pool.js';
import type { Config } from '../../src/config/index.js';
import type { Logger } from '../../src/observe/logger.js';
import type { AnomalyKind } from '../../src/observe/records.js';
import { SessionBinding, type BindingHost } from '../../src/session/binding.js';
import { ReplyQueue } from '../../src/session/reply-queue.js';
import { freePort } from '../helpers/net.js';
import { QUICK_BACKENDS, TEST_CLIENT as CLIENT, suiteBackends, testPool, type Rec } from '../helpers/pool.js';
import { until } from '../helpers/script-backend.js';

class Host implements BindingHost {
  readonly queue: ReplyQueue;
  out = '';
  closed = false;
  finished = false;
  inTransaction = false;
  anomalies: { kind: AnomalyKind; detail: string }[] = [];
  failures: string[] = [];
  waits = 0;
  resumes = 0;
  binds = 0;
  constructor(private readonly logger: Logger) {
    this.queue = new ReplyQueue({
      write: (chunks, done) => {
        this.out += chunks.map(String).join('');
        done?.();
      },
    });
  }
  anomaly(kind: AnomalyKind, detail: string): void {
    this.anomalies.push({ kind, detail });
  }
  backendFailed(reply: string): void {
    this.failures.push(reply);
    this.queue.failBackend(reply, null);
    this.closed = true;
  }
  bound(): void {
    this.binds++;
  }
  wait(): void {
    this.waits++;
  }
  resume(): void {
    this.resumes++;
  }
  log(): Logger {
    return this.logger;
  }
}

interface Setup {
  host: Host;
  binding: SessionBinding;
  pool: BackendPool;
  config: Config;
  records: Rec[];
}

function setup(servers: string[], backends: string, limits = ''): Setup {
  const { cfg: config, pool, logger, records } = testPool(
    servers,
    `${QUICK_BACKENDS}\n${backends}`,
    `limits:
  mailmax: 20
${limits}`,
  );
  const host = new Host(logger);
  const binding = new SessionBinding(host, { config, pool, logger, connId: 'conn1' });
  return { host, binding, pool, config, records };
}

const relay = (r: { raw: Buffer }) => r.raw;

describe('SessionBinding', () => {
  const { backend, tracked } = suiteBackends();

  it('the first command that needs a backend binds one, holding input meanwhile; the reply keeps its place', async () => {
    const b = await backend({ ehlo: ['PIPELINING', 'SIZE 4242', 'CHUNKING'] });
    const s = tracked(setup([b.address], 'identity: none'));
    s.host.queue.reply('250 ehlo\r\n');
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    s.host.queue.reply('452 4.5.3 own refusal after MAIL\r\n');
    assert.equal(s.host.waits, 1);
    assert.equal(s.host.out, '250 ehlo\r\n', 'the refusal waits for MAIL’s reply');
    await until(() => s.host.resumes === 1, 'the bind to finish');
    await until(() => s.host.out.includes('own refusal'), 'the replies');
    assert.equal(s.host.out, '250 ehlo\r\n250 2.0.0 Ok\r\n452 4.5.3 own refusal after MAIL\r\n');
    assert.deepEqual(b.conns[0]!.commands, ['EHLO client.example', 'MAIL FROM:<a@example.org>']);
    const { local, handshake_ms, ...rec } = s.binding.record()!;
    assert.deepEqual(rec, { address: b.address, identity: 'none', pool: 'default' });
    assert.match(local!, /^127\.0\.0\.1:\d+$/);
    assert.ok(handshake_ms! >= 0);
    assert.equal(s.binding.backendLimits().size, 4242, 'the bound server’s SIZE now');
    assert.ok(s.binding.extensions().has('CHUNKING'));
    // Bound: the next command goes straight through.
    s.binding.toBackend(async () => CLIENT, 'RCPT TO:<b@example.net>', relay);
    await until(() => s.host.out.endsWith('own refusal after MAIL\r\n250 2.0.0 Ok\r\n'), 'RCPT’s reply');
    assert.equal(s.host.waits, 1, 'no second bind');
    s.binding.unbind();
  });

  it('no backend would take the session: 451 4.4.1 in the command’s place, input resumed, nothing bound, the attempt recorded', async () => {
    const port = await freePort();
    const s = tracked(setup([`127.0.0.1:${port}`], 'identity: none'));
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    s.host.queue.reply('250 after\r\n');
    await until(() => s.host.resumes === 1, 'the bind to give up');
    assert.equal(s.host.out, '451 4.4.1 postern.test No backend available, try again later\r\n250 after\r\n');
    assert.equal(s.binding.bound, null);
    // Nothing bound, but the record says what was tried (issue 21: backend.attempts).
    const rec = s.binding.record();
    assert.equal(rec?.address, null);
    assert.deepEqual(rec?.attempts?.map((a) => [a.server, a.stage]), [[`127.0.0.1:${port}`, 'connect']]);
    assert.match(rec!.attempts![0]!.error, /ECONNREFUSED/);
  });

  it('the backend lost while a reply is owed: the owed reply becomes 421 4.4.2 (never a 250 it did not give)', async () => {
    const b = await backend({ reply: (line, conn) => (line.startsWith('RCPT') ? (conn.socket.destroy(), '') : undefined) });
    const s = tracked(setup([b.address], 'identity: none'));
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => s.binding.bound !== null && s.host.queue.pendingBackend === 0, 'bound');
    s.host.inTransaction = true;
    s.binding.forward('RCPT TO:<b@example.net>', relay);
    await until(() => s.host.failures.length === 1, 'the loss to be noticed');
    assert.equal(s.host.failures[0], '421 4.4.2 postern.test Backend connection lost, try again later\r\n');
    assert.match(s.host.out, /421 4\.4\.2 .*Backend connection lost/);
    assert.equal(s.binding.bound, null);
    assert.ok(s.records.some((r) => r.msg === 'backend lost mid-session'));
    assert.equal(s.pool.servers[0]!.active, 0);
  });

  it('the backend closing an idle session (its timeout) is no failure: the next MAIL binds anew', async () => {
    const b = await backend();
    const s = tracked(setup([b.address], 'identity: none'));
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => s.binding.bound !== null && s.host.queue.pendingBackend === 0, 'bound');
    b.conns[0]!.socket.end('421 4.4.2 timeout\r\n');
    await until(() => s.binding.bound === null, 'unbound');
    assert.deepEqual(s.host.failures, []);
    assert.deepEqual(s.host.anomalies, [], 'a 421 on closing is not a protocol error');
    assert.ok(s.records.some((r) => r.msg === 'backend closed an idle session'));
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<c@example.org>', relay);
    await until(() => b.conns.length === 2 && s.binding.bound !== null, 'a new binding');
    s.binding.unbind();
  });

  it('an unsolicited reply other than 421: backend_protocol_error, and the backend is dropped', async () => {
    const b = await backend();
    const s = tracked(setup([b.address], 'identity: none'));
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => s.binding.bound !== null && s.host.queue.pendingBackend === 0, 'bound');
    b.conns[0]!.socket.write('250 surprise\r\n');
    await until(() => s.binding.bound === null, 'dropped');
    assert.equal(s.host.anomalies[0]?.kind, 'backend_protocol_error');
    assert.match(s.host.anomalies[0]!.detail, /unsolicited reply .*250 surprise/);
    await until(() => b.conns[0]!.closed, 'closed');
    assert.equal(b.conns[0]!.quit, false);
  });

  it('a 421 in answer to a command: relayed, then the session is ended by the backend', async () => {
    const b = await backend({ reply: (line) => (line.startsWith('RCPT') ? '421 4.3.0 shutting down\r\n' : undefined) });
    const s = tracked(setup([b.address], 'identity: none'));
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => s.binding.bound !== null && s.host.queue.pendingBackend === 0, 'bound');
    s.binding.forward('RCPT TO:<b@example.net>', relay);
    await until(() => s.host.failures.length === 1, 'the session to be ended');
    assert.deepEqual(s.host.failures, ['']);
    assert.ok(s.host.out.endsWith('421 4.3.0 shutting down\r\n'));
    assert.equal(s.binding.bound, null);
  });

  it('EHLO passed on is Postern’s own (internal) command: not owed to the client, its caps replace the bound ones', async () => {
    let second = false;
    const b = await backend({
      reply: (line) => {
        if (!line.startsWith('EHLO')) return undefined;
        const keys = second ? ['PIPELINING', 'SIZE 99'] : ['PIPELINING', 'SIZE 5000'];
        second = true;
        return ['script.test', ...keys].map((l, i, a) => `250${i === a.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
      },
    });
    const s = tracked(setup([b.address], 'identity: none'));
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => s.binding.bound !== null && s.host.queue.pendingBackend === 0, 'bound');
    const before = s.host.out;
    s.binding.ehlo('renamed.example');
    assert.equal(s.host.queue.owed, 0);
    assert.equal(s.host.queue.pendingBackend, 1);
    await until(() => s.host.queue.pendingBackend === 0, 'the EHLO reply');
    assert.equal(s.host.out, before, 'nothing sent to the client');
    assert.equal(s.binding.backendLimits().size, 99);
    assert.equal(s.binding.bound!.conn.helo, 'renamed.example');
    s.binding.unbind();
  });

  it('QUIT with a connection that cannot be reused: the 221 is Postern’s at once, the backend hears QUIT and closes', async () => {
    const b = await backend();
    const s = tracked(setup([b.address], 'identity: none\npool: { reuse: 1 }'));
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => s.binding.bound !== null && s.host.queue.pendingBackend === 0, 'bound');
    let flushed = false;
    s.binding.quit(() => (flushed = true), () => true);
    await until(() => flushed, 'the 221');
    assert.ok(s.host.out.endsWith('221 2.0.0 Bye\r\n'));
    await until(() => b.conns[0]!.commands.at(-1) === 'QUIT', 'QUIT to the backend');
    assert.equal(s.binding.bound, null);
    await until(() => b.conns[0]!.closed, 'closed');
  });

  it('QUIT with a reusable connection: parked for the next session, the 221 is Postern’s, the backend hears no QUIT', async () => {
    const b = await backend();
    const s = tracked(setup([b.address], 'identity: none\npool: { reuse: 10, keepalive: 5s }'));
    await s.pool.start();
    s.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => s.binding.bound !== null && s.host.queue.pendingBackend === 0, 'bound');
    s.binding.forward('RSET', relay);
    let flushed = false;
    // QUIT pipelined behind RSET: reuse is decided once RSET's reply is in.
    s.binding.quit(() => (flushed = true), () => true);
    await until(() => flushed, 'the 221');
    assert.ok(s.host.out.endsWith('250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n'));
    const conn = b.conns[1]!;
    assert.equal(conn.quit, false);
    assert.equal(conn.closed, false);
    assert.equal(s.pool.servers[0]!.greeted?.size, 1);
  });

  it('finish(): mid-body drops the backend; otherwise QUIT unless the connection can be parked', async () => {
    const b = await backend();
    const drop = tracked(setup([b.address], 'identity: none'));
    drop.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => drop.binding.bound !== null && drop.host.queue.pendingBackend === 0, 'bound');
    drop.binding.finish(false, true);
    await until(() => b.conns[0]!.closed, 'dropped');
    assert.equal(b.conns[0]!.quit, false);

    const polite = tracked(setup([b.address], 'identity: none\npool: { reuse: 1 }'));
    polite.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => polite.binding.bound !== null && polite.host.queue.pendingBackend === 0, 'bound');
    polite.binding.finish(true, false);
    await until(() => b.conns[1]!.closed, 'closed');
    assert.ok(b.conns[1]!.quit);

    const busy = tracked(setup([b.address], 'identity: none\npool: { reuse: 10 }'));
    await busy.pool.start();
    busy.binding.toBackend(async () => CLIENT, 'MAIL FROM:<a@example.org>', relay);
    await until(() => busy.binding.bound !== null && busy.host.queue.pendingBackend === 0, 'bound');
    busy.binding.finish(false, false); // a transaction is open: not quiet
    const conn = b.conns.at(-1)!;
    await until(() => conn.closed, 'closed');
    assert.ok(conn.quit, 'not parked with a transaction open');
  });
});
