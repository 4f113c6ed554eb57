// Who the client is: one value, built at accept (the socket's peer, or what a trusted
// balancer's PROXY header said), replaced only by XCLIENT from a trusted upstream, and
// turned into what the backend is told (XCLIENT attributes or a PROXY header).

import type { BackendClient } from '../backend/handshake.js';
import { reverseName } from '../backend/reverse.js';
import type { AuthRecord, Endpoint, TlsRecord } from '../observe/records.js';
import { receivedHeader } from '../smtp/received.js';
import type { XclientArgs } from '../smtp/xclient-args.js';

export interface ClientIdentity {
  /** The real client. */
  readonly client: Endpoint;
  /** Where it connected to. */
  readonly local: Endpoint;
  /** The upstream (PROXY balancer or XCLIENT sender) that vouched for `client`, or null. */
  readonly proxy: string | null;
  /** PTR name: told by XCLIENT NAME or looked up (backends.reverse_lookup); undefined until known. */
  readonly name: string | null | undefined;
  /** Who logged in, as told by XCLIENT LOGIN or by SMTP AUTH at Postern. */
  readonly auth: AuthRecord | null;
}

export function acceptedIdentity(client: Endpoint, local: Endpoint, proxy: string | null): ClientIdentity {
  return { client, local, proxy, name: undefined, auth: null };
}

/**
 * The identity after XCLIENT from `upstream` (the peer that sent it). Attributes not told
 * keep their value, except that a new address forgets the old client's PTR name.
 */
export function xclientIdentity(id: ClientIdentity, told: XclientArgs, upstream: string): ClientIdentity {
  const address = told.addr ?? id.client.address;
  const moved = address !== id.client.address;
  return {
    client: { address, port: told.port ?? id.client.port },
    local: { address: told.destAddr ?? id.local.address, port: told.destPort ?? id.local.port },
    proxy: upstream,
    name: told.name !== undefined ? told.name : moved ? undefined : id.name,
    auth: told.login !== undefined ? (told.login === null ? null : { user: told.login, mechanism: 'XCLIENT' }) : id.auth,
  };
}

/** The identity with `auth`: a successful AUTH at Postern. */
export function authenticated(id: ClientIdentity, auth: AuthRecord): ClientIdentity {
  return { ...id, auth };
}

/**
 * backends.reverse_lookup: the forward-confirmed PTR name, looked up once per identity
 * (bounded by `timeoutMs`); the identity as it is when no lookup is wanted or done.
 */
export async function withName(id: ClientIdentity, lookup: boolean, timeoutMs: number): Promise<ClientIdentity> {
  if (!lookup || id.name !== undefined) return id;
  return { ...id, name: await reverseName(id.client.address, timeoutMs) };
}

/**
 * The HELO name the backend is given (XCLIENT HELO and the EHLO made as the client).
 * Whatever the client sent must not make the backend refuse the handshake, or one client
 * could get a server marked down: one token of printable ASCII, else the address literal
 * (RFC 5321 §4.1.3).
 */
export function backendHelo(helo: string | null, address: string): string | null {
  if (helo === null) return null;
  const first = helo.split(/\s+/)[0] ?? '';
  if (/^[\x21-\x7e]{1,255}$/.test(first)) return first;
  return address.includes(':') ? `[IPv6:${address}]` : `[${address}]`;
}

/** What the backend is told about this client (XCLIENT attributes, PROXY header fields). */
export function backendClient(
  id: ClientIdentity,
  session: { connId: string; helo: string | null; esmtp: boolean; tls: TlsRecord | null },
  /** auth.to_backend: xclient-login tells the backend who logged in (XCLIENT LOGIN); none does not. */
  tellLogin = true,
): BackendClient {
  return {
    connId: session.connId,
    tls: session.tls ? { version: session.tls.version, cipher: session.tls.cipher, sni: session.tls.sni } : null,
    address: id.client.address,
    port: id.client.port,
    destAddress: id.local.address,
    destPort: id.local.port,
    helo: backendHelo(session.helo, id.client.address),
    proto: session.esmtp ? 'ESMTP' : 'SMTP',
    name: id.name ?? null,
    login: tellLogin ? (id.auth?.user ?? null) : null,
  };
}

/** Postern's Received: header (RFC 5321 §4.4) for a message from this client. */
export function receivedFor(
  id: ClientIdentity,
  s: { helo: string | null; esmtp: boolean; tls: TlsRecord | null; by: string; id: string; rcpt: string | null },
): Buffer {
  return receivedHeader({
    helo: s.helo,
    address: id.client.address,
    port: id.client.port,
    name: id.name ?? null,
    by: s.by,
    esmtp: s.esmtp,
    tls: s.tls,
    auth: id.auth !== null,
    id: s.id,
    rcpt: s.rcpt,
    date: new Date(),
  });
}
