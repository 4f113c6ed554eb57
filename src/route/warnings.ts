// Routes that are valid but probably not what the operator meant (issue #24): a route an
// earlier one covers, a pool no route reaches, sessions that would match nothing. `postern
// check` prints them beside config/warnings.ts's; `run` logs them at start.
import type { ConfigProblem } from '../config/errors.js';
import type { Config } from '../config/types.js';
import { compileRoutes, routeSpecs } from './compile.js';
import { analyseRoutes, RouteTable } from './index.js';

/** Routes that can never match, pools no route reaches, sessions that would match nothing. */
export function routeWarnings(c: Config): ConfigProblem[] {
  if (c.routes.length === 0 && Object.keys(c.pools).length <= 1) return [];
  let table: RouteTable;
  try {
    table = compileRoutes(c);
  } catch {
    // A domain file that cannot be read is check's error (check.ts); judge the names alone.
    const names = c.routes.map((r) => ({ ...r, recipient_domain: r.recipient_domain && { ...r.recipient_domain, file: null }, sender_domain: r.sender_domain && { ...r.sender_domain, file: null } }));
    table = new RouteTable(routeSpecs(names), new Set(Object.keys(c.pools)));
  }
  return analyseRoutes(table).map((w) => ({
    path: w.path.map((x, i) => (typeof x === 'number' ? `[${x}]` : i === 0 ? x : `.${x}`)).join(''),
    message: w.message,
  }));
}
