// What differs between the three ways a process serves (serve.ts runs all three the same
// way): a single process (its own host), a cluster primary (the host, serving through its
// workers) and a cluster worker (serving, its host being its primary).

import type { Registry } from 'prom-client';
import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { Host, ServedView } from './host.js';
import type { HandedSocket } from './upgrade.js';

export type RoleName = 'single' | 'primary' | 'worker';

/** What a role may ask of the serve loop once serving (a worker's primary asks it over IPC). */
export interface ServeControl {
  /** Loads the config file again and applies it; resolves with why not, or null. */
  reload(): Promise<string | null>;
  stop(why: string): void;
}

export interface Role {
  readonly name: RoleName;
  /** Where this process's own metrics are (a host's are added to it). */
  readonly registry: Registry;
  /** For this process's lifecycle lines (a worker's carry its pid and worker id). */
  readonly logger: Logger;
  /** The config in force: what a reload is compared with. */
  readonly config: Config;
  /** A config as this role runs it (a worker: with its primary's ticket key file). */
  prepare(config: Config): Config;
  /** Starts serving on the host's state (null: a worker's host is its primary). Throws when it cannot. */
  start(host: Host | null): Promise<void>;
  /** What the metrics listener serves about this role's sessions and backends. */
  view(): ServedView;
  /** Files this role still opens once root is dropped. */
  files(): (string | null)[];
  /** Applies a loaded config; resolves with the failures (none: applied). */
  apply(next: Config): Promise<string[]>;
  /** For an upgrade: the listening sockets, and what closes the copies taken for it. */
  listening(): Promise<{ sockets: HandedSocket[]; release(): void }>;
  /** Told once serving (a worker: starts its side of the IPC). */
  serving(ctl: ServeControl): void;
  /** A start-up failure, for whoever waits for it (a worker's primary). */
  failed(error: string): void;
  /** Stops accepting and drains (`graceMs` 0: at once, after a failed start). */
  drain(graceMs?: number): Promise<void>;
  /** Releases what start opened, after the drain. */
  close(): Promise<void>;
}
