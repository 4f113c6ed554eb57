// Connects a session to one backend server: greeting, EHLO, then the identity step
// (XCLIENT, or nothing), then EHLO again as the client. With a PROXY identity the
// header goes first instead and there is a single EHLO, as the client. When the server's
// capabilities are already known (HandshakeOptions.known) and there is no STARTTLS to
// do, XCLIENT goes straight after the greeting: one round trip fewer per session.
// Returns the connection ready for the client's first relayed command, or throws
// BackendError.
//
// XCLIENT is never pipelined with the EHLO after it, although RFC 2920 §3.1 would allow
// the group (EHLO last) with a server that offers PIPELINING: Postfix (3.7.11, tested)
// treats XCLIENT as a command that must end a group, logs "improper command pipelining
// after XCLIENT" naming Postern (a line fail2ban-style filters match), and with
// smtpd_forbid_unauth_pipelining=yes (the default from 3.9) answers `554 5.5.0 Error: SMTP
// protocol synchronization` and hangs up. XCLIENT_README says the same: "the command
// should be sent at the end of a command group". (smtp-sink takes the group; it is not
// worth a per-server switch.)

import type { Identity, HostPort } from '../config/types.js';
import { C220ServiceReady, C250Completed, isPermanentRefusal } from '../smtp/codes.js';
import type { Capabilities } from '../smtp/ehlo.js';
import type { Reply } from '../smtp/reply.js';
import { BackendConnection } from './connection.js';
import { ehlo, greeting, refused } from './dialog.js';
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

/**
 * The step a handshake is in, for the session record's `backend.attempts`: connect, the
 * greeting (after a PROXY header, if any), our EHLO, STARTTLS (with the EHLO after it),
 * XCLIENT, the EHLO as the client. `proxy`: the header could not name the client; `ready`:
 * done, but the connection was gone before the client's command.
 */
export type HandshakeStage = 'connect' | 'greeting' | 'ehlo' | 'starttls' | 'xclient' | 'proxy' | 'ready';

/** Set by the handshake before each step, so whoever catches its failure knows where it was. */
export interface HandshakeProgress {
  stage: HandshakeStage;
}

export interface HandshakeOptions {
  identity: Identity;
  /** Our name for the first EHLO. */
  hostname: string;
  connectTimeout: number;
  replyTimeout: number;
  /** backends.tls: STARTTLS to the backend, with its client and session cache. */
  tls?: BackendTlsPolicy;
  /**
   * The server's capabilities from its last EHLO, if known: the health check's (ours) or
   * the last session's (as the client, after XCLIENT: Postfix decides XCLIENT rights once
   * per connection, so it still lists XCLIENT there). With XCLIENT listed and no STARTTLS
   * to do, XCLIENT goes straight after the greeting.
   */
  known?: Capabilities | null;
  progress?: HandshakeProgress;
}

/** Marks the step about to run (HandshakeOptions.progress). */
function step(opts: HandshakeOptions, stage: HandshakeStage): void {
  if (opts.progress) opts.progress.stage = stage;
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
  const attrs = knownXclient(server, opts);
  if (attrs === null) return fresh(server, client, opts);
  const quick = await xclientFirst(server, attrs, client, opts);
  if (quick) return quick;
  // XCLIENT straight after the greeting was refused for good (5xx): either `known` is
  // stale (the backend's config changed) or the server wants EHLO first. Today's full
  // path decides which, on a new connection: the refused one may count the refusal
  // against us (Postfix's smtpd_hard_error_limit), and a changed server may say more.
  const full = await fresh(server, client, opts);
  // The full path worked where the shortcut did not. Most likely the server takes XCLIENT
  // only after EHLO (Exim refuses it before EHLO with `503 no HELO/EHLO given` when
  // hosts_require_helo matches, and its default is `*`), and `known` will list XCLIENT
  // again: without this, every session would cost it two connections. If it was a stale
  // attribute list instead, the price is the full path for a while, which is today's.
  ehloFirst.set(server.text, Date.now() + EHLO_FIRST_MS);
  return full;
}

/** How long a server that refused XCLIENT straight after the greeting gets the full handshake. */
const EHLO_FIRST_MS = 10 * 60_000;
/** server.text -> until when it gets EHLO before XCLIENT. One entry per configured server at most. */
const ehloFirst = new Map<string, number>();

/**
 * The XCLIENT attributes to send straight after the greeting, or null for the full path:
 * only with identity xclient, capabilities already known that list XCLIENT, no STARTTLS
 * to do first (RFC 3207 §4.2: capabilities learned in plaintext are void after TLS, and
 * the order stays EHLO, STARTTLS, EHLO, XCLIENT), and no recent refusal of this shortcut.
 */
function knownXclient(server: HostPort, opts: HandshakeOptions): readonly string[] | null {
  if (opts.identity !== 'xclient' || startsTls(opts.tls)) return null;
  const attrs = opts.known?.get('XCLIENT');
  if (!attrs) return null;
  const until = ehloFirst.get(server.text);
  if (until !== undefined) {
    if (Date.now() < until) return null;
    ehloFirst.delete(server.text);
  }
  return attrs;
}

/** Whether secureBackend would STARTTLS: the same test it makes first. */
function startsTls(policy: BackendTlsPolicy | undefined): boolean {
  return policy !== undefined && policy.mode !== 'off' && policy.client !== null;
}

/**
 * Connect, greeting, XCLIENT with the known attributes, EHLO as the client: no EHLO of
 * our own (XCLIENT_README: "EHLO first is optional"). Null when XCLIENT was refused with
 * 5xx (the connection is closed politely); any other failure throws as the full path does.
 */
async function xclientFirst(
  server: HostPort,
  attrs: readonly string[],
  client: BackendClient,
  opts: HandshakeOptions,
): Promise<BoundBackend | null> {
  const conn = await open(server, null, opts);
  try {
    step(opts, 'xclient');
    const no = await sendXclient(conn, attrs, client, opts.replyTimeout);
    if (no && isPermanentRefusal(no.code)) {
      conn.quit();
      return null;
    }
    if (no) throw refused('XCLIENT', no);
    step(opts, 'ehlo');
    return { conn, caps: await ehlo(conn, client.helo ?? opts.hostname, opts.replyTimeout) };
  } catch (err) {
    conn.destroy();
    throw err;
  }
}

async function fresh(server: HostPort, client: BackendClient, opts: HandshakeOptions): Promise<BoundBackend> {
  // Built before connecting: a client without an IP address and port (which the header
  // cannot name) throws ProxyProtocolError here, without touching the backend. Never
  // replaced by LOCAL: the backend would take Postern itself for the client.
  const pp = proxyVersion(opts.identity);
  if (pp !== null) step(opts, 'proxy');
  const header =
    pp === null
      ? null
      : buildProxyHeader(pp, {
          client: { address: client.address, port: client.port },
          local: { address: client.destAddress, port: client.destPort },
          tls: client.tls ?? null,
          connId: client.connId ?? '',
        });
  const conn = await open(server, header, opts);
  try {
    return await identify(server, conn, null, client, opts);
  } catch (err) {
    conn.destroy();
    throw err;
  }
}

/** Connects, sends the PROXY header if any, and reads the greeting (RFC 5321 §4.3.1: 220). */
async function open(server: HostPort, header: Buffer | null, opts: HandshakeOptions): Promise<BackendConnection> {
  step(opts, 'connect');
  const conn = await BackendConnection.connect(server, opts.connectTimeout);
  step(opts, 'greeting');
  try {
    // proxy-protocol.txt §2: the header comes first, before the greeting is read, and in
    // one write (Postfix peeks once and wants the whole header in that segment).
    if (header) conn.write(header);
    await greeting(conn, opts.replyTimeout);
    return conn;
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
    if (ours) caps = ours;
    else {
      step(opts, 'ehlo');
      const plain = await ehlo(conn, opts.hostname, opts.replyTimeout);
      step(opts, 'starttls');
      caps = await secureBackend(conn, server, plain, opts.hostname, policy, opts.replyTimeout);
    }
    step(opts, 'xclient');
    const attrs = caps.get('XCLIENT');
    if (!attrs) {
      throw new BackendError('BACKEND_NO_XCLIENT', `${server.text} does not offer XCLIENT to us (check smtpd_authorized_xclient_hosts / hosts_xclient)`);
    }
    const no = await sendXclient(conn, attrs, client, opts.replyTimeout);
    if (no) throw refused('XCLIENT', no);
  }
  step(opts, 'ehlo');
  caps = await ehlo(conn, clientHelo, opts.replyTimeout);
  if (opts.identity !== 'xclient') {
    step(opts, 'starttls');
    caps = await secureBackend(conn, server, caps, clientHelo, policy, opts.replyTimeout);
  }
  return { conn, caps };
}

/**
 * Sends the XCLIENT lines one at a time, each after the previous one's reply (never
 * pipelined: see the top of this file). Returns the reply that refused a line, or null.
 */
async function sendXclient(conn: BackendConnection, attrs: readonly string[], client: BackendClient, timeoutMs: number): Promise<Reply | null> {
  for (const line of buildXclient(attrs, client)) {
    const r = await conn.command(line, timeoutMs);
    // Postfix repeats its banner, Exim says `220 XCLIENT success`, Postfix's smtp-sink
    // says `250 2.0.0 Ok` (nginx also takes 220 or 250): anything else is a refusal.
    if (r.code !== C220ServiceReady && r.code !== C250Completed) return r;
  }
  return null;
}
