// STARTTLS to a backend (RFC 3207), before XCLIENT: Postfix keeps the TLS state across
// XCLIENT, and the client's identity then crosses the wire encrypted.

import type { BackendsConfig, HostPort } from '../config/types.js';
import { C220ServiceReady } from '../smtp/codes.js';
import type { Capabilities } from '../smtp/ehlo.js';
import type { BackendTls } from '../tls/index.js';
import type { BackendConnection } from './connection.js';
import { BackendError } from './errors.js';
import { ehlo, refused } from './dialog.js';

export interface BackendTlsPolicy {
  mode: BackendsConfig['tls']['starttls'];
  client: BackendTls | null;
}

/**
 * After an EHLO that returned `caps`: STARTTLS when the policy asks for it and the server
 * offers it, then EHLO again as `name` (RFC 3207 §4.2: what was said before TLS is void).
 * Returns the capabilities to use from here on.
 */
export async function secureBackend(
  conn: BackendConnection,
  server: HostPort,
  caps: Capabilities,
  name: string,
  policy: BackendTlsPolicy,
  replyTimeout: number,
): Promise<Capabilities> {
  if (policy.mode === 'off' || !policy.client) return caps;
  if (!caps.has('STARTTLS')) {
    if (policy.mode === 'required') {
      throw new BackendError('BACKEND_NO_STARTTLS', `${server.text} does not offer STARTTLS (backends.tls.starttls: required)`);
    }
    return caps;
  }
  const r = await conn.command('STARTTLS', replyTimeout);
  if (r.code !== C220ServiceReady) {
    if (policy.mode === 'required') throw refused('STARTTLS', r);
    return caps;
  }
  const client = policy.client;
  try {
    await conn.upgrade(async (raw) => {
      const { socket, info } = await client.connect(raw, server, { timeoutMs: replyTimeout });
      conn.tls = { version: info.version, cipher: info.cipher, resumed: info.resumed };
      return socket;
    });
  } catch (err) {
    throw new BackendError('BACKEND_TLS', `STARTTLS with ${server.text} failed: ${(err as Error & { reason?: string }).reason ?? (err as Error).message}`);
  }
  return ehlo(conn, name, replyTimeout);
}
