// What `postern check` warns about, logged once at start by the process that owns the
// config (the single process or the cluster primary).
import { configWarnings, type Config } from '../config/index.js';
import type { Logger } from '../observe/logger.js';

export function logConfigWarnings(config: Config, logger: Logger): void {
  for (const w of configWarnings(config)) logger.warn({ event: 'config_warning', path: w.path }, w.message);
}
