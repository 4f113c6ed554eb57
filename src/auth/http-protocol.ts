// nginx's auth_http protocol (ngx_mail_auth_http_module), pure: the request headers as
// nginx sends them and the meaning of the response headers. Only headers count; the
// status line and the body are ignored, as nginx ignores them.
//
// Request: Auth-Method (nginx sends `plain` for both PLAIN and LOGIN), Auth-User and
// Auth-Pass (escaped as nginx's NGX_ESCAPE_MAIL_AUTH: CTLs, space and `%` as %XX, other
// bytes raw), Auth-Protocol: smtp, Auth-Login-Attempt, Client-IP, Client-Host, and
// Auth-SMTP-Helo (nginx sends it only for unauthenticated sessions; Postern always does).
// Response: Auth-Status `OK`, `WAIT` (ask again after Auth-Wait seconds) or a refusal
// text; Auth-Wait (seconds to hold the refusal; without it nginx closes the connection
// after replying); Auth-Error-Code (the SMTP code for the refusal, nginx default
// `535 5.7.0`); Auth-Server/Auth-Port (the backend for this user); Auth-User (the login
// to use from now on).
import type { HostPort } from '../config/types.js';
import { parseIp } from '../config/ip.js';
import { SmtpError } from '../smtp/errors.js';
import { AUTH_ERRORS } from './replies.js';
import type { VerifyRequest } from './verifier.js';

/** Auth-Wait values above this are cut to it: the client's command timeout is not ours to spend. */
export const AUTH_WAIT_MAX_MS = 60_000;

/**
 * nginx's NGX_ESCAPE_MAIL_AUTH: bytes 0x00-0x20 and `%` become %XX; everything else,
 * UTF-8 included, is sent as is. DEL (0x7f) is escaped too, which nginx does not do,
 * because an HTTP header value cannot carry it. The result is a latin1 string: one
 * character per byte, as node:http writes header values.
 */
export function escapeMailAuth(value: string): string {
  let out = '';
  for (const b of Buffer.from(value, 'utf8')) {
    out += b <= 0x20 || b === 0x25 || b === 0x7f ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  }
  return out;
}

/** The request headers, in nginx's order, plus the operator's own (auth.verifier.headers). */
export function authHttpRequestHeaders(req: VerifyRequest, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = {
    'Auth-Method': 'plain',
    'Auth-User': escapeMailAuth(req.user),
    'Auth-Pass': escapeMailAuth(req.password),
    'Auth-Protocol': 'smtp',
    'Auth-Login-Attempt': String(req.attempt),
    'Client-IP': req.client.address,
    // nginx without a resolver says [UNAVAILABLE].
    'Client-Host': req.clientHost ?? '[UNAVAILABLE]',
  };
  if (req.helo !== null) h['Auth-SMTP-Helo'] = escapeMailAuth(req.helo);
  if (req.tls) h['Auth-SSL'] = 'on';
  return { ...h, ...extra };
}

/** Response headers as node:http gives them (lower-case names, latin1 values). */
export type ResponseHeaders = Record<string, string | string[] | undefined>;

export type AuthHttpAnswer =
  | { kind: 'ok'; user: string | null; server: HostPort | null }
  | { kind: 'wait'; waitMs: number }
  | { kind: 'refused'; reply: SmtpError; temporary: boolean; waitMs: number | null; reason: string }
  /** The auth server broke the protocol: a temporary failure for the client, a reason for the log. */
  | { kind: 'broken'; reason: string };

export function interpretAuthHttpResponse(headers: ResponseHeaders): AuthHttpAnswer {
  const status = header(headers, 'auth-status');
  if (status === null) return { kind: 'broken', reason: 'the auth server sent no Auth-Status header' };
  const wait = parseWait(header(headers, 'auth-wait'));
  if (status === 'OK') {
    const serverText = header(headers, 'auth-server');
    const portText = header(headers, 'auth-port');
    let server: HostPort | null = null;
    if (serverText !== null || portText !== null) {
      if (serverText === null || portText === null) return { kind: 'broken', reason: 'the auth server sent Auth-Server or Auth-Port without the other' };
      const parsed = parseServer(serverText, portText);
      if (typeof parsed === 'string') return { kind: 'broken', reason: parsed };
      server = parsed;
    }
    const user = header(headers, 'auth-user');
    return { kind: 'ok', user: user === null || user === '' ? null : Buffer.from(user, 'latin1').toString('utf8'), server };
  }
  if (status === 'WAIT') return { kind: 'wait', waitMs: wait ?? 0 };
  const reply = refusalReply(status, header(headers, 'auth-error-code'));
  return { kind: 'refused', reply, temporary: reply.smtpCode < 500, waitMs: wait, reason: `auth server: ${printable(status)}` };
}

function header(headers: ResponseHeaders, name: string): string | null {
  const v = headers[name];
  const one = Array.isArray(v) ? v[0] : v;
  return one === undefined ? null : one.trim();
}

function parseWait(v: string | null): number | null {
  if (v === null || !/^\d{1,9}$/.test(v)) return null;
  return Math.min(Number(v) * 1000, AUTH_WAIT_MAX_MS);
}

/** Like nginx, Auth-Server must be an IP address (no name lookups on this path). */
function parseServer(addr: string, portText: string): HostPort | string {
  const host = addr.startsWith('[') && addr.endsWith(']') ? addr.slice(1, -1) : addr;
  if (parseIp(host) === null) return `the auth server sent Auth-Server ${JSON.stringify(printable(addr))}, which is not an IP address`;
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 1 && port <= 65535)) return `the auth server sent Auth-Port ${JSON.stringify(printable(portText))}, which is not a port`;
  return { host, port, text: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}` };
}

const ERROR_CODE = /^([45])(\d\d)(?:\s+([245])\.(\d{1,3})\.(\d{1,3}))?$/;

/**
 * The SMTP reply for a refusal: Auth-Error-Code (`535 5.7.8`, `454 4.7.0`, or a bare
 * code) and the Auth-Status text, as nginx builds it. Without a usable code: 535 5.7.8
 * (RFC 4954's; nginx itself says 5.7.0).
 */
function refusalReply(statusText: string, code: string | null): SmtpError {
  const text = printable(statusText).slice(0, 200) || AUTH_ERRORS.invalid.text;
  const m = code === null ? null : ERROR_CODE.exec(code);
  if (m === null) return new SmtpError(AUTH_ERRORS.invalid.smtpCode, AUTH_ERRORS.invalid.enhanced, text);
  const smtpCode = Number(`${m[1]}${m[2]}`);
  // An enhanced code whose class differs from the reply's is dropped (RFC 3463 §2).
  const enhanced = m[3] === m[1] ? `${m[3]}.${m[4]}.${m[5]}` : m[1] === '4' ? AUTH_ERRORS.temporary.enhanced : AUTH_ERRORS.invalid.enhanced;
  return new SmtpError(smtpCode, enhanced, text);
}

/** Printable ASCII only: the text goes into an SMTP reply line and the log. */
function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '').trim();
}
