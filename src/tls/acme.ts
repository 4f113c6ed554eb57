// Certificates from an ACME CA (RFC 8555) with the `acme-client` package: ordered when the store
// has none (or only the self-signed stand-in), renewed `renew_before` the end, written to the
// store, from where the file watch swaps them into the running contexts.
//
// One orderer at a time: with `state.redis`, the host that wins `SET lock NX PX` orders and
// publishes the pair in Redis, and every other host loads it from there on its next look; without
// Redis, the processes sharing the store (cluster workers) take a lock file. A failure is logged
// with its reason and retried after retry.min, doubling up to retry.max; the certificate in use
// stays until a new one is issued.
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import * as acme from 'acme-client';
import type { AcmeConfig } from '../config/types.js';
import { acmeRecord } from '../observe/records.js';
import type { SharedRedis } from './shared-redis.js';
import { ChallengeBoard, type AlpnAnswer } from './acme-challenges.js';
import { AcmeStore, isPlaceholder } from './acme-store.js';
import { dnsNames } from './certificates.js';

export interface AcmeLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
}

export interface AcmeManagerOptions {
  cfg: AcmeConfig;
  store: AcmeStore;
  board: ChallengeBoard;
  redis: SharedRedis | null;
  logger: AcmeLogger;
  /** Called once a new pair is in the store (the terminator loads it at once rather than waiting for the watch). */
  onNewCertificate: () => Promise<void>;
  /** The clock renewal is judged by (tests move it). */
  now?: () => number;
}

/** An order (account, authorizations, validation, finalize, download) taking longer than this has failed. */
const ORDER_TIMEOUT_MS = 5 * 60_000;
/** A lock outlives any order; a crashed holder's lock is taken over after it. */
const LOCK_TTL_MS = ORDER_TIMEOUT_MS + 60_000;

interface Published {
  certPem: string;
  keyPem: string;
}

export class AcmeManager {
  readonly #o: AcmeManagerOptions;
  readonly #owner = `${process.pid}-${randomBytes(6).toString('hex')}`;
  readonly #now: () => number;
  readonly #agent: https.Agent | undefined;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #failures = 0;
  #waitingLogged = false;
  #closed = false;

  constructor(o: AcmeManagerOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    // acme-client retries each failed request up to 5 times, 5 s more each time (75 s of silence
    // when the CA is down); one quick retry here, and Postern's own backoff (retry.min..max) above it.
    const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number; retryDefaultDelay: number } }).acmeSettings;
    if (settings) {
      settings.retryMaxAttempts = 1;
      settings.retryDefaultDelay = 2;
    }
    if (o.cfg.directory_ca) {
      // acme-client talks through one shared axios instance: trusting the directory's CA there is
      // the only way in. It adds to Node's roots, it does not replace them.
      this.#agent = new https.Agent({ ca: readFileSync(o.cfg.directory_ca), keepAlive: false });
      acme.axios.defaults.httpsAgent = this.#agent;
    }
  }

  get domains(): string[] {
    return this.#o.cfg.domains;
  }

  start(): void {
    this.#schedule(0);
  }

  /** One look now: load, order or wait as needed (tests and the first start). */
  runNow(): Promise<void> {
    if (!this.#running) this.#running = this.#run().finally(() => (this.#running = null));
    return this.#running;
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.runNow(), ms);
    this.#timer.unref();
  }

  /** When the certificate in the store must be replaced, as ms since the epoch (0: now). */
  async #dueAt(): Promise<number> {
    const cur = await this.#o.store.current();
    if (!cur || isPlaceholder(cur.leaf)) return 0;
    const names = dnsNames(cur.leaf.subjectAltName);
    if (this.domains.some((d) => !names.includes(d))) return 0;
    return Date.parse(cur.leaf.validTo) - this.#o.cfg.renew_before;
  }

  async #run(): Promise<void> {
    const { cfg, logger } = this.#o;
    try {
      if (await this.#loadPublished()) await this.#o.onNewCertificate();
      const due = await this.#dueAt();
      const now = this.#now();
      if (due > now) {
        this.#failures = 0;
        this.#schedule(Math.min(cfg.check_interval, due - now));
        return;
      }
      if (!(await this.#lock())) {
        // Another host or process is ordering: look again soon for what it publishes.
        if (!this.#waitingLogged) logger.info(acmeRecord({ action: 'waiting', domains: this.domains }), 'ACME order held by another instance; waiting for its certificate');
        this.#waitingLogged = true;
        this.#schedule(cfg.retry.min);
        return;
      }
      this.#waitingLogged = false;
      try {
        // The last holder may have finished between the look above and the lock: what it
        // published (Redis) or wrote (the shared store) is taken, not ordered a second time.
        await this.#loadPublished();
        if ((await this.#dueAt()) <= this.#now()) await this.#order();
      } finally {
        await this.#unlock();
      }
      this.#failures = 0;
      await this.#o.onNewCertificate();
      this.#schedule(Math.min(cfg.check_interval, Math.max(cfg.retry.min, (await this.#dueAt()) - this.#now())));
    } catch (err) {
      this.#failures += 1;
      const retry = Math.min(cfg.retry.max, cfg.retry.min * 2 ** (this.#failures - 1));
      logger.warn(
        acmeRecord({ action: 'failed', domains: this.domains, reason: describe(err), attempt: this.#failures, retry_in_ms: retry }),
        `ACME certificate for ${this.domains[0]} not obtained; keeping the current one, retrying in ${Math.round(retry / 1000)} s`,
      );
      this.#schedule(retry);
    }
  }

  async #order(): Promise<void> {
    const { cfg, store, board, logger } = this.#o;
    const started = Date.now();
    logger.info(acmeRecord({ action: 'order', domains: this.domains }), `ACME order for ${this.domains.join(', ')}`);
    // acme-client loses the reason of a connection failure once its retries are spent (it reports
    // a TypeError); asking for the directory first names it (ECONNREFUSED, a certificate error, 503).
    await probeDirectory(cfg.directory, this.#agent);
    const accountKey = await store.accountKey(() => acme.crypto.createPrivateEcdsaKey());
    // acme-client polls authorizations from backoffMin, doubling: a small start keeps a quick CA quick.
    const client = new acme.Client({ directoryUrl: cfg.directory, accountKey, backoffMin: 250, backoffMax: 10_000, backoffAttempts: 12 });
    // RSA for the served certificate: old SMTP clients still lack ECDSA.
    const [key, csr] = await acme.crypto.createCsr({ commonName: this.domains[0], altNames: this.domains }, await acme.crypto.createPrivateRsaKey(2048));
    const work = client.auto({
      csr,
      email: cfg.email ?? undefined,
      termsOfServiceAgreed: true,
      challengePriority: [cfg.challenge],
      // The CA validates for real; a self-check would resolve the names through this host's DNS,
      // which behind NAT or split DNS says nothing about what the CA sees.
      skipChallengeVerification: true,
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (challenge.type === 'http-01') await board.put('http-01', challenge.token, keyAuthorization);
        else if (isAlpn(challenge.type)) {
          const [alpnKey, alpnCert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
          const answer: AlpnAnswer = { certPem: alpnCert.toString(), keyPem: alpnKey.toString() };
          await board.put('tls-alpn-01', authz.identifier.value.toLowerCase(), JSON.stringify(answer));
        }
      },
      challengeRemoveFn: async (authz, challenge) => {
        if (challenge.type === 'http-01') await board.remove('http-01', challenge.token);
        else if (isAlpn(challenge.type)) await board.remove('tls-alpn-01', authz.identifier.value.toLowerCase());
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`order not finished within ${ORDER_TIMEOUT_MS / 1000} s`)), ORDER_TIMEOUT_MS);
    });
    let chain: string;
    try {
      chain = await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
    const keyPem = key.toString();
    await store.writePair(chain, keyPem);
    await this.#publish({ certPem: chain, keyPem });
    const cur = await store.current();
    logger.info(
      acmeRecord({ action: 'issued', domains: this.domains, ms: Date.now() - started, not_after: cur ? new Date(cur.leaf.validTo).toISOString() : undefined }),
      `ACME certificate issued for ${this.domains.join(', ')}`,
    );
  }

  #redisKey(...parts: string[]): string {
    return this.#o.redis!.key('acme', ...parts, this.domains[0]!);
  }

  async #lock(): Promise<boolean> {
    const redis = this.#o.redis;
    if (redis) {
      if (!redis.up) throw new Error(`state.redis (${redis.where}) is down: not ordering without the lock`);
      return (await redis.client.set(this.#redisKey('lock'), this.#owner, 'PX', LOCK_TTL_MS, 'NX')) === 'OK';
    }
    return this.#o.store.tryLock(this.#owner, LOCK_TTL_MS);
  }

  async #unlock(): Promise<void> {
    const redis = this.#o.redis;
    if (redis) {
      // Only our own lock: compare and delete in one step.
      await redis.client
        .eval("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end", 1, this.#redisKey('lock'), this.#owner)
        .catch(() => 0);
    } else await this.#o.store.unlock(this.#owner);
  }

  async #publish(p: Published): Promise<void> {
    const redis = this.#o.redis;
    if (!redis?.up) return;
    await redis.client.set(this.#redisKey('certificate'), JSON.stringify(p));
  }

  /** A pair another host published that ends later than ours goes into our store; true if it did. */
  async #loadPublished(): Promise<boolean> {
    const redis = this.#o.redis;
    if (!redis?.up) return false;
    const text = await redis.client.get(this.#redisKey('certificate'));
    if (!text) return false;
    const p = JSON.parse(text) as Published;
    const theirs = new X509Certificate(p.certPem);
    const cur = await this.#o.store.current();
    if (cur && !isPlaceholder(cur.leaf) && (cur.leaf.serialNumber === theirs.serialNumber || Date.parse(cur.leaf.validTo) >= Date.parse(theirs.validTo))) return false;
    await this.#o.store.writePair(p.certPem, p.keyPem);
    this.#o.logger.info(acmeRecord({ action: 'loaded', domains: this.domains, not_after: new Date(theirs.validTo).toISOString() }), `ACME certificate for ${this.domains[0]} loaded from Redis`);
    return true;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running?.catch(() => undefined);
  }
}

/** GET the directory (RFC 8555 7.1.1): resolves if the CA answers, rejects with why not. */
function probeDirectory(url: string, agent: https.Agent | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? https.get : http.get;
    const req = get(url, { agent: url.startsWith('https:') ? agent : undefined, timeout: 10_000 }, (res) => {
      res.resume();
      if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) resolve();
      else reject(new Error(`ACME directory ${url} answered HTTP ${res.statusCode ?? '?'}`));
    });
    req.on('timeout', () => req.destroy(new Error(`ACME directory ${url}: no answer within 10 s`)));
    req.on('error', (err: NodeJS.ErrnoException) => reject(Object.assign(new Error(`ACME directory ${url}: ${err.message}`), { code: err.code })));
  });
}

function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; response?: { data?: { detail?: string } } };
  // The CA's problem document (RFC 8555 6.7) says more than the HTTP status.
  const detail = e.response?.data?.detail;
  return [e.code, detail ?? e.message ?? String(err)].filter(Boolean).join(': ');
}

/** acme-client's types list only http-01 and dns-01, though it orders tls-alpn-01 too. */
function isAlpn(type: string): boolean {
  return type === 'tls-alpn-01';
}
