// The worker side of the cluster: admission asked of the primary, messages to and from it.

import type { WindowChannel } from '../../state/cluster-windows.js';
import { PendingCalls } from '../../state/pending-calls.js';
import type { AdmissionControl, Refusal } from '../admission.js';
import { Batcher, isAdmission, isMessage, unwrap, wrap, type ClusterMessage, type SingleMessage } from './messages.js';
import type { TlsSessionChannel } from './tls-sessions.js';

/** Admission asked of the primary over IPC, so per-IP caps hold across workers. */
export class RemoteAdmission implements AdmissionControl {
  readonly #calls = new PendingCalls<Refusal | null>(null);

  constructor() {
    onPrimaryMessage((m) => {
      if (m.postern === 'admitted') this.#calls.settle(m.id, m.refusal);
    });
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

/** Messages from the primary, batches unwrapped. */
export function onPrimaryMessage(handler: (m: SingleMessage) => void): void {
  process.on('message', (m: unknown) => {
    if (isMessage(m)) for (const one of unwrap(m)) handler(one);
  });
}

type Reply<K extends SingleMessage['postern']> = Extract<SingleMessage, { postern: K }>;

/** Requests to the primary, and its replies of kind `reply`. */
function channel<K extends SingleMessage['postern']>(reply: K) {
  return {
    send: (m: SingleMessage) => send(m),
    onReply: (handler: (m: Reply<K>) => void) =>
      onPrimaryMessage((m) => {
        if (m.postern === reply) handler(m as Reply<K>);
      }),
  };
}

/** The IPC channel a worker's ClusterWindowCounter asks the primary through. */
export const windowChannel = (): WindowChannel => channel('windowed');

/** The IPC channel a worker's IpcSessionStore asks the primary through (sent at once: a handshake waits). */
export const tlsSessionChannel = (): TlsSessionChannel => channel('tls-session-reply');
