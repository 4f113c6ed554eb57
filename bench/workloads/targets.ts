// Turning medians into the issues' target checks.

import { ratio } from '../lib/stats.js';
import { fmtRatio } from '../lib/table.js';
import type { TargetCheck } from './types.js';

/** `a / b >= min` (or `<= max` when `atMost`), from the two medians. */
export function ratioTarget(
  issue: number,
  what: string,
  medians: Map<string, number>,
  a: string,
  b: string,
  bound: number,
  atMost = false,
): TargetCheck {
  const r = ratio(medians.get(a) ?? Number.NaN, medians.get(b) ?? Number.NaN);
  return {
    issue,
    target: `${what}: ${a} ${atMost ? '≤' : '≥'} ${bound}× ${b}`,
    actual: fmtRatio(r),
    met: Number.isFinite(r) ? (atMost ? r <= bound : r >= bound) : null,
  };
}
