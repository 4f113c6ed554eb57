// Where a ticket key set is kept, so every process that shares it encrypts with the same key
// on one schedule: the key file (cluster workers, instances on a shared volume), Redis
// (instances on several hosts; state/redis-ticket-keys.ts), or this process's memory.

import { checkKeyFile, readKeyFile, withKeyFileLock, writeKeyFile, type KeyFileVersion } from './ticket-key-file.js';
import type { TicketKey } from './ticket-keys.js';

export interface TicketKeyBacking {
  /** For logs: the file, the Redis key, or `memory`. */
  readonly name: string;
  /** The stored keys if they changed since the last read, 'unchanged', or null when none are stored. */
  read(): Promise<readonly TicketKey[] | 'unchanged' | null>;
  /**
   * Under the backing's lock: `next` gets the stored keys (null: none) and returns the set to
   * store, or null to leave it. Resolves to the set stored afterwards, or null when another
   * process held the lock (try again later).
   */
  update(next: (stored: readonly TicketKey[] | null) => TicketKey[] | null): Promise<readonly TicketKey[] | null>;
  close?(): void;
}

const sameVersion = (a: KeyFileVersion | null, b: KeyFileVersion | null): boolean =>
  a !== null && b !== null && a.mtimeMs === b.mtimeMs && a.size === b.size && a.ino === b.ino;

/** The key file: writers hold `<file>.lock`, readers notice a new version by stat. */
export class KeyFileBacking implements TicketKeyBacking {
  #version: KeyFileVersion | null = null;

  constructor(
    readonly name: string,
    private readonly onCreated: () => void = () => undefined,
  ) {}

  async read(): Promise<readonly TicketKey[] | 'unchanged' | null> {
    const v = await checkKeyFile(this.name);
    if (!v) return null;
    if (sameVersion(v, this.#version)) return 'unchanged';
    const r = await readKeyFile(this.name);
    if (!r) return null;
    this.#version = r.version;
    return r.keys;
  }

  async update(next: (stored: readonly TicketKey[] | null) => TicketKey[] | null): Promise<readonly TicketKey[] | null> {
    let out: readonly TicketKey[] | null = null;
    // Changes are made to what is in the file under the lock, never to a possibly stale copy.
    await withKeyFileLock(this.name, async () => {
      const r = await readKeyFile(this.name);
      const keys = next(r?.keys ?? null);
      if (keys) {
        await writeKeyFile(this.name, keys);
        this.#version = await checkKeyFile(this.name);
        if (!r) this.onCreated();
        out = keys;
      } else if (r) {
        this.#version = r.version;
        out = r.keys;
      }
    });
    return out;
  }
}

/** No sharing: the keys live (and rotate) in this process only. */
export class MemoryBacking implements TicketKeyBacking {
  readonly name = 'memory';
  #keys: readonly TicketKey[] | null = null;

  async read(): Promise<readonly TicketKey[] | 'unchanged' | null> {
    return this.#keys === null ? null : 'unchanged';
  }

  async update(next: (stored: readonly TicketKey[] | null) => TicketKey[] | null): Promise<readonly TicketKey[] | null> {
    this.#keys = next(this.#keys) ?? this.#keys;
    return this.#keys;
  }
}
