// What src/net/socket-feedback.ts saves: the cost of constructing a net.Socket with the two
// option shapes a proxy uses (node:net's accepted socket, and a connect with `onread`), in a
// bare Node process and in one that ran warmSocketFeedback() first. Each side runs in a
// fresh process (V8's feedback is per process), alternating, 5 runs each; medians.
// Run: node --import tsx bench/socket-feedback.ts   (about 10 seconds)

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median } from './lib/stats.js';
import { markdownTable } from './lib/table.js';

const RUNS = 5;
const SOCKETS = 20_000;
const self = fileURLToPath(import.meta.url);

if (process.argv[2] === 'child') {
  const net = await import('node:net');
  if (process.argv[3] === 'warmed') (await import('../src/net/socket-feedback.js')).warmSocketFeedback();
  const read = { buffer: Buffer.allocUnsafe(64 * 1024), callback: () => true };
  // The shapes Postern's own sockets are made with; timed after a first pass, so both sides
  // are measured with their code optimized.
  // Options as node:net's onconnection and net.connect pass them (fields the public type leaves out).
  type Opts = import('node:net').SocketConstructorOpts;
  const accepted = () => new net.Socket({ handle: undefined, allowHalfOpen: false, pauseOnCreate: false, readable: true, writable: true } as Opts);
  const connect = () => new net.Socket({ host: '127.0.0.1', port: 25, noDelay: true, onread: read } as Opts);
  let out = '';
  for (const pass of [0, 1]) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < SOCKETS; i++) {
      accepted();
      connect();
    }
    const us = Number(process.hrtime.bigint() - t0) / 1000 / (2 * SOCKETS);
    if (pass === 1) out = us.toFixed(3);
  }
  process.stdout.write(out);
  process.exit(0);
}

const runs: Record<'bare' | 'warmed', number[]> = { bare: [], warmed: [] };
for (let i = 0; i < RUNS; i++) {
  for (const side of i % 2 === 0 ? (['bare', 'warmed'] as const) : (['warmed', 'bare'] as const)) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', self, 'child', side], { encoding: 'utf8' });
    runs[side].push(Number(out));
  }
}
const bare = median(runs.bare);
const warmed = median(runs.warmed);
process.stdout.write(
  `net.Socket constructions, Node ${process.version}, ${SOCKETS} of each shape per run, ${RUNS} runs each\n\n` +
    markdownTable(
      ['process', 'µs per socket (median)', 'runs'],
      [
        ['bare Node', bare.toFixed(2), runs.bare.map((x) => x.toFixed(2)).join(' / ')],
        ['after warmSocketFeedback()', warmed.toFixed(2), runs.warmed.map((x) => x.toFixed(2)).join(' / ')],
      ],
    ) +
    `\n\nwarmed / bare: ${(warmed / bare).toFixed(2)}x\n`,
);
