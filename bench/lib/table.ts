// Markdown tables and number formatting for the console and RESULTS.md.

export type Cell = string | number;

/** Formats a number with `digits` decimals and thousands separators; NaN/undefined -> n/a. */
export function fmt(x: number | undefined, digits = 0): string {
  if (x === undefined || !Number.isFinite(x)) return 'n/a';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A ratio as `1.23x`, or n/a. */
export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a';
}

/** A GitHub-flavoured markdown table with padded columns (first column left, others right). */
export function markdownTable(header: string[], rows: Cell[][]): string {
  const text = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(3, ...text.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    '| ' + widths.map((w, i) => (i === 0 ? (r[i] ?? '').padEnd(w) : (r[i] ?? '').padStart(w))).join(' | ') + ' |';
  const rule = '|' + widths.map((w, i) => (i === 0 ? ':' + '-'.repeat(w + 1) : '-'.repeat(w + 1) + ':')).join('|') + '|';
  return [line(text[0]!), rule, ...text.slice(1).map(line)].join('\n');
}
