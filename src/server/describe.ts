import { ConfigError } from '../config/errors.js';

/** One line for an operator: config problems as FILE:LINE:COL: path: message, or the error's message. */
export function describeError(err: unknown): string {
  if (err instanceof ConfigError) {
    // "cannot read FILE: ..." names the file already.
    if (err.code === 'CONFIG_UNREADABLE' && err.problems.length === 1) return err.problems[0]!.message;
    return `invalid config ${err.message}`;
  }
  return err instanceof Error ? err.message : String(err);
}
