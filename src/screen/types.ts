// What screening works with, and the DNSBL client it is given. The DNSBL client itself
// (dnsbl.ts, score.ts) is its own slice: screening codes against `DnsblLookup` and takes an
// instance, so its session tests run without DNS and a real resolver can be put in.

import type { ScreenAction } from '../config/types.js';
export type { ScreenAction };

export interface DnsblOptions {
  sites: string[];
  resolvers: string[];
  timeoutMs: number;
  minTtlMs: number;
  maxTtlMs: number;
}

/** One zone that listed the client, with the weight its site gives and the A record it answered. */
export interface DnsblAnswer {
  zone: string;
  weight: number;
  answer: string;
}

export interface DnsblResult {
  /** The sum of the weights of the sites that matched (negative: allowlisted). */
  score: number;
  hits: DnsblAnswer[];
  errors: { zone: string; error: string }[];
  /** Every zone's answer came from the cache. */
  cached: boolean;
  ms: number;
}

export type DnsblQueryResult = 'listed' | 'clean' | 'error' | 'timeout';

/** How the DNSBL client reports each query (metrics) and what it finds wrong (broken zones). */
export interface DnsblHooks {
  query?(zone: string, result: DnsblQueryResult, seconds: number): void;
  warn?(msg: string, detail: object): void;
}

/** The part of the DNSBL client screening uses. */
export interface DnsblLookup {
  lookup(address: string, signal?: AbortSignal): Promise<DnsblResult>;
  close(): void;
}

/** Makes the DNSBL client for a `screen.dnsbl` section (a new one after a reload that changed it). */
export type DnsblFactory = (opts: DnsblOptions, hooks: DnsblHooks) => DnsblLookup;

/** The tests screening runs, as the session record's `screen.tests` names the failed ones. */
export type ScreenTest = 'pregreet' | 'dnsbl' | 'pipelining' | 'non_smtp' | 'bare_lf' | 'command_limit' | 'autoban';
