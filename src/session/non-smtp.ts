// Recognizes clients that are not speaking SMTP at all: web browsers and scanners,
// POP3/IMAP clients pointed at the wrong port (postscreen's "non-SMTP command").

const HTTP_VERBS = new Set(['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'CONNECT', 'PATCH', 'TRACE']);
const POP_IMAP = new Set(['USER', 'PASS', 'CAPA', 'STLS', 'APOP']);

export function isNonSmtp(verb: string, line: string): boolean {
  if (HTTP_VERBS.has(verb)) return / HTTP\/\d/i.test(line) || verb === 'CONNECT';
  if (POP_IMAP.has(verb)) return true;
  // Header lines of an HTTP request: `Host: x`, `User-Agent: y`.
  return /^(host|user-agent|accept|content-type|content-length):/i.test(line);
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/**
 * A PROXY v2 header (proxy-protocol.txt §2.2) at the start of `chunk`, from a peer not
 * trusted to send one: how many bytes it takes (16 + its length field, at most the chunk),
 * or 0. Read as lines it would be two empty lines, a NUL and `QUIT`, so it is taken whole.
 */
export function proxyV2Header(chunk: Buffer): number {
  if (chunk.length < V2_SIGNATURE.length || !chunk.subarray(0, V2_SIGNATURE.length).equals(V2_SIGNATURE)) return 0;
  const len = chunk.length >= 16 ? 16 + chunk.readUInt16BE(14) : chunk.length;
  return Math.min(len, chunk.length);
}
