// Keeps the ticket key set current: loads it from the key file (or memory), publishes the next key
// ahead of time, drops keys nobody can hold a valid ticket for, and notices keys other processes wrote.
import { keyName, maintain, TicketKeyRing, type Schedule, type TicketKey } from './ticket-keys.js';
import { checkKeyFile, readKeyFile, withKeyFileLock, writeKeyFile, type KeyFileVersion } from './ticket-key-file.js';
import { TlsConfigError } from './errors.js';

interface Log {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

export interface TicketKeyStoreOptions extends Schedule {
  /** Shared key file, or null for keys in memory only (still rotated; lost on restart). */
  file: string | null;
  logger: Log;
  now?: () => number;
}

const sameVersion = (a: KeyFileVersion | null, b: KeyFileVersion | null): boolean =>
  a !== null && b !== null && a.mtimeMs === b.mtimeMs && a.size === b.size && a.ino === b.ino;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TicketKeyStore {
  readonly ring = new TicketKeyRing();
  private version: KeyFileVersion | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private syncing: Promise<void> | null = null;
  private currentName = '';
  private readonly listeners: ((k: TicketKey) => void)[] = [];
  private readonly now: () => number;

  private constructor(private readonly opts: TicketKeyStoreOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Ready to use: a key is active. Throws TlsConfigError when the file is unusable. */
  static async open(opts: TicketKeyStoreOptions): Promise<TicketKeyStore> {
    const store = new TicketKeyStore(opts);
    // Another process may hold the lock while it creates the file: wait for it, past a stale lock's age.
    const deadline = Date.now() + 12_000;
    for (;;) {
      await store.sync();
      if (store.ring.keys.length > 0) break;
      if (Date.now() > deadline) throw new TlsConfigError('TLS_TICKET_KEYS', `ticket key file ${opts.file}: lock held too long`, opts.file);
      await sleep(100);
    }
    store.notify();
    store.schedule();
    return store;
  }

  /** Called with the new encrypting key whenever it changes (used when only one key can be installed). */
  onCurrentChange(fn: (k: TicketKey) => void): void {
    this.listeners.push(fn);
  }

  current(): TicketKey {
    return this.ring.current(this.now());
  }

  find(name: Buffer): TicketKey | undefined {
    return this.ring.find(name);
  }

  /** One housekeeping step; exposed so tests can force it. */
  sync(): Promise<void> {
    this.syncing ??= this.doSync().finally(() => {
      this.syncing = null;
    });
    return this.syncing;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private async doSync(): Promise<void> {
    const { file } = this.opts;
    const now = this.now();
    if (!file) {
      const next = maintain(this.ring.keys, now, this.opts);
      if (next) this.ring.set(next);
      return;
    }
    const v = await checkKeyFile(file);
    if (v && !sameVersion(v, this.version)) {
      const r = await readKeyFile(file);
      if (r) this.adopt(r.keys, r.version);
    }
    if (!maintain(this.ring.keys, now, this.opts) && v) return;
    // Changes are made to what is in the file under the lock, never to our possibly stale copy.
    await withKeyFileLock(file, async () => {
      const r = await readKeyFile(file);
      // A deleted file is rewritten from memory, so its removal costs no ticket.
      const base = r?.keys ?? this.ring.keys;
      const next = maintain(base, now, this.opts) ?? (r ? null : base);
      if (next) {
        await writeKeyFile(file, next);
        this.adopt(next, await checkKeyFile(file));
        if (!r) this.opts.logger.info({ file }, 'ticket key file created');
      } else if (r) {
        this.adopt(r.keys, r.version);
      }
    });
  }

  private adopt(keys: readonly TicketKey[], version: KeyFileVersion | null): void {
    this.ring.set(keys);
    this.version = version;
  }

  private notify(): void {
    if (this.ring.keys.length === 0) return;
    const cur = this.current();
    const name = keyName(cur).toString('hex');
    if (name === this.currentName) return;
    this.currentName = name;
    for (const fn of this.listeners) fn(cur);
  }

  private schedule(): void {
    if (this.closed) return;
    const now = this.now();
    const every = Math.min(Math.max(this.opts.rotate / 4, 100), 30_000);
    const activation = this.ring.nextActivation(now);
    const delay = activation === null ? every : Math.min(every, Math.max(activation - now + 1, 1));
    this.timer = setTimeout(() => {
      this.sync()
        .catch((err: unknown) => this.opts.logger.warn({ err: (err as Error).message, file: this.opts.file }, 'ticket key maintenance failed; keeping the current keys'))
        .finally(() => {
          this.notify();
          this.schedule();
        });
    }, delay);
    this.timer.unref();
  }
}
