// A connection refused before a session could start (draining, every backend down, over a
// connection cap, a failed implicit-TLS handshake) is a session all the same: one record
// from the same builder, counted by the same metrics path (observeSession), its anomaly
// named like any other, its reply a named constant.

import type net from 'node:net';
import type { Logger } from '../observe/logger.js';
import type { Metrics } from '../observe/metrics.js';
import { observeAnomaly, observeSession } from '../observe/record-metrics.js';
import { anomalyRecord, sessionRecord, type AnomalyKind, type CloseReason, type Endpoint, type LimitName } from '../observe/records.js';
import { LINGER_MS } from './farewell.js';

export interface RefusedSession {
  conn: string;
  client: Endpoint;
  listener: string;
  /** The balancer that vouched for the client, or null. */
  proxy: string | null;
  /** When the connection was accepted (ms since the epoch). */
  started: number;
  close: CloseReason;
  limit?: LimitName;
  anomaly?: { kind: AnomalyKind; detail: string };
}

export interface RefusalOutput {
  logger: Logger;
  metrics: Metrics;
  /** Whether an anomaly kind gets its own record (`log.anomalies`). */
  logAnomaly: (kind: AnomalyKind) => boolean;
}

/**
 * Writes the reply and our FIN, then closes. Listeners allow half-open connections and start
 * paused, so our FIN alone never closed the socket: nothing read the client's FIN, and every
 * refusal kept a descriptor for good. What the client still sends is read and dropped (closing
 * on unread input resets the connection, and the reset can lose the reply); its FIN closes the
 * socket, and a client that sends none is cut after the linger.
 */
function answerAndClose(socket: net.Socket, reply: string): void {
  socket.end(reply);
  // The same linger as after a 221 (farewell.ts).
  const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('end', () => socket.destroy());
  socket.once('close', () => clearTimeout(timer));
  socket.resume();
}

/**
 * Answers `reply` and closes (null: closes at once, as for a TLS client that could not read
 * a plaintext reply), then writes the session's record.
 */
export function refuseSession(out: RefusalOutput, socket: net.Socket, s: RefusedSession, reply: string | null): void {
  socket.on('error', () => undefined);
  if (reply === null) socket.destroy();
  else answerAndClose(socket, reply);
  const anomalies: AnomalyKind[] = [];
  if (s.anomaly) {
    anomalies.push(s.anomaly.kind);
    const rec = anomalyRecord(s.conn, s.anomaly.kind, s.anomaly.detail);
    observeAnomaly(out.metrics, rec);
    if (out.logAnomaly(s.anomaly.kind)) out.logger.info(rec, `anomaly ${s.anomaly.kind}`);
  }
  const rec = sessionRecord({
    conn: s.conn,
    client: s.client,
    listener: s.listener,
    proxy: s.proxy,
    bytes_out: reply === null ? 0 : Buffer.byteLength(reply),
    duration_ms: Date.now() - s.started,
    close: s.close,
    anomalies,
    ...(s.limit !== undefined ? { limit: s.limit } : {}),
  });
  observeSession(out.metrics, rec);
  out.logger.info(rec, 'session');
}
