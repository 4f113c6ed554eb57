// Admission with per-IP caps and rates shared by every instance through Redis
// (`state.redis`). The total cap (`max_connections`) guards this host's own resources and
// stays local. A per-host Admission runs alongside: it counts what this host holds (the
// truth written back into Redis after an outage) and decides alone while Redis is away.

import type { LimitsConfig } from '../config/types.js';
import { RedisIpCounts, type RedisIpCountsOptions } from '../state/redis-ip-counts.js';
import type { RedisLink } from '../state/redis-link.js';
import { clientKey } from '../net/ip.js';
import { Admission, REFUSED, type AdmissionControl, type Refusal } from './admission.js';

export type SharedAdmissionOptions = Omit<RedisIpCountsOptions, 'held'>;

export class SharedAdmission implements AdmissionControl {
  readonly #local: Admission;
  readonly #counts: RedisIpCounts;
  #limits: LimitsConfig;

  constructor(
    limits: LimitsConfig,
    private readonly link: RedisLink,
    opts: SharedAdmissionOptions = {},
  ) {
    this.#limits = limits;
    this.#local = new Admission(limits);
    this.#counts = new RedisIpCounts(link, { ...opts, held: () => this.#local.held() });
  }

  /** The per-host view (connections this host holds). */
  get local(): Admission {
    return this.#local;
  }

  admit(ip: string): Refusal | null | Promise<Refusal | null> {
    if (!this.link.up) return this.#local.admit(ip);
    if (this.#local.total >= this.#limits.max_connections) return REFUSED.max_connections;
    // Hold the place now, so admissions on their way cannot overshoot the total together.
    this.#local.force(ip);
    const { per_ip } = this.#limits;
    return this.#counts.admit(clientKey(ip), { connections: per_ip.connections, rate: per_ip.rate.count, windowMs: per_ip.rate.window }).then(
      (verdict) => {
        if (verdict === 'ok') return null;
        this.#local.release(ip);
        return verdict === 'connections' ? REFUSED.per_ip_connections : REFUSED.per_ip_rate;
      },
      (err: unknown) => {
        this.link.fault(err);
        this.#local.release(ip);
        return this.#local.admit(ip);
      },
    );
  }

  release(ip: string): void {
    this.#local.release(ip);
    if (this.link.up) this.#counts.release(clientKey(ip)).catch((err: unknown) => this.link.fault(err));
  }

  force(ip: string): void {
    this.#local.force(ip);
    if (this.link.up) this.#counts.force(clientKey(ip)).catch((err: unknown) => this.link.fault(err));
  }

  update(limits: LimitsConfig): void {
    this.#limits = limits;
    this.#local.update(limits);
  }

  close(): void {
    this.#local.close();
    void this.#counts.close();
  }
}
