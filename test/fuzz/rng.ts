// A small deterministic PRNG (SplitMix32 over a 32-bit state): the same seed gives the same
// inputs, so a failure found by a long run is replayed from its seed and iteration.

import { splitAt } from '../helpers/chunks.js';

export class Rng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    this.#s = (this.#s + 0x9e3779b9) >>> 0;
    let z = this.#s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }

  /** Integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(list: readonly T[]): T {
    return list[this.below(list.length)]!;
  }
}

/** Derives an independent seed for a named stream (target, iteration) from a run seed. */
export function deriveSeed(seed: number, ...parts: (string | number)[]): number {
  let h = seed >>> 0 || 1;
  for (const p of parts) {
    const s = String(p);
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
    h = Math.imul(h ^ 0xff, 0x01000193) >>> 0;
  }
  return new Rng(h).u32();
}

/** Splits `data` into chunks at random points: the ways a socket may deliver it. */
export function randomChunks(data: Buffer, rng: Rng): Buffer[] {
  if (data.length === 0) return [data];
  const cuts = new Set<number>();
  const n = rng.below(Math.min(data.length, 12));
  for (let i = 0; i < n; i++) cuts.add(rng.between(1, data.length - 1));
  return splitAt(data, [...cuts].sort((a, b) => a - b));
}

export const bytewise = (data: Buffer): Buffer[] => Array.from(data, (x) => Buffer.from([x]));
