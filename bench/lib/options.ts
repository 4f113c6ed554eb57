// Run options from the environment, and the counts each workload uses (full and quick).

import os from 'node:os';

export const WORKLOADS = ['W1', 'W2', 'W3', 'W4', 'W5', 'W6'] as const;
export type WorkloadId = (typeof WORKLOADS)[number];

export const CONTENDERS = ['direct', 'haproxy', 'nginx', 'node-pipe', 'node-tls', 'postern-xclient', 'postern-none'] as const;
export type ContenderId = (typeof CONTENDERS)[number];

/**
 * Issue 24: `postern-xclient-1` again with a table of ROUTE_TABLE_SIZE routes (see
 * lib/postern.ts), in W1 only, so routing's cost is measured against none in the same run.
 */
export const ROUTED = 'postern-routes-1';
export const ROUTE_TABLE_SIZE = 20;

/**
 * Issue 26: the Node floor for what Postern does with `identity: xclient` (lib/node-xclient-server.ts),
 * one process, in W1 only, beside node-pipe-1: it splits Postern's distance from node-pipe
 * into what the protocol costs in Node and what Postern's own machinery costs.
 */
export const XCLIENT_FLOOR = 'node-xclient-1';

/** Workloads that get a per-core table (one process or one thread per contender) next to the all-cores one. */
export const PER_CORE_WORKLOADS: ReadonlySet<WorkloadId> = new Set<WorkloadId>(['W1', 'W2', 'W6']);

export interface Counts {
  /** W1: smtp-source -s, -m, -l. */
  w1: { sessions: number; messages: number; size: number };
  /** W2: smtp-source -s, -m, -l. */
  w2: { sessions: number; messages: number; size: number };
  /** W3/W4: warm-up and measured window per cell, in ms; connections in flight per generator process. */
  tlsWarmupMs: number;
  tlsWindowMs: number;
  /** W3/W4: one unmeasured pass over every cell before the measured rounds, this long per cell. */
  tlsWarmPassMs: number;
  tlsConcurrency: number;
  /** W5: idle connections held open. */
  idlePlain: number;
  idleTls: number;
  /** W6: sequential sessions. */
  latencySessions: number;
}

export interface Options {
  quick: boolean;
  rounds: number;
  only: Set<WorkloadId>;
  contenders: Set<ContenderId>;
  /** Per-core tables for PER_CORE_WORKLOADS (BENCH_PER_CORE=0 turns them off). */
  perCore: boolean;
  /** Load generator processes for W3, W4 and W5. */
  genProcs: number;
  cores: number;
  counts: Counts;
}

// Full counts are sized so that the whole run (W1-W6, every contender, per-core tables) stays
// under 15 minutes on 2 cores: see "Time budget" in bench/README.md before raising any.
const FULL: Counts = {
  w1: { sessions: 100, messages: 8_000, size: 1024 },
  w2: { sessions: 10, messages: 250, size: 1_048_576 },
  tlsWarmupMs: 400,
  tlsWindowMs: 1_500,
  tlsWarmPassMs: 1_000,
  tlsConcurrency: 64,
  idlePlain: 10_000,
  idleTls: 5_000,
  latencySessions: 500,
};

const QUICK: Counts = {
  w1: { sessions: 100, messages: 1_000, size: 1024 },
  w2: { sessions: 10, messages: 30, size: 1_048_576 },
  tlsWarmupMs: 200,
  tlsWindowMs: 500,
  tlsWarmPassMs: 300,
  tlsConcurrency: 64,
  idlePlain: 1_000,
  idleTls: 500,
  latencySessions: 100,
};

function list<T extends string>(raw: string | undefined, all: readonly T[], what: string): Set<T> {
  if (raw === undefined || raw.trim() === '') return new Set(all);
  const out = new Set<T>();
  for (const item of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
    const hit = all.find((a) => a.toLowerCase() === item.toLowerCase());
    if (!hit) throw new Error(`${what}: unknown "${item}" (one of ${all.join(', ')})`);
    out.add(hit);
  }
  return out;
}

function positiveInt(raw: string | undefined, fallback: number, what: string): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what}: expected a positive integer, got "${raw}"`);
  return n;
}

export function readOptions(env: NodeJS.ProcessEnv = process.env): Options {
  const quick = env.BENCH_QUICK === '1' || env.BENCH_QUICK === 'true';
  const cores = os.availableParallelism();
  return {
    quick,
    rounds: positiveInt(env.BENCH_ROUNDS, 3, 'BENCH_ROUNDS'),
    only: list(env.BENCH_ONLY, WORKLOADS, 'BENCH_ONLY'),
    contenders: list(env.BENCH_CONTENDERS, CONTENDERS, 'BENCH_CONTENDERS'),
    perCore: env.BENCH_PER_CORE !== '0' && env.BENCH_PER_CORE !== 'false',
    genProcs: positiveInt(env.BENCH_GEN_PROCS, Math.max(2, cores), 'BENCH_GEN_PROCS'),
    cores,
    counts: { ...(quick ? QUICK : FULL), ...(env.BENCH_CONCURRENCY ? { tlsConcurrency: positiveInt(env.BENCH_CONCURRENCY, 16, 'BENCH_CONCURRENCY') } : {}) },
  };
}
