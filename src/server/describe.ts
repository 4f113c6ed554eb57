import { ConfigError } from '../config/index.js';

/** One line for an operator: config problems with their YAML paths, or the error's message. */
export function describeError(err: unknown): string {
  if (err instanceof ConfigError) {
    return `invalid config ${err.file}: ${err.problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; ')}`;
  }
  return err instanceof Error ? err.message : String(err);
}
