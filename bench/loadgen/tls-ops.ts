// One TLS operation each: an implicit-TLS handshake (W3) and a STARTTLS session (W4).
// Resumed mode offers the last session the server handed out and reports whether the
// handshake resumed it.

import { constants } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import type { TlsVersion } from './protocol.js';
import { ReplyReader, withTimeout } from './smtp-wire.js';

export interface TlsTarget {
  host: string;
  port: number;
  version: TlsVersion;
  resumed: boolean;
  /** No SessionTicket extension: TLS 1.2 resumption by session ID. */
  noTicket?: boolean;
}

/** The session to offer next; updated from every connection's 'session' events. */
export interface SessionSlot {
  session: Buffer | null;
}

const OP_TIMEOUT_MS = 5_000;
/** How long a resumed-mode connection waits for a fresh ticket after the handshake. */
const TICKET_WAIT_MS = 300;

/** One client context per version (and ticket choice), shared by every connection (making one per connection costs ~25 %). */
const contexts = new Map<string, tls.SecureContext>();

function contextFor(version: TlsVersion, noTicket = false): tls.SecureContext {
  const key = `${version}${noTicket ? '-no-ticket' : ''}`;
  let ctx = contexts.get(key);
  if (!ctx) {
    ctx = tls.createSecureContext({ minVersion: version, maxVersion: version, ...(noTicket ? { secureOptions: constants.SSL_OP_NO_TICKET } : {}) });
    contexts.set(key, ctx);
  }
  return ctx;
}

function tlsOptions(t: TlsTarget, slot: SessionSlot): tls.ConnectionOptions {
  return {
    secureContext: contextFor(t.version, t.noTicket),
    // Self-signed bench certificates; the chain is not what is measured.
    rejectUnauthorized: false,
    ...(t.resumed && slot.session ? { session: slot.session } : {}),
  };
}

/**
 * In resumed mode, a connection that did not resume must bring back a session to offer next
 * time: wait (briefly) for it; a TLS 1.3 ticket arrives just after the handshake. A resumed
 * connection keeps offering the session it resumed (stateless tickets can be used again;
 * Node servers send no new ticket on resumption, OpenSSL-based ones do).
 */
function ticketArrived(s: tls.TLSSocket, t: TlsTarget, got: () => boolean): Promise<void> {
  if (!t.resumed || got() || s.isSessionReused()) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, TICKET_WAIT_MS);
    s.once('session', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Connects with implicit TLS, completes the handshake, closes. Returns whether it resumed. */
export function handshakeOnce(t: TlsTarget, slot: SessionSlot): Promise<boolean> {
  let gotSession = false;
  const s = tls.connect({ host: t.host, port: t.port, ...tlsOptions(t, slot) });
  s.once('connect', () => s.setNoDelay(true));
  s.on('session', (session: Buffer) => {
    slot.session = session;
    gotSession = true;
  });
  const op = new Promise<boolean>((resolve, reject) => {
    s.on('error', reject);
    s.once('secureConnect', () => {
      const reused = s.isSessionReused();
      // Keep reading so post-handshake messages (tickets, the greeting) are processed.
      s.resume();
      void ticketArrived(s, t, () => gotSession).then(() => {
        s.destroy();
        resolve(reused);
      });
    });
  });
  return withTimeout(op, OP_TIMEOUT_MS, s, 'TLS handshake');
}

/** connect, 220, EHLO, STARTTLS, handshake, EHLO, QUIT. Returns whether TLS resumed. */
export function starttlsOnce(t: TlsTarget, slot: SessionSlot): Promise<boolean> {
  const raw = net.connect({ host: t.host, port: t.port, noDelay: true });
  let current: net.Socket = raw;
  const run = async (): Promise<boolean> => {
    const plain = new ReplyReader(raw);
    await plain.expect(220, 'greeting');
    raw.write('EHLO bench.localhost\r\n');
    await plain.expect(250, 'EHLO');
    raw.write('STARTTLS\r\n');
    await plain.expect(220, 'STARTTLS');
    plain.detach();
    let gotSession = false;
    const s = tls.connect({ socket: raw, ...tlsOptions(t, slot) });
    current = s;
    s.on('session', (session: Buffer) => {
      slot.session = session;
      gotSession = true;
    });
    const secured = new ReplyReader(s);
    await new Promise<void>((resolve, reject) => {
      s.once('secureConnect', resolve);
      s.once('error', reject);
    });
    const reused = s.isSessionReused();
    s.write('EHLO bench.localhost\r\n');
    await secured.expect(250, 'EHLO after STARTTLS');
    s.write('QUIT\r\n');
    await secured.expect(221, 'QUIT');
    await ticketArrived(s, t, () => gotSession);
    s.destroy();
    return reused;
  };
  return withTimeout(run(), OP_TIMEOUT_MS, { destroy: () => current.destroy() }, 'STARTTLS session');
}
