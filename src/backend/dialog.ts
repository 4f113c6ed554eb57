// The SMTP exchanges every backend connection starts with, and the one rule for what
// counts as a refusal: the greeting must be 220 (RFC 5321 §4.3.1: 554 means "no service
// here"), EHLO must be 250 (§4.1.1.1), QUIT is answered 221 (§4.1.1.10). The handshake,
// the health check and the pre-greeted pool all talk to servers through these.

import { C220ServiceReady, C221Closing, C250Completed } from '../smtp/codes.js';
import { parseEhlo, type Capabilities } from '../smtp/ehlo.js';
import { replyText, type Reply } from '../smtp/reply.js';
import type { BackendConnection } from './connection.js';
import { BackendError } from './errors.js';

/** A reply that is not the one `step` needs: the server refuses. */
export function refused(step: string, r: Reply): BackendError {
  return new BackendError('BACKEND_REPLY', `${step} refused: ${replyText(r)}`, r);
}

/** Reads the server's greeting; throws unless it is 220. */
export async function greeting(conn: BackendConnection, timeoutMs: number): Promise<Reply> {
  const r = await conn.expect(timeoutMs);
  if (r.code !== C220ServiceReady) throw refused('greeting', r);
  return r;
}

/** EHLO as `name`: the server's capabilities, or a throw unless it says 250. */
export async function ehlo(conn: BackendConnection, name: string, timeoutMs: number): Promise<Capabilities> {
  const r = await conn.command(`EHLO ${name}`, timeoutMs);
  if (r.code !== C250Completed) throw refused('EHLO', r);
  return parseEhlo(r);
}

/** QUIT and its 221, for a check that must prove the server ends sessions properly. */
export async function quitAndWait(conn: BackendConnection, timeoutMs: number): Promise<void> {
  const r = await conn.command('QUIT', timeoutMs).catch(() => null);
  if (r && r.code !== C221Closing) throw refused('QUIT', r);
}
