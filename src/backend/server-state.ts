// One configured (or routed-to) backend server: its health as last decided and its load.

import type { ServerConfig } from '../config/types.js';
import type { Capabilities } from '../smtp/ehlo.js';
import type { Balanced } from './balancer.js';
import type { GreetedPool } from './greeted-pool.js';

export class ServerState implements Balanced {
  readonly key: string;
  readonly weight: number;
  active = 0;
  current = 0;
  /** null until the first check has finished. */
  up: boolean | null = null;
  reason = 'not checked yet';
  caps: Capabilities | null = null;
  okStreak = 0;
  failStreak = 0;
  /** Pre-greeted connections (backends.pool), or null. */
  greeted: GreetedPool | null = null;

  constructor(readonly cfg: ServerConfig) {
    this.key = cfg.address.text;
    this.weight = cfg.weight;
  }
}
