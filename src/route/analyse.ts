// What `postern check` says about a route table: routes that can never match (an earlier
// route covers every session they would match), pools no route reaches, and whether some
// sessions match nothing. Pure.

import type { RouteFacts, RouteResult, RouteTable } from './table.js';

export interface RouteWarning {
  /** A YAML path for the message (`routes[3]`, `pools.archive`). */
  path: (string | number)[];
  message: string;
}

export function analyseRoutes(table: RouteTable): RouteWarning[] {
  const out: RouteWarning[] = [];
  const live: number[] = [];
  table.routes.forEach((r, j) => {
    const by = table.routes.slice(0, j).find((e) => r.shadowedBy(e));
    if (by) out.push({ path: ['routes', j], message: `routes[${j}] can never match: routes[${by.index}] comes first and matches every session it would` });
    else live.push(j);
  });
  // A route without matchers catches everything after it: `default` is then never used.
  const catchAll = table.routes.find((r) => Object.keys(r.spec).every((k) => k === 'pool' || r.spec[k as keyof typeof r.spec] == null));
  const reached = new Set(live.map((j) => table.routes[j]!.pool));
  if (!catchAll) {
    if (table.hasDefault) reached.add('default');
    else if (table.pools.size > 0) {
      out.push({ path: ['routes'], message: 'there is no pool "default" and no route without matchers: a session no route matches is refused (451 4.3.0)' });
    }
  }
  for (const p of table.pools) {
    if (!reached.has(p)) out.push({ path: ['pools', p], message: `no route reaches pool "${p}"` });
  }
  return out;
}

/** `--route 'listener=mx rcpt=a@example.org client=192.0.2.1 sni=.. auth=.. from=..'`. */
export function parseRouteQuery(q: string): RouteFacts {
  const f: { listener: string; sni: string | null; client: string; auth: string | null; sender?: string; recipient?: string } = {
    listener: '',
    sni: null,
    client: '',
    auth: null,
  };
  for (const part of q.trim().split(/\s+/)) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new RouteQueryError(`expected KEY=VALUE, got ${JSON.stringify(part)}`);
    const k = part.slice(0, eq).toLowerCase();
    const v = part.slice(eq + 1);
    if (k === 'listener') f.listener = v;
    else if (k === 'sni') f.sni = v || null;
    else if (k === 'client') f.client = v;
    else if (k === 'auth' || k === 'user') f.auth = v || null;
    else if (k === 'from' || k === 'sender') f.sender = v.replace(/^<|>$/g, '');
    else if (k === 'rcpt' || k === 'to' || k === 'recipient') f.recipient = v.replace(/^<|>$/g, '');
    else throw new RouteQueryError(`unknown key ${JSON.stringify(k)} (known: listener, sni, client, auth, from, rcpt)`);
  }
  return f;
}

export class RouteQueryError extends Error {
  override name = 'RouteQueryError';
  readonly code = 'ERR_ROUTE_QUERY';
}

/** One line for `check --route`. */
export function describeResult(r: RouteResult): string {
  if (r.kind === 'none') return 'no route matches and there is no pool "default": the session is refused (451 4.3.0)';
  if (r.kind === 'pending') return `undecided: a route before any match needs the ${r.needs === 'sender' ? 'sender (from=...)' : 'recipient (rcpt=...)'}`;
  return r.index === null ? `no route matches: pool ${r.pool} (the default)` : `routes[${r.index}]: pool ${r.pool}`;
}
