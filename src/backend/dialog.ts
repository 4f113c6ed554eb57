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

/**
 * The last EHLO reply of each server and its parse. A server answers every session's EHLO
 * the same way, so the capabilities are parsed once while its reply bytes stay the same
 * (issue 26: the split lines were a per-session allocation). Capabilities are never changed
 * by their users, so one Map serves every binding. Bounded by the servers ever contacted.
 */
const lastEhlo = new Map<string, { raw: Buffer; caps: Capabilities }>();
/** Past this many servers (routes to many hosts) the cache starts over. */
const LAST_EHLO_MAX = 1024;

/** EHLO as `name`: the server's capabilities, or a throw unless it says 250. */
export async function ehlo(conn: BackendConnection, name: string, timeoutMs: number): Promise<Capabilities> {
  const r = await conn.command(`EHLO ${name}`, timeoutMs);
  if (r.code !== C250Completed) throw refused('EHLO', r);
  const key = conn.server.text;
  const last = lastEhlo.get(key);
  if (last?.raw.equals(r.raw)) return last.caps;
  const caps = parseEhlo(r);
  if (lastEhlo.size >= LAST_EHLO_MAX) lastEhlo.clear();
  // A copy: r.raw is a slice of the connection's read buffer.
  lastEhlo.set(key, { raw: Buffer.from(r.raw), caps });
  return caps;
}

/** QUIT and its 221, for a check that must prove the server ends sessions properly. */
export async function quitAndWait(conn: BackendConnection, timeoutMs: number): Promise<void> {
  const r = await conn.command('QUIT', timeoutMs).catch(() => null);
  if (r && r.code !== C221Closing) throw refused('QUIT', r);
}
