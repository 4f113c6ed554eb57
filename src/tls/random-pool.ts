// Random bytes drawn from a pooled CSPRNG fill, for the ticket-key callback's IVs (one per
// ticket issued). On Node 20 crypto.randomBytes(16) costs 5-7 µs a call (a job object each
// time); a view of a pooled fill costs 0.3-0.5 µs (bench/ticket-iv.ts). Each byte is handed
// out once, and a spent pool is replaced, never refilled in place, so bytes already handed
// out never change under their holder.
import { randomFillSync } from 'node:crypto';

export const RANDOM_POOL_BYTES = 4096;

export class RandomPool {
  #buf = Buffer.alloc(0);
  #off = 0;

  constructor(readonly size = RANDOM_POOL_BYTES) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`RandomPool: size must be a positive integer, got ${size}`);
  }

  /** `n` fresh random bytes (a view into the pool: read, never written). */
  take(n: number): Buffer {
    if (!Number.isInteger(n) || n < 1 || n > this.size) throw new RangeError(`RandomPool: cannot take ${n} bytes from a pool of ${this.size}`);
    if (this.#off + n > this.#buf.length) {
      this.#buf = randomFillSync(Buffer.allocUnsafeSlow(this.size));
      this.#off = 0;
    }
    const out = this.#buf.subarray(this.#off, this.#off + n);
    this.#off += n;
    return out;
  }
}
