// The short slice of the fuzz harness that `npm test` runs: every target for a fraction of a
// second (mutated and generated inputs). The seed is random unless FUZZ_SEED is set, and printed,
// so a failure is replayed with `FUZZ_SEED=N` or with the replay line it prints.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzz, targetNames } from './engine.js';

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Math.random() * 0x1_0000_0000) >>> 0;

describe(`fuzz slice (seed ${seed})`, () => {
  for (const name of targetNames()) {
    it(`${name}: no throw but the documented errors, invariants hold`, { timeout: 60_000 }, (t) => {
      const r = fuzz({ seed, targets: [name], runs: 4000, timeMs: 600, slowMs: 10_000 });
      const s = r.stats[0]!;
      t.diagnostic(`seed ${seed}: ${s.mutated} mutated + ${s.generated} generated inputs in ${r.ms} ms, ${s.outcomes} distinct outcomes`);
      if (r.failure) assert.fail(`${r.failure.message}\n${r.failure.input ? `input ${r.failure.input}\n` : ''}replay: ${r.failure.replay}\n(or FUZZ_SEED=${seed})`);
      assert.ok(s.mutated + s.generated > 0, 'ran inputs');
    });
  }
});
