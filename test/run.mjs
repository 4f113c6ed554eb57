// `npm test`: every test file, in two phases on one machine. Most suites wait on sockets,
// timers and child processes, so four files run at a time; the few that measure the
// process itself or race the clock under load (memory under a flood while mail must still
// flow, the QUIT linger's reset-or-FIN timing, socket hand-over to a cluster, openssl s_client
// waiting for a TLS 1.3 ticket) run afterwards one at a time, so another suite's load cannot
// decide their outcome.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Suites that time or measure the process: run alone, after the rest. */
const ALONE = new Set(['backpressure', 'quit-linger', 'socket-activation', 'tls-terminator']);

const files = (dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => join(dir, f));
const all = [...files('test/unit'), ...files('test/fuzz'), ...files('test/integration')];
/** The longest suites (a minute or more here) start first, so the others fill in around them. */
const LONGEST = ['upgrade', 'tls-resumption-matrix', 'tls-restart', 'cli', 'install', 'balancing', 'state-redis', 'tools-report-memory', 'tools-report', 'check-as'];
const name = (f) => f.replace(/^.*\//, '').replace(/\.test\.ts$/, '');
const rank = (f) => (LONGEST.includes(name(f)) ? LONGEST.indexOf(name(f)) : LONGEST.length);
const alone = all.filter((f) => ALONE.has(name(f)));
const together = all.filter((f) => !alone.includes(f)).sort((a, b) => rank(a) - rank(b));

const run = (concurrency, list) =>
  spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...list], { stdio: 'inherit' }).status ?? 1;

const first = run(4, together);
const second = run(1, alone);
process.exit(first === 0 && second === 0 ? 0 : 1);
