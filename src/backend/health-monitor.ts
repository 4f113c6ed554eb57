// Whether each backend server is usable: active checks every `health_check.interval`, and
// the failures (and first successes) of real sessions, counted against `rise`/`fall`. It
// runs once per host: in the single process, or in a cluster's primary, whose workers take
// each change as their servers' state (HealthFeed). A change is logged here, once.

import type { BackendsConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { Metrics } from '../observe/metrics.js';
import { observeHealthCheck } from '../observe/record-metrics.js';
import { backendStateRecord } from '../observe/records.js';
import type { Capabilities } from '../smtp/ehlo.js';
import { BackendError } from './errors.js';
import { checkServer } from './health.js';
import type { ServerState } from './server-state.js';

/** A server's state as it travels to the workers (IPC is JSON: capabilities as pairs). */
export interface HealthState {
  key: string;
  up: boolean | null;
  reason: string;
  caps: [string, string[]][] | null;
}

/** A session's outcome with a server, from a worker to the host's monitor. */
export interface SessionOutcome {
  key: string;
  ok: boolean;
  reason: string;
  /** The failure makes the server unusable at once (BackendError.unusable). */
  unusable: boolean;
}

/** Where a worker's pool takes its servers' states from: the host's monitor. */
export interface HealthFeed {
  /** The host's states now (its first round of checks done). */
  current(): Promise<HealthState[]>;
  /** Each later change; returns what stops it. */
  onChange(handler: (s: HealthState) => void): () => void;
  report(outcome: SessionOutcome): void;
}

export function healthState(s: ServerState): HealthState {
  return { key: s.key, up: s.up, reason: s.reason, caps: s.caps ? [...s.caps] : null };
}

/** Takes the host's word for `s` (a worker's pool); no record: the host wrote it. */
export function applyHealthState(s: ServerState, h: HealthState): void {
  const was = s.up;
  s.up = h.up;
  s.reason = h.reason;
  if (h.caps) s.caps = new Map(h.caps);
  if (h.up === true && was !== true) s.greeted?.fill();
}

export interface HealthMonitorOptions {
  hostname: string;
  logger: Logger;
  metrics: Metrics;
  /** The pool whose settings check these servers (metrics label); `default` when absent. */
  pool?: string;
  /** Told every change of a server's state or capabilities (the primary sends it to its workers). */
  onChange?: (s: ServerState) => void;
}

export class HealthMonitor {
  #timer: NodeJS.Timeout | null = null;
  readonly #checking = new Set<ServerState>();
  #stopped = false;

  constructor(
    readonly servers: readonly ServerState[],
    private readonly cfg: BackendsConfig,
    private readonly opts: HealthMonitorOptions,
  ) {}

  /** Runs the first round of checks (so the first EHLO offers the right extensions), then keeps checking. */
  async start(): Promise<void> {
    await Promise.all(this.servers.map((s) => this.#check(s)));
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  states(): HealthState[] {
    return this.servers.map(healthState);
  }

  /** A session's outcome with one of these servers (passive health detection). */
  report(o: SessionOutcome, s = this.servers.find((x) => x.key === o.key)): void {
    if (!s) return;
    if (o.ok) {
      s.failStreak = 0;
      if (s.up === null) this.#setState(s, true, o.reason);
    } else this.failure(s, o.reason, o.unusable);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      for (const s of this.servers) void this.#check(s);
      this.#schedule();
    }, this.cfg.health_check.interval);
    this.#timer.unref();
  }

  async #check(s: ServerState): Promise<void> {
    if (this.#checking.has(s) || this.#stopped) return;
    this.#checking.add(s);
    try {
      const caps = await checkServer(s.cfg.address, {
        identity: this.cfg.identity,
        hostname: this.opts.hostname,
        timeout: this.cfg.health_check.timeout,
      });
      if (this.cfg.tls.starttls === 'required' && !caps.has('STARTTLS')) {
        throw new BackendError('BACKEND_NO_STARTTLS', 'STARTTLS not offered (backends.tls.starttls: required)');
      }
      const changed = !sameCaps(s.caps, caps);
      s.caps = caps;
      observeHealthCheck(this.opts.metrics, s.key, 'ok', this.opts.pool);
      if (!this.#success(s, 'health check passed') && changed) this.opts.onChange?.(s);
    } catch (err) {
      observeHealthCheck(this.opts.metrics, s.key, 'failed', this.opts.pool);
      this.failure(s, `health check: ${(err as Error).message}`, err instanceof BackendError && err.unusable);
    } finally {
      this.#checking.delete(s);
    }
  }

  /** Counts a success; true when it changed the state. */
  #success(s: ServerState, reason: string): boolean {
    s.failStreak = 0;
    s.okStreak++;
    if (s.up === null || (s.up === false && s.okStreak >= this.cfg.health_check.rise)) {
      this.#setState(s, true, reason);
      return true;
    }
    return false;
  }

  /** Counts a failure; `unusable`: misconfiguration, down at once. */
  failure(s: ServerState, reason: string, unusable: boolean): void {
    s.okStreak = 0;
    s.failStreak++;
    if (s.up !== false && (unusable || s.up === null || s.failStreak >= this.cfg.health_check.fall)) this.#setState(s, false, reason);
    else if (s.up === false) s.reason = reason;
  }

  #setState(s: ServerState, up: boolean, reason: string): void {
    s.up = up;
    s.reason = reason;
    if (up) s.greeted?.fill();
    this.opts.metrics.backendUp.set({ pool: this.opts.pool ?? 'default', backend: s.key }, up ? 1 : 0);
    const rec = backendStateRecord(s.key, up, reason);
    if (up) this.opts.logger.info(rec, `backend ${s.key} up`);
    else this.opts.logger.warn(rec, `backend ${s.key} down`);
    this.opts.onChange?.(s);
  }
}

function sameCaps(a: Capabilities | null, b: Capabilities): boolean {
  return a !== null && JSON.stringify([...a]) === JSON.stringify([...b]);
}
