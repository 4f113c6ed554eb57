// Session ticket keys as a schedule: each key encrypts from `activeFrom` until the next key's
// `activeFrom`, then only decrypts until `lifetime` after that, so no ticket dies before its lifetime.
import { randomBytes } from 'node:crypto';

/** A 48-byte key as OpenSSL/Node use it: 16-byte name | 16-byte HMAC-SHA256 key | 16-byte AES-128-CBC key. */
export interface TicketKey {
  activeFrom: number;
  key: Buffer;
}

export const TICKET_KEY_BYTES = 48;

export const keyName = (k: TicketKey): Buffer => k.key.subarray(0, 16);
export const hmacKey = (k: TicketKey): Buffer => k.key.subarray(16, 32);
export const aesKey = (k: TicketKey): Buffer => k.key.subarray(32, 48);

export const newTicketKey = (activeFrom: number): TicketKey => ({ activeFrom, key: randomBytes(TICKET_KEY_BYTES) });

/** At most this many keys are kept, whatever rotate and lifetime say: bounds the file and the lookup. */
const MAX_KEYS = 64;

export interface Schedule {
  rotate: number;
  lifetime: number;
}

/**
 * The key set after housekeeping at `now`, or null when nothing changes:
 *  - an empty set gets a key active now (the only key ever made active at once);
 *  - the next key is published half a rotation ahead, so every process sharing the file knows it
 *    before it starts encrypting. After downtime (the active key is past `rotate` and has no
 *    successor) it is published half a rotation ahead too, never made active at once: the old key
 *    keeps encrypting meanwhile, which costs nothing, while a key made active at once would be used
 *    by one process before the others have read it;
 *  - a key is dropped once its successor has been active for `lifetime` (no ticket it issued is still valid).
 */
export function maintain(keys: readonly TicketKey[], now: number, s: Schedule, make = newTicketKey): TicketKey[] | null {
  const sorted = [...keys].sort((a, b) => a.activeFrom - b.activeFrom);
  let changed = false;
  if (sorted.length === 0) {
    sorted.push(make(now));
    changed = true;
  }
  // The latest active key; the earliest if none is active yet (clock skew), as TicketKeyRing.current.
  const cur = sorted.filter((k) => k.activeFrom <= now).at(-1) ?? sorted[0]!;
  const hasFuture = sorted.some((k) => k.activeFrom > now);
  if (!hasFuture && now >= cur.activeFrom + s.rotate / 2) {
    sorted.push(make(Math.max(cur.activeFrom + s.rotate, now + Math.ceil(s.rotate / 2))));
    changed = true;
  }
  const kept = sorted.filter((_, i) => {
    const next = sorted[i + 1];
    return !next || next.activeFrom + s.lifetime > now;
  });
  if (kept.length !== sorted.length) changed = true;
  const bounded = kept.slice(-MAX_KEYS);
  if (bounded.length !== kept.length) changed = true;
  return changed ? bounded : null;
}

/** Lookup side of a key set: which key encrypts now, which key a ticket's name refers to. */
export class TicketKeyRing {
  #sorted: TicketKey[] = [];
  #byName = new Map<string, TicketKey>();

  constructor(keys: readonly TicketKey[] = []) {
    this.set(keys);
  }

  set(keys: readonly TicketKey[]): void {
    this.#sorted = [...keys].sort((a, b) => a.activeFrom - b.activeFrom);
    this.#byName = new Map(this.#sorted.map((k) => [keyName(k).toString('hex'), k]));
  }

  get keys(): readonly TicketKey[] {
    return this.#sorted;
  }

  /** The key that encrypts new tickets at `now`: the latest already active (the earliest if none is, e.g. clock skew). */
  current(now = Date.now()): TicketKey {
    let cur = this.#sorted[0];
    if (!cur) throw new Error('ticket key ring is empty');
    for (const k of this.#sorted) {
      if (k.activeFrom <= now) cur = k;
      else break;
    }
    return cur;
  }

  find(name: Buffer): TicketKey | undefined {
    return this.#byName.get(name.toString('hex'));
  }

  /** When the encrypting key changes next (ms epoch), or null when no later key is known. */
  nextActivation(now = Date.now()): number | null {
    return this.#sorted.find((k) => k.activeFrom > now)?.activeFrom ?? null;
  }
}
