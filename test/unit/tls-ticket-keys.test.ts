// Ticket key schedule, key file format and sharing between processes (two stores on one file).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TlsConfigError } from '../../src/tls/errors.js';
import { formatKeyFile, parseKeyFile, readKeyFile, withKeyFileLock } from '../../src/tls/ticket-key-file.js';
import { TicketKeyStore } from '../../src/tls/ticket-key-store.js';
import { keyName, maintain, TicketKeyRing, type TicketKey } from '../../src/tls/ticket-keys.js';

const S = { rotate: 1000, lifetime: 10_000 };
const quiet = { info: () => undefined, warn: () => undefined };
const key = (activeFrom: number): TicketKey => ({ activeFrom, key: randomBytes(48) });

describe('ticket key schedule', () => {
  it('starts with a key active now and publishes the next half a rotation ahead', () => {
    const a = maintain([], 10_000, S)!;
    assert.equal(a.length, 1);
    assert.equal(a[0]!.activeFrom, 10_000);
    assert.equal(maintain(a, 10_400, S), null, 'nothing to do before half-way');
    const b = maintain(a, 10_500, S)!;
    assert.deepEqual(
      b.map((k) => k.activeFrom),
      [10_000, 11_000],
    );
    assert.equal(maintain(b, 10_900, S), null);
  });

  it('keeps a retired key for `lifetime` after its successor took over, then drops it', () => {
    const keys = [key(0), key(1000), key(2000)];
    assert.equal(maintain(keys, 1500 + 0, { rotate: 1000, lifetime: 10_000 })?.length ?? keys.length, 3);
    const later = maintain(keys, 11_000, { rotate: 1000, lifetime: 10_000 })!;
    // key(0)'s successor started at 1000: dropped at 11000. key(1000) stays until 12000.
    assert.deepEqual(
      later.map((k) => k.activeFrom).slice(0, 2),
      [1000, 2000],
    );
  });

  it('after downtime (active key past rotate, no successor) a fresh key becomes active at once', () => {
    const next = maintain([key(0)], 50_000, S)!;
    assert.equal(next.at(-1)!.activeFrom, 50_000);
  });

  it('the ring encrypts with the latest active key, finds any key by name, knows the next switch', () => {
    const ks = [key(0), key(1000), key(2000)];
    const ring = new TicketKeyRing(ks);
    assert.equal(ring.current(1500), ks[1]);
    assert.equal(ring.current(-5), ks[0], 'clock skew: the earliest');
    assert.equal(ring.find(keyName(ks[2]!)), ks[2]);
    assert.equal(ring.find(randomBytes(16)), undefined);
    assert.equal(ring.nextActivation(1500), 2000);
    assert.equal(ring.nextActivation(2500), null);
  });
});

describe('ticket key file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'postern-tk-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('round-trips its JSON format', () => {
    const ks = [key(Date.parse('2026-01-01T00:00:00Z')), key(Date.parse('2026-01-01T01:00:00Z'))];
    const text = formatKeyFile(ks);
    assert.match(text, /"format": "postern-ticket-keys"/);
    const back = parseKeyFile(text, 'f');
    assert.deepEqual(back, ks);
  });

  it('rejects malformed contents with TLS_TICKET_KEYS', () => {
    for (const bad of ['nope', '{}', '{"format":"postern-ticket-keys","version":1,"keys":[{"active_from":"x","key":""}]}',
      `{"format":"postern-ticket-keys","version":1,"keys":[{"active_from":"2026-01-01T00:00:00Z","key":"${randomBytes(47).toString('base64')}"}]}`]) {
      assert.throws(() => parseKeyFile(bad, 'f'), (e: unknown) => e instanceof TlsConfigError && e.code === 'TLS_TICKET_KEYS', bad);
    }
  });

  it('refuses a file others can read', async () => {
    const f = path.join(dir, 'open.json');
    await writeFile(f, formatKeyFile([key(0)]), { mode: 0o604 });
    await chmod(f, 0o604);
    await assert.rejects(readKeyFile(f), /chmod 600/);
  });

  it('the lock is exclusive', async () => {
    const f = path.join(dir, 'locked.json');
    let inner: boolean | null = null;
    const outer = await withKeyFileLock(f, async () => {
      inner = await withKeyFileLock(f, async () => undefined);
    });
    assert.equal(outer, true);
    assert.equal(inner, false);
    assert.equal(await withKeyFileLock(f, async () => undefined), true, 'released afterwards');
  });

  it('a store creates the file (0600, parent dir too), and two stores on one file agree on every key', async () => {
    const f = path.join(dir, 'sub', 'dir', 'keys.json');
    // rotate 2 s: the next key is published at +1 s, the next event after that is at +3 s.
    const a = await TicketKeyStore.open({ file: f, rotate: 2000, lifetime: 4000, logger: quiet });
    const b = await TicketKeyStore.open({ file: f, rotate: 2000, lifetime: 4000, logger: quiet });
    try {
      assert.equal((await stat(f)).mode & 0o777, 0o600);
      assert.ok(a.current().key.equals(b.current().key));
      await new Promise((r) => setTimeout(r, 1300));
      await a.sync();
      await b.sync();
      const ka = a.ring.keys.map((k) => k.key.toString('hex'));
      const kb = b.ring.keys.map((k) => k.key.toString('hex'));
      assert.deepEqual(ka, kb);
      assert.equal(ka.length, 2, 'the next key is published ahead');
      assert.ok(a.current().key.equals(b.current().key));
      // A deleted file is rewritten from memory: no key is lost.
      const before = a.ring.keys.map((k) => k.key.toString('hex'));
      await unlink(f);
      await a.sync();
      const written = parseKeyFile(await readFile(f, 'utf8'), f).map((k) => k.key.toString('hex'));
      assert.ok(before.every((k) => written.includes(k)));
    } finally {
      a.close();
      b.close();
    }
  });

  it('without a file the keys live in memory and still rotate', async () => {
    const s = await TicketKeyStore.open({ file: null, rotate: 200, lifetime: 1000, logger: quiet });
    try {
      const first = s.current();
      const changes: TicketKey[] = [];
      s.onCurrentChange((k) => changes.push(k));
      await new Promise((r) => setTimeout(r, 600));
      assert.ok(!s.current().key.equals(first.key));
      assert.ok(changes.length >= 1);
      assert.ok(s.find(keyName(first)), 'the retired key still decrypts');
    } finally {
      s.close();
    }
  });
});
