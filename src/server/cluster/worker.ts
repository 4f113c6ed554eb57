// The worker side of the cluster: admission, windows, TLS sessions and backend health asked
// of the primary, its status pushed to it, its reload/stop/sockets requests answered.

import { AggregatorRegistry } from 'prom-client';
import type { HealthFeed, HealthState } from '../../backend/health-monitor.js';
import { proxySources } from '../../observe/status-server.js';
import type { Postern } from '../postern.js';
import type { ServeControl } from '../role.js';
import type { AdmissionControl, Refusal } from '../admission.js';
import { fromPrimary, type Kind, type MessageOf } from './dispatcher.js';
import { Batcher, isAdmission, wrap, type ClusterMessage, type SingleMessage } from './messages.js';
import { PendingCalls } from './pending-calls.js';
import type { TlsSessionChannel } from './tls-sessions.js';
import type { WindowChannel } from './windows.js';

/** Admission asked of the primary over IPC, so per-IP caps hold across workers. */
export class RemoteAdmission implements AdmissionControl {
  readonly #calls = new PendingCalls<Refusal | null>(null);
  readonly #off: () => void;

  constructor() {
    this.#off = fromPrimary().on('admitted', (m) => this.#calls.settle(m.id, m.refusal));
  }

  admit(ip: string): Promise<Refusal | null> {
    return new Promise((resolve) => send({ postern: 'admit', id: this.#calls.open(resolve), ip }));
  }

  release(ip: string): void {
    send({ postern: 'release', ip });
  }

  force(ip: string): void {
    send({ postern: 'force', ip });
  }

  update(): void {
    // The primary reloads the limits itself.
  }

  close(): void {
    toPrimary.flush();
    this.#off();
    this.#calls.drop();
  }
}

function sendNow(m: ClusterMessage): void {
  if (process.send && process.connected) process.send(m);
}

/** Admission traffic to the primary, one IPC message per event-loop turn. */
const toPrimary = new Batcher<SingleMessage>((msgs) => sendNow(wrap(msgs)));

/**
 * To the primary. admit/release/force are queued and go at the end of this turn; any other
 * message first sends what is queued, so it never overtakes them (and goes at once: a
 * `failed` must leave before the process exits).
 */
export function send(m: SingleMessage): void {
  if (isAdmission(m)) return toPrimary.push(m);
  toPrimary.flush();
  sendNow(m);
}

/** Requests to the primary, and its replies of kind `reply`. */
function channel<K extends Kind>(reply: K) {
  return {
    send: (m: SingleMessage) => send(m),
    onReply: (handler: (m: MessageOf<K>) => void) => void fromPrimary().on(reply, handler),
  };
}

/** The IPC channel a worker's ClusterWindowCounter asks the primary through. */
export const windowChannel = (): WindowChannel => channel('windowed');

/** The IPC channel a worker's IpcSessionStore asks the primary through (sent at once: a handshake waits). */
export const tlsSessionChannel = (): TlsSessionChannel => channel('tls-session-reply');

/** Past this a worker starts without the primary's health states (its servers unchecked, tried). */
export const HEALTH_WAIT_MS = 10_000;

let healthCalls: PendingCalls<HealthState[]> | null = null;

/** Backend health as the primary decides it: states asked once per pool, changes pushed, outcomes sent. */
export function healthFeed(): HealthFeed {
  const d = fromPrimary();
  if (!healthCalls) {
    const calls = (healthCalls = new PendingCalls<HealthState[]>([], HEALTH_WAIT_MS));
    d.on('health', (m) => calls.settle(m.id, Array.isArray(m.states) ? m.states : []));
  }
  const calls = healthCalls;
  return {
    current: () => new Promise((resolve) => send({ postern: 'health?', id: calls.open(resolve) })),
    onChange: (handler) => d.on('health-change', (m) => handler(m.state)),
    report: (outcome) => send({ postern: 'session-outcome', outcome }),
  };
}

/**
 * A worker's side of the cluster once it serves: `ready` with where it listens, its status
 * every second, and the primary's reload/stop/sockets requests.
 */
export function serveAsWorker(postern: Postern, ctl: ServeControl): void {
  const sources = proxySources(postern);
  // prom-client answers the primary's metrics requests only once a worker has built
  // an AggregatorRegistry (that installs its message listener).
  AggregatorRegistry.setRegistries([postern.metrics.registry]);
  new AggregatorRegistry();
  const push = () => send({ postern: 'status', sessions: sources.sessions(), backends: sources.backends(), ready: sources.ready() });
  push();
  setInterval(push, 1000).unref();
  const d = fromPrimary();
  const listening = () => Object.entries(postern.addresses()).map(([listener, address]) => ({ listener, address }));
  d.on('reload', (m) => void ctl.reload().then((error) => send({ postern: 'reloaded', id: m.id, error, listening: listening() })));
  d.on('stop', () => ctl.stop('primary'));
  d.on('sockets?', () => sendSockets(postern));
  // The primary is gone (killed): drain rather than serve unsupervised.
  process.on('disconnect', () => ctl.stop('primary gone'));
  send({ postern: 'ready', listening: listening() });
}

/** For an upgrade: each listening socket to the primary, which has none of its own to hand over. */
function sendSockets(postern: Postern): void {
  const open = postern.listeners.filter((l) => l.handle() !== null);
  open.forEach((l, index) => {
    if (process.send && process.connected) process.send({ postern: 'socket', name: l.cfg.name, index, count: open.length }, l.handle() as never);
  });
  if (open.length === 0) send({ postern: 'socket', name: '', index: -1, count: 0 });
}
