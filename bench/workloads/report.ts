// Shared table pieces: per-contender medians with their runs, and Postern / peer ratios.

import { median, ratio } from '../lib/stats.js';
import { fmt, fmtRatio, markdownTable, type Cell } from '../lib/table.js';
import { POSTERNS } from './types.js';

/** Samples per contender, in round order; NaN marks a failed run. */
export type Samples = Map<string, number[]>;

export function push(s: Samples, key: string, v: number): void {
  const list = s.get(key) ?? [];
  list.push(v);
  s.set(key, list);
}

export function medianOf(s: Samples, key: string): number {
  return median(s.get(key) ?? []);
}

export function runsText(values: number[] | undefined, digits = 0): string {
  return values && values.length > 0 ? values.map((v) => fmt(v, digits)).join(' / ') : '';
}

/** Rows: contender, median, each run, share of `direct`. */
export function contenderTable(
  s: Samples,
  contenders: string[],
  unit: string,
  digits: number,
  unavailable: Map<string, string>,
): string {
  const direct = medianOf(s, 'direct');
  const rows: Cell[][] = contenders.map((c) => {
    const why = unavailable.get(c);
    if (why !== undefined) return [c, 'n/a', '(see below)', ''];
    const m = medianOf(s, c);
    return [c, fmt(m, digits), runsText(s.get(c), digits), c === 'direct' ? '' : fmt((100 * m) / direct, 0) + ' %'];
  });
  const table = markdownTable(['contender', `${unit} (median)`, 'runs', 'of direct'], rows);
  return unavailable.size === 0 ? table : `${table}\n\n${naNotes(unavailable)}`;
}

/** "n/a: - contender: reason" lines. */
export function naNotes(unavailable: Map<string, string>): string {
  return 'n/a:\n' + [...unavailable].map(([c, why]) => `- ${c}: ${why}`).join('\n');
}

/** Postern / haproxy and Postern / nginx for each Postern variant present. */
export function ratioTable(values: Map<string, number>, posterns: readonly string[] = POSTERNS, note = ''): string {
  const rows: Cell[][] = [];
  for (const p of posterns) {
    if (!values.has(p)) continue;
    for (const peer of ['haproxy', 'nginx']) {
      if (!values.has(peer)) continue;
      rows.push([`${p} / ${peer}`, fmtRatio(ratio(values.get(p)!, values.get(peer)!))]);
    }
  }
  if (rows.length === 0) return '';
  return markdownTable(['ratio', `value${note}`], rows);
}
