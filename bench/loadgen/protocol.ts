// Messages between the harness and its load generator processes (Node IPC).

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

/** A loop run by every generator process at the same wall-clock moment. */
export interface TimedJob {
  kind: 'tls-handshake' | 'starttls';
  host: string;
  port: number;
  tls: TlsVersion;
  resumed: boolean;
  /** The client sends no SessionTicket extension (TLS 1.2): it resumes by session ID. */
  noTicket?: boolean;
  /** Connections in flight in this process. */
  concurrency: number;
  /** Date.now() at which every process starts its loop. */
  startAt: number;
  warmupMs: number;
  windowMs: number;
  /** Upper bound on operations in this process, whatever the time. */
  maxCount: number;
}

export interface TimedResult {
  /** Operations completed inside the measured window. */
  count: number;
  /** ... of which resumed a TLS session. */
  reused: number;
  errors: number;
  firstError: string | null;
  /** CPU seconds this process used during the window. */
  cpuSeconds: number;
}

export interface IdleJob {
  kind: 'idle';
  host: string;
  port: number;
  /** Implicit TLS (ECDSA or RSA, whatever the listener has), else plain. */
  tls: boolean;
  count: number;
  /** Client addresses to spread over (127.0.x.y), for enough source ports. */
  localAddresses: string[];
  /** Connections being opened at once in this process. */
  concurrency: number;
  deadlineMs: number;
}

export interface IdleReady {
  open: number;
  failed: number;
  firstError: string | null;
}

export interface LatencyJob {
  kind: 'latency';
  host: string;
  port: number;
  sessions: number;
  /** Unrecorded sessions first. */
  warmup: number;
  deadlineMs: number;
}

export interface LatencyResult {
  /** Whole-session times in ms of the sessions that succeeded. */
  samples: number[];
  errors: number;
  firstError: string | null;
}

export type ToWorker =
  | { type: 'timed'; job: TimedJob }
  | { type: 'idle'; job: IdleJob }
  | { type: 'release' }
  | { type: 'latency'; job: LatencyJob }
  | { type: 'probe'; job: TimedJob }
  | { type: 'exit' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'timed'; result: TimedResult }
  | { type: 'idle-ready'; result: IdleReady }
  | { type: 'released' }
  | { type: 'latency'; result: LatencyResult }
  | { type: 'probe'; ok: boolean; reused: boolean; error: string | null }
  | { type: 'error'; message: string };
