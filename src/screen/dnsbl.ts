// DNSBL/DNSWL lookups for one client address: every zone asked in parallel, answers cached
// by their TTL (clamped to [minTtlMs, maxTtlMs]), concurrent lookups of one name sharing one
// query, and zones that answer for everything (RFC 5782 §5) skipped after a check.
// Site syntax and scoring: dnsbl-site.ts and score.ts.
//
// DNS through Node's c-ares `dns.promises.Resolver`: `resolve4(name, { ttl: true })` gives the
// A records with TTLs; NXDOMAIN (ENOTFOUND) and NODATA (ENODATA) mean "not listed";
// ESERVFAIL, EREFUSED, ETIMEOUT and the like are errors. c-ares does not hand over the SOA of
// a negative answer, so "not listed" is cached for the zone's SOA minimum (RFC 2308 §5) when
// a zone check has read it, else for minTtlMs.
//
// One Resolver serves every query: with a new Resolver (c-ares channel) per query, cold
// lookups of 3 zones ran at 503/s on this 2-core machine, against 2 600-3 800/s with one
// shared channel (bench/dnsbl.ts). But c-ares (1.34 in Node 20) shortens a channel's timeout from the latency it
// has seen: after 300 fast answers a query with `timeout: 3000` gave ETIMEOUT at 1 000 ms. A
// slow list would then fail long before timeoutMs. So an ETIMEOUT that comes before the
// deadline is asked again on a fresh channel, which has no history, for the time left.
// A lookup that is aborted stops waiting; its queries go on (c-ares cannot cancel one query
// without all of a channel's) and their answers fill the cache for the client's next try.

import { Resolver } from 'node:dns/promises';
import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import { parseDnsblSites, zonesOf, type DnsblSite } from '../config/dnsbl-site.js';
import { dnsblQueryName } from './dnsbl-query.js';
import { classifyAnswers, judgeZoneCheck, scoreOutcomes, type ZoneOutcome } from './score.js';

export interface DnsblOptions {
  sites: string[]; //       postscreen syntax
  resolvers: string[]; //   'HOST:PORT' or 'HOST' (port 53); [] = the system's resolvers
  timeoutMs: number; //     per lookup (default 10s)
  minTtlMs: number; //      clamp of the answer's TTL for caching (60s)
  maxTtlMs: number; //      (1h)
  /** Query names kept in the cache (default 100 000). An extension beyond the S2 interface. */
  cacheSize?: number;
}

export interface DnsblAnswer {
  zone: string;
  weight: number;
  answer: string;
}

export interface DnsblResult {
  score: number;
  hits: DnsblAnswer[]; //                         listings that counted
  errors: { zone: string; error: string }[]; //   timeouts, SERVFAIL, 127.255.255.x
  cached: boolean; //                             every zone answered from cache
  ms: number;
  /** Zones not asked because a check found them broken (an extension beyond the S2 interface). */
  skipped: string[];
}

export type DnsblQueryResult = 'listed' | 'clean' | 'error' | 'timeout';

export interface DnsblHooks {
  /** One real DNS query finished (cache hits do not call it): for metrics. */
  query?(zone: string, result: DnsblQueryResult, seconds: number): void;
  /** Something an operator must know: a refusing zone, a broken zone. Repeats are held back for a minute. */
  warn?(msg: string, detail: object): void;
}

export type DnsblErrorCode = 'DNSBL_RESOLVER' | 'DNSBL_OPTIONS';

export class DnsblError extends Error {
  override name = 'DnsblError';
  constructor(
    readonly code: DnsblErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** One query's outcome, before it is shared with every waiter. */
type Fetched = { answers: string[]; ttlMs: number } | { error: string; timeout: boolean };

interface CacheEntry {
  answers: readonly string[];
  expires: number;
}

const WARN_REPEAT_MS = 60_000;
/** Codes c-ares gives for "this name has no A record": the client is not listed. */
const NOT_LISTED = new Set(['ENOTFOUND', 'ENODATA']);

export class Dnsbl {
  readonly #opts: DnsblOptions;
  readonly #hooks: DnsblHooks;
  readonly #sites: DnsblSite[];
  readonly #zones: string[];
  readonly #cache: LRUCache<string, CacheEntry>;
  readonly #inflight = new Map<string, Promise<Fetched>>();
  /** The channel every query starts on (see the header). */
  readonly #shared: Resolver;
  /** Fresh channels of queries asked again, so close() can cancel them too. */
  readonly #fresh = new Set<Resolver>();
  readonly #skipped = new Set<string>();
  /** Negative-answer TTL per zone, from its SOA minimum, once a check has read it. */
  readonly #negativeTtlMs = new Map<string, number>();
  readonly #warned = new Map<string, { at: number; held: number }>();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(opts: DnsblOptions, hooks: DnsblHooks = {}) {
    if (!(opts.timeoutMs > 0)) throw new DnsblError('DNSBL_OPTIONS', `timeoutMs must be positive, not ${opts.timeoutMs}`);
    if (!(opts.minTtlMs >= 0) || !(opts.maxTtlMs >= opts.minTtlMs)) {
      throw new DnsblError('DNSBL_OPTIONS', `need 0 <= minTtlMs <= maxTtlMs, not ${opts.minTtlMs} and ${opts.maxTtlMs}`);
    }
    if (opts.cacheSize !== undefined && !(Number.isInteger(opts.cacheSize) && opts.cacheSize >= 1)) {
      throw new DnsblError('DNSBL_OPTIONS', `cacheSize must be a positive integer, not ${opts.cacheSize}`);
    }
    this.#opts = { ...opts, sites: [...opts.sites], resolvers: [...opts.resolvers] };
    this.#hooks = hooks;
    this.#sites = parseDnsblSites(opts.sites); // throws DnsblSiteError naming the bad site
    this.#zones = zonesOf(this.#sites);
    this.#cache = new LRUCache({ max: opts.cacheSize ?? 100_000 });
    this.#shared = this.#resolver(opts.timeoutMs); // a bad resolver address fails here, not at the first client
  }

  /** The parsed sites, in configuration order. */
  get sites(): readonly DnsblSite[] {
    return this.#sites;
  }

  /** Zones a check found broken (listing 127.0.0.1); they are not asked until a check passes. */
  get skippedZones(): string[] {
    return [...this.#skipped];
  }

  /**
   * Asks every zone about `address` in parallel (from the cache where it is fresh). Never
   * rejects: a bad address, a timeout or an abort become `errors`. On abort it resolves at
   * once with the zones that had answered.
   */
  async lookup(address: string, signal?: AbortSignal): Promise<DnsblResult> {
    const start = performance.now();
    const zones = this.#zones.filter((z) => !this.#skipped.has(z));
    const skipped = this.#zones.filter((z) => this.#skipped.has(z));
    const outcomes: (ZoneOutcome | null)[] = zones.map(() => null);
    let fromCache = 0;
    const pending: Promise<void>[] = [];
    const now = Date.now();
    zones.forEach((zone, i) => {
      const name = dnsblQueryName(address, zone);
      if (name === null) {
        outcomes[i] = { zone, error: `not an IP address: ${JSON.stringify(address.slice(0, 64))}` };
        return;
      }
      if (this.#closed) {
        outcomes[i] = { zone, error: 'closed' };
        return;
      }
      const hit = this.#cache.get(name);
      if (hit && hit.expires > now) {
        outcomes[i] = { zone, answers: hit.answers };
        fromCache++;
        return;
      }
      if (signal?.aborted) return; // no query that nobody will wait for: 'aborted' below
      pending.push(
        this.#join(name, zone).then((f) => {
          outcomes[i] = 'error' in f ? { zone, error: f.error } : { zone, answers: f.answers };
        }),
      );
    });

    if (pending.length > 0) {
      const all = Promise.all(pending);
      if (signal) {
        let onAbort = (): void => {};
        const aborted = new Promise<void>((resolve) => {
          onAbort = resolve;
          if (signal.aborted) resolve();
          else signal.addEventListener('abort', onAbort, { once: true });
        });
        await Promise.race([all, aborted]);
        signal.removeEventListener('abort', onAbort);
      } else {
        await all;
      }
    }
    const done = outcomes.map((o, i) => o ?? { zone: zones[i]!, error: 'aborted' });
    const { score, hits, errors } = scoreOutcomes(this.#sites, done);
    return {
      score,
      hits,
      errors,
      cached: fromCache === zones.length,
      ms: Math.round((performance.now() - start) * 10) / 10,
      skipped,
    };
  }

  /**
   * Asks each zone for the RFC 5782 §5 test entries (127.0.0.1 must not be listed, 127.0.0.2
   * must be) and for its SOA (negative-answer TTL). A zone listing 127.0.0.1 is skipped by
   * lookups until a later check passes; each change is warned about. When the check itself
   * fails (timeout), a zone keeps its state.
   */
  async checkZones(): Promise<{ zone: string; ok: boolean; why?: string }[]> {
    if (this.#closed) return this.#zones.map((zone) => ({ zone, ok: !this.#skipped.has(zone), why: 'closed' }));
    return Promise.all(
      this.#zones.map(async (zone) => {
        const [never, always] = await Promise.all([this.#direct(`1.0.0.127.${zone}`, zone), this.#direct(`2.0.0.127.${zone}`, zone), this.#readSoa(zone)]);
        const check = judgeZoneCheck(never, always);
        const was = this.#skipped.has(zone);
        if (check.state === 'broken') {
          this.#skipped.add(zone);
          this.#warn(`broken:${zone}`, 'DNSBL zone skipped: it lists 127.0.0.1', { zone, why: check.why });
        } else if (check.state === 'ok') {
          this.#skipped.delete(zone);
          if (was) this.#warn(`fixed:${zone}`, 'DNSBL zone used again: it no longer lists 127.0.0.1', { zone });
          if (check.why) this.#warn(`odd:${zone}`, 'DNSBL zone check', { zone, why: check.why });
        }
        const ok = !this.#skipped.has(zone);
        return check.why === undefined ? { zone, ok } : { zone, ok, why: check.why };
      }),
    );
  }

  /** Runs `checkZones` now and then every `intervalMs` (the timer does not keep the process up). */
  startPeriodicCheck(intervalMs: number): void {
    if (this.#closed) return;
    if (this.#timer) clearInterval(this.#timer);
    const run = (): void => {
      this.checkZones().catch((err: unknown) => this.#warn('check', 'DNSBL zone check failed', { error: String(err) }));
    };
    this.#timer = setInterval(run, intervalMs);
    this.#timer.unref();
    run();
  }

  /** Stops the periodic check and cancels every query in flight; later lookups answer 'closed' errors. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#shared.cancel();
    for (const r of this.#fresh) r.cancel();
    this.#fresh.clear();
    this.#cache.clear();
  }

  #resolver(timeoutMs: number): Resolver {
    const r = new Resolver({ timeout: Math.max(1, Math.round(timeoutMs)), tries: 1 });
    if (this.#opts.resolvers.length > 0) {
      try {
        r.setServers(this.#opts.resolvers);
      } catch (err) {
        throw new DnsblError('DNSBL_RESOLVER', `bad resolver address in ${JSON.stringify(this.#opts.resolvers)}: ${(err as Error).message}`, { cause: err });
      }
    }
    return r;
  }

  /** The query for `name` in flight, joined, or a new one; its outcome goes to the metrics and the cache. */
  #join(name: string, zone: string): Promise<Fetched> {
    const existing = this.#inflight.get(name);
    if (existing) return existing;
    const started = performance.now();
    const promise = this.#fetch(name);
    this.#inflight.set(name, promise);
    void promise.then((f) => {
      this.#inflight.delete(name);
      if (this.#closed) return;
      const seconds = (performance.now() - started) / 1000;
      if ('error' in f) {
        this.#query(zone, f.timeout ? 'timeout' : 'error', seconds);
        return;
      }
      const verdict = classifyAnswers(f.answers);
      if (verdict.kind === 'error') {
        // 127.255.255.x: the provider refuses us (public resolver, over quota). Not cached.
        this.#query(zone, 'error', seconds);
        this.#warn(`refused:${zone}`, 'DNSBL zone answered with an error code, not a listing', { zone, answer: f.answers.join(' '), error: verdict.error });
        return;
      }
      this.#query(zone, verdict.kind, seconds);
      const ttl = verdict.kind === 'clean' ? (this.#negativeTtlMs.get(zone) ?? this.#opts.minTtlMs) : f.ttlMs;
      this.#cache.set(name, { answers: f.answers, expires: Date.now() + this.#clamp(ttl) });
    });
    return promise;
  }

  /** The metrics hook; a hook that throws must not break a lookup (nor reject into the void). */
  #query(zone: string, result: DnsblQueryResult, seconds: number): void {
    try {
      this.#hooks.query?.(zone, result, seconds);
    } catch {
      // The caller's bug; the lookup goes on.
    }
  }

  #clamp(ms: number): number {
    return Math.min(this.#opts.maxTtlMs, Math.max(this.#opts.minTtlMs, ms));
  }

  /**
   * One A query with a hard deadline of timeoutMs, on the shared channel, and once more on a
   * fresh one when c-ares gives up early (see the header). Never rejects.
   */
  #fetch(name: string): Promise<Fetched> {
    const timeoutMs = this.#opts.timeoutMs;
    const deadline = performance.now() + timeoutMs;
    return new Promise<Fetched>((settle) => {
      const timer = setTimeout(() => settle({ error: `timeout: no answer within ${timeoutMs} ms`, timeout: true }), timeoutMs);
      const ask = (resolver: Resolver, fresh: boolean): void => {
        resolver.resolve4(name, { ttl: true }).then(
          (records) => {
            clearTimeout(timer);
            if (fresh) this.#fresh.delete(resolver);
            // The smallest TTL of the set: RFC 2181 §5.2 wants them equal; take no chances.
            const ttl = records.reduce((m, r) => Math.min(m, r.ttl), Infinity);
            settle({ answers: records.map((r) => r.address), ttlMs: Number.isFinite(ttl) ? ttl * 1000 : 0 });
          },
          (err: NodeJS.ErrnoException) => {
            if (fresh) this.#fresh.delete(resolver);
            const code = err.code ?? 'EUNKNOWN';
            const left = deadline - performance.now();
            if (code === 'ETIMEOUT' && !fresh && left >= 50 && !this.#closed) {
              const again = this.#resolver(left);
              this.#fresh.add(again);
              ask(again, true);
              return;
            }
            clearTimeout(timer);
            if (NOT_LISTED.has(code)) settle({ answers: [], ttlMs: 0 });
            else settle({ error: describe(code), timeout: code === 'ETIMEOUT' });
          },
        );
      };
      ask(this.#shared, false);
    });
  }

  /** A query outside the cache and the metrics (zone checks). */
  async #direct(name: string, zone: string): Promise<ZoneOutcome> {
    const f = await this.#fetch(name);
    return 'error' in f ? { zone, error: f.error } : { zone, answers: f.answers };
  }

  async #readSoa(zone: string): Promise<void> {
    try {
      const soa = await this.#shared.resolveSoa(zone); // c-ares ends it within timeoutMs
      this.#negativeTtlMs.set(zone, soa.minttl * 1000);
    } catch {
      // No SOA (or no answer): "not listed" stays cached for minTtlMs.
    }
  }

  /** A warning, at most once a minute per key; the next one says how many were held back. */
  #warn(key: string, msg: string, detail: object): void {
    if (!this.#hooks.warn) return;
    const now = Date.now();
    const last = this.#warned.get(key);
    if (last && now - last.at < WARN_REPEAT_MS) {
      last.held++;
      return;
    }
    this.#warned.set(key, { at: now, held: 0 });
    try {
      this.#hooks.warn(msg, last && last.held > 0 ? { ...detail, repeats_held_back: last.held } : detail);
    } catch {
      // As for #query: a throwing hook must not break a lookup or a check.
    }
  }
}

function describe(code: string): string {
  switch (code) {
    case 'ESERVFAIL':
      return 'SERVFAIL';
    case 'EREFUSED':
      return 'REFUSED';
    case 'ETIMEOUT':
      return 'timeout';
    case 'ECANCELLED':
      return 'cancelled';
    default:
      return code;
  }
}
