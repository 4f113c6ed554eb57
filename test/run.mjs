// `npm test`: the build and every test file, scheduled on one machine. Most suites wait on
// sockets, timers and child processes, so several files run at a time, the longest first: three,
// and more while the cores have room (see schedule()); the unit files share one process (see
// test/batch.mjs); the suites that need the built CLI (dist/) start once the build is done, the
// others start at once, beside the build. The few suites that measure the process itself or race
// the clock under load (memory under a flood while mail must still flow, the QUIT linger's
// reset-or-FIN timing, socket hand-over to a cluster, openssl s_client waiting for a TLS 1.3
// ticket) run two at a time beside the others, which run niced so that their load cannot
// decide these suites' outcome.
// Each file's output is printed whole when it ends (no interleaving), then a summary with the
// slowest files, so the next change to this schedule can start from measurements.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';

/**
 * Files at a time: at least MIN_AT_ONCE, up to MAX_AT_ONCE while the cores have room (see schedule()).
 * Wider costs more than it gains: the same suites used 20 % more CPU in all at up to twelve files
 * at once (a budget of measured CPU shares), and 5 % more with a third lane that started the
 * suites that mostly wait from the start (up to ten at once): 348 s against 333 s.
 */
const MIN_AT_ONCE = 3;
const MAX_AT_ONCE = 6;
/** A second at least this idle (all cores) lets one more file start. */
const IDLE_TO_ADD = 0.3;
/** A file still running after this is killed and counted as failed: CI never hangs. */
const FILE_TIMEOUT_MS = 10 * 60_000;
/**
 * Suites that time or measure the process: two at a time, the longest first, at a higher
 * priority than the rest (they are light on CPU and wait on timers; the heavy suites' load is
 * what disturbed them).
 */
const ALONE_ORDER = ['tls-terminator', 'backpressure', 'quit-linger', 'socket-activation'];
const ALONE = new Set(ALONE_ORDER);
/**
 * Seconds each longer file took in a full run on the 2-core machine (idle files included: a
 * file that waits on timers for half a minute must start early too). Files start longest first,
 * so the short ones fill in around them at the end; unlisted files count as short.
 */
const TYPICAL_S = {
  'tls-resumption-matrix': 113, upgrade: 104, 'tls-restart': 82, 'anomaly-precision': 64, balancing: 50, 'tools-report': 53,
  install: 46, 'state-redis': 43, 'tools-report-memory': 41, cli: 38, 'session-end': 36, 'auth-submission': 25, 'postfix-harness': 25,
  screen: 24, 'tls-acme': 21, 'postfix-interop': 19, 'auth-cluster': 18, routing: 39, 'tls-cert-watch': 16, 'run-as': 16,
  'check-as': 15, 'backend-starttls': 15, 'client-corpus': 15, 'screen-corpus': 14, 'screen-postscreen': 35, 'cluster-health': 13,
  'fault-matrix': 13, 'proxy-interop': 13, cluster: 12, 'greeted-pool': 12,
};

const files = (dir) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => join(dir, f));
/** `node test/run.mjs FILE...` runs just those (same schedule); no arguments: every file. */
const all = process.argv.length > 2 ? process.argv.slice(2) : [...files('test/unit'), ...files('test/fuzz'), ...files('test/integration')];
const name = (f) => f.replace(/^.*\//, '').replace(/\.test\.ts$/, '');
const typical = (f) => (batches.has(f) ? batches.get(f).typical : (TYPICAL_S[name(f)] ?? 0));
/** Runs the built CLI (dist/cli.js), itself or through the process helpers. */
const BUILD_USERS = new Set(all.filter((f) => /\bCLI\b|['"`]dist['"`/]|dist\/cli|postern-process|postern-group/.test(readFileSync(f, 'utf8'))));
const needsBuild = (f) => BUILD_USERS.has(f);
const alone = all.filter((f) => ALONE.has(name(f))).sort((a, b) => ALONE_ORDER.indexOf(name(a)) - ALONE_ORDER.indexOf(name(b)));
/**
 * Unit and fuzz files that neither need the build nor take long run in one process (test/batch.mjs):
 * starting Node and tsx once per file cost about 70 CPU-seconds of the suite's 14 minutes.
 */
const unitBatch = all.filter((f) => !f.startsWith('test/integration/') && !needsBuild(f) && !ALONE.has(name(f)) && (TYPICAL_S[name(f)] ?? 0) < 20);
/**
 * Integration files that run in process, each a few seconds and one CPU-second or two, most of
 * it start-up: together they took 6 CPU-seconds where one process each took 35-55.
 */
const LIGHT_INTEGRATION = new Set([
  'proxy-in', 'auth-http', 'state-redis-tls-sessions', 'tls-backend', 'tls-session-cache', 'state-redis-counts', 'observe-status-server',
  'strict-input', 'backend-protocol', 'stop-arrivals', 'backend-attempts', 'half-close', 'auth-known-address', 'mail-hold', 'auth-line-length',
  'defaults', 'auth-authzid', 'limits', 'anomalies', 'tls-handshake-timeout', 'relay', 'observe-status', 'proxy-inbound', 'bind-early',
]);
const integrationBatch = all.filter((f) => f.startsWith('test/integration/') && LIGHT_INTEGRATION.has(name(f)) && !needsBuild(f));
/** Batch label -> its files and typical seconds; a batch of one file runs as that file. */
const batches = new Map(
  [
    [`${unitBatch.length} unit files in one process`, { files: unitBatch, typical: 30 }],
    [`${integrationBatch.length} light integration files in one process`, { files: integrationBatch, typical: 40 }],
  ].filter(([, b]) => b.files.length > 1),
);
const batched = new Set([...batches.values()].flatMap((b) => b.files));
const together = [...batches.keys(), ...all.filter((f) => !alone.includes(f) && !batched.has(f))].sort((a, b) => typical(b) - typical(a));

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

/** Runs a child (node with `args`, or `command`) to its end; its output as one string. */
function runChild(args, timeoutMs, niceness = 0, command = process.execPath) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // Set before the child has started anything: what it spawns inherits it.
    if (niceness !== 0) {
      try {
        setPriority(child.pid, niceness);
      } catch {
        /* not permitted: runs at the default priority */
      }
    }
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

async function runFile(f, niceness) {
  const batch = batches.get(f);
  // --test-force-exit: a file whose tests are over ends, even if a failed `before` left a server
  // open (once, a failed Postfix start left two sinks listening and the file ran into the timeout).
  const args = ['--import', 'tsx', '--test-reporter=spec', '--test-force-exit', ...(batch ? [join('test', 'batch.mjs'), ...batch.files] : [f])];
  const at = Date.now() - t0;
  const r = await runChild(args, FILE_TIMEOUT_MS, niceness);
  const res = { file: f, files: batch ? batch.files.length : 1, ok: r.code === 0, ms: r.ms, cpu: r.cpu, tests: count(r.out, 'tests'), pass: count(r.out, 'pass'), fail: count(r.out, 'fail'), skipped: count(r.out, 'skipped'), cancelled: count(r.out, 'cancelled') };
  // The spec reporter ends with the failures' details; the summary repeats them, as CI keeps only the tail of a run.
  if (!res.ok) res.failures = (r.out.split(/^✖ failing tests:$/m)[1] ?? r.out.slice(-3000)).split('\n').filter((l) => !/\(?node:(internal|async_hooks)/.test(l)).slice(0, 60).join('\n');
  results.push(res);
  process.stdout.write(`\n━━ ${f} ${res.ok ? 'ok' : 'FAILED'} (${secs(r.ms)} from +${secs(at)}, ${r.cpu.toFixed(1)} s CPU, ${res.pass}/${res.tests} passed) ━━\n${r.out}`);
}

// The build, as `npm run build` makes it (the type check, then the bundle), runs beside the
// suites that do not need it. Starting the CLI suites at once after the bundle, with the type
// check beside them, was tried: eight processes at once on two cores cost 5 % more CPU and
// ended later (367 s against 341 s).
process.stdout.write(`npm test: building (npm run build: tsc type check, esbuild bundle), and ${together.length + alone.length} test files, ${MIN_AT_ONCE} to ${MAX_AT_ONCE} at a time as the cores allow\n`);
let built = null;
const build = runChild(['run', '--silent', 'build'], FILE_TIMEOUT_MS, 0, 'npm').then((r) => {
  built = r.code === 0;
  process.stdout.write(`\n━━ build (npm run build) ${built ? 'ok' : 'FAILED'} (${secs(r.ms)}) ━━\n${r.out}`);
});

/** The most files that ran at once (both schedules). */
let peak = 0;
let runningAll = 0;
/**
 * A meter of the machine's idle share since its last reading (/proc/stat's first line: idle +
 * iowait over all), one per schedule. Most suites wait on sockets and timers, some spin real
 * servers: a fixed number at a time left the cores idle half the run, or overloaded them.
 */
function idleMeter() {
  let last = null;
  return () => {
    try {
      const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
      const now = { idle: f[3] + f[4], total: f.reduce((a, b) => a + b, 0) };
      const prev = last;
      last = now;
      if (!prev || now.total === prev.total) return 0;
      return (now.idle - prev.idle) / (now.total - prev.total);
    } catch {
      return 0;
    }
  };
}

/**
 * Runs `list`: `min` files at a time, and one more (up to `max`) each second the cores were
 * at least IDLE_TO_ADD idle. A file that needs the build waits for it.
 */
function schedule(list, min, max, niceness, boostOnBuild = 0) {
  const queue = [...list];
  let running = 0;
  let lastAdd = 0;
  const idleShare = idleMeter();
  return new Promise((resolve) => {
    const next = () => {
      const i = queue.findIndex((f) => built !== null || !needsBuild(f));
      if (i === -1) return null;
      return queue.splice(i, 1)[0];
    };
    const start = (f) => {
      running++;
      peak = Math.max(peak, ++runningAll);
      lastAdd = Date.now();
      const done = () => {
        running--;
        runningAll--;
        tick();
      };
      if (needsBuild(f) && built === false) {
        results.push({ file: f, files: 1, ok: false, ms: 0, cpu: 0, tests: 0, pass: 0, fail: 0, skipped: 0, cancelled: 0, notRun: true });
        queueMicrotask(done);
      } else void runFile(f, niceness).then(done);
    };
    let timer = null;
    const tick = () => {
      let f;
      while (running < min && (f = next())) start(f);
      if (running < max && Date.now() - lastAdd >= 1000) {
        if (idleShare() >= IDLE_TO_ADD && (f = next())) start(f);
      }
      if (queue.length === 0 && running === 0) {
        clearInterval(timer);
        resolve();
      }
    };
    timer = setInterval(tick, 1000);
    // The longest suites need the build: when it is done, the two longest start at once rather
    // than wait for a slot that shorter suites took meanwhile.
    void build.then(() => {
      for (let k = 0; k < boostOnBuild; k++) {
        const f = next();
        if (f) start(f);
      }
      tick();
    });
    idleShare();
    tick();
  });
}

// The timing suites run from the start, beside the rest, at the default priority; the rest
// yield the CPU to them (nice 10, about a tenth of a core's share against one at 0).
await Promise.all([schedule(together, MIN_AT_ONCE, MAX_AT_ONCE, 10, 2), schedule(alone, 2, 2, 0)]);
await build;

const sum = (k) => results.reduce((a, r) => a + r[k], 0);
const failed = results.filter((r) => !r.ok);
const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 12);
const busiest = [...results].sort((a, b) => b.cpu - a.cpu).slice(0, 12);
process.stdout.write(
  `\n━━ summary ━━\n` +
    `files ${sum('files')}, tests ${sum('tests')}, pass ${sum('pass')}, fail ${sum('fail')}, skipped ${sum('skipped')}, cancelled ${sum('cancelled')}\n` +
    `build ${built ? 'ok' : 'FAILED'}; wall time ${secs(Date.now() - t0)}; up to ${peak} files at a time\n` +
    `slowest files: ${slowest.map((r) => `${name(r.file)} ${secs(r.ms)}`).join(', ')}\n` +
    `most CPU (user + system, the file and what it started): ${busiest.map((r) => `${name(r.file)} ${r.cpu.toFixed(1)} s`).join(', ')}; all files ${sum('cpu').toFixed(1)} s\n` +
    failed.map((r) => (r.failures ? `\n━━ failures in ${r.file} (first lines) ━━\n${r.failures.trim()}\n` : '')).join('') +
    (failed.length ? `FAILED: ${failed.map((r) => `${r.file}${r.notRun ? ' (not run: the build failed)' : ''}`).join(', ')}\n` : ''),
);
process.exit(built && failed.length === 0 ? 0 : 1);
