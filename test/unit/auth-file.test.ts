import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as argon2 from 'argon2';
import bcrypt from 'bcrypt';
import { AuthFileError, FileVerifier } from '../../src/auth/file.js';
import type { VerifyRequest } from '../../src/auth/verifier.js';

const CTX: Omit<VerifyRequest, 'user' | 'password'> = {
  authzid: '',
  mechanism: 'PLAIN',
  client: { address: '192.0.2.1', port: 40000 },
  local: { address: '127.0.0.1', port: 587 },
  tls: true,
  helo: 'client.example',
  attempt: 1,
};
const req = (user: string, password: string, authzid = ''): VerifyRequest => ({ ...CTX, user, password, authzid });

let dir = '';
let file = '';
let lines: Record<string, string> = {};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-auth-file-'));
  file = join(dir, 'passwd');
  lines = {
    alice: `alice:${await bcrypt.hash('alice-pw', 4)}`,
    // htpasswd and PHP write $2y$; same algorithm as $2b$.
    bob: `bob:${(await bcrypt.hash('bob-pw', 4)).replace('$2b$', '$2y$')}`,
    carol: `carol@example.org:${await argon2.hash('carol-pw', { type: argon2.argon2id, memoryCost: 4096, timeCost: 2, parallelism: 1 })}`,
    dave: `dave:{ARGON2I}${await argon2.hash('dave-pw', { type: argon2.argon2i, memoryCost: 4096, timeCost: 2, parallelism: 1 })}::::::`,
  };
  writeFileSync(file, `# test users\n${Object.values(lines).join('\n')}\n`);
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('FileVerifier', () => {
  it('accepts the right password for bcrypt ($2b$, $2y$) and argon2 (id, i) users', async () => {
    const v = await FileVerifier.open(file);
    assert.equal(v.users, 4);
    assert.deepEqual(await v.verify(req('alice', 'alice-pw')), { ok: true, user: 'alice' });
    assert.deepEqual(await v.verify(req('bob', 'bob-pw')), { ok: true, user: 'bob' });
    assert.deepEqual(await v.verify(req('carol@example.org', 'carol-pw')), { ok: true, user: 'carol@example.org' });
    assert.deepEqual(await v.verify(req('dave', 'dave-pw')), { ok: true, user: 'dave' });
  });

  it('refuses wrong passwords, unknown users, other users\' passwords and a foreign authzid', async () => {
    const v = await FileVerifier.open(file);
    assert.deepEqual(await v.verify(req('alice', 'bob-pw')), { ok: false, failure: 'invalid', reason: 'password mismatch' });
    assert.deepEqual(await v.verify(req('carol@example.org', 'carol-PW')), { ok: false, failure: 'invalid', reason: 'password mismatch' });
    assert.deepEqual(await v.verify(req('mallory', 'alice-pw')), { ok: false, failure: 'invalid', reason: 'unknown user' });
    // User names are exact: the file is the authority on how they are written.
    assert.deepEqual(await v.verify(req('Alice', 'alice-pw')), { ok: false, failure: 'invalid', reason: 'unknown user' });
    assert.deepEqual(await v.verify(req('alice', 'alice-pw', 'bob')), { ok: false, failure: 'invalid', reason: 'authzid differs from the user' });
    assert.deepEqual(await v.verify(req('alice', 'alice-pw', 'alice')), { ok: true, user: 'alice' });
  });

  it('verifies hashes Dovecot\'s doveadm writes', { skip: existsSync('/usr/bin/doveadm') ? false : 'doveadm is not installed (dovecot-core)' }, async () => {
    const pw = (scheme: string): string => execFileSync('/usr/bin/doveadm', ['pw', '-s', scheme, '-p', 'dove-pw', ...(scheme === 'BLF-CRYPT' ? ['-r', '4'] : [])]).toString().trim();
    const f = join(dir, 'doveadm-passwd');
    writeFileSync(f, `d1:${pw('BLF-CRYPT')}\nd2:${pw('ARGON2ID')}\n`);
    const v = await FileVerifier.open(f);
    assert.deepEqual(await v.verify(req('d1', 'dove-pw')), { ok: true, user: 'd1' });
    assert.deepEqual(await v.verify(req('d2', 'dove-pw')), { ok: true, user: 'd2' });
    assert.equal((await v.verify(req('d2', 'dove-PW'))).ok, false);
  });

  it('makes an unknown user cost about what a wrong password costs', async () => {
    const f = join(dir, 'slow-passwd');
    writeFileSync(f, `slow:${await bcrypt.hash('slow-pw', 11)}\n`);
    const v = await FileVerifier.open(f);
    const time = async (user: string): Promise<number> => {
      const runs: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t0 = performance.now();
        await v.verify(req(user, 'wrong'));
        runs.push(performance.now() - t0);
      }
      return runs.sort((a, b) => a - b)[1] as number;
    };
    const wrong = await time('slow');
    const unknown = await time('nobody');
    // Without the decoy hash an unknown user answers in well under a millisecond.
    assert.ok(wrong > 20, `a cost-11 bcrypt check took only ${wrong.toFixed(1)} ms`);
    assert.ok(unknown > wrong * 0.3, `unknown user ${unknown.toFixed(1)} ms vs wrong password ${wrong.toFixed(1)} ms`);
  });

  it('checks unknown users against an argon2 decoy when the file is mostly argon2', async () => {
    const f = join(dir, 'argon-passwd');
    writeFileSync(f, `${lines.carol}\n${lines.dave}\n`);
    const v = await FileVerifier.open(f);
    assert.deepEqual(await v.verify(req('nobody', 'carol-pw')), { ok: false, failure: 'invalid', reason: 'unknown user' });
    assert.deepEqual(await v.verify(req('dave', 'dave-pw')), { ok: true, user: 'dave' });
  });

  it('reloads a good new file, and keeps the old one when the new one is bad', async () => {
    const f = join(dir, 'reload-passwd');
    writeFileSync(f, `${lines.alice}\n`);
    const v = await FileVerifier.open(f);
    assert.equal((await v.verify(req('bob', 'bob-pw'))).ok, false);

    writeFileSync(f, `${lines.alice}\n${lines.bob}\n`);
    assert.deepEqual(await v.reload(), { ok: true, detail: `${f}: 2 users` });
    assert.deepEqual(await v.verify(req('bob', 'bob-pw')), { ok: true, user: 'bob' });

    writeFileSync(f, `${lines.alice}\nbob:not-a-hash\n`);
    const bad = await v.reload();
    assert.equal(bad.ok, false);
    assert.match(bad.ok ? '' : bad.reason, new RegExp(`${f} line 2: the hash for "bob" is neither bcrypt .* keeping the previous 2 users`));
    assert.deepEqual(await v.verify(req('bob', 'bob-pw')), { ok: true, user: 'bob' });

    rmSync(f);
    const gone = await v.reload();
    assert.match(gone.ok ? '' : gone.reason, /cannot read .*: no such file; keeping the previous 2 users/);
    assert.deepEqual(await v.verify(req('alice', 'alice-pw')), { ok: true, user: 'alice' });
  });

  it('refuses to start on a missing, empty or bad file', async () => {
    await assert.rejects(FileVerifier.open(join(dir, 'nope')), (e: unknown) => e instanceof AuthFileError && /no such file/.test(e.message));
    const empty = join(dir, 'empty');
    writeFileSync(empty, '# nobody\n');
    await assert.rejects(FileVerifier.open(empty), /lists no users/);
    const bad = join(dir, 'bad');
    writeFileSync(bad, 'alice\n');
    await assert.rejects(FileVerifier.open(bad), /line 1: expected user:hash/);
  });
});
