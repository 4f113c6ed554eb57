// What `postern check` warns about, logged once at start by the process that owns the
// config (the single process or the cluster primary).
import type { Config } from '../config/types.js';
import { configWarnings } from '../config/warnings.js';
import type { ConfigProblem } from '../config/errors.js';
import type { Logger } from '../observe/logger.js';
import { routeWarnings } from '../route/warnings.js';

/** Every warning about `config`: its own, and its routes'. */
export function allConfigWarnings(config: Config): ConfigProblem[] {
  return [...configWarnings(config), ...routeWarnings(config)];
}

export function logConfigWarnings(config: Config, logger: Logger): void {
  for (const w of allConfigWarnings(config)) logger.warn({ event: 'config_warning', path: w.path }, w.message);
}
