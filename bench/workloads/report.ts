// Shared table pieces: per-contender medians with their runs, and Postern / peer ratios.

import { median, ratio } from '../lib/stats.js';
import { fmt, fmtRatio, markdownTable, type Cell } from '../lib/table.js';
import { ROUTED, XCLIENT_FLOOR } from '../lib/options.js';
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

/** Every numerator / denominator pair, in order. */
export function pairsOf(numerators: readonly string[], denominators: readonly string[]): [string, string][] {
  return numerators.flatMap((n) => denominators.map((d): [string, string] => [n, d]));
}

/** The all-cores ratios: each Postern variant / each peer and the Node floor. */
export const ALL_CORES_PAIRS = pairsOf(POSTERNS, ['haproxy', 'nginx', 'node-pipe']);
/** The per-core ratios (issue 17): Postern with one worker / the Node floor and each peer, one core each. */
export const PER_CORE_PAIRS: [string, string][] = [
  ...pairsOf(['postern-xclient-1'], ['node-pipe-1', 'nginx-1', 'haproxy-1']),
  [ROUTED, 'postern-xclient-1'],
  // Issue 26: Postern against the floor of its own protocol, and that floor against the pipe.
  ['postern-xclient-1', XCLIENT_FLOOR],
  [XCLIENT_FLOOR, 'node-pipe-1'],
];

/** `a / b` for each pair where both have a figure; '' when none has. */
export function ratioTable(values: Map<string, number>, pairs: [string, string][], note = ''): string {
  const rows: Cell[][] = pairs
    .filter(([a, b]) => values.has(a) && values.has(b))
    .map(([a, b]) => [`${a} / ${b}`, fmtRatio(ratio(values.get(a)!, values.get(b)!))]);
  if (rows.length === 0) return '';
  return markdownTable(['ratio', `value${note}`], rows);
}

/** Only the entries of `m` whose key is in `keys`. */
export function subset<V>(m: Map<string, V>, keys: readonly string[]): Map<string, V> {
  return new Map([...m].filter(([k]) => keys.includes(k)));
}
