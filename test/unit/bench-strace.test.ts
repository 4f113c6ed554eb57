// The bench's strace summary parser (bench/lib/strace.ts), on text strace 6.1 prints.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseStraceSummary } from '../../bench/lib/strace.js';

const SAMPLE = `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 68.32    0.001223        1223         1           execve
  7.82    0.000140          17         8           mmap
  1.68    0.000030          30         1         1 access
 12.00    0.000200           2       120        40 read
------ ----------- ----------- --------- --------- ----------------
100.00    0.001790          12       130        41 total
`;

describe('bench: strace -c summary', () => {
  it('takes the total calls and the most frequent kinds, errors column or not', () => {
    const r = parseStraceSummary(SAMPLE);
    assert.deepEqual(r, { calls: 130, top: ['read 120', 'mmap 8', 'execve 1', 'access 1'] });
  });
  it('no total row (strace died, or printed nothing): null', () => {
    assert.equal(parseStraceSummary('strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n'), null);
  });
});
