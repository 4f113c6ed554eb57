// What a SIGHUP does with each config key: applied to the running process (for new
// sessions; sessions under way keep what they started with), or kept until the next start
// or upgrade (SIGUSR2). The reload record names the changed keys and those that need a
// restart, so a reload never claims more than it did. Pure: no I/O.
//
// A key without a rule counts as needing a restart: a reload never claims to have applied
// what nobody checked it applies (test/unit/config-reload-plan.test.ts requires a rule for
// every key of conf/examples/reference.yaml).

import type { Config } from './types.js';

export type ReloadEffect = 'applied' | 'restart';

/**
 * By YAML key path; a rule covers the keys under it unless a longer one says otherwise.
 * Why each is what it is (src/server/postern.ts reload(), serve.ts, role-primary.ts):
 */
export const RELOAD_RULES: Readonly<Record<string, ReloadEffect>> = {
  // Read by each new session from the config in force.
  hostname: 'applied',
  banner: 'applied',
  received_header: 'applied',
  smtp: 'applied',
  // Listeners whose name and address stay keep their socket and take the new settings;
  // the others are closed and opened.
  listeners: 'applied',
  // Certificates and min_version: new contexts (tls/terminator.ts reload()); a tls section
  // that appears gets a terminator (SECTION_ONLY: the rule is not for the keys under it).
  tls: 'applied',
  'tls.certificates': 'applied',
  'tls.min_version': 'applied',
  // The watch and the ACME client restart when either changes (tls/terminator.ts reload()).
  'tls.acme': 'applied',
  'tls.watch': 'applied',
  // Ticket keys and the session cache are made once, at start (the terminator, the host's
  // session cache, a cluster's private key file).
  'tls.session_tickets': 'restart',
  'tls.ticket_keys': 'restart',
  'tls.session_cache': 'restart',
  // A new backend pool (health checks start again) whenever anything in it changes.
  backends: 'applied',
  // Pools: a changed or new one starts (its health checks first), a removed one drains;
  // routes are compiled again and domain files read again (server/routing.ts).
  pools: 'applied',
  routes: 'applied',
  // Admission is updated (the primary's in a cluster); the rest is read per session.
  limits: 'applied',
  // The logger's level is set again; its output format is fixed when it is made.
  'log.level': 'applied',
  'log.format': 'restart',
  'log.anomalies': 'applied',
  'log.addresses': 'applied',
  // A new verifier when its settings change; the password file is read again either way.
  auth: 'applied',
  // The metrics listener moves to a new address.
  metrics: 'applied',
  // Read when draining (by the primary too: its deadline for workers).
  shutdown_grace: 'applied',
  // Read by each new session; a changed dnsbl section makes a new DNSBL client (postern.ts).
  screen: 'applied',
  // The process structure, the shared state and the account are set up once.
  workers: 'restart',
  state: 'restart',
  run_as: 'restart',
};

/** Rules for a section appearing or going, not for the keys under it (each has its own). */
const SECTION_ONLY: ReadonlySet<string> = new Set(['tls']);

/** The rule that decides `path`: its own, or its nearest ancestor's; null when none does. */
export function ruleFor(path: string): string | null {
  for (let p = path; p !== ''; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    if (Object.hasOwn(RELOAD_RULES, p) && (p === path || !SECTION_ONLY.has(p))) return p;
  }
  return null;
}

export function reloadEffect(path: string): ReloadEffect {
  const rule = ruleFor(path);
  return rule === null ? 'restart' : RELOAD_RULES[rule]!;
}

/**
 * A value compared whole: anything but a mapping, and the mappings that stand for one YAML
 * value (an address `HOST:PORT`, a rate `COUNT/WINDOW`).
 */
function isLeaf(v: unknown): boolean {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return true;
  const keys = Object.keys(v).sort().join(',');
  return keys === 'host,port,text' || keys === 'count,window';
}

/** The YAML key paths whose values differ, deepest first found, in the order of the keys. */
export function changedKeys(old: unknown, next: unknown, path = ''): string[] {
  if (isLeaf(old) || isLeaf(next)) return JSON.stringify(old) === JSON.stringify(next) ? [] : [path];
  const a = old as Record<string, unknown>;
  const b = next as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.flatMap((k) => changedKeys(a[k], b[k], path ? `${path}.${k}` : k));
}

export interface ReloadPlan {
  /** Every key whose value differs from the config loaded before. */
  changed: string[];
  /**
   * Every key whose value differs from the config the process started with and that takes
   * effect only at the next start or upgrade: still pending, whichever reload changed it.
   */
  restart: string[];
}

/** From `previous` (the last config loaded) to `next`; `started` is the one the process runs on. */
export function planReload(previous: Config, next: Config, started: Config = previous): ReloadPlan {
  return {
    changed: changedKeys(previous, next),
    restart: changedKeys(started, next).filter((k) => reloadEffect(k) === 'restart'),
  };
}
