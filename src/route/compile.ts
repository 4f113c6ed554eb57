// The route table of a config (issue #24): `routes:` compiled by src/route, with the domain
// list files read now (at start, at each SIGHUP, and by `postern check`).
import { readFileSync } from 'node:fs';
import { parseDomainList, RouteTable, type RouteSpec } from './index.js';
import type { Config, DomainSpec, RouteConfig } from '../config/types.js';

export class RoutingError extends Error {
  override name = 'RoutingError';
  readonly code = 'ERR_ROUTING_FILE';
}

/** A domain spec's names with its file's (read now). Throws RoutingError when the file cannot be read. */
export function domainNames(d: DomainSpec | null): string[] | null {
  if (d === null) return null;
  if (d.file === null) return d.names;
  let text: string;
  try {
    text = readFileSync(d.file, 'utf8');
  } catch (e) {
    throw new RoutingError(`cannot read domain list ${d.file}: ${(e as Error).message}`);
  }
  return [...d.names, ...parseDomainList(text)];
}

export function routeSpecs(routes: readonly RouteConfig[]): RouteSpec[] {
  return routes.map((r) => ({
    listener: r.listener,
    sni: r.sni,
    client: r.client,
    auth: r.auth,
    sender_domain: domainNames(r.sender_domain),
    recipient_domain: domainNames(r.recipient_domain),
    pool: r.pool,
  }));
}

/** The route table of `config` (domain files read now). */
export function compileRoutes(config: Config): RouteTable {
  return new RouteTable(routeSpecs(config.routes), new Set(Object.keys(config.pools)));
}
