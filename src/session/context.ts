// What a session is given at its start: the config in force, the shared pool and
// observability, who the client is as the server saw it, and the server's callbacks.

import type { Authenticator } from '../auth/index.js';
import type { BackendPool } from '../backend/pool.js';
import type { CidrList } from '../config/cidr.js';
import type { Config, ListenerConfig } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { Metrics } from '../observe/metrics.js';
import type { AnomalyKind, Endpoint, TlsRecord } from '../observe/records.js';
import type { TlsTerminator } from '../tls/index.js';
import type { Screener } from '../screen/screener.js';
import type { DecisionPoints } from './decision.js';
import type { RouteTable } from '../route/index.js';

/** The pools and routes a session was started with (a reload does not change them for it). */
export interface SessionRouting {
  table: RouteTable;
  pool(name: string): BackendPool | undefined;
}

export interface SessionContext {
  id: string;
  config: Config;
  listener: ListenerConfig;
  /** The pool `default` (or the first): used when `routing` is absent, and before a route decides. */
  pool: BackendPool;
  /** Named pools and routes (issue #24); absent: every session goes to `pool`. */
  routing?: SessionRouting | null;
  logger: Logger;
  metrics: Metrics;
  /** Whether an anomaly kind gets its own log record (`log.anomalies`). */
  logAnomaly: (kind: AnomalyKind) => boolean;
  /** The real client (after a PROXY header from a trusted balancer). */
  client: Endpoint;
  /** Where the client connected to. */
  local: Endpoint;
  /** The upstream proxy that vouched for `client`, or null. */
  proxy: string | null;
  /**
   * The listener's xclient_from: who may send XCLIENT, judged on the client the session
   * believes at that moment (after a PROXY header, the client behind the balancer).
   */
  xclientFrom?: CidrList;
  /** Bytes that arrived with the PROXY header, before our greeting. */
  initial?: Buffer | null;
  /** A trusted peer's PROXY header failed: refuse everything but QUIT (as Exim does). */
  proxyFailure?: string | null;
  /** The handshake already done on this socket (implicit TLS). */
  tls?: TlsRecord | null;
  /** Does STARTTLS handshakes for `tls: starttls` listeners. */
  terminator?: TlsTerminator | null;
  /** SMTP AUTH at Postern (the `auth:` section), or null when no listener offers it. */
  authenticator?: Authenticator | null;
  /** XCLIENT named another client: count it for the per-IP limits; a refusal text if over. */
  readmit?: (address: string) => string | null | Promise<string | null>;
  /** Screening for listeners with `screen: on` (src/screen/), or null. */
  screener?: Screener | null;
  /** Decisions before a backend is spent (screening, routing): the decision seam. */
  decisions?: DecisionPoints | null;
  /** The session has ended (its record is written): release what the server holds for it. */
  onEnd?: () => void;
}
