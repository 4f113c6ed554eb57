// Sizes in bytes. Units are binary: KB = KiB = 1024, MB = MiB = 1024^2, GB = GiB = 1024^3,
// as mail software traditionally means them (Postfix, Exim); case does not matter.
import { ConfigValueError, show } from './errors.js';

const UNIT_BYTES: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3,
};
const FORM = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i;

export const SIZE_FORM = 'a size such as 100B, 512KB, 50MB or 1GB (or a whole number of bytes)';

/** True when the value names no unit (`50`, `"50"`): such a number is bytes. */
export function isBareNumber(s: string | number): boolean {
  return typeof s === 'number' || /^\d+(?:\.\d+)?$/.test(s.trim());
}

/** Bytes as an operator writes them: `1KB` when whole, else `1000 bytes`. */
export function formatSize(bytes: number): string {
  for (const [unit, n] of [['GB', 1024 ** 3], ['MB', 1024 ** 2], ['KB', 1024]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes} bytes`;
}

/** Size to bytes: `512KB`, `50MB`, `1GB`, `100B`; a bare integer is bytes. Fractions round down. */
export function parseSize(s: string | number): number {
  if (typeof s === 'number') {
    if (!Number.isSafeInteger(s) || s < 0) throw new ConfigValueError(`expected ${SIZE_FORM}, got ${show(s)}`);
    return s;
  }
  const m = FORM.exec(s.trim());
  const unit = m ? UNIT_BYTES[(m[2] as string).toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new ConfigValueError(`expected ${SIZE_FORM}, got ${show(s)}`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new ConfigValueError(`size ${show(s)} is too large`);
  return bytes;
}
