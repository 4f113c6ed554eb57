// What a workload gets and what it hands back.

import type { Certs } from '../lib/certs.js';
import type { Fleet } from '../lib/fleet.js';
import type { GeneratorPool } from '../lib/generators.js';
import type { LaunchContext } from '../lib/instance.js';
import { CONTENDERS, PER_CORE_WORKLOADS, ROUTED, XCLIENT_FLOOR, type ContenderId, type Options, type WorkloadId } from '../lib/options.js';

export interface BenchContext {
  opts: Options;
  launch: LaunchContext;
  certs: Certs;
  fleet: Fleet;
  /** Started on first use (W3-W6). */
  generators(): Promise<GeneratorPool>;
  log(message: string): void;
}

export interface TargetCheck {
  /** The issue that set it (7: the first round, 17: speed per core). */
  issue: number;
  target: string;
  actual: string;
  /** null: could not be measured. */
  met: boolean | null;
}

export interface Section {
  id: WorkloadId;
  title: string;
  /** What is measured and how, one paragraph. */
  method: string;
  /** Markdown: tables and notes. */
  body: string;
  /** Every run's figure, for the appendix. */
  raw: string[];
  targets: TargetCheck[];
  /** Wall time the workload took (set by run.ts), for the time budget. */
  seconds?: number;
}

export type Workload = (ctx: BenchContext) => Promise<Section>;

/** Contenders that relay plain SMTP (W1, W2, W6); node-tls only terminates TLS (W3). */
const PLAIN: readonly ContenderId[] = CONTENDERS.filter((c) => c !== 'node-tls');

/** The all-cores plain contenders in table order, filtered by BENCH_CONTENDERS. */
export function plainContenders(ctx: BenchContext): ContenderId[] {
  return PLAIN.filter((c) => c === 'direct' || ctx.opts.contenders.has(c));
}

/**
 * Per-core twins (issue 17): Postern with `workers: 1`, HAProxy with `nbthread 1`, nginx with
 * `worker_processes 1`, node-pipe as one process. Selected with their all-cores contender.
 */
export const PER_CORE = {
  haproxy: 'haproxy-1',
  nginx: 'nginx-1',
  'node-pipe': 'node-pipe-1',
  'postern-xclient': 'postern-xclient-1',
} as const satisfies Partial<Record<ContenderId, string>>;

export type PerCoreId = (typeof PER_CORE)[keyof typeof PER_CORE] | typeof ROUTED | typeof XCLIENT_FLOOR;

/** Per-core contenders in table order, or none (BENCH_PER_CORE=0, or a workload without a per-core table). */
export function perCoreContenders(opts: Options, workload?: WorkloadId): PerCoreId[] {
  if (!opts.perCore || (workload !== undefined && !PER_CORE_WORKLOADS.has(workload))) return [];
  const list: PerCoreId[] = (Object.keys(PER_CORE) as (keyof typeof PER_CORE)[]).filter((c) => opts.contenders.has(c)).map((c) => PER_CORE[c]);
  // W1's table, and every per-core contender of a run that has W1 (its preflight).
  const w1 = workload === 'W1' || (workload === undefined && opts.only.has('W1'));
  if (w1 && opts.contenders.has('postern-xclient')) list.push(ROUTED);
  // The protocol's floor in W1 and W6: its extra round trips (XCLIENT, EHLO) are in W6's latency too.
  const w6 = workload === 'W6' || (workload === undefined && opts.only.has('W6'));
  if ((w1 || w6) && opts.contenders.has('node-pipe')) list.push(XCLIENT_FLOOR);
  return list;
}

export const POSTERNS = ['postern-xclient', 'postern-none'] as const;
