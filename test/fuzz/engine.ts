// Runs the targets for a budget of executions or time: each turn, a batch of mutated inputs per
// target (seeded from the unit tests' inputs, growing with inputs that gave a new outcome) and a
// batch of fast-check runs of its generated properties. Everything derives from one seed, so a
// failure is replayed from what it prints.
import fc from 'fast-check';
import { seedsFrom } from './corpus.js';
import { byteMutator } from './mutate.js';
import { deriveSeed, Rng } from './rng.js';
import { generatedChecks, TARGETS, type GeneratedCheck, type Target } from './targets.js';

export interface RunOptions {
  seed: number;
  /** Stop after about this many executions in all. */
  runs?: number;
  /** Stop after this long (ms). */
  timeMs?: number;
  /** Only these targets (names). */
  targets?: readonly string[];
  /** An input that takes longer than this (ms) is a finding (quadratic work, near-hangs). */
  slowMs?: number;
  /** Told each input before it runs (the CLI's hang watchdog keeps the last one). */
  onInput?: (target: number, input: Buffer, execSeed: number) => void;
  log?: (line: string) => void;
}

export interface TargetStats {
  name: string;
  mutated: number;
  generated: number;
  pool: number;
  outcomes: number;
}

export interface Failure {
  target: string;
  message: string;
  stack?: string;
  /** How to run exactly this case again. */
  replay: string;
  input?: string;
}

export interface RunResult {
  seed: number;
  executions: number;
  ms: number;
  stats: TargetStats[];
  failure: Failure | null;
}

const MUTATED_PER_TURN = 250;
const GENERATED_PER_TURN = 40;
const MAX_POOL = 2000;

interface State {
  target: Target;
  /** How many pool entries are seeds (run once as they are before any mutation). */
  seeds: number;
  generated: GeneratedCheck[];
  pool: Buffer[];
  outcomes: Set<string>;
  mutate: (b: Buffer, others: readonly Buffer[], rng: Rng) => Buffer;
  stats: TargetStats;
}

function initState(t: Target): State {
  const pool = [Buffer.alloc(0), ...seedsFrom(t.seedFiles), ...(t.seeds?.() ?? [])].filter((b) => b.length <= t.maxLength);
  const m = byteMutator(
    t.dictionary.map((d) => (typeof d === 'string' ? Buffer.from(d, 'latin1') : d)),
    t.maxLength,
  );
  return { target: t, seeds: pool.length, generated: generatedChecks(t), pool, outcomes: new Set(), mutate: m.mutate, stats: { name: t.name, mutated: 0, generated: 0, pool: pool.length, outcomes: 0 } };
}

export const execSeed = (seed: number, target: string, i: number): number => deriveSeed(seed, target, i, 'exec');

/** The input of iteration `i` of a target's mutation loop (the first pool entries are run as they are). */
function nextInput(s: State, seed: number, i: number): Buffer {
  if (i < s.seeds) return s.pool[i]!;
  const rng = new Rng(deriveSeed(seed, s.target.name, i));
  return s.mutate(rng.pick(s.pool), s.pool, rng);
}

function describeError(e: unknown): { message: string; stack?: string } {
  if (e instanceof Error) return { message: `${e.name}: ${e.message}`, stack: e.stack };
  return { message: String(e) };
}

export function fuzz(opts: RunOptions): RunResult {
  const started = Date.now();
  const budget = opts.runs ?? Infinity;
  const chosen = opts.targets?.length ? TARGETS.filter((t) => opts.targets!.includes(t.name)) : TARGETS;
  if (chosen.length === 0) throw new Error(`no such target: ${opts.targets?.join(', ')}`);
  const states = chosen.map(initState);
  // The time budget is for inputs: it starts once the seed corpus is ready (on a loaded machine
  // that can take longer than the whole budget, and the slice once ran no input at all), and it
  // ends a run only once at least as many inputs as targets have run.
  const deadline = opts.timeMs === undefined ? Infinity : Date.now() + opts.timeMs;
  let executions = 0;
  const done = () => executions >= budget || (executions >= states.length && Date.now() >= deadline);
  const result = (failure: Failure | null): RunResult => ({
    seed: opts.seed,
    executions,
    ms: Date.now() - started,
    stats: states.map((s) => ({ ...s.stats, pool: s.pool.length, outcomes: s.outcomes.size })),
    failure,
  });

  for (let turn = 0; !done(); turn++) {
    for (const s of states) {
      const t = s.target;
      // Mutated inputs.
      for (let k = 0; k < MUTATED_PER_TURN && !done(); k++) {
        const i = s.stats.mutated;
        const input = nextInput(s, opts.seed, i);
        const es = execSeed(opts.seed, t.name, i);
        opts.onInput?.(TARGETS.indexOf(t), input, es);
        const t0 = Date.now();
        let outcome: string;
        try {
          outcome = t.exec(input, new Rng(es));
        } catch (e) {
          return result({
            target: t.name,
            ...describeError(e),
            input: input.toString('hex'),
            replay: `npm run fuzz -- --target ${t.name} --input ${input.toString('hex')} --exec-seed ${es}`,
          });
        }
        const ms = Date.now() - t0;
        if (opts.slowMs !== undefined && ms > opts.slowMs) {
          return result({
            target: t.name,
            message: `slow input: ${ms} ms for ${input.length} bytes`,
            input: input.toString('hex'),
            replay: `npm run fuzz -- --target ${t.name} --input ${input.toString('hex')} --exec-seed ${es}`,
          });
        }
        s.stats.mutated++;
        executions++;
        if (!s.outcomes.has(outcome)) {
          s.outcomes.add(outcome);
          if (s.pool.length < MAX_POOL) s.pool.push(input);
          else s.pool[new Rng(deriveSeed(opts.seed, t.name, i, 'evict')).below(MAX_POOL)] = input;
        }
      }
      // Generated inputs (fast-check).
      for (const g of s.generated) {
        if (done()) break;
        const fcSeed = deriveSeed(opts.seed, t.name, g.name, turn) | 0;
        const numRuns = Math.max(1, Math.min(GENERATED_PER_TURN, budget - executions));
        const d = fc.check(g.property, { seed: fcSeed, numRuns });
        executions += d.numRuns;
        s.stats.generated += d.numRuns;
        if (d.failed) {
          const err = describeError(d.errorInstance);
          return result({
            target: t.name,
            message: `${g.name}: ${err.message}\ncounterexample: ${fc.stringify(d.counterexample)}`,
            stack: err.stack,
            replay: `npm run fuzz -- --target ${t.name} --property "${g.name}" --fc-seed ${d.seed} --fc-path ${d.counterexamplePath ?? ''}`,
          });
        }
      }
    }
    opts.log?.(`turn ${turn + 1}: ${executions} executions, ${Math.round((Date.now() - started) / 1000)} s`);
  }
  return result(null);
}

/** Runs one input through one target again (what a failure's replay line does). */
export function replayInput(target: string, input: Buffer, execSeedValue: number): string {
  const t = TARGETS.find((x) => x.name === target);
  if (!t) throw new Error(`no such target: ${target}`);
  return t.exec(input, new Rng(execSeedValue));
}

/** Runs one generated property at a fast-check seed and path again. */
export function replayProperty(target: string, property: string, seed: number, path: string): fc.RunDetails<unknown> {
  const t = TARGETS.find((x) => x.name === target);
  const g = t ? generatedChecks(t).find((p) => p.name === property) : undefined;
  if (!g) throw new Error(`no property "${property}" in target ${target}`);
  return fc.check(g.property, { seed, path: path || undefined, numRuns: 1 });
}

export const targetNames = (): string[] => TARGETS.map((t) => t.name);
