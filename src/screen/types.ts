// What screening works with, and the DNSBL client it is given. The DNSBL client itself
// (dnsbl.ts, score.ts) is its own module: screening codes against `DnsblLookup` and takes a
// factory, so session tests can give it a fixed table and production gets `Dnsbl`.

import type { ScreenAction } from '../config/types.js';
export type { ScreenAction };

import type { DnsblHooks, DnsblOptions, DnsblResult } from './dnsbl.js';
export type { DnsblAnswer, DnsblHooks, DnsblOptions, DnsblQueryResult, DnsblResult } from './dnsbl.js';

/** The part of the DNSBL client screening uses. */
export interface DnsblLookup {
  lookup(address: string, signal?: AbortSignal): Promise<DnsblResult>;
  close(): void;
}

/** Makes the DNSBL client for a `screen.dnsbl` section (a new one after a reload that changed it). */
export type DnsblFactory = (opts: DnsblOptions, hooks: DnsblHooks) => DnsblLookup;

/** The tests screening runs, as the session record's `screen.tests` names the failed ones. */
export type ScreenTest = 'pregreet' | 'dnsbl' | 'pipelining' | 'non_smtp' | 'bare_lf' | 'command_limit' | 'autoban';
