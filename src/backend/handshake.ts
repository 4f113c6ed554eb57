// Connects a session to one backend server: greeting, EHLO, then the identity step
// (XCLIENT, or nothing), then EHLO again as the client. With a PROXY identity the
// header goes first instead and there is a single EHLO, as the client. Returns the
// connection ready for the client's first relayed command, or throws BackendError.

import type { Identity, HostPort } from '../config/types.js';
import { parseEhlo, type Capabilities } from '../smtp/ehlo.js';
import { replyText } from '../smtp/reply.js';
import { BackendConnection } from './connection.js';
import { BackendError } from './errors.js';
import { buildProxyHeader, type ClientTls } from './proxy-out.js';
import type { Greeted } from './greeted-pool.js';
import { secureBackend, type BackendTlsPolicy } from './starttls.js';
import { buildXclient, type XclientIdentity } from './xclient.js';

/** Who the session speaks for: the XCLIENT attributes, plus what only a PROXY v2 header carries. */
export interface BackendClient extends XclientIdentity {
  /** The client's TLS with Postern (v2 SSL TLV: version, cipher; AUTHORITY from the SNI); null = plaintext. */
  tls?: ClientTls | null;
  /** Postern's connection id (v2 UNIQUE_ID, so backend logs join Postern's). Omitted from the header when absent. */
  connId?: string;
}

/** 1 or 2 for the PROXY identities, null otherwise. */
export function proxyVersion(identity: Identity): 1 | 2 | null {
  return identity === 'proxy-v2' ? 2 : identity === 'proxy-v1' ? 1 : null;
}

export interface HandshakeOptions {
  identity: Identity;
  /** Our name for the first EHLO. */
  hostname: string;
  connectTimeout: number;
  replyTimeout: number;
  /** backends.tls: STARTTLS to the backend, with its client and session cache. */
  tls?: BackendTlsPolicy;
  /** What the server answered our own EHLO last time (health check or an earlier session), if known. */
  known?: Capabilities | null;
}

export interface BoundBackend {
  conn: BackendConnection;
  /** Capabilities from the last EHLO (the one made as the client). */
  caps: Capabilities;
}

/**
 * `greeted`: a pre-greeted connection from the pool (identities xclient and none only),
 * which skips connect, greeting and our EHLO. If it turns out dead (the backend closed it
 * and we have not noticed yet), a fresh connection is made instead, once.
 */
export async function handshake(
  server: HostPort,
  client: BackendClient,
  opts: HandshakeOptions,
  greeted: Greeted | null = null,
): Promise<BoundBackend> {
  if (greeted && proxyVersion(opts.identity) === null) {
    try {
      return await identify(server, greeted.conn, greeted.caps, client, opts);
    } catch (err) {
      greeted.conn.destroy();
      const stale = err instanceof BackendError && (err.code === 'BACKEND_CLOSED' || err.code === 'BACKEND_TIMEOUT');
      if (!stale) throw err;
    }
  }
  return fresh(server, client, opts);
}

async function fresh(server: HostPort, client: BackendClient, opts: HandshakeOptions): Promise<BoundBackend> {
  // Built before connecting: a client without an IP address and port (which the header
  // cannot name) throws ProxyProtocolError here, without touching the backend. Never
  // replaced by LOCAL: the backend would take Postern itself for the client.
  const pp = proxyVersion(opts.identity);
  const header =
    pp === null
      ? null
      : buildProxyHeader(pp, {
          client: { address: client.address, port: client.port },
          local: { address: client.destAddress, port: client.destPort },
          tls: client.tls ?? null,
          connId: client.connId ?? '',
        });
  const conn = await BackendConnection.connect(server, opts.connectTimeout);
  try {
    // proxy-protocol.txt §2: the header comes first, before the greeting is read, and in
    // one write (Postfix peeks once and wants the whole header in that segment).
    if (header) conn.write(header);
    const greeting = await conn.expect(opts.replyTimeout);
    if (greeting.code !== 220) throw refused('greeting', greeting);
    return await identify(server, conn, null, client, opts);
  } catch (err) {
    conn.destroy();
    throw err;
  }
}

/**
 * After the greeting: XCLIENT (after our own EHLO, which says which attributes the backend
 * takes) and EHLO as the client. `ours`: our EHLO's capabilities, when already known.
 */
async function identify(
  server: HostPort,
  conn: BackendConnection,
  ours: Capabilities | null,
  client: BackendClient,
  opts: HandshakeOptions,
): Promise<BoundBackend> {
  const clientHelo = client.helo ?? opts.hostname;
  let caps: Capabilities;
  if (opts.identity === 'none' && ours) {
    // A plain relay tells the backend nothing about the client: our EHLO will do.
    return { conn, caps: ours };
  }
  const policy = opts.tls ?? { mode: 'off', client: null };
  if (opts.identity === 'xclient') {
    // A pre-greeted connection was secured when it was greeted.
    caps = ours ?? (await secureBackend(conn, server, await ehlo(conn, opts.hostname, opts.replyTimeout), opts.hostname, policy, opts.replyTimeout));
    const attrs = caps.get('XCLIENT');
    if (!attrs) {
      throw new BackendError('BACKEND_NO_XCLIENT', `${server.text} does not offer XCLIENT to us (check smtpd_authorized_xclient_hosts / hosts_xclient)`);
    }
    for (const line of buildXclient(attrs, client)) {
      const r = await conn.command(line, opts.replyTimeout);
      // Postfix repeats its banner, Exim says `220 XCLIENT success`, Postfix's smtp-sink
      // says `250 2.0.0 Ok` (nginx also takes 220 or 250): anything else is a refusal.
      if (r.code !== 220 && r.code !== 250) throw refused('XCLIENT', r);
    }
  }
  caps = await ehlo(conn, clientHelo, opts.replyTimeout);
  if (opts.identity !== 'xclient') caps = await secureBackend(conn, server, caps, clientHelo, policy, opts.replyTimeout);
  return { conn, caps };
}

export async function ehlo(conn: BackendConnection, name: string, timeoutMs: number): Promise<Capabilities> {
  const r = await conn.command(`EHLO ${name}`, timeoutMs);
  if (r.code !== 250) throw refused('EHLO', r);
  return parseEhlo(r);
}

function refused(step: string, r: { code: number; lines: string[]; raw: Buffer }): BackendError {
  return new BackendError('BACKEND_REPLY', `${step} refused: ${replyText(r)}`, r);
}
