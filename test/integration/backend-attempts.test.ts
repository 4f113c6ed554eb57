// Issue 21: the servers a session failed over from are in its record, `backend.attempts:
// [{server, stage, error}]`, not only in a warning line; and when every server fails, the
// record still lists them (with no address). Real sockets: script backends that were up at
// start (health check passed) and then refuse connections or answer 421 at the greeting, and
// the built-in sink as the good server.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { basicYaml, startPostern, type LogRecord, type TestPostern } from '../helpers/postern.js';
import { startScriptBackend, type ScriptBackend } from '../helpers/script-backend.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

interface Attempt {
  server: string;
  stage: string;
  error: string;
}
type BackendField = { address: string | null; identity: string; attempts?: Attempt[] } | null;

const yaml = (servers: string[]) =>
  basicYaml(servers)
    .replace('identity: xclient', 'identity: none\n  strategy: round-robin')
    // Checked once at start; a server that fails later is found by the session itself.
    .replace('interval: 1s', 'interval: 10m');

describe('backend.attempts in the session record', () => {
  const stops: (() => Promise<void>)[] = [];
  after(async () => {
    for (const s of stops.reverse()) await s();
  });
  async function sink(): Promise<Sink> {
    const s = await startSink({});
    stops.push(() => s.close());
    return s;
  }
  async function script(opts: Parameters<typeof startScriptBackend>[0] = {}): Promise<ScriptBackend> {
    const b = await startScriptBackend(opts);
    stops.push(() => b.close());
    return b;
  }
  async function postern(servers: string[]): Promise<TestPostern> {
    const p = await startPostern(yaml(servers));
    stops.push(() => p.stop());
    return p;
  }
  const sessionOf = async (p: TestPostern, helo: string): Promise<LogRecord> => p.waitFor((x) => x.event === 'session' && x.helo === helo, 8000);

  it('the first server refuses connections (closed after the start-up check): delivered by the second, the record lists the failed connect', async () => {
    const dead = await script();
    const good = await sink();
    const goodAddr = `127.0.0.1:${good.address().port}`;
    const p = await postern([dead.address, goodAddr]);
    await dead.close(); // the port is closed now: connect is refused
    const c = await SmtpClient.connect(p.port);
    const r = await sendMessage(c, { helo: 'refused.test', from: 'a@example.org' });
    assert.equal(r.code, 250, 'the client notices nothing');
    assert.equal(good.messages.filter((m) => m.helo === 'refused.test').length, 1, 'delivered once, by the second server');
    const backend = (await sessionOf(p, 'refused.test')).backend as BackendField;
    assert.equal(backend?.address, goodAddr);
    assert.equal(backend?.attempts?.length, 1, JSON.stringify(backend));
    const [a] = backend!.attempts!;
    assert.equal(a!.server, dead.address);
    assert.equal(a!.stage, 'connect');
    assert.match(a!.error, /ECONNREFUSED/);
  });

  it('the first server answers 421 at the greeting: delivered by the second, the record lists stage greeting with the reply', async () => {
    // Connection 0 is the start-up health check; sessions come after it.
    const busy = await script({ greeting: (n) => (n === 0 ? '220 busy.test ESMTP\r\n' : '421 4.3.2 busy.test Service shutting down\r\n') });
    const good = await sink();
    const goodAddr = `127.0.0.1:${good.address().port}`;
    const p = await postern([busy.address, goodAddr]);
    const c = await SmtpClient.connect(p.port);
    const r = await sendMessage(c, { helo: 'greeting421.test', from: 'a@example.org' });
    assert.equal(r.code, 250);
    const backend = (await sessionOf(p, 'greeting421.test')).backend as BackendField;
    assert.equal(backend?.address, goodAddr);
    assert.deepEqual(
      backend?.attempts?.map((a) => [a.server, a.stage]),
      [[busy.address, 'greeting']],
    );
    assert.match(backend!.attempts![0]!.error, /421 4\.3\.2 busy\.test Service shutting down/);
  });

  it('every server fails: the client gets 451 4.4.1, and the record lists each attempt (no address)', async () => {
    const a = await script();
    const b = await script({ greeting: (n) => (n === 0 ? '220 b.test ESMTP\r\n' : '554 5.3.2 b.test No service\r\n') });
    const p = await postern([a.address, b.address]);
    await a.close();
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO allfail.test');
    const m = await c.cmd('MAIL FROM:<a@example.org>');
    assert.equal(m.code, 451);
    assert.match(m.lines[0]!, /^4\.4\.1 /);
    await c.cmd('QUIT');
    const rec = await sessionOf(p, 'allfail.test');
    const backend = rec.backend as BackendField;
    assert.equal(backend?.address, null, 'no server was bound');
    assert.equal(backend?.identity, 'none');
    assert.deepEqual(
      backend?.attempts?.map((x) => [x.server, x.stage]).sort(),
      [
        [a.address, 'connect'],
        [b.address, 'greeting'],
      ].sort(),
    );
    assert.match(backend!.attempts!.find((x) => x.server === b.address)!.error, /554 5\.3\.2/);
    // The warning line is still there too.
    assert.ok(p.records.some((x) => x.event === 'bind_failed' && x.conn === rec.conn));
  });
});
