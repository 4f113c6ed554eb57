// Ticket key schedule, key file format and sharing between processes (two stores on one file).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TlsConfigError } from '../../src/tls/errors.js';
import { createKeyFile, formatKeyFile, keyFileVersion, parseKeyFile, readKeyFile, replaceKeyFile, writeKeyFile } from '../../src/tls/ticket-key-file.js';
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

  it('after downtime (active key past rotate, no successor) the next key is published ahead, never active at once', () => {
    // A key active at once would be used here before the other processes sharing the file read it.
    const next = maintain([key(0)], 50_000, S)!;
    assert.deepEqual(
      next.map((k) => k.activeFrom),
      [0, 50_500],
    );
    assert.equal(new TicketKeyRing(next).current(50_000).activeFrom, 0, 'the old key encrypts meanwhile');
    assert.equal(maintain(next, 50_100, S), null);
  });

  it('only an empty set gets a key active now', () => {
    assert.deepEqual(
      maintain([], 7, S)!.map((k) => k.activeFrom),
      [7],
    );
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
    assert.throws(() => readKeyFile(f), /chmod 600/);
  });

  it('creation is exclusive: of two processes creating the file at once, one set of keys wins', async () => {
    for (let i = 0; i < 20; i++) {
      const f = path.join(dir, `create-${i}.json`);
      const [a, b] = [[key(1)], [key(2)]];
      const made = await Promise.all([createKeyFile(f, a), createKeyFile(f, b)]);
      assert.equal(made.filter(Boolean).length, 1, 'exactly one created it');
      const inFile = readKeyFile(f)!.keys;
      assert.deepEqual(inFile, made[0] ? a : b);
    }
    assert.deepEqual((await readdir(dir)).filter((n) => n.includes('.tmp-')), [], 'no temporary file left');
  });

  it('a replacement computed from an older version is refused', async () => {
    const f = path.join(dir, 'cas.json');
    await writeKeyFile(f, [key(0)]);
    const v1 = keyFileVersion(f)!;
    await writeKeyFile(f, [key(0), key(1000)]);
    assert.equal(await replaceKeyFile(f, [key(5)], v1), false);
    assert.equal(readKeyFile(f)!.keys.length, 2, 'untouched');
    assert.equal(await replaceKeyFile(f, [key(5)], keyFileVersion(f)!), true);
    assert.equal(readKeyFile(f)!.keys[0]!.activeFrom, 5);
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

// Two stores on one file stand for two processes; their clocks are set by hand and only the
// steps named are run, so every assertion is about what a store knows, never about timers.
describe('ticket key store: resumption never waits for a timer', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'postern-tks-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const R = { rotate: 3600_000, lifetime: 7200_000 };
  const clock = (t: number) => {
    const c = { t, now: () => c.t };
    return c;
  };
  const open = (file: string, c: { now: () => number }) => TicketKeyStore.open({ file, ...R, logger: quiet, now: c.now });
  const hex = (k: TicketKey) => keyName(k).toString('hex');

  it('a key a peer published and started using is found on the first ticket, before any timer reads the file', async () => {
    const f = path.join(dir, 'peer.json');
    const c = clock(Date.now());
    const a = await open(f, c);
    const b = await open(f, c);
    try {
      // Half a rotation later A publishes the next key; B's timer has not run.
      c.t += R.rotate / 2;
      await a.sync();
      c.t += R.rotate / 2 + 1;
      const issued = a.current();
      assert.notEqual(hex(issued), hex(b.ring.current(c.t - R.rotate)), 'A encrypts with the new key');
      assert.equal(b.find(keyName(issued))?.key.toString('hex'), issued.key.toString('hex'), 'B decrypts it at once');
      assert.equal(hex(b.current()), hex(issued), 'and encrypts with it too');
    } finally {
      a.close();
      b.close();
    }
  });

  it('after downtime two processes starting together never encrypt with a key the other lacks', async () => {
    const f = path.join(dir, 'downtime.json');
    const t0 = Date.now() - 5 * R.rotate;
    await writeKeyFile(f, [key(t0)]);
    const c = clock(Date.now());
    const a = await open(f, c);
    const b = await open(f, c);
    try {
      for (let step = 0; step < 8; step++) {
        for (const [x, y] of [[a, b], [b, a]] as const) {
          const k = x.current();
          assert.ok(y.find(keyName(k)), `step ${step}: a ticket one issues, the other decrypts`);
        }
        await (step % 2 ? a : b).sync();
        c.t += R.rotate / 4;
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('a published key replaced by a racing writer before it became active is never used', async () => {
    const f = path.join(dir, 'race.json');
    const c = clock(Date.now());
    const a = await open(f, c);
    try {
      const first = a.current();
      c.t += R.rotate / 2;
      await a.sync();
      const lost = a.ring.keys.at(-1)!;
      // Another writer that read the file before A's update replaces it with its own next key.
      const theirs = key(first.activeFrom + R.rotate + 10);
      await writeKeyFile(f, [first, theirs]);
      c.t = lost.activeFrom + 20;
      assert.equal(hex(a.current()), hex(theirs), 'the key in the file encrypts, not the one lost');
    } finally {
      a.close();
    }
  });

  it('a key that vanishes from the file after it was used still decrypts here until it expires', async () => {
    const f = path.join(dir, 'vanish.json');
    const c = clock(Date.now());
    const a = await open(f, c);
    try {
      const used = a.current();
      const other = key(c.t - 1000);
      // Replaced by hand (a restored backup, say), then read at the next step.
      await writeKeyFile(f, [other]);
      c.t += 1;
      await a.sync();
      assert.equal(hex(a.current()), hex(other), 'the file wins for encrypting');
      assert.ok(a.find(keyName(used)), 'tickets under the vanished key still resume');
      c.t += R.lifetime + 1;
      assert.equal(a.find(keyName(used)), undefined, 'until its lifetime is over');
    } finally {
      a.close();
    }
  });

  it("a writer killed mid-write leaves nothing that blocks or changes the next start (its temporary file, an old version's lock)", async () => {
    const f = path.join(dir, 'killed.json');
    const c = clock(Date.now());
    const a = await open(f, c);
    const keys = a.ring.keys.map(hex);
    a.close();
    await writeFile(`${f}.tmp-999999-deadbeef`, '{"format":"postern-tic', { mode: 0o600 });
    await writeFile(`${f}.lock`, '999999\n', { mode: 0o600 });
    const started = Date.now();
    const b = await open(f, c);
    try {
      assert.ok(Date.now() - started < 1000, 'no wait');
      assert.deepEqual(b.ring.keys.map(hex), keys, 'the same keys');
    } finally {
      b.close();
    }
  });

  it('many processes creating the file at once agree on one first key', async () => {
    for (let i = 0; i < 10; i++) {
      const f = path.join(dir, `herd-${i}.json`);
      const c = clock(Date.now());
      const stores = await Promise.all(Array.from({ length: 4 }, () => open(f, c)));
      try {
        assert.equal(new Set(stores.map((s) => hex(s.current()))).size, 1);
      } finally {
        for (const s of stores) s.close();
      }
    }
  });
});
