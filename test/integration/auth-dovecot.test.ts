// The dovecot verifier against a real Dovecot auth service (test/helpers/dovecot.ts),
// over its unix socket and over TCP.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { DovecotVerifier } from '../../src/auth/dovecot.js';
import type { VerifyRequest, VerifyResult } from '../../src/auth/verifier.js';
import type { DovecotAddress } from '../../src/config/types.js';
import { dovecotMissing, startDovecot, type DovecotInstance } from '../helpers/dovecot.js';

const missing = dovecotMissing();

function req(user: string, password: string, clientIp: string, over: Partial<VerifyRequest> = {}): VerifyRequest {
  return {
    user,
    password,
    authzid: '',
    mechanism: 'PLAIN',
    client: { address: clientIp, port: 40001 },
    local: { address: '127.0.0.1', port: 587 },
    tls: true,
    helo: 'client.example',
    attempt: 1,
    ...over,
  };
}

// Each failing request gets its own client address: Dovecot delays later requests from
// an address that failed (its auth penalty), which would slow the tests, not break them.
let nextIp = 1;
const freshIp = (): string => `10.77.${Math.floor(nextIp / 250)}.${(nextIp++ % 250) + 1}`;

const reasonOf = (r: VerifyResult): string => (r.ok ? '' : r.reason);

describe('dovecot verifier against a real Dovecot', { skip: missing ?? false }, () => {
  let dovecot: DovecotInstance;
  const verifiers: DovecotVerifier[] = [];
  const make = (address: DovecotAddress, timeout = 5000): DovecotVerifier => {
    const v = new DovecotVerifier({ address, timeout });
    verifiers.push(v);
    return v;
  };
  let unix: DovecotAddress;
  let tcp: DovecotAddress;

  before(async () => {
    const bcrypt = execFileSync('/usr/bin/doveadm', ['pw', '-s', 'BLF-CRYPT', '-r', '4', '-p', 'bobs-pw']).toString().trim();
    dovecot = await startDovecot({
      users: [
        { user: 'alice', password: 'alice-pw' },
        { user: 'bob@example.org', hash: bcrypt },
        // Dovecot's default auth_username_chars keeps user names ASCII; passwords may be any UTF-8.
        { user: 'juergen', password: 'pässwörd' },
      ],
    });
    unix = { type: 'unix', path: dovecot.socketPath, text: dovecot.socketPath };
    tcp = { type: 'tcp', host: '127.0.0.1', port: dovecot.port, text: `127.0.0.1:${dovecot.port}` };
  });

  after(async () => {
    for (const v of verifiers) await v.close();
    await dovecot?.stop();
  });

  for (const via of ['unix', 'tcp'] as const) {
    it(`accepts right passwords and refuses wrong ones over ${via}`, async () => {
      const v = make(via === 'unix' ? unix : tcp);
      assert.deepEqual(await v.verify(req('alice', 'alice-pw', freshIp())), { ok: true, user: 'alice' });
      assert.deepEqual(await v.verify(req('bob@example.org', 'bobs-pw', freshIp(), { mechanism: 'LOGIN' })), { ok: true, user: 'bob@example.org' });
      assert.deepEqual(await v.verify(req('juergen', 'pässwörd', freshIp())), { ok: true, user: 'juergen' });
      const wrong = await v.verify(req('alice', 'bobs-pw', freshIp()));
      assert.equal(wrong.ok, false);
      assert.equal(!wrong.ok && wrong.failure, 'invalid');
      const unknown = await v.verify(req('mallory', 'alice-pw', freshIp()));
      assert.equal(!unknown.ok && unknown.failure, 'invalid');
      assert.equal(v.connectionsOpened, 1);
    });
  }

  it('passes the client address, so Dovecot logs and penalises the real client', async () => {
    const v = make(unix);
    const r = await v.verify(req('alice', 'not-it', '192.0.2.77', { session: 'pst-test-1' }));
    assert.equal(!r.ok && r.failure, 'invalid');
    // passwd-file(user,rip): what Dovecot writes for a mismatch.
    assert.match(dovecot.readLog(), /passwd-file\(alice,192\.0\.2\.77,<pst-test-1>\): Password mismatch/);
  });

  it('refuses an authzid other than the user (no master users configured)', async () => {
    const v = make(unix);
    const r = await v.verify(req('alice', 'alice-pw', freshIp(), { authzid: 'bob@example.org' }));
    assert.equal(!r.ok && r.failure, 'invalid');
    assert.deepEqual(await v.verify(req('alice', 'alice-pw', freshIp(), { authzid: 'alice' })), { ok: true, user: 'alice' });
  });

  it('runs many requests at once on one connection, each answered by its own id', async () => {
    const v = make(tcp);
    const n = 200;
    const jobs = Array.from({ length: n }, (_, i) => {
      const right = i % 3 !== 0;
      const user = i % 2 === 0 ? 'alice' : 'bob@example.org';
      const password = right ? (user === 'alice' ? 'alice-pw' : 'bobs-pw') : `wrong-${i}`;
      return v.verify(req(user, password, freshIp())).then((r) => ({ i, right, user, r }));
    });
    // All of them are in flight together before the first answer arrives.
    await new Promise((r) => setImmediate(r));
    const done = await Promise.all(jobs);
    for (const { i, right, user, r } of done) {
      assert.deepEqual(r.ok ? { ok: true, user: r.user } : { ok: false, failure: r.failure }, right ? { ok: true, user } : { ok: false, failure: 'invalid' }, `request ${i}`);
    }
    assert.equal(v.connectionsOpened, 1);
    assert.equal(v.pending, 0);
  });

  it('fails temporary when Dovecot is killed, and recovers when it is back', async () => {
    const v = make(unix);
    assert.equal((await v.verify(req('alice', 'alice-pw', freshIp()))).ok, true);
    // A failure is held by Dovecot for a moment: kill it while the request waits.
    const inFlight = v.verify(req('alice', 'wrong', freshIp()));
    await new Promise((r) => setTimeout(r, 50));
    await dovecot.kill();
    const lost = await inFlight;
    assert.equal(!lost.ok && lost.failure, 'temporary');
    assert.match(reasonOf(lost), /connection to dovecot lost/);
    const down = await v.verify(req('alice', 'alice-pw', freshIp()));
    assert.equal(!down.ok && down.failure, 'temporary');
    // Refused or gone; or reset, when a dying auth process still took the connection.
    assert.match(reasonOf(down), /ENOENT|ECONNREFUSED|ECONNRESET/);

    await dovecot.restart();
    assert.deepEqual(await v.verify(req('alice', 'alice-pw', freshIp())), { ok: true, user: 'alice' });
    assert.ok(v.connectionsOpened >= 2);
  });

  it('times out a Dovecot that stopped answering, then works again once it answers', async () => {
    const v = make(tcp, 400);
    assert.equal((await v.verify(req('alice', 'alice-pw', freshIp()))).ok, true);
    dovecot.pause();
    try {
      const t0 = Date.now();
      const r = await v.verify(req('alice', 'alice-pw', freshIp()));
      assert.equal(!r.ok && r.failure, 'temporary');
      assert.match(reasonOf(r), /did not answer within 400 ms/);
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      dovecot.resume();
    }
    assert.deepEqual(await v.verify(req('alice', 'alice-pw', freshIp())), { ok: true, user: 'alice' });
  });

  it('says 534 when Dovecot offers no PLAIN', async () => {
    const only = await startDovecot({ users: [{ user: 'alice', password: 'alice-pw' }], extraConfig: 'auth_mechanisms = login\n' });
    try {
      const v = make({ type: 'unix', path: only.socketPath, text: only.socketPath });
      const r = await v.verify(req('alice', 'alice-pw', freshIp()));
      assert.equal(!r.ok && r.failure, 'mechanism');
      assert.match(reasonOf(r), /offers no PLAIN/);
    } finally {
      await only.stop();
    }
  });
});
