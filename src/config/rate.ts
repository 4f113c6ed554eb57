// Rates `COUNT/WINDOW`: `100/1m`, `10/s`, `500/1h`.
import { parseDuration } from './duration.js';
import { ConfigValueError, show } from './errors.js';

export const RATE_FORM = 'a rate COUNT/WINDOW such as 100/1m or 10/s';

export function parseRate(s: string): { count: number; window: number } {
  const bad = (why = ''): ConfigValueError =>
    new ConfigValueError(`expected ${RATE_FORM}, got ${show(s)}${why === '' ? '' : ` (${why})`}`);
  if (typeof s !== 'string') throw bad();
  const m = /^\s*(\d+)\s*\/\s*(\S+)\s*$/.exec(s);
  if (!m) throw bad();
  const count = Number(m[1]);
  if (!Number.isSafeInteger(count) || count < 1) throw bad('count must be at least 1');
  // A bare unit (`10/s`) means one of it.
  const w = m[2] as string;
  let window: number;
  try {
    window = parseDuration(/^[a-z]+$/.test(w) ? `1${w}` : w);
  } catch {
    throw bad(`"${w}" is not a duration`);
  }
  if (window < 1) throw bad('window must be longer than 0');
  return { count, window };
}
