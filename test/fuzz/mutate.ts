// Byte-level mutations in the manner of coverage-less fuzzers (bit flips, interesting bytes,
// inserted protocol tokens, duplicated or removed ranges, splices with another seed, edited
// numbers), stacked a few at a time on an input taken from the pool.
import type { Rng } from './rng.js';

/** Bytes that change the meaning of SMTP and PROXY input. */
const INTERESTING = [0x00, 0x0d, 0x0a, 0x2e, 0x20, 0x09, 0x3a, 0x3c, 0x3e, 0x40, 0x22, 0x5c, 0x2b, 0x3d, 0x2d, 0x7f, 0x80, 0xc3, 0xff, 0x50, 0x21];

export interface Mutator {
  /** A new input derived from `input`; `others` are for splicing. Never longer than `maxLength`. */
  mutate(input: Buffer, others: readonly Buffer[], rng: Rng): Buffer;
}

export function byteMutator(dictionary: readonly Buffer[], maxLength: number): Mutator {
  const ops: ((b: Buffer, others: readonly Buffer[], rng: Rng) => Buffer)[] = [
    // flip one bit
    (b, _o, rng) => {
      if (b.length === 0) return b;
      const c = Buffer.from(b);
      c[rng.below(c.length)]! ^= 1 << rng.below(8);
      return c;
    },
    // set an interesting byte
    (b, _o, rng) => {
      if (b.length === 0) return Buffer.from([rng.pick(INTERESTING)]);
      const c = Buffer.from(b);
      c[rng.below(c.length)] = rng.pick(INTERESTING);
      return c;
    },
    // random byte
    (b, _o, rng) => {
      if (b.length === 0) return b;
      const c = Buffer.from(b);
      c[rng.below(c.length)] = rng.below(256);
      return c;
    },
    // insert a dictionary token
    (b, _o, rng) => {
      if (dictionary.length === 0) return b;
      const at = rng.below(b.length + 1);
      return Buffer.concat([b.subarray(0, at), rng.pick(dictionary), b.subarray(at)]);
    },
    // overwrite with a dictionary token
    (b, _o, rng) => {
      if (dictionary.length === 0 || b.length === 0) return b;
      const t = rng.pick(dictionary);
      const at = rng.below(b.length);
      const c = Buffer.from(b);
      t.copy(c, at, 0, Math.min(t.length, c.length - at));
      return c;
    },
    // delete a range
    (b, _o, rng) => {
      if (b.length === 0) return b;
      const at = rng.below(b.length);
      const n = 1 + rng.below(Math.min(16, b.length - at));
      return Buffer.concat([b.subarray(0, at), b.subarray(at + n)]);
    },
    // duplicate a range (grows inputs towards length limits)
    (b, _o, rng) => {
      if (b.length === 0) return b;
      const at = rng.below(b.length);
      const n = 1 + rng.below(Math.min(64, b.length - at));
      const times = rng.chance(0.1) ? rng.between(2, 200) : 1;
      const piece = b.subarray(at, at + n);
      return Buffer.concat([b.subarray(0, at + n), ...Array<Buffer>(times).fill(piece), b.subarray(at + n)]);
    },
    // insert random bytes
    (b, _o, rng) => {
      const at = rng.below(b.length + 1);
      const r = Buffer.alloc(1 + rng.below(8));
      for (let i = 0; i < r.length; i++) r[i] = rng.below(256);
      return Buffer.concat([b.subarray(0, at), r, b.subarray(at)]);
    },
    // splice: the head of this input, the tail of another
    (b, others, rng) => {
      if (others.length === 0) return b;
      const o = rng.pick(others);
      return Buffer.concat([b.subarray(0, rng.below(b.length + 1)), o.subarray(rng.below(o.length + 1))]);
    },
    // truncate
    (b, _o, rng) => b.subarray(0, rng.below(b.length + 1)),
    // edit an ASCII number (sizes, ports, codes, lengths)
    (b, _o, rng) => {
      const s = b.toString('latin1');
      const nums = [...s.matchAll(/\d+/g)];
      if (nums.length === 0) return b;
      const m = rng.pick(nums);
      const v = BigInt(m[0]);
      const next = rng.pick([0n, 1n, v + 1n, v > 0n ? v - 1n : 0n, v * 2n, 65535n, 65536n, 4294967296n, 9007199254740993n, 10n ** 20n]);
      return Buffer.from(s.slice(0, m.index) + String(next) + s.slice(m.index! + m[0].length), 'latin1');
    },
    // change a big-endian 16-bit field (PROXY v2 lengths, TLV lengths)
    (b, _o, rng) => {
      if (b.length < 2) return b;
      const c = Buffer.from(b);
      const at = rng.below(c.length - 1);
      c.writeUInt16BE(rng.pick([0, 1, 2, 3, 4, 12, 36, 216, 0xff, 0x100, 0xffff, (c.readUInt16BE(at) + 1) & 0xffff, (c.readUInt16BE(at) - 1) & 0xffff]), at);
      return c;
    },
  ];
  return {
    mutate(input, others, rng) {
      let b = input;
      const n = 1 + rng.below(rng.chance(0.2) ? 16 : 4);
      for (let i = 0; i < n; i++) {
        b = rng.pick(ops)(b, others, rng);
        if (b.length > maxLength) b = b.subarray(0, maxLength);
      }
      return b;
    },
  };
}
