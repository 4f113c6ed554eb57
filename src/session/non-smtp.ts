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
