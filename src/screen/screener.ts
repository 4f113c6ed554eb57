// Screening (issue 23): postscreen's tests, acted on before a backend is spent, and with no
// reconnect: a client that passes goes on to its backend on the same connection.
//
// Per session, in order (postscreen's): the access list (permit skips everything, reject
// drops); the auto-ban; the pass cache (a cached client is greeted at once); else the DNSBL
// lookup (started as soon as the cache said no) and the greet wait with its `220-` teaser,
// then the pregreet and DNSBL verdicts. After the greeting, until the first MAIL, the session's anomalies
// (pipelining_violation, non_smtp, bare_lf) and the command count/time limit are the deep
// tests. Each failed test has its action: ignore (logged), enforce (every RCPT 550 5.7.1,
// no backend), drop (521 5.7.1, closed).

import type { Config, ScreenAction, ScreenConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { screenRecord, type AnomalyKind, type ScreenRecord, type ScreenResult } from '../observe/records.js';
import type { SmtpError } from '../smtp/errors.js';
import type { WindowCounter } from '../state/windows.js';
import { PASS, type Decision, type GreetControl, type SessionFacts, type Verdict } from '../session/decision.js';
import { AccessList } from './access.js';
import { ScreenCache } from './cache.js';
import { dnsblVerdict, dropReply, enforceRefusal, reason, stronger } from './policy.js';
import type { DnsblAnswer, DnsblLookup, DnsblResult, ScreenTest } from './types.js';

/** Beyond the greet wait and the DNSBL timeout, what the greeting decision may take (cache round trips). */
const DECISION_SLACK_MS = 5000;

/** The anomalies that are deep tests, and the key of each one's action. */
const DEEP: Partial<Record<AnomalyKind, { test: ScreenTest; action: (c: ScreenConfig) => ScreenAction }>> = {
  pipelining_violation: { test: 'pipelining', action: (c) => c.pipelining_action },
  non_smtp: { test: 'non_smtp', action: (c) => c.non_smtp_action },
  bare_lf: { test: 'bare_lf', action: (c) => c.bare_lf_action },
};

export interface ScreenerOptions {
  /** Where passes and bans are kept: the host's shared window counts. */
  windows: WindowCounter;
  /** The DNSBL client for `screen.dnsbl.sites`, or null (no lookups). */
  dnsbl?: DnsblLookup | null;
  logger: Logger;
}

/** One per process: the shared cache and the DNSBL client; a ScreenSession per screened connection. */
export class Screener {
  readonly cache: ScreenCache;
  #dnsbl: DnsblLookup | null;
  readonly #logger: Logger;
  /** Access lists parsed once per config in force. */
  readonly #access = new WeakMap<ScreenConfig, AccessList>();

  constructor(opts: ScreenerOptions) {
    this.cache = new ScreenCache(opts.windows);
    this.#dnsbl = opts.dnsbl ?? null;
    this.#logger = opts.logger;
  }

  /** A new DNSBL client (a reload changed screen.dnsbl); the old one is closed. */
  set dnsbl(d: DnsblLookup | null) {
    if (this.#dnsbl !== d) this.#dnsbl?.close();
    this.#dnsbl = d;
  }

  get dnsbl(): DnsblLookup | null {
    return this.#dnsbl;
  }

  session(cfg: Config, client: string): ScreenSession {
    let access = this.#access.get(cfg.screen);
    if (!access) this.#access.set(cfg.screen, (access = new AccessList(cfg.screen.access)));
    return new ScreenSession(cfg, client, { access, cache: this.cache, dnsbl: this.#dnsbl, logger: this.#logger });
  }

  close(): void {
    this.#dnsbl?.close();
    this.#dnsbl = null;
  }
}

interface SessionParts {
  access: AccessList;
  cache: ScreenCache;
  dnsbl: DnsblLookup | null;
  logger: Logger;
}

export class ScreenSession {
  readonly #cfg: Config;
  readonly #s: ScreenConfig;
  readonly #client: string;
  readonly #p: SessionParts;
  readonly #started = Date.now();
  #result: ScreenResult | null = null;
  #score: number | null = null;
  #hits: DnsblAnswer[] = [];
  readonly #failed: ScreenTest[] = [];
  /** The strongest action a failed test asked for (what the record and the auto-ban go by). */
  #action: ScreenAction = 'ignore';
  #ms: number | null = null;
  /** Deep tests run until the first MAIL (not for permitted, allowlisted or deep-cached clients). */
  #deep = true;
  #deepFailed = false;
  #commands = 0;
  #refusal: SmtpError | null = null;

  constructor(cfg: Config, client: string, parts: SessionParts) {
    this.#cfg = cfg;
    this.#s = cfg.screen;
    this.#client = client;
    this.#p = parts;
  }

  /** The greeting point's decision: it runs the greet wait itself. */
  greeting(): Decision {
    const s = this.#s;
    const dnsbl = s.dnsbl.sites.length > 0 && this.#p.dnsbl ? s.dnsbl.timeout : 0;
    return {
      name: 'screen',
      ownsGreetWait: true,
      deadlineMs: s.greet_wait + dnsbl + DECISION_SLACK_MS,
      // Screening that cannot decide lets the client through (fail open), as postscreen does
      // when a DNSBL does not answer: the session record says so (result pass, ms).
      onTimeout: PASS,
      onError: PASS,
      decide: (facts, signal, greet) => this.#decide(facts, signal, greet),
    };
  }

  async #decide(_facts: SessionFacts, signal: AbortSignal, greet?: GreetControl): Promise<Verdict> {
    const s = this.#s;
    const ip = this.#client;
    const access = this.#p.access.match(ip);
    if (access === 'permit') {
      this.#deep = false;
      return this.#settle('permit', PASS);
    }
    if (access === 'reject') return this.#settle('reject', this.#drop('blocked by the access list'));
    const lookups = new AbortController();
    const stop = () => lookups.abort();
    signal.addEventListener('abort', stop, { once: true });
    try {
      const cache = this.#p.cache;
      const ttl = s.cache.pass_ttl;
      const [banned, greetPassed, deepPassed] = await Promise.all([
        s.autoban ? cache.banned(ip, s.autoban.ban) : false,
        cache.passed(ip, 'greet', ttl),
        cache.passed(ip, 'deep', ttl),
      ]);
      if (banned) {
        this.#failed.push('autoban');
        this.#action = 'drop';
        return this.#settle('drop', this.#drop('temporarily banned'));
      }
      if (deepPassed) this.#deep = false;
      if (greetPassed) return this.#settle('cached', PASS);
      // The lookups start once the cache said no (a round trip at most: in process, to the
      // primary, or to Redis): a cached client costs the DNSBLs nothing, and the queries of
      // an aborted lookup would go on anyway.
      const dnsbl = s.dnsbl.sites.length > 0 && this.#p.dnsbl ? this.#lookup(this.#p.dnsbl, lookups.signal) : null;
      // The greet wait and the lookups together; a DNSWL listing ends the wait early.
      const early = new AbortController();
      const waited = greet && s.greet_wait > 0 ? greet.teaser(s.greet_wait, AbortSignal.any([early.signal, signal])) : Promise.resolve();
      let allowlisted = false;
      if (dnsbl) {
        const r = await dnsbl;
        if (r) {
          this.#score = r.score;
          this.#hits = r.hits;
          const v = dnsblVerdict(r.score, s.dnsbl);
          if (v === 'listed') this.#fail('dnsbl', s.dnsbl.action);
          else if (v === 'allowlisted' && this.#failed.length === 0 && !(greet?.pregreeted() ?? false)) {
            allowlisted = true;
            this.#deep = false;
            early.abort();
          }
        }
      }
      await waited;
      if (signal.aborted) return PASS;
      if (!allowlisted && greet?.pregreeted()) this.#fail('pregreet', s.pregreet_action);
      if (this.#action === 'drop') return this.#settle('drop', this.#drop(this.#why()));
      if (this.#action === 'enforce') {
        this.#enforce();
        return this.#settle('enforce', PASS);
      }
      // Ignored failures are not remembered as passes: the tests run again next time.
      if (this.#failed.length === 0) this.#remember('greet');
      return this.#settle('pass', PASS);
    } finally {
      signal.removeEventListener('abort', stop);
      stop();
    }
  }

  /** The DNSBL result, or null when the lookup failed (a warning; the client is not held for it). */
  async #lookup(dnsbl: DnsblLookup, signal: AbortSignal): Promise<DnsblResult | null> {
    try {
      return await dnsbl.lookup(this.#client, signal);
    } catch (err) {
      if (!signal.aborted) this.#p.logger.warn({ client: this.#client, err: err instanceof Error ? err.message : String(err) }, 'DNSBL lookup failed; screening goes on without it');
      return null;
    }
  }

  #settle(result: ScreenResult, v: Verdict): Verdict {
    this.#result = result;
    this.#ms = Date.now() - this.#started;
    return v;
  }

  #fail(test: ScreenTest, action: ScreenAction): void {
    if (!this.#failed.includes(test)) this.#failed.push(test);
    this.#action = stronger(this.#action, action);
  }

  #why(): string {
    return reason(this.#failed, this.#hits, this.#s.dnsbl.reply_map);
  }

  #drop(why: string): Verdict {
    return { kind: 'drop', reply: dropReply(this.#cfg.hostname, this.#client, why), reason: 'screened' };
  }

  #enforce(): void {
    this.#refusal ??= enforceRefusal(this.#client, this.#why());
  }

  #remember(kind: 'greet' | 'deep'): void {
    this.#p.cache.remember(this.#client, kind, this.#s.cache.pass_ttl).catch(() => undefined);
  }

  /**
   * A deep test failed (an anomaly, after the greeting and before the first MAIL): what the
   * session must do now, `drop` (the 521 reply) or nothing (enforce is kept here, ignore logged).
   */
  anomaly(kind: AnomalyKind): { drop: string } | null {
    const deep = DEEP[kind];
    if (!deep || !this.#deep) return null;
    return this.#deepFail(deep.test, deep.action(this.#s));
  }

  /** A command before the first MAIL: the count and time limits (postscreen_command_*_limit). */
  command(): { drop: string } | null {
    if (!this.#deep) return null;
    const s = this.#s;
    if (++this.#commands <= s.command_count_limit && Date.now() - this.#started <= s.command_time_limit) return null;
    this.#deep = false;
    return this.#deepFail('command_limit', s.command_limit_action);
  }

  #deepFail(test: ScreenTest, action: ScreenAction): { drop: string } | null {
    this.#deepFailed = true;
    this.#fail(test, action);
    if (action === 'drop') {
      this.#result = 'drop';
      return { drop: dropReply(this.#cfg.hostname, this.#client, this.#why()) };
    }
    if (action === 'enforce' && this.#result !== 'drop') {
      this.#result = 'enforce';
      this.#enforce();
    }
    return null;
  }

  /** The first MAIL: the deep tests are over; a client that passed them is remembered. */
  mail(): void {
    if (!this.#deep) return;
    this.#deep = false;
    if (!this.#deepFailed && this.#refusal === null) this.#remember('deep');
  }

  /** Enforced: the refusal every RCPT gets (no backend is ever opened), else null. */
  get refusal(): SmtpError | null {
    return this.#refusal;
  }

  /** The session ended: a failure that was acted on counts toward the auto-ban. */
  end(): void {
    const ban = this.#s.autoban;
    if (!ban || this.#action === 'ignore' || this.#failed.includes('autoban')) return;
    this.#p.cache.failed(this.#client, ban.failures, ban.ban).then(
      (banned) => {
        if (banned) this.#p.logger.info({ client: this.#client, ban_ms: ban.ban }, 'screening: client banned');
      },
      () => undefined,
    );
  }

  record(): ScreenRecord {
    return screenRecord({
      result: this.#result ?? 'pass',
      score: this.#score,
      dnsbl: this.#hits,
      tests: this.#failed,
      ms: this.#ms ?? Date.now() - this.#started,
    });
  }
}
