// Entry point: picks v1 or v2 from the first byte (proxy-protocol.txt §2.2 "identifying the
// protocol version"). No auto-detection of "no header": a listener configured for PROXY
// must get one (§2), so anything else is NOT_PROXY.

import { DEFAULT_MAX_V2_LENGTH } from './constants.js';
import { ProxyProtocolError } from './errors.js';
import type { ParseOptions, ParseResult } from './types.js';
import { parseV1 } from './v1.js';
import { parseV2 } from './v2.js';

/**
 * Incremental: call with everything received so far. 'incomplete' only while the bytes are
 * a valid prefix of a header; never needs bytes past the header's end (an SMTP client waits
 * for our banner, so over-reading would deadlock). `length` is the header's size; the rest
 * belongs to the application. Throws ProxyProtocolError, as early as the prefix proves the
 * header invalid, and nothing else.
 */
export function parseProxyHeader(buf: Uint8Array, opts?: ParseOptions): ParseResult {
  if (buf.length === 0) return { kind: 'incomplete' };
  const first = buf[0];
  if (first === 0x50) return parseV1(buf);
  if (first === 0x0d) return parseV2(buf, opts?.maxV2Length ?? DEFAULT_MAX_V2_LENGTH);
  throw new ProxyProtocolError('NOT_PROXY', `first byte 0x${first.toString(16).padStart(2, '0')} starts no PROXY header`, 0);
}
