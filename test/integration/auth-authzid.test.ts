// RFC 4616 §2: a PLAIN authorization identity (authzid) naming another user than the one
// logging in is refused unless authorised, and Postern authorises nobody to act for
// another. Every verifier answers the same, over real sockets: a real Dovecot auth
// service, a real auth_http server that (like nginx's protocol, which has no header for
// it) never sees the authzid and would accept, and the password file. An authzid equal to
// the user, or none, logs in.
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcrypt';
import { startSink, type Sink } from '../../src/sink/index.js';
import { dovecotMissing, startDovecot, type DovecotInstance } from '../helpers/dovecot.js';
import { startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const plain = (authzid: string, user: string, pass: string) => Buffer.from(`${authzid}\0${user}\0${pass}`).toString('base64');

function yaml(sinkPort: number, verifier: string): string {
  return `hostname: authzid.test
listeners:
  - { name: submission, listen: 127.0.0.1:0, auth: optional }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [{ address: 127.0.0.1:${sinkPort} }]
auth:
  plaintext: true
  verifier: ${verifier}
log: { level: info }
`;
}

/** One connection: EHLO, AUTH PLAIN with these parts, QUIT; the AUTH reply. */
async function attempt(p: TestPostern, localAddress: string, authzid: string, user: string, pass: string): Promise<string> {
  const c = await SmtpClient.connect(p.port, { localAddress });
  await c.waitReplies(1);
  await c.cmd('EHLO authzid.client.test');
  const r = await c.cmd(`AUTH PLAIN ${plain(authzid, user, pass)}`, 10_000);
  await c.cmd('QUIT');
  return `${r.code} ${r.lines[0]}`;
}

const REFUSED = '535 5.7.8 Authentication credentials invalid';
const OK = '235 2.7.0 Authentication successful';

/** The same three attempts against each verifier. */
async function expectOneRule(p: TestPostern, address: string): Promise<void> {
  assert.equal(await attempt(p, address, 'bob', 'alice', 'alice-pw'), REFUSED, 'authzid bob for alice');
  const anomaly = await p.waitFor((r) => r.event === 'anomaly' && r.kind === 'auth_failed');
  assert.match(String(anomaly.detail), /authzid differs from the user/);
  assert.equal(await attempt(p, address, 'alice', 'alice', 'alice-pw'), OK, 'authzid alice for alice');
  assert.equal(await attempt(p, address, '', 'alice', 'alice-pw'), OK, 'no authzid');
  // The session records: the refused one anonymous, the two logins as alice herself.
  const mine = () => p.records.filter((r) => r.event === 'session' && (r.client as { address: string }).address === address);
  for (let i = 0; i < 50 && mine().length < 3; i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(mine().map((r) => r.auth), [null, { user: 'alice', mechanism: 'PLAIN' }, { user: 'alice', mechanism: 'PLAIN' }]);
}

describe('PLAIN authzid: one rule for every verifier', { timeout: 60_000 }, () => {
  let dir: string;
  let sink: Sink;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-authzid-'));
    sink = await startSink({ xclient: true });
  });
  after(async () => {
    await sink?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('http (auth_http): refused without asking the auth server, which would have said OK', async () => {
    const asked: string[] = [];
    const server = http.createServer((req, res) => {
      asked.push(String(req.headers['auth-user']));
      const ok = req.headers['auth-user'] === 'alice' && req.headers['auth-pass'] === 'alice-pw';
      res.writeHead(200, ok ? { 'Auth-Status': 'OK' } : { 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '0' });
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const p = await startPostern(yaml(sink.address().port, `{ type: http, url: 'http://127.0.0.1:${(server.address() as { port: number }).port}/auth', timeout: 2s }`));
    try {
      await expectOneRule(p, '127.0.0.31');
      // Asked for the two logins only: the foreign authzid never reached it.
      assert.deepEqual(asked, ['alice', 'alice']);
    } finally {
      await p.stop();
      await new Promise((r) => server.close(r));
    }
  });

  it('file', async () => {
    await writeFile(join(dir, 'passwd'), `alice:${await bcrypt.hash('alice-pw', 4)}\nbob:${await bcrypt.hash('bob-pw', 4)}\n`);
    const p = await startPostern(yaml(sink.address().port, `{ type: file, path: ${join(dir, 'passwd')} }`));
    try {
      await expectOneRule(p, '127.0.0.32');
    } finally {
      await p.stop();
    }
  });

  it('dovecot', { skip: dovecotMissing() ?? false }, async () => {
    let dovecot: DovecotInstance | undefined;
    let p: TestPostern | undefined;
    try {
      dovecot = await startDovecot({ users: [{ user: 'alice', password: 'alice-pw' }, { user: 'bob', password: 'bob-pw' }] });
      p = await startPostern(yaml(sink.address().port, `{ type: dovecot, address: ${dovecot.socketPath} }`));
      await expectOneRule(p, '127.0.0.33');
    } finally {
      await p?.stop();
      await dovecot?.stop();
    }
  });
});
