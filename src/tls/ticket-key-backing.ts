// A shared place for the ticket key set other than the key file (which ticket-key-store.ts
// handles itself, synchronously): Redis, for instances on several hosts
// (state/redis-ticket-keys.ts). Every process sharing it encrypts with the same key on one
// schedule.

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
