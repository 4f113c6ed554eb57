// The worker side of the cluster: admission, windows, TLS sessions and backend health asked
// of the primary, its status pushed to it, its reload/stop/sockets requests answered.

import { AggregatorRegistry } from 'prom-client';
import type { HealthFeed, HealthState } from '../../backend/health-monitor.js';
import { proxySources } from '../../observe/status-server.js';
import type { Postern } from '../postern.js';
import type { ServeControl } from '../role.js';
import type { AdmissionControl, Refusal } from '../admission.js';
import { fromPrimary, type Kind, type MessageOf } from './dispatcher.js';
import { LEASE_IDLE_MS, type Lease } from './held-admission.js';
import { Batcher, isAdmission, wrap, type ClusterMessage, type SingleMessage } from './messages.js';
import { PendingCalls } from './pending-calls.js';
import type { TlsSessionChannel } from './tls-sessions.js';
import type { WindowChannel } from './windows.js';

/**
 * Admission asked of the primary over IPC, so per-IP caps hold across workers. An admitted
 * connection may come back with a lease of more admissions of its address
 * (cluster/held-admission.ts): those are spent here without asking, and what is not spent
 * goes back after LEASE_IDLE_MS, or at once when the primary recalls it.
 */
export class RemoteAdmission implements AdmissionControl {
  readonly #calls = new PendingCalls<Refusal | null>(null);
  readonly #offs: (() => void)[];
  /** Per address: admissions leased and not spent, the grant they came with, their last use. */
  readonly #leases = new Map<string, { n: number; seq: number; at: number }>();
  readonly #sweep: NodeJS.Timeout;

  constructor() {
    const d = fromPrimary();
    this.#offs = [
      d.on('admitted', (m) => {
        if (m.lease && m.lease.n > 0) this.#take(m.lease);
        this.#calls.settle(m.id, m.refusal);
      }),
      d.on('recall', (m) => this.#giveBack(m.ip)),
    ];
    this.#sweep = setInterval(() => {
      const idle = Date.now() - LEASE_IDLE_MS;
      for (const [ip, l] of this.#leases) if (l.at <= idle) this.#giveBack(ip);
    }, LEASE_IDLE_MS);
    this.#sweep.unref();
  }

  admit(ip: string): Refusal | null | Promise<Refusal | null> {
    const l = this.#leases.get(ip);
    if (l && l.n > 0) {
      l.n--;
      l.at = Date.now();
      // All spent: the primary need not recall this grant.
      if (l.n === 0) this.#giveBack(ip);
      return null;
    }
    return new Promise((resolve) => send({ postern: 'admit', id: this.#calls.open(resolve), ip }));
  }

  release(ip: string): void {
    toPrimary.pushLater({ postern: 'release', ip }, RELEASE_BATCH_MS);
  }

  force(ip: string): void {
    send({ postern: 'force', ip });
  }

  update(): void {
    // The primary reloads the limits itself.
  }

  close(): void {
    clearInterval(this.#sweep);
    for (const ip of [...this.#leases.keys()]) this.#giveBack(ip);
    toPrimary.flush();
    for (const off of this.#offs) off();
    this.#calls.drop();
  }

  #take(lease: Lease): void {
    const l = this.#leases.get(lease.ip);
    if (l) {
      l.n += lease.n;
      l.seq = Math.max(l.seq, lease.seq);
    } else this.#leases.set(lease.ip, { n: lease.n, seq: lease.seq, at: Date.now() });
  }

  /** What is left of the lease of `ip` goes back (also nothing: the primary then knows it is spent). */
  #giveBack(ip: string): void {
    const l = this.#leases.get(ip);
    this.#leases.delete(ip);
    send({ postern: 'unlease', ip, n: l?.n ?? 0, seq: l?.seq ?? 0 });
  }
}

function sendNow(m: ClusterMessage): void {
  if (process.send && process.connected) process.send(m);
}

/**
 * How long a release may wait to share an IPC message with others (at 1,000 sessions a second
 * a worker sends one release per session otherwise), inside the primary's RELEASE_GRACE_MS
 * (held-admission.ts), the time a per-IP refusal waits for a release on its way. Under load the
 * primary's cost is per message, not per release: 10 ms cost it 32-57 µs per TLS handshake, 50 ms
 * 15-32 (issue 26).
 */
export const RELEASE_BATCH_MS = 50;

/** Admission traffic to the primary, one IPC message per event-loop turn (releases: see RELEASE_BATCH_MS). */
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
