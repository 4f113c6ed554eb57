// The messages between the cluster primary and its workers, and the batching that lets
// one IPC write carry all of one event-loop turn's admission traffic.

import type { HealthState, SessionOutcome } from '../../backend/health-monitor.js';
import type { BackendSnapshot, SessionSnapshot } from '../../observe/status-server.js';
import type { WindowReply, WindowRequest } from './windows.js';
import type { Config } from '../../config/types.js';
import type { Refusal } from '../admission.js';
import type { Lease } from './held-admission.js';
import type { TlsSessionReply, TlsSessionRequest } from './tls-sessions.js';

/** Messages between primary and workers; every one carries `postern` so others pass by. */
export type ClusterMessage =
  | { postern: 'admit'; id: number; ip: string }
  /** `lease`: more admissions of the same address the worker may spend without asking. */
  | { postern: 'admitted'; id: number; refusal: Refusal | null; lease?: Lease | null }
  | { postern: 'release'; ip: string }
  /** The primary asks a worker for the leased admissions of `ip` it has not spent... */
  | { postern: 'recall'; ip: string }
  /** ...which it gives back (also unasked: when idle, or n = 0 once all are spent). */
  | { postern: 'unlease'; ip: string; n: number; seq: number }
  | { postern: 'force'; ip: string }
  /** A worker listens; its listeners' bound addresses, for the primary's one `listening` record each. */
  | { postern: 'ready'; listening?: ListeningOn[] }
  /** A starting worker asks for the config the primary has loaded and checked (see worker-config.ts)... */
  | { postern: 'config?' }
  /** ...and gets it, as the primary holds it now (after any reload). */
  | { postern: 'config'; config: Config }
  | { postern: 'failed'; message: string }
  /** SIGHUP: the worker loads the config file again... */
  | { postern: 'reload'; id: number }
  /** ...and says whether it applied it (`error` null) or why not. */
  | { postern: 'reloaded'; id: number; error: string | null; listening?: ListeningOn[] }
  | { postern: 'stop' }
  | { postern: 'status'; sessions: SessionSnapshot[]; backends: BackendSnapshot[]; ready: boolean }
  /** Upgrade: the primary asks a worker for its listening sockets... */
  | { postern: 'sockets?' }
  /** ...and gets each with one of these (the socket travels as the message's handle). */
  | { postern: 'socket'; name: string; index: number; count: number }
  /** Window counts (auth failures) held by the primary for all workers. */
  | WindowRequest
  | WindowReply
  /** TLS sessions in the host's cache, held by the primary for all workers. */
  | TlsSessionRequest
  | TlsSessionReply
  /** Backend health, decided by the primary: a worker asks the states now... */
  | { postern: 'health?'; id: number }
  | { postern: 'health'; id: number; states: HealthState[] }
  /** ...and is sent each change; its sessions' outcomes go the other way. */
  | { postern: 'health-change'; state: HealthState }
  | { postern: 'session-outcome'; outcome: SessionOutcome }
  /** Several of the others (admit/release/force/unlease up, admitted/recall down), to be handled in order. */
  | { postern: 'batch'; msgs: SingleMessage[] };

export interface ListeningOn {
  listener: string;
  address: { host: string; port: number };
}

/** Any message but a batch: what a batch carries. */
export type SingleMessage = Exclude<ClusterMessage, { postern: 'batch' }>;

/** Worker to primary: the per-connection traffic that is queued and sent in batches. */
export type AdmissionMessage = Extract<ClusterMessage, { postern: 'admit' | 'release' | 'force' | 'unlease' }>;

export function isMessage(m: unknown): m is ClusterMessage {
  return typeof m === 'object' && m !== null && typeof (m as { postern?: unknown }).postern === 'string';
}

export function isAdmission(m: SingleMessage): m is AdmissionMessage {
  return m.postern === 'admit' || m.postern === 'release' || m.postern === 'force' || m.postern === 'unlease';
}

/** The messages one IPC message carries, a batch unwrapped. */
export function unwrap(m: ClusterMessage): readonly SingleMessage[] {
  if (m.postern !== 'batch') return [m];
  return Array.isArray(m.msgs) ? (m.msgs.filter(isMessage) as SingleMessage[]) : [];
}

/** A batch of one goes as itself; both forms are accepted on either side. */
export function wrap(msgs: SingleMessage[]): ClusterMessage {
  return msgs.length === 1 ? msgs[0]! : { postern: 'batch', msgs };
}

/**
 * Messages queued during one event-loop turn and delivered together, in order, at its end
 * (setImmediate): one IPC write (one serialisation, one syscall) instead of one per message.
 * At most one delivery is scheduled at a time; `flush()` delivers at once what is queued.
 */
export class Batcher<M> {
  #queue: M[] = [];
  #scheduled = false;
  /** The timer of what pushLater queued, while nothing else is scheduled. */
  #later: NodeJS.Timeout | null = null;

  constructor(
    private readonly deliver: (msgs: M[]) => void,
    private readonly schedule: (run: () => void) => void = (run) => void setImmediate(run),
  ) {}

  push(m: M): void {
    this.#queue.push(m);
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.schedule(() => {
      this.#scheduled = false;
      this.flush();
    });
  }

  /**
   * A message nobody waits for: it goes with the next flush, or after `ms` at the latest, so
   * that under load many share one IPC message, and an idle moment's one does not wake the
   * receiver in the middle of the next connection's work.
   */
  pushLater(m: M, ms: number): void {
    this.#queue.push(m);
    if (this.#scheduled || this.#later) return;
    this.#later = setTimeout(() => {
      this.#later = null;
      this.flush();
    }, ms);
  }

  flush(): void {
    if (this.#later) {
      clearTimeout(this.#later);
      this.#later = null;
    }
    if (this.#queue.length === 0) return;
    const msgs = this.#queue;
    this.#queue = [];
    this.deliver(msgs);
  }

  get size(): number {
    return this.#queue.length;
  }
}
