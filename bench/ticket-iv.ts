// What src/tls/random-pool.ts saves on every session ticket Postern issues: the ticket-key
// callback's encrypt path as it runs now (IV from the pool, key parts made once) against the
// same answer built with crypto.randomBytes(16) and fresh key views per call (what it did
// before). A full TLS 1.2 handshake issues one ticket, a full TLS 1.3 handshake two.
// Alternating passes in one process after a first unmeasured pass of each; medians of 7.
// Run: node --import tsx bench/ticket-iv.ts   (a few seconds)

import { randomBytes } from 'node:crypto';
import { median } from './lib/stats.js';
import { markdownTable } from './lib/table.js';
import { ticketKeyHandler } from '../src/tls/ticket-callback.js';
import { aesKey, hmacKey, keyName, newTicketKey } from '../src/tls/ticket-keys.js';

const CALLS = 100_000;
const PASSES = 7;
const key = newTicketKey(Date.now());
const source = { current: () => key, find: () => key };
const name = Buffer.alloc(16);
const iv = Buffer.alloc(16);

const pooled = ticketKeyHandler(source);
const perCall = (_n: Buffer, _iv: Buffer, _enc: boolean): unknown[] => [1, hmacKey(key), aesKey(key), keyName(key), randomBytes(16)];

let sink = 0;
function time(h: (n: Buffer, iv: Buffer, enc: boolean) => unknown[]): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) sink += (h(name, iv, true)[4] as Buffer)[0]!;
  return Number(process.hrtime.bigint() - t0) / 1000 / CALLS;
}

time(perCall);
time(pooled);
const runs = { perCall: [] as number[], pooled: [] as number[] };
for (let p = 0; p < PASSES; p++) {
  runs.perCall.push(time(perCall));
  runs.pooled.push(time(pooled));
}
const a = median(runs.perCall);
const b = median(runs.pooled);
process.stdout.write(
  markdownTable(
    ['encrypt answer of the ticket-key callback', 'µs per ticket (median of 7)', 'runs'],
    [
      ['randomBytes(16) and key views per call (before)', a.toFixed(3), runs.perCall.map((x) => x.toFixed(2)).join(' / ')],
      ['pooled IV, key views made once (Postern)', b.toFixed(3), runs.pooled.map((x) => x.toFixed(2)).join(' / ')],
    ],
  ) + `\n\nratio pooled / per call: ${(b / a).toFixed(2)}x (${(a - b).toFixed(2)} µs saved per ticket)\n${sink < 0 ? sink : ''}`,
);
