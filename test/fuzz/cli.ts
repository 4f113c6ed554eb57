// `npm run fuzz -- [--time 10m | --runs N] [--seed N] [--target a,b]`: a bounded fuzzing run
// of the SMTP and PROXY protocol code. The run happens in a worker thread watched from here,
// so an input that hangs the code is caught and printed too. Replay a finding with the line it
// prints: `--target T --input HEX --exec-seed N`, or `--target T --property NAME --fc-seed N --fc-path P`.
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { replayInput, replayProperty, targetNames, type RunResult } from './engine.js';
import { HEADER_INTS, SAB_BYTES } from './shared.js';

const { values } = parseArgs({
  options: {
    time: { type: 'string' },
    runs: { type: 'string' },
    seed: { type: 'string' },
    target: { type: 'string' },
    input: { type: 'string' },
    'exec-seed': { type: 'string' },
    property: { type: 'string' },
    'fc-seed': { type: 'string' },
    'fc-path': { type: 'string' },
    'hang-after': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

const USAGE = `npm run fuzz -- [options]
  --time DURATION     stop after this long (e.g. 30s, 10m, 2h; default 60s unless --runs)
  --runs N            stop after about N executions
  --seed N            run seed (default: random, printed)
  --target a,b        only these targets (${targetNames().join(', ')})
  --hang-after SECS   an input running longer than this is a hang (default 10)
Replay:  --target T --input HEX --exec-seed N
         --target T --property NAME --fc-seed N [--fc-path P]
`;

function duration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text);
  if (!m) throw new Error(`bad duration ${text}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
}

function main(): Promise<number> | number {
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.input !== undefined) {
    const outcome = replayInput(values.target ?? '', Buffer.from(values.input, 'hex'), Number(values['exec-seed'] ?? 0));
    process.stdout.write(`passed (outcome ${outcome})\n`);
    return 0;
  }
  if (values.property !== undefined) {
    const d = replayProperty(values.target ?? '', values.property, Number(values['fc-seed'] ?? 0), values['fc-path'] ?? '');
    if (d.failed) throw d.errorInstance instanceof Error ? d.errorInstance : new Error(String(d.errorInstance));
    process.stdout.write('passed\n');
    return 0;
  }
  const seed = values.seed !== undefined ? Number(values.seed) >>> 0 : (Math.random() * 0x1_0000_0000) >>> 0;
  const runs = values.runs !== undefined ? Number(values.runs) : undefined;
  const timeMs = values.time !== undefined ? duration(values.time) : runs === undefined ? 60_000 : undefined;
  const targets = values.target?.split(',').filter(Boolean);
  const hangMs = duration(values['hang-after'] ?? '10') ;
  process.stdout.write(`fuzz: seed ${seed}${timeMs !== undefined ? `, ${timeMs / 1000} s` : ''}${runs !== undefined ? `, ${runs} runs` : ''}, targets ${(targets ?? targetNames()).join(' ')}\n`);

  const sab = new SharedArrayBuffer(SAB_BYTES);
  const header = new Int32Array(sab, 0, HEADER_INTS);
  const worker = new Worker(new URL('./worker-boot.mjs', import.meta.url), { workerData: { seed, runs, timeMs, targets, sab } });
  return new Promise<number>((resolve) => {
    let last = -1;
    let stillSince = Date.now();
    const watchdog = setInterval(() => {
      const beat = Atomics.load(header, 0);
      if (beat !== last) {
        last = beat;
        stillSince = Date.now();
        return;
      }
      if (Date.now() - stillSince < hangMs) return;
      clearInterval(watchdog);
      const target = targetNames()[Atomics.load(header, 1)] ?? '?';
      const len = Atomics.load(header, 2);
      const input = Buffer.from(new Uint8Array(sab, HEADER_INTS * 4, len)).toString('hex');
      process.stdout.write(`HANG: target ${target} ran one input for over ${hangMs / 1000} s\ninput ${input}\nreplay: npm run fuzz -- --target ${target} --input ${input} --exec-seed ${Atomics.load(header, 3) >>> 0}\n`);
      void worker.terminate().then(() => resolve(1));
    }, 500);
    worker.on('message', (m: { log?: string; result?: RunResult }) => {
      if (m.log) process.stdout.write(`${m.log}\n`);
      if (!m.result) return;
      clearInterval(watchdog);
      const r = m.result;
      for (const s of r.stats) process.stdout.write(`  ${s.name.padEnd(9)} ${String(s.mutated).padStart(9)} mutated ${String(s.generated).padStart(8)} generated   pool ${s.pool}, outcomes ${s.outcomes}\n`);
      process.stdout.write(`fuzz: ${r.executions} executions in ${(r.ms / 1000).toFixed(1)} s, seed ${r.seed}\n`);
      if (r.failure) {
        process.stdout.write(`FAILURE in ${r.failure.target}: ${r.failure.message}\n${r.failure.stack ?? ''}\n${r.failure.input ? `input ${r.failure.input}\n` : ''}replay: ${r.failure.replay}\n`);
        resolve(1);
      } else resolve(0);
    });
    worker.on('error', (err) => {
      clearInterval(watchdog);
      process.stdout.write(`fuzz worker failed: ${err.stack ?? err.message}\n`);
      resolve(1);
    });
  });
}

process.exitCode = await main();
