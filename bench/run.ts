// `npm run bench`: Postern against direct, HAProxy, nginx and the Node floor on loopback,
// workloads W1-W6 (issues 7 and 17). Every process it starts is stopped at the end, on error and on Ctrl-C.
// Environment: BENCH_QUICK=1, BENCH_ONLY=W1,W6, BENCH_CONTENDERS=..., BENCH_ROUNDS=3,
// BENCH_PER_CORE=0, BENCH_GEN_PROCS=N, BENCH_RESULTS=path (default bench/RESULTS.md). See bench/README.md.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCerts } from './lib/certs.js';
import { Fleet } from './lib/fleet.js';
import { GeneratorPool } from './lib/generators.js';
import type { LaunchContext } from './lib/instance.js';
import { describeMachine } from './lib/machine.js';
import { ROUTED, XCLIENT_FLOOR, WORKLOADS, readOptions, type Options, type WorkloadId } from './lib/options.js';
import { killAllSync, nofileHardLimit, stopAll } from './lib/procs.js';
import { resultsMarkdown, sectionMarkdown, settingsMarkdown, targetsMarkdown } from './lib/results.js';
import { startSink } from './lib/sink.js';
import { INSTALL_LINE, findTools, missingTools, toolVersions } from './lib/tools.js';
import { WORKLOAD_RUNNERS } from './workloads/index.js';
import { perCoreContenders, plainContenders, type BenchContext, type Section } from './workloads/types.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();

function log(message: string): void {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${t}s] ${message}\n`);
}

function installCleanup(): void {
  process.on('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      log(`${signal}: stopping every process the bench started`);
      killAllSync();
      process.exit(130);
    });
  }
  const fatal = (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllSync();
    process.exit(1);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}

/** A fresh scratch folder under .bench-scratch/ (git-ignored); older runs are removed. */
function scratchDir(): string {
  const root = path.join(REPO, '.bench-scratch');
  mkdirSync(root, { recursive: true });
  for (const name of readdirSync(root)) {
    if (name.startsWith('run-')) rmSync(path.join(root, name), { recursive: true, force: true });
  }
  const dir = path.join(root, `run-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function failedSection(id: WorkloadId, err: unknown): Section {
  const message = err instanceof Error ? err.message : String(err);
  return { id, title: `${id}: failed`, method: '', body: `The workload stopped with an error: ${message}`, raw: [], targets: [] };
}

function needs(o: Options) {
  const plainWorkloads = (['W1', 'W2', 'W6'] as const).filter((w) => o.only.has(w));
  return {
    plain: plainWorkloads.length > 0,
    perCore: plainWorkloads.some((w) => perCoreContenders(o, w).length > 0),
    routed: perCoreContenders(o, 'W1').includes(ROUTED),
    xclientFloor: perCoreContenders(o, 'W1').includes(XCLIENT_FLOOR),
    implicit: o.only.has('W3'),
    starttls: o.only.has('W4'),
  };
}

async function main(): Promise<number> {
  installCleanup();
  const opts = readOptions();
  const tools = findTools();
  const missing = missingTools(tools, opts.contenders);
  if (missing.length > 0) {
    process.stderr.write(
      `bench: missing ${missing.join(', ')}.\nInstall them with (Debian/Ubuntu, as root):\n  ${INSTALL_LINE}\n(or run bench/install.sh)\n`,
    );
    return 1;
  }
  if (!existsSync(path.join(REPO, 'dist', 'cli.js'))) {
    process.stderr.write('bench: dist/cli.js is missing: run `npm run build` (npm run bench does it first)\n');
    return 1;
  }
  if (opts.rounds < 3) log(`BENCH_ROUNDS=${opts.rounds}: fewer than 3 runs per figure, medians are not robust`);

  const dir = scratchDir();
  log(`scratch folder ${path.relative(REPO, dir)}; ${opts.quick ? 'QUICK mode' : 'full mode'}; ${opts.rounds} rounds; ${[...opts.only].join(',')}`);
  const certs = await makeCerts(tools.openssl, dir);
  const nofile = nofileHardLimit();
  const sink = await startSink(tools.smtpSink, dir, nofile);
  const launch: LaunchContext = { tools, dir, repo: REPO, certs, cores: opts.cores, nofile, sinkPort: sink.plain! };
  const need = needs(opts);
  const fleet = await Fleet.start(launch, sink, opts, need, log);
  let pool: GeneratorPool | null = null;
  const ctx: BenchContext = {
    opts,
    launch,
    certs,
    fleet,
    generators: async () => (pool ??= await GeneratorPool.start(opts.genProcs, dir)),
    log,
  };
  if (need.plain) await fleet.preflightPlain(tools.smtpSource, [...plainContenders(ctx), ...(need.perCore ? perCoreContenders(opts) : [])], log);

  const sections: Section[] = [];
  for (const id of WORKLOADS) {
    if (!opts.only.has(id)) continue;
    log(`${id}: start`);
    const t0 = Date.now();
    let section: Section;
    try {
      section = await WORKLOAD_RUNNERS[id](ctx);
    } catch (err) {
      section = failedSection(id, err);
    }
    section.seconds = (Date.now() - t0) / 1000;
    log(`${id}: done in ${section.seconds.toFixed(0)} s`);
    sections.push(section);
    process.stdout.write('\n' + sectionMarkdown(section) + '\n');
  }

  log('stopping contenders');
  if (pool) await (pool as GeneratorPool).close();
  await fleet.stop();
  await sink.stop();
  await stopAll();

  const elapsed = (Date.now() - started) / 1000;
  const machine = describeMachine(toolVersions(tools), REPO);
  const out = process.env.BENCH_RESULTS ? path.resolve(process.env.BENCH_RESULTS) : path.join(REPO, 'bench', 'RESULTS.md');
  const changesFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'CHANGES.md');
  const changes = existsSync(changesFile) ? readFileSync(changesFile, 'utf8') : null;
  writeFileSync(out, resultsMarkdown(machine, opts, elapsed, sections, new Date(), changes));
  const targets = targetsMarkdown(sections.flatMap((s) => s.targets));
  process.stdout.write(`\n${settingsMarkdown(opts, elapsed, sections)}\n\n${targets ? targets + '\n\n' : ''}Results written to ${path.relative(process.cwd(), out)}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAllSync();
    process.exit(1);
  },
);
