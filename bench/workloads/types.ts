// What a workload gets and what it hands back.

import type { Certs } from '../lib/certs.js';
import type { Fleet } from '../lib/fleet.js';
import type { GeneratorPool } from '../lib/generators.js';
import type { LaunchContext } from '../lib/instance.js';
import { CONTENDERS, type ContenderId, type Options, type WorkloadId } from '../lib/options.js';

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
}

export type Workload = (ctx: BenchContext) => Promise<Section>;

/** The plain contenders in table order, filtered by BENCH_CONTENDERS. */
export function plainContenders(ctx: BenchContext): ContenderId[] {
  return CONTENDERS.filter((c) => c === 'direct' || ctx.opts.contenders.has(c));
}

export const POSTERNS = ['postern-xclient', 'postern-none'] as const;
