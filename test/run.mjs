// `npm test`: the build and every test file, scheduled on one machine. Most suites wait on
// sockets, timers and child processes, so four files run at a time, the longest first; the
// suites that need the built CLI (dist/) start once the build is done, the others start at
// once, beside the build. The few suites that measure the process itself or race the clock
// under load (memory under a flood while mail must still flow, the QUIT linger's reset-or-FIN
// timing, socket hand-over to a cluster, openssl s_client waiting for a TLS 1.3 ticket) run
// afterwards one at a time, so another suite's load cannot decide their outcome.
// Each file's output is printed whole when it ends (no interleaving), then a summary with the
// slowest files, so the next change to this schedule can start from measurements.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const CONCURRENCY = 4;
/** A file still running after this is killed and counted as failed: CI never hangs. */
const FILE_TIMEOUT_MS = 10 * 60_000;
/** Suites that time or measure the process: run alone, after the rest. */
const ALONE = new Set(['backpressure', 'quit-linger', 'socket-activation', 'tls-terminator']);
/** The longest suites (a minute or more here) start first, so the others fill in around them. */
const LONGEST = ['tls-resumption-matrix', 'upgrade', 'tls-restart', 'anomaly-precision', 'cli', 'install', 'balancing', 'state-redis', 'tools-report-memory', 'tools-report', 'check-as'];

const files = (dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => join(dir, f));
/** `node test/run.mjs FILE...` runs just those (same schedule); no arguments: every file. */
const all = process.argv.length > 2 ? process.argv.slice(2) : [...files('test/unit'), ...files('test/fuzz'), ...files('test/integration')];
const name = (f) => f.replace(/^.*\//, '').replace(/\.test\.ts$/, '');
const rank = (f) => (LONGEST.includes(name(f)) ? LONGEST.indexOf(name(f)) : LONGEST.length);
/** Runs the built CLI (dist/cli.js), itself or through the process helpers. */
const BUILD_USERS = new Set(all.filter((f) => /\bCLI\b|['"`]dist['"`/]|dist\/cli|postern-process|postern-group/.test(readFileSync(f, 'utf8'))));
const needsBuild = (f) => BUILD_USERS.has(f);
const alone = all.filter((f) => ALONE.has(name(f)));
const together = all.filter((f) => !alone.includes(f)).sort((a, b) => rank(a) - rank(b));

const t0 = Date.now();
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const results = [];

/**
 * CPU seconds of the children this process has reaped so far (cutime + cstime in
 * /proc/self/stat, which include their own reaped descendants). Read at each child's exit,
 * the growth since the last read is that child's CPU: what `npm test` spends where.
 */
function reapedCpu() {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) / 100; // fields 16 and 17; USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}
let lastCpu = reapedCpu();

/** Runs a child to its end; its output as one string. */
function runChild(args, timeoutMs) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => {
      out += `\n✖ killed after ${secs(timeoutMs)} (test/run.mjs FILE_TIMEOUT_MS)\n`;
      child.kill('SIGKILL');
    }, timeoutMs);
    let cpu = 0;
    child.on('exit', () => {
      const now = reapedCpu();
      cpu = now - lastCpu;
      lastCpu = now;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 1, signal, out, ms: Date.now() - started, cpu });
    });
  });
}

const count = (out, key) => [...out.matchAll(new RegExp(`^ℹ ${key} (\\d+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);

async function runFile(f) {
  const r = await runChild(['--import', 'tsx', '--test', '--test-reporter=spec', f], FILE_TIMEOUT_MS);
  const res = { file: f, ok: r.code === 0, ms: r.ms, cpu: r.cpu, tests: count(r.out, 'tests'), pass: count(r.out, 'pass'), fail: count(r.out, 'fail'), skipped: count(r.out, 'skipped'), cancelled: count(r.out, 'cancelled') };
  results.push(res);
  process.stdout.write(`\n━━ ${f} ${res.ok ? 'ok' : 'FAILED'} (${secs(r.ms)}, ${res.pass}/${res.tests} passed) ━━\n${r.out}`);
}

// The build runs beside the suites that do not need it.
process.stdout.write(`npm test: building (tsc), and ${together.length + alone.length} test files, ${CONCURRENCY} at a time\n`);
let built = null;
const build = runChild([join('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], FILE_TIMEOUT_MS).then((r) => {
  built = r.code === 0;
  process.stdout.write(`\n━━ build (tsc) ${built ? 'ok' : 'FAILED'} (${secs(r.ms)}) ━━\n${r.out}`);
});

/** Runs `list` with `n` slots; a file that needs the build waits for it. */
async function schedule(list, n) {
  const queue = [...list];
  const slot = async () => {
    for (;;) {
      const i = queue.findIndex((f) => built !== null || !needsBuild(f));
      if (i === -1 && queue.length > 0) {
        // Only files that need the build are left: wait for it, then look again (another
        // slot may have taken them meanwhile).
        await build;
        continue;
      }
      if (i === -1) return;
      const [f] = queue.splice(i, 1);
      if (needsBuild(f) && built === false) {
        results.push({ file: f, ok: false, ms: 0, cpu: 0, tests: 0, pass: 0, fail: 0, skipped: 0, cancelled: 0, notRun: true });
        continue;
      }
      await runFile(f);
    }
  };
  await Promise.all(Array.from({ length: n }, slot));
}

await schedule(together, CONCURRENCY);
await build;
await schedule(alone, 1);

const sum = (k) => results.reduce((a, r) => a + r[k], 0);
const failed = results.filter((r) => !r.ok);
const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 12);
const busiest = [...results].sort((a, b) => b.cpu - a.cpu).slice(0, 12);
process.stdout.write(
  `\n━━ summary ━━\n` +
    `files ${results.length}, tests ${sum('tests')}, pass ${sum('pass')}, fail ${sum('fail')}, skipped ${sum('skipped')}, cancelled ${sum('cancelled')}\n` +
    `build ${built ? 'ok' : 'FAILED'}; wall time ${secs(Date.now() - t0)}\n` +
    `slowest files: ${slowest.map((r) => `${name(r.file)} ${secs(r.ms)}`).join(', ')}\n` +
    `most CPU (user + system, the file and what it started): ${busiest.map((r) => `${name(r.file)} ${r.cpu.toFixed(1)} s`).join(', ')}; all files ${sum('cpu').toFixed(1)} s\n` +
    (failed.length ? `FAILED: ${failed.map((r) => `${r.file}${r.notRun ? ' (not run: the build failed)' : ''}`).join(', ')}\n` : ''),
);
process.exit(built && failed.length === 0 ? 0 : 1);
