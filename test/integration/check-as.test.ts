// `postern check --as USER` and `check` on a config with run_as (issue 25 §3): as root,
// `check` used to say OK for a key only root could read; after run_as dropped privileges the
// next SIGHUP failed with EACCES. Now the files are checked again by a process that has
// become the user, and `check` names the file and the user. Real files, real modes and
// owners, the real `nobody` account, the built CLI.
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { CLI, cliBuilt } from '../helpers/postern-process.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const NOGROUP = 65534;

function check(args: string[], opts: SpawnSyncOptions = {}): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, 'check', ...args], { encoding: 'utf8', timeout: 30_000, ...opts });
  return { code: r.status, out: String(r.stdout), err: String(r.stderr) };
}

describe('postern check as the run_as user', { skip: (!cliBuilt() && 'dist/cli.js missing: run `npm run build`') || (!isRoot && 'needs root (files owned by root, becoming nobody)') }, () => {
  let dir: string;
  let pki: TestPki;
  let leaf: Leaf;
  let key: string;
  let cert: string;

  /** A config in `dir` with one TLS certificate (copied, so its modes are this test's), and `extra` YAML. */
  function config(name: string, extra = ''): string {
    const file = join(dir, name);
    writeFileSync(
      file,
      `hostname: mx.check-as.test\nlisteners:\n  - name: smtp\n    listen: 127.0.0.1:2525\ntls:\n  certificates:\n    - { cert: cert.pem, key: key.pem }\n${extra}backends:\n  servers:\n    - address: 127.0.0.1:2526\n`,
    );
    return file;
  }

  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('mx', 'ecdsa', ['mx.check-as.test']);
    dir = await mkdtemp(join(tmpdir(), 'postern-check-as-'));
    chmodSync(dir, 0o755); // mkdtemp's 0700 would hide everything from nobody
    cert = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    writeFileSync(cert, readFileSync(leaf.cert), { mode: 0o644 });
    writeFileSync(key, readFileSync(leaf.key), { mode: 0o600 });
  });
  after(async () => {
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('fails on a 0600 root key with run_as nobody, naming the file and the user; passes once nobody may read it', () => {
    chownSync(key, 0, 0);
    chmodSync(key, 0o600);
    const file = config('run-as.yaml', 'run_as: { user: nobody }\n');
    const bad = check(['-c', file]);
    assert.equal(bad.code, 1, bad.out + bad.err);
    assert.match(bad.err, new RegExp(`tls\\.certificates\\[0\\]\\.key: cannot read ${key.replace(/[.]/g, '\\.')}: permission denied \\(as nobody, the run_as user\\)`));
    assert.doesNotMatch(bad.err, /cert\.pem/, 'the world-readable certificate is fine');
    assert.match(bad.err, /files checked as nobody, the run_as user/);

    // Readable through nobody's group: the child has the user's groups, as run_as gives them.
    chownSync(key, 0, NOGROUP);
    chmodSync(key, 0o640);
    const byGroup = check(['-c', file]);
    assert.equal(byGroup.code, 0, byGroup.err);
    assert.equal(byGroup.out, `${file}: OK (files checked as nobody, the run_as user)\n`);

    chownSync(key, NOBODY, NOGROUP);
    chmodSync(key, 0o600);
    const owned = check(['-c', file]);
    assert.equal(owned.code, 0, owned.err);
  });

  it('--as USER checks a config without run_as as that user; an unknown user is an error', () => {
    chownSync(key, 0, 0);
    chmodSync(key, 0o600);
    const file = config('plain.yaml');
    const asRoot = check(['-c', file]);
    assert.equal(asRoot.code, 0, asRoot.err);
    assert.equal(asRoot.out, `${file}: OK\n`, 'no run_as, no --as: checked as the caller only');

    const asNobody = check(['-c', file, '--as', 'nobody']);
    assert.equal(asNobody.code, 1);
    assert.match(asNobody.err, /key\.pem: permission denied \(as nobody\)/);

    const unknown = check(['-c', file, '--as', 'postern-no-such-user']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.err, /--as postern-no-such-user: no user postern-no-such-user on this system/);
  });

  it('files Postern writes: a shared directory run_as cannot hand over fails, a directory of their own passes', () => {
    chownSync(key, NOBODY, NOGROUP);
    // Root's 0700 directory that holds other files: handOver leaves it alone (and warns), so
    // the worker could never write the ticket keys there.
    const shared = join(dir, 'shared');
    mkdirSync(shared, { mode: 0o700 });
    writeFileSync(join(shared, 'something-else'), 'x');
    // Root's 0700 directory holding only the session cache: run_as hands it to nobody.
    const own = join(dir, 'own');
    mkdirSync(own, { mode: 0o700 });
    writeFileSync(join(own, 'sessions'), '', { mode: 0o600 });

    const file = config('written.yaml', `  ticket_keys: { file: shared/tickets }\n  session_cache: { file: own/sessions }\nrun_as: { user: nobody }\n`);
    const bad = check(['-c', file]);
    assert.equal(bad.code, 1, bad.out);
    assert.match(bad.err, new RegExp(`tls\\.ticket_keys\\.file: directory ${shared.replace(/[.]/g, '\\.')} is not writable by nobody and holds other files`));
    assert.doesNotMatch(bad.err, /session_cache/, bad.err);

    chownSync(shared, NOBODY, NOGROUP);
    const good = check(['-c', file]);
    assert.equal(good.code, 0, good.err);
  });

  it("Dovecot's auth socket must accept nobody's connect (write permission)", async () => {
    chownSync(key, NOBODY, NOGROUP);
    const sock = join(dir, 'auth-client');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      chmodSync(sock, 0o600);
      const file = config('dovecot.yaml', `auth:\n  verifier: { type: dovecot, address: ${sock} }\nrun_as: { user: nobody }\n`);
      const bad = check(['-c', file]);
      assert.equal(bad.code, 1, bad.out);
      assert.match(bad.err, /auth\.verifier\.address: nobody cannot connect to .*auth-client: permission denied/);
      chmodSync(sock, 0o666);
      const good = check(['-c', file]);
      assert.equal(good.code, 0, good.err);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('a user other than root cannot check as someone else, and says so', () => {
    chownSync(key, NOBODY, NOGROUP);
    const file = config('other.yaml');
    const r = check(['-c', file, '--as', 'daemon'], { uid: NOBODY, gid: NOGROUP });
    assert.equal(r.code, 1, r.out);
    assert.match(r.err, /--as daemon: checking files as another user needs root; running as nobody/);
    const self = check(['-c', file, '--as', 'nobody'], { uid: NOBODY, gid: NOGROUP });
    assert.equal(self.code, 0, self.err);
    assert.equal(self.out, `${file}: OK (files checked as nobody, the current user)\n`);
  });
});
