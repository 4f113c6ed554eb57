// Durations: `300ms`, `5s`, `10m`, `2h`, `1d`, decimals (`1.5s`) and sums (`1m30s`).
import { ConfigValueError, show } from './errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/** Node timers overflow (and fire at once) beyond 2^31-1 ms, about 24.8 days. */
export const MAX_DURATION_MS = 2 ** 31 - 1;

export const DURATION_FORM = 'a duration such as 300ms, 5s, 10m, 2h or 1d';

/**
 * Duration to milliseconds. A number is taken as milliseconds (for internal callers;
 * the schema only lets 0 through bare, since `30` could mean seconds or ms).
 */
export function parseDuration(s: string | number): number {
  return check(parseAnyDuration(s), s);
}

/**
 * Duration to milliseconds with no upper bound: for spans that are compared with dates and never
 * given to a timer (a certificate's `renew_before: 30d`).
 */
export function parseLongDuration(s: string | number): number {
  return parseAnyDuration(s);
}

function parseAnyDuration(s: string | number): number {
  if (typeof s === 'number') {
    if (!Number.isFinite(s) || s < 0) throw new ConfigValueError(`expected ${DURATION_FORM}, got ${show(s)}`);
    return Math.round(s);
  }
  const text = s.trim();
  if (text === '0') return 0;
  if (!WHOLE.test(text)) {
    const hint = /^\d+(\.\d+)?$/.test(text) ? ' (add a unit: ms, s, m, h or d)' : '';
    throw new ConfigValueError(`expected ${DURATION_FORM}, got ${show(s)}${hint}`);
  }
  let ms = 0;
  for (const m of text.matchAll(PART)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  return Math.round(ms);
}

function check(ms: number, original: string | number): number {
  if (ms > MAX_DURATION_MS) throw new ConfigValueError(`duration ${show(original)} is too long (at most 24d)`);
  return ms;
}
