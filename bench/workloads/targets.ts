// Turning medians into the target checks (one line per Postern variant).

import { ratio } from '../lib/stats.js';
import { fmtRatio } from '../lib/table.js';
import type { TargetCheck } from './types.js';

/** `postern / peer >= min` for each Postern variant that has a figure. */
export function ratioTargets(
  medians: Map<string, number>,
  posterns: readonly string[],
  peer: string,
  min: number,
  what: string,
): TargetCheck[] {
  return posterns.map((p) => {
    const r = ratio(medians.get(p) ?? Number.NaN, medians.get(peer) ?? Number.NaN);
    return {
      target: `${what}: ${p} ≥ ${min}× ${peer}`,
      actual: fmtRatio(r),
      met: Number.isFinite(r) ? r >= min : null,
    };
  });
}
