// Dovecot's auth client protocol (the auth-client socket Postfix's smtpd_sasl_type =
// dovecot uses), pure: line building and parsing. The protocol, as specified in Dovecot's
// developer documentation "Dovecot Authentication Protocol" and implemented by its
// src/auth/auth-client-connection.c and auth-request-handler.c:
//
//   C: VERSION TAB 1 TAB <minor>         C: CPID TAB <pid>
//   S: VERSION TAB 1 TAB <minor>, MECH TAB <name> [TAB <flags>]..., SPID, CUID, COOKIE, DONE
//   C: AUTH TAB <id> TAB <mech> TAB service=smtp [TAB name=value | TAB flag]... TAB resp=<base64>
//   S: OK TAB <id> TAB user=<name> ...  |  FAIL TAB <id> [TAB code=... | reason=... | temp]...
//      |  CONT TAB <id> TAB <base64>
//   C: CANCEL TAB <id>
//
// Lines end in LF; fields are separated by TAB and tab-escaped with \x01 as the escape
// character (\x01 1 = \x01, \x01 t = TAB, \x01 r = CR, \x01 n = LF, \x01 0 = NUL);
// `resp=` must be the last field of AUTH.

export const DOVECOT_MAJOR = 1;
/** Minor 2: an empty `resp=` means an empty initial response (not none). */
export const DOVECOT_MINOR = 2;
/** Dovecot's AUTH_CLIENT_MAX_LINE_LENGTH is 16384; allow slack, but bound what we buffer. */
export const DOVECOT_MAX_LINE = 65536;

export class DovecotProtocolError extends Error {
  readonly code = 'DOVECOT_PROTOCOL' as const;
  constructor(message: string) {
    super(message);
    this.name = 'DovecotProtocolError';
  }
}

export function tabEscape(s: string): string {
  return s.replace(/[\x00\x01\t\r\n]/g, (c) => `\x01${ESC_OUT[c] as string}`);
}

const ESC_OUT: Record<string, string> = { '\x00': '0', '\x01': '1', '\t': 't', '\r': 'r', '\n': 'n' };
const ESC_IN: Record<string, string> = { '0': '\x00', '1': '\x01', t: '\t', r: '\r', n: '\n' };

export function tabUnescape(s: string): string {
  if (!s.includes('\x01')) return s;
  // Anything else after the escape character stands for itself.
  return s.replace(/\x01([\s\S]?)/g, (_, c: string) => ESC_IN[c] ?? c);
}

/** The client's handshake. CPID must be a non-zero pid. */
export function clientHandshake(pid: number): string {
  return `VERSION\t${DOVECOT_MAJOR}\t${DOVECOT_MINOR}\nCPID\t${pid}\n`;
}

export interface ServerHandshake {
  minor: number;
  /** Mechanism name -> its flags (e.g. `plaintext`). */
  mechanisms: Map<string, string[]>;
  spid: string;
  cuid: string;
}

/** Reads the server's handshake line by line; `push` returns the handshake after DONE. */
export class HandshakeReader {
  #minor: number | null = null;
  readonly #mechs = new Map<string, string[]>();
  #spid = '';
  #cuid = '';

  push(line: string): ServerHandshake | null {
    const [cmd, ...args] = line.split('\t');
    if (this.#minor === null) {
      if (cmd !== 'VERSION') throw new DovecotProtocolError(`expected VERSION first, got ${JSON.stringify(line.slice(0, 40))}`);
      const major = Number(args[0]);
      if (major !== DOVECOT_MAJOR) throw new DovecotProtocolError(`unsupported protocol version ${String(args[0])}.${String(args[1])} (need ${DOVECOT_MAJOR}.x)`);
      this.#minor = Number(args[1] ?? 0);
      return null;
    }
    switch (cmd) {
      case 'MECH':
        if (args[0] !== undefined) this.#mechs.set(args[0].toUpperCase(), args.slice(1));
        return null;
      case 'SPID':
        this.#spid = args[0] ?? '';
        return null;
      case 'CUID':
        this.#cuid = args[0] ?? '';
        return null;
      case 'DONE':
        return { minor: this.#minor, mechanisms: this.#mechs, spid: this.#spid, cuid: this.#cuid };
      default:
        // COOKIE (only for login processes) and whatever later versions add.
        return null;
    }
  }
}

export interface AuthRequestFields {
  id: number;
  mechanism: string;
  service: string;
  /** name=value fields; a null value sends the bare flag. Order is kept; `resp` goes last. */
  params: Array<[string, string | null]>;
  /** Base64 initial response. */
  resp: string;
}

export function authLine(f: AuthRequestFields): string {
  let out = `AUTH\t${f.id}\t${tabEscape(f.mechanism)}\tservice=${tabEscape(f.service)}`;
  for (const [name, value] of f.params) out += value === null ? `\t${name}` : `\t${name}=${tabEscape(value)}`;
  return `${out}\tresp=${f.resp}\n`;
}

export function cancelLine(id: number): string {
  return `CANCEL\t${id}\n`;
}

export type ServerReply =
  | { type: 'OK'; id: number; params: Map<string, string> }
  | { type: 'FAIL'; id: number; params: Map<string, string> }
  | { type: 'CONT'; id: number; data: string };

/** A reply to a request, or null for lines that are not (which the client ignores). */
export function parseReply(line: string): ServerReply | null {
  const [cmd, idText, ...rest] = line.split('\t');
  if (cmd !== 'OK' && cmd !== 'FAIL' && cmd !== 'CONT') return null;
  const id = Number(idText);
  if (!Number.isSafeInteger(id) || id <= 0) throw new DovecotProtocolError(`${cmd} with a bad id ${JSON.stringify(idText)}`);
  if (cmd === 'CONT') return { type: 'CONT', id, data: rest[0] ?? '' };
  const params = new Map<string, string>();
  for (const field of rest) {
    const eq = field.indexOf('=');
    // A bare flag (e.g. `temp`, `nodelay`) is kept with an empty value.
    if (eq === -1) params.set(field, '');
    else params.set(field.slice(0, eq), tabUnescape(field.slice(eq + 1)));
  }
  return { type: cmd, id, params };
}

/**
 * What a FAIL means for the SMTP client: `temp_fail` (or 2.2's `temp` flag) is the
 * server's own trouble; everything else (password mismatch, unknown user, authz_fail,
 * user_disabled, pass_expired) is a refusal of these credentials.
 */
export function failIsTemporary(params: Map<string, string>): boolean {
  return params.get('code') === 'temp_fail' || params.has('temp');
}
