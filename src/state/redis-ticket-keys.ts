// TLS session ticket keys in Redis, so that a ticket issued by one instance resumes on any
// other, across rotations: one key set (the key file's JSON format) under one key, one
// rotation schedule for the fleet. Changes are made under a lock (SET NX PX, released only
// by its holder), as the key file's are: whoever comes first publishes the next key half a
// rotation ahead, the others adopt it. While Redis is away this process goes on with the
// keys it has (rotating them itself); when Redis returns, the fleet's keys are adopted again.

import { randomBytes } from 'node:crypto';
import { TlsConfigError } from '../tls/errors.js';
import type { TicketKeyBacking } from '../tls/ticket-key-backing.js';
import { formatKeyFile, parseKeyFile } from '../tls/ticket-key-file.js';
import type { TicketKey } from '../tls/ticket-keys.js';
import type { RedisLink } from './redis-link.js';
import { RedisScript } from './redis-script.js';

/** Longer than any update takes; a holder that died frees the lock after this. */
const LOCK_MS = 10_000;

const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

export class RedisTicketKeys implements TicketKeyBacking {
  readonly name: string;
  readonly #key: string;
  readonly #lock: string;
  readonly #unlock: RedisScript;
  /** The value last read or written, to tell a change by comparison. */
  #seen: string | null = null;
  /** The set in force here: what Redis had, or what this process made while Redis was away. */
  #local: readonly TicketKey[] | null = null;

  constructor(private readonly link: RedisLink) {
    this.#key = link.key('tls', 'ticket-keys');
    this.#lock = link.key('tls', 'ticket-keys', 'lock');
    this.name = `redis ${link.where} ${this.#key}`;
    this.#unlock = new RedisScript(link, UNLOCK, 1);
  }

  async read(): Promise<readonly TicketKey[] | 'unchanged' | null> {
    if (!this.link.up) return this.#localRead();
    let text: string | null;
    try {
      text = await this.link.client.get(this.#key);
    } catch (err) {
      this.link.fault(err);
      return this.#localRead();
    }
    if (text === null) {
      this.#seen = null;
      return null;
    }
    if (text === this.#seen) return 'unchanged';
    const keys = parseKeyFile(text, this.name);
    this.#seen = text;
    this.#local = keys;
    return keys;
  }

  async update(next: (stored: readonly TicketKey[] | null) => TicketKey[] | null): Promise<readonly TicketKey[] | null> {
    if (!this.link.up) return this.#localUpdate(next);
    const token = randomBytes(8).toString('hex');
    try {
      if ((await this.link.client.set(this.#lock, token, 'PX', LOCK_MS, 'NX')) !== 'OK') return null;
      try {
        const text = await this.link.client.get(this.#key);
        const stored = text === null ? null : parseKeyFile(text, this.name);
        const keys = next(stored);
        if (keys) {
          const out = formatKeyFile(keys);
          await this.link.client.set(this.#key, out);
          this.#seen = out;
          this.#local = keys;
          return keys;
        }
        this.#seen = text;
        this.#local = stored;
        return stored;
      } finally {
        await this.#unlock.run([this.#lock], [token]).catch(() => undefined);
      }
    } catch (err) {
      // A malformed key set is a problem to report, not an outage.
      if (err instanceof TlsConfigError) throw err;
      this.link.fault(err);
      return this.#localUpdate(next);
    }
  }

  #localRead(): 'unchanged' | null {
    // Whatever Redis holds when it returns is read afresh.
    this.#seen = null;
    return this.#local === null ? null : 'unchanged';
  }

  #localUpdate(next: (stored: readonly TicketKey[] | null) => TicketKey[] | null): readonly TicketKey[] | null {
    this.#seen = null;
    this.#local = next(this.#local) ?? this.#local;
    return this.#local;
  }
}
