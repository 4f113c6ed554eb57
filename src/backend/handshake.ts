// Connects a session to one backend server: greeting, EHLO, then the identity step
// (XCLIENT, or nothing), then EHLO again as the client. Returns the connection ready
// for the client's first relayed command, or throws BackendError.

import type { Identity, HostPort } from '../config/types.js';
import { parseEhlo, type Capabilities } from '../smtp/ehlo.js';
import { replyText } from '../smtp/reply.js';
import { BackendConnection } from './connection.js';
import { BackendError } from './errors.js';
import { buildXclient, type XclientIdentity } from './xclient.js';

export interface HandshakeOptions {
  identity: Identity;
  /** Our name for the first EHLO. */
  hostname: string;
  connectTimeout: number;
  replyTimeout: number;
}

export interface BoundBackend {
  conn: BackendConnection;
  /** Capabilities from the last EHLO (the one made as the client). */
  caps: Capabilities;
}

export async function handshake(server: HostPort, client: XclientIdentity, opts: HandshakeOptions): Promise<BoundBackend> {
  const conn = await BackendConnection.connect(server, opts.connectTimeout);
  try {
    const greeting = await conn.expect(opts.replyTimeout);
    if (greeting.code !== 220) throw refused('greeting', greeting);
    const clientHelo = client.helo ?? opts.hostname;
    let caps: Capabilities;
    if (opts.identity === 'xclient') {
      caps = await ehlo(conn, opts.hostname, opts.replyTimeout);
      const attrs = caps.get('XCLIENT');
      const offered = new Set((attrs ?? []).map((a) => a.toUpperCase()));
      if (!attrs || !offered.has('ADDR') || !offered.has('PORT')) {
        throw new BackendError(
          'BACKEND_NO_XCLIENT',
          attrs
            ? `${server.text} offers XCLIENT without ADDR and PORT`
            : `${server.text} does not offer XCLIENT to us (check smtpd_authorized_xclient_hosts / hosts_xclient)`,
        );
      }
      for (const line of buildXclient(attrs, client)) {
        const r = await conn.command(line, opts.replyTimeout);
        // Postfix repeats its banner, Exim says `220 XCLIENT success`: any 220 will do.
        if (r.code !== 220) throw refused('XCLIENT', r);
      }
    }
    caps = await ehlo(conn, clientHelo, opts.replyTimeout);
    return { conn, caps };
  } catch (err) {
    conn.destroy();
    throw err;
  }
}

export async function ehlo(conn: BackendConnection, name: string, timeoutMs: number): Promise<Capabilities> {
  const r = await conn.command(`EHLO ${name}`, timeoutMs);
  if (r.code !== 250) throw refused('EHLO', r);
  return parseEhlo(r);
}

function refused(step: string, r: { code: number; lines: string[]; raw: Buffer }): BackendError {
  return new BackendError('BACKEND_REPLY', `${step} refused: ${replyText(r)}`, r);
}
