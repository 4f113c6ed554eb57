// The host's TLS session cache and what carries it: the LRU with its lifetime and bounds, the
// shared store behind it (up, down, slow, failing, written back), the file it is saved to
// across restarts, and the worker side of the cluster IPC with the primary's answers.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, chmod, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { answerTlsSession, IpcSessionStore, type TlsSessionReply, type TlsSessionRequest } from '../../src/server/cluster/tls-sessions.js';
import { HostSessionCache } from '../../src/tls/host-session-cache.js';
import { formatSessionFile, parseSessionFile, readSessionFile, SessionFileError, writeSessionFile } from '../../src/tls/session-cache-file.js';
import { MAX_SESSION_BYTES, sessionCacheTtl, type SharedSessions, type StoredSession } from '../../src/tls/session-store.js';

const id = (n: number) => Buffer.alloc(32, n);
const data = (n: number) => Buffer.from(`session-${n}`);
const hex = (n: number) => id(n).toString('hex');

function getNow(c: HostSessionCache, n: number): Buffer | null | 'later' {
  let out: Buffer | null | 'later' = 'later';
  c.get(id(n), (d) => (out = d));
  return out;
}

function get(c: { get(id: Buffer, found: (d: Buffer | null) => void): void }, key: Buffer): Promise<Buffer | null> {
  return new Promise((resolve) => c.get(key, resolve));
}

function put(c: { put(id: Buffer, d: Buffer, done: () => void): void }, key: Buffer, d: Buffer): Promise<void> {
  return new Promise((resolve) => c.put(key, d, resolve));
}

/** Another host's view of the sessions (what Redis holds): a map, switchable down, slow or failing. */
class SharedMap implements SharedSessions {
  readonly name = 'test';
  readonly map = new Map<string, StoredSession>();
  up = true;
  delayMs = 0;
  fail = false;
  /** Never answers (a Redis that stopped responding). */
  hang = false;
  sets = 0;
  gets = 0;
  #onUp: (() => void)[] = [];

  async get(key: string): Promise<StoredSession | null> {
    this.gets++;
    await this.#wait();
    return this.map.get(key) ?? null;
  }

  async set(key: string, d: Buffer, expiresAt: number): Promise<void> {
    this.sets++;
    await this.#wait();
    this.map.set(key, { data: d, expiresAt });
  }

  onUp(fn: () => void): void {
    this.#onUp.push(fn);
  }

  comeBack(): void {
    this.up = true;
    for (const fn of this.#onUp) fn();
  }

  async #wait(): Promise<void> {
    if (this.hang) await new Promise(() => undefined);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.fail) throw new Error('connection lost');
  }
}

describe('host session cache', () => {
  it('answers what it stored, at once, and counts hits, misses and stores', () => {
    const c = new HostSessionCache({ size: 10, ttlMs: 60_000 });
    let done = false;
    c.put(id(1), data(1), () => (done = true));
    assert.equal(done, true, 'with no shared store a put is done at once');
    assert.deepEqual(getNow(c, 1), data(1), 'answered synchronously');
    assert.equal(getNow(c, 2), null);
    assert.deepEqual(c.stats(), { sessions: 1, capacity: 10, hits: 1, sharedHits: 0, misses: 1, stored: 1, sharedUp: null });
  });

  it('forgets a session at its lifetime, which never passes the ticket lifetime', () => {
    let now = 1_000_000;
    const c = new HostSessionCache({ size: 10, ttlMs: 5000, now: () => now });
    c.put(id(1), data(1), () => undefined);
    now += 4999;
    assert.deepEqual(getNow(c, 1), data(1));
    now += 1;
    assert.equal(getNow(c, 1), null, 'expired at exactly its lifetime');
    const cfg = (lifetime: number, tickets: boolean, ticketLifetime: number) => ({
      session_tickets: tickets,
      ticket_keys: { file: null, rotate: 1000, lifetime: ticketLifetime },
      session_cache: { size: 1, lifetime, file: null },
    });
    assert.equal(sessionCacheTtl(cfg(7_200_000, true, 3_600_000)), 3_600_000, 'capped at the ticket lifetime');
    assert.equal(sessionCacheTtl(cfg(600_000, true, 3_600_000)), 600_000);
    assert.equal(sessionCacheTtl(cfg(7_200_000, false, 3_600_000)), 7_200_000, 'no tickets: its own lifetime');
  });

  it('is bounded: the least recently used session goes first; oversized sessions are not kept', () => {
    const c = new HostSessionCache({ size: 3, ttlMs: 60_000 });
    for (const n of [1, 2, 3]) c.put(id(n), data(n), () => undefined);
    getNow(c, 1);
    c.put(id(4), data(4), () => undefined);
    assert.equal(getNow(c, 2), null, 'the least recently used was evicted');
    assert.deepEqual([1, 3, 4].map((n) => getNow(c, n)), [data(1), data(3), data(4)]);
    c.put(id(5), Buffer.alloc(MAX_SESSION_BYTES + 1), () => undefined);
    assert.equal(getNow(c, 5), null);
    assert.equal(c.stats().sessions, 3);
    const many = new HostSessionCache({ size: 1000, ttlMs: 60_000 });
    for (let n = 0; n < 5000; n++) many.put(Buffer.from(n.toString(16).padStart(8, '0'), 'hex'), data(n), () => undefined);
    assert.equal(many.stats().sessions, 1000);
  });

  it('keeps its sessions through entries() and restore(), in LRU order, without the expired', () => {
    let now = 1_000_000;
    const a = new HostSessionCache({ size: 3, ttlMs: 10_000, now: () => now });
    a.put(id(1), data(1), () => undefined);
    now += 6000;
    for (const n of [2, 3]) a.put(id(n), data(n), () => undefined);
    getNow(a, 2);
    const saved = formatSessionFile(a.entries());
    now += 5000;
    const b = new HostSessionCache({ size: 3, ttlMs: 10_000, now: () => now });
    assert.equal(b.restore(parseSessionFile(saved).entries), 2, 'session 1 expired meanwhile');
    assert.equal(getNow(b, 1), null);
    b.put(id(4), data(4), () => undefined);
    b.put(id(5), data(5), () => undefined);
    assert.equal(getNow(b, 3), null, 'the least recently used before the save is the first to go');
    assert.deepEqual(getNow(b, 2), data(2));
    now += 4999;
    assert.deepEqual(getNow(b, 2), data(2), 'a restored session keeps its expiry');
    now += 1;
    assert.equal(getNow(b, 2), null);
  });
});

describe('host session cache with a shared store (Redis) behind it', () => {
  it('writes every session to it, and finds there what another host stored', async () => {
    const shared = new SharedMap();
    const a = new HostSessionCache({ size: 10, ttlMs: 60_000, shared });
    const b = new HostSessionCache({ size: 10, ttlMs: 60_000, shared });
    const t0 = Date.now();
    await put(a, id(1), data(1));
    const stored = shared.map.get(hex(1))!;
    assert.deepEqual(stored.data, data(1));
    assert.ok(stored.expiresAt >= t0 + 60_000 && stored.expiresAt <= Date.now() + 60_000);
    assert.deepEqual(await get(b, id(1)), data(1));
    assert.deepEqual(getNow(b, 1), data(1), 'kept on this host since');
    assert.equal(shared.gets, 1);
    assert.deepEqual(b.stats(), { sessions: 1, capacity: 10, hits: 2, sharedHits: 1, misses: 0, stored: 0, sharedUp: true });
    assert.equal(await get(b, id(9)), null);
    assert.equal(b.stats().misses, 1);
  });

  it('a put is done only once the shared store has it (a client cannot be faster), or after the wait at most', async () => {
    const shared = new SharedMap();
    shared.delayMs = 40;
    const c = new HostSessionCache({ size: 10, ttlMs: 60_000, shared, sharedWaitMs: 500 });
    let done = false;
    c.put(id(1), data(1), () => (done = true));
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(done, false, 'waits for the shared store');
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(done, true);
    shared.hang = true;
    const t0 = Date.now();
    await put(new HostSessionCache({ size: 10, ttlMs: 60_000, shared, sharedWaitMs: 50 }), id(2), data(2));
    assert.ok(Date.now() - t0 < 400, 'a store that does not answer delays a handshake by the wait at most');
    const t1 = Date.now();
    assert.equal(await get(new HostSessionCache({ size: 10, ttlMs: 60_000, shared, sharedWaitMs: 50 }), id(3)), null, 'nor does a lookup wait longer');
    assert.ok(Date.now() - t1 < 400);
  });

  it('while the shared store is away: this host alone; what it stored meanwhile is written when the store returns', async () => {
    const shared = new SharedMap();
    const c = new HostSessionCache({ size: 10, ttlMs: 60_000, shared });
    await put(c, id(1), data(1));
    shared.up = false;
    await put(c, id(2), data(2));
    await put(c, id(3), data(3));
    assert.equal(shared.sets, 1, 'nothing sent while it is away');
    assert.deepEqual(getNow(c, 2), data(2), "this host's cache answers");
    assert.equal(getNow(c, 7), null, 'a miss is a miss at once, not a wait');
    assert.equal(shared.gets, 0);
    assert.equal(c.stats().sharedUp, false);
    // A set that fails is written back too.
    shared.up = true;
    shared.fail = true;
    await put(c, id(4), data(4));
    shared.fail = false;
    shared.comeBack();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual([...shared.map.keys()].sort(), [1, 2, 3, 4].map(hex).sort());
    const sets = shared.sets;
    shared.comeBack();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(shared.sets, sets, 'written once: nothing left to write');
  });

  it('an expired session from the shared store is a miss; a live one keeps its expiry', async () => {
    let now = 5_000_000;
    const shared = new SharedMap();
    const c = new HostSessionCache({ size: 10, ttlMs: 60_000, shared, now: () => now });
    shared.map.set(hex(1), { data: data(1), expiresAt: now - 1 });
    shared.map.set(hex(2), { data: data(2), expiresAt: now + 1000 });
    assert.equal(await get(c, id(1)), null);
    assert.deepEqual(await get(c, id(2)), data(2));
    assert.deepEqual(getNow(c, 2), data(2), 'kept on this host');
    now += 1000;
    assert.equal(await get(c, id(2)), null, 'gone here and there at the same time');
  });
});

describe('session cache file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-sessfile-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('round-trips; malformed lines are counted and left out; another format is refused', () => {
    const entries: [string, StoredSession][] = [
      [hex(1), { data: data(1), expiresAt: 1_700_000_000_000 }],
      ['ab', { data: Buffer.from([0, 255, 1]), expiresAt: 42 }],
    ];
    const text = formatSessionFile(entries);
    assert.match(text, /^postern-tls-sessions 1\n1700000000000 0101[0-9a-f]+ c2Vzc2lvbi0x\n42 ab AP8B\n$/);
    assert.deepEqual(parseSessionFile(text), { entries, bad: 0 });
    const bad = text + 'x y z\n12 abc AAAA\n12 ' + 'a'.repeat(66) + ' AAAA\n12 ab \n\n';
    assert.deepEqual(parseSessionFile(bad), { entries, bad: 4 });
    assert.throws(() => parseSessionFile('{"format":"postern-ticket-keys"}'), SessionFileError);
  });

  it('is written atomically with mode 0600 and read back; none is no sessions; one readable by all is refused', async () => {
    const file = join(dir, 'sub', 'tls-sessions');
    assert.deepEqual(await readSessionFile(file), { entries: [], bad: 0 });
    const entries: [string, StoredSession][] = [[hex(3), { data: data(3), expiresAt: Date.now() + 1000 }]];
    await writeSessionFile(file, entries);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(join(dir, 'sub')), ['tls-sessions'], 'no temporary file left');
    assert.deepEqual(await readSessionFile(file), { entries, bad: 0 });
    await chmod(file, 0o644);
    await assert.rejects(readSessionFile(file), /readable by everyone/);
    await writeFile(join(dir, 'junk'), 'hello\n', { mode: 0o600 });
    await assert.rejects(readSessionFile(join(dir, 'junk')), SessionFileError);
  });
});

describe('session cache over the cluster IPC', () => {
  /** A worker's store and the primary's answers joined by an asynchronous, JSON-serialising channel, as the IPC is. */
  function joined(primary: HostSessionCache, opts: { drop?: boolean; waitMs?: number } = {}) {
    let onReply: (m: TlsSessionReply) => void = () => undefined;
    const sent: TlsSessionRequest[] = [];
    const store = new IpcSessionStore(
      {
        send: (m) => {
          sent.push(m);
          if (opts.drop) return;
          const wire = JSON.parse(JSON.stringify(m)) as TlsSessionRequest;
          setImmediate(() => answerTlsSession(primary, wire, (r) => setImmediate(() => onReply(JSON.parse(JSON.stringify(r)) as TlsSessionReply))));
        },
        onReply: (h) => (onReply = h),
      },
      opts.waitMs,
    );
    return { store, sent };
  }

  it("workers find each other's sessions in the primary's cache", async () => {
    const primary = new HostSessionCache({ size: 10, ttlMs: 60_000 });
    const w1 = joined(primary).store;
    const w2 = joined(primary).store;
    const session = Buffer.from(Array.from({ length: 200 }, (_, i) => i));
    await put(w1, id(1), session);
    assert.deepEqual(await get(w2, id(1)), session, 'byte for byte');
    assert.deepEqual(await get(w1, id(1)), session);
    assert.equal(await get(w2, id(2)), null);
    assert.deepEqual(primary.stats(), { sessions: 1, capacity: 10, hits: 2, sharedHits: 0, misses: 1, stored: 1, sharedUp: null });
  });

  it('a primary that does not answer costs a miss (a full handshake) after the wait, never a hang; close() answers at once', async () => {
    const primary = new HostSessionCache({ size: 10, ttlMs: 60_000 });
    const { store } = joined(primary, { drop: true, waitMs: 50 });
    const t0 = Date.now();
    assert.equal(await get(store, id(1)), null);
    await put(store, id(1), data(1));
    assert.ok(Date.now() - t0 < 1000);
    const slow = joined(primary, { drop: true, waitMs: 60_000 }).store;
    const pending = get(slow, id(1));
    slow.close();
    assert.equal(await pending, null);
  });

  it('the primary refuses what no worker sends: a malformed ID, an empty or oversized session', async () => {
    const primary = new HostSessionCache({ size: 10, ttlMs: 60_000 });
    const replies: TlsSessionReply[] = [];
    const ask = (m: Omit<TlsSessionRequest, 'postern' | 'id'>) => answerTlsSession(primary, { postern: 'tls-session', id: replies.length, ...m }, (r) => replies.push(r));
    ask({ op: 'put', key: 'not hex!', data: 'AAAA' });
    ask({ op: 'put', key: 'a'.repeat(66), data: 'AAAA' });
    ask({ op: 'put', key: 'abc', data: 'AAAA' });
    ask({ op: 'put', key: 'ab', data: '' });
    ask({ op: 'put', key: 'ab', data: Buffer.alloc(MAX_SESSION_BYTES + 100).toString('base64') });
    ask({ op: 'get', key: '../x' });
    assert.equal(replies.length, 6, 'every request is answered');
    assert.ok(replies.every((r) => r.data === null));
    assert.equal(primary.stats().sessions, 0);
  });
});
