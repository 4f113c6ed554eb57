// The worker side of the cluster: admission asked of the primary, messages to and from it.

import type { WindowChannel } from '../../state/cluster-windows.js';
import type { AdmissionControl, Refusal } from '../admission.js';
import { Batcher, isAdmission, isMessage, unwrap, wrap, type ClusterMessage, type SingleMessage } from './messages.js';
import type { TlsSessionChannel } from './tls-sessions.js';

/** Admission asked of the primary over IPC, so per-IP caps hold across workers. */
export class RemoteAdmission implements AdmissionControl {
  #next = 0;
  readonly #pending = new Map<number, (r: Refusal | null) => void>();

  constructor() {
    onPrimaryMessage((m) => {
      if (m.postern === 'admitted') this.#answer(m);
    });
  }

  #answer(m: { id: number; refusal: Refusal | null }): void {
    const done = this.#pending.get(m.id);
    this.#pending.delete(m.id);
    done?.(m.refusal);
  }

  admit(ip: string): Promise<Refusal | null> {
    const id = ++this.#next;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      send({ postern: 'admit', id, ip });
    });
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
    this.#pending.clear();
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

/** The IPC channel a worker's ClusterWindowCounter asks the primary through. */
export function windowChannel(): WindowChannel {
  return {
    send: (m) => send(m),
    onReply: (handler) =>
      onPrimaryMessage((m) => {
        if (m.postern === 'windowed') handler(m);
      }),
  };
}

/** The IPC channel a worker's IpcSessionStore asks the primary through (sent at once: a handshake waits). */
export function tlsSessionChannel(): TlsSessionChannel {
  return {
    send: (m) => send(m),
    onReply: (handler) =>
      onPrimaryMessage((m) => {
        if (m.postern === 'tls-session-reply') handler(m);
      }),
  };
}
