// Keeps the ticket key set current: loads it from the key file, a shared backing (Redis) or
// memory, publishes the next key ahead of time, drops keys nobody can hold a valid ticket for,
// and notices keys other processes wrote.
//
// Resumption must never depend on when a timer last read the file. Two rules make sure of it:
//  - before the first ticket under a key, the file is looked at again (a stat; a read if it
//    changed), so this process only encrypts with a key that is in the file as it is now: every
//    peer and every later process can decrypt what it issues;
//  - a ticket under a key this process does not know makes it look at the file at once, so a key a
//    peer started using is found without waiting for the next timer.
// A shared backing (Redis, for several hosts) is asynchronous: there the next key is published
// half a rotation ahead under the backing's lock, and an unknown ticket key starts a look.
import { keyName, maintain, TicketKeyRing, type Schedule, type TicketKey } from './ticket-keys.js';
import { createKeyFile, keyFileVersion, readKeyFile, removeStaleTemps, replaceKeyFile, sameVersion, type KeyFileVersion } from './ticket-key-file.js';
import type { TicketKeyBacking } from './ticket-key-backing.js';
import { TlsConfigError } from './errors.js';

interface Log {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

export interface TicketKeyStoreOptions extends Schedule {
  /** Shared key file, or null for keys in memory only (still rotated; lost on restart). */
  file: string | null;
  /** Where the keys are kept instead of `file` (Redis, for several hosts). */
  backing?: TicketKeyBacking;
  logger: Log;
  now?: () => number;
}

/** What a look at the file found: the same version as held, a new one (now held), or no usable file. */
type Look = 'same' | 'reread' | 'missing';

const hex = (k: TicketKey): string => keyName(k).toString('hex');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TicketKeyStore {
  /** The keys of the file as last read (or of memory): the only keys that encrypt. */
  readonly ring = new TicketKeyRing();
  /** Keys that were active here and then vanished from the file (replaced by hand, a racing writer): decrypt only, until they expire. */
  readonly #vanished = new Map<string, { key: TicketKey; until: number }>();
  #version: KeyFileVersion | null = null;
  /** The encrypting key last checked against the file. */
  #confirmed = '';
  #timer: NodeJS.Timeout | null = null;
  #closed = false;
  #syncing: Promise<void> | null = null;
  #currentName = '';
  #lookFailed = false;
  readonly #listeners: ((k: TicketKey) => void)[] = [];
  readonly #opts: TicketKeyStoreOptions;
  readonly #now: () => number;

  readonly #backing: TicketKeyBacking | null;

  private constructor(opts: TicketKeyStoreOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#backing = opts.backing ?? null;
  }

  /** Where the keys live, for messages. */
  get #where(): string {
    return this.#backing?.name ?? this.#opts.file ?? 'memory';
  }

  /** Ready to use: a key is active. Throws TlsConfigError when the file is unusable. */
  static async open(opts: TicketKeyStoreOptions): Promise<TicketKeyStore> {
    const store = new TicketKeyStore(opts);
    // Only a file deleted right after another process created it can leave us without a key; a
    // shared backing may be locked by another host publishing the first key for a while.
    const deadline = Date.now() + (store.#backing ? 12_000 : 1_000);
    for (;;) {
      await store.sync();
      if (store.ring.keys.length > 0) break;
      if (Date.now() > deadline) throw new TlsConfigError('TLS_TICKET_KEYS', `ticket keys ${store.#where}: no key could be read or created`, opts.file ?? undefined);
      await sleep(50);
    }
    store.#notify();
    store.#schedule();
    return store;
  }

  /** Called with the new encrypting key whenever it changes (used when only one key can be installed). */
  onCurrentChange(fn: (k: TicketKey) => void): void {
    this.#listeners.push(fn);
  }

  /** The key to encrypt a new ticket with. */
  current(): TicketKey {
    const now = this.#now();
    let k = this.ring.current(now);
    if (this.#opts.file && !this.#backing && hex(k) !== this.#confirmed) {
      // First ticket under this key here: it must still be in the file (see the top of this file).
      const look = this.#lookSafely();
      k = this.ring.current(now);
      if (look !== 'missing') this.#confirmed = hex(k);
    }
    return k;
  }

  /** The key a ticket names, if any process sharing the file has published it. */
  find(name: Buffer): TicketKey | undefined {
    const k = this.ring.find(name) ?? this.#findVanished(name);
    if (k) return k;
    if (this.#backing) {
      // Published by another host after our last read: look (for the next ticket; this one waits for nothing).
      void this.sync().catch(() => undefined);
      return undefined;
    }
    if (!this.#opts.file) return k;
    // Published by a peer after our last read: look now rather than refuse a valid ticket.
    return this.#lookSafely() === 'reread' ? this.ring.find(name) : undefined;
  }

  /** One housekeeping step; exposed so tests can force it. */
  sync(): Promise<void> {
    this.#syncing ??= this.#doSync().finally(() => {
      this.#syncing = null;
    });
    return this.#syncing;
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#backing?.close?.();
  }

  async #doSync(): Promise<void> {
    const { file } = this.#opts;
    const now = this.#now();
    if (this.#backing) return this.#syncBacking(now);
    if (!file) {
      const next = maintain(this.ring.keys, now, this.#opts);
      if (next) this.ring.set(next);
      return;
    }
    // Read-modify-replace; if another process replaced the file meanwhile, start again from its version.
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = readKeyFile(file);
      if (!r) {
        // First start (a fresh key), or the file was deleted (rewritten from memory, so no ticket is
        // lost). If another process created it first, its keys are the ones.
        const keys = maintain(this.ring.keys, now, this.#opts) ?? this.ring.keys;
        if (await createKeyFile(file, keys)) this.#opts.logger.info({ file }, 'ticket key file created');
        this.#look();
        return;
      }
      if (!sameVersion(r.version, this.#version)) this.#adopt(r.keys, r.version);
      const next = maintain(r.keys, now, this.#opts);
      if (!next) return;
      if (await replaceKeyFile(file, next, r.version)) {
        this.#look();
        await removeStaleTemps(file, now);
        return;
      }
    }
  }

  /** A shared backing: changes are made under its lock to what it holds, never to our copy. */
  async #syncBacking(now: number): Promise<void> {
    const backing = this.#backing!;
    const stored = await backing.read();
    if (stored !== null && stored !== 'unchanged') this.#adopt(stored, null);
    if (!maintain(this.ring.keys, now, this.#opts) && stored !== null) return;
    // Nothing stored (a fresh Redis): our keys are written back, so that costs no ticket.
    const kept = await backing.update((base) => maintain(base ?? this.ring.keys, now, this.#opts) ?? (base ? null : [...this.ring.keys]));
    if (kept) this.#adopt(kept, null);
  }

  /** Reads the file if it changed since we last read it. Throws TlsConfigError on an unusable file. */
  #look(): Look {
    const file = this.#opts.file!;
    const v = keyFileVersion(file);
    if (!v) return 'missing';
    if (sameVersion(v, this.#version)) return 'same';
    const r = readKeyFile(file);
    if (!r) return 'missing';
    this.#adopt(r.keys, r.version);
    return 'reread';
  }

  /** look() for the ticket callback, which must not throw: an unusable file keeps the keys held (logged once). */
  #lookSafely(): Look {
    try {
      const look = this.#look();
      this.#lookFailed = false;
      return look;
    } catch (err) {
      if (!this.#lookFailed) this.#opts.logger.warn({ err: (err as Error).message, file: this.#opts.file }, 'ticket key file unreadable; keeping the current keys');
      this.#lookFailed = true;
      return 'missing';
    }
  }

  #adopt(keys: readonly TicketKey[], version: KeyFileVersion | null): void {
    const now = this.#now();
    const names = new Set(keys.map(hex));
    for (const k of this.ring.keys) {
      if (k.activeFrom <= now && !names.has(hex(k))) this.#vanished.set(hex(k), { key: k, until: now + this.#opts.lifetime });
    }
    for (const [n, v] of this.#vanished) if (names.has(n) || v.until <= now) this.#vanished.delete(n);
    this.ring.set(keys);
    this.#version = version;
  }

  #findVanished(name: Buffer): TicketKey | undefined {
    const v = this.#vanished.get(name.toString('hex'));
    return v && v.until > this.#now() ? v.key : undefined;
  }

  #notify(): void {
    if (this.ring.keys.length === 0) return;
    const cur = this.current();
    const name = hex(cur);
    if (name === this.#currentName) return;
    this.#currentName = name;
    for (const fn of this.#listeners) fn(cur);
  }

  #schedule(): void {
    if (this.#closed) return;
    const now = this.#now();
    const every = Math.min(Math.max(this.#opts.rotate / 4, 100), 30_000);
    const activation = this.ring.nextActivation(now);
    const delay = activation === null ? every : Math.min(every, Math.max(activation - now + 1, 1));
    this.#timer = setTimeout(() => {
      this.sync()
        .catch((err: unknown) => this.#opts.logger.warn({ err: (err as Error).message, keys: this.#where }, 'ticket key maintenance failed; keeping the current keys'))
        .finally(() => {
          this.#notify();
          this.#schedule();
        });
    }, delay);
    this.#timer.unref();
  }
}
