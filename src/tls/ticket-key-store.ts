// Keeps the ticket key set current: loads it from its backing (the key file, Redis, or memory),
// publishes the next key ahead of time, drops keys nobody can hold a valid ticket for, and
// notices keys other processes wrote.
import { keyName, maintain, TicketKeyRing, type Schedule, type TicketKey } from './ticket-keys.js';
import { KeyFileBacking, MemoryBacking, type TicketKeyBacking } from './ticket-key-backing.js';
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TicketKeyStore {
  readonly ring = new TicketKeyRing();
  private readonly backing: TicketKeyBacking;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private syncing: Promise<void> | null = null;
  private currentName = '';
  private readonly listeners: ((k: TicketKey) => void)[] = [];
  private readonly now: () => number;

  private constructor(private readonly opts: TicketKeyStoreOptions) {
    this.now = opts.now ?? Date.now;
    this.backing =
      opts.backing ?? (opts.file ? new KeyFileBacking(opts.file, () => opts.logger.info({ file: opts.file }, 'ticket key file created')) : new MemoryBacking());
  }

  /** Ready to use: a key is active. Throws TlsConfigError when the file is unusable. */
  static async open(opts: TicketKeyStoreOptions): Promise<TicketKeyStore> {
    const store = new TicketKeyStore(opts);
    // Another process may hold the lock while it creates the file: wait for it, past a stale lock's age.
    const deadline = Date.now() + 12_000;
    for (;;) {
      await store.sync();
      if (store.ring.keys.length > 0) break;
      if (Date.now() > deadline) throw new TlsConfigError('TLS_TICKET_KEYS', `ticket keys ${store.backing.name}: lock held too long`, opts.file ?? undefined);
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
    this.backing.close?.();
  }

  private async doSync(): Promise<void> {
    const now = this.now();
    const stored = await this.backing.read();
    if (stored !== null && stored !== 'unchanged') this.ring.set(stored);
    if (!maintain(this.ring.keys, now, this.opts) && stored !== null) return;
    // Nothing stored (a deleted file, a fresh Redis): our keys are written back, so that costs no ticket.
    const kept = await this.backing.update((base) => maintain(base ?? this.ring.keys, now, this.opts) ?? (base ? null : [...this.ring.keys]));
    if (kept) this.ring.set(kept);
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
