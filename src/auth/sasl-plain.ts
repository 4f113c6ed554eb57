// The PLAIN mechanism, RFC 4616 §2: message = [authzid] NUL authcid NUL passwd, each
// part UTF-8, authcid and passwd not empty, no NUL inside a part.

export interface PlainMessage {
  /** '' when the client asks to act as itself. */
  authzid: string;
  user: string;
  password: string;
}

export class SaslSyntaxError extends Error {
  readonly code = 'SASL_SYNTAX' as const;
  constructor(message: string) {
    super(message);
    this.name = 'SaslSyntaxError';
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Text from UTF-8 bytes; throws SaslSyntaxError on invalid UTF-8. */
export function saslText(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new SaslSyntaxError(`${what} is not UTF-8`);
  }
}

export function decodePlain(message: Buffer): PlainMessage {
  const first = message.indexOf(0);
  const second = first === -1 ? -1 : message.indexOf(0, first + 1);
  if (first === -1 || second === -1) throw new SaslSyntaxError('PLAIN message needs two NUL separators');
  if (message.indexOf(0, second + 1) !== -1) throw new SaslSyntaxError('PLAIN message has more than two NUL separators');
  const authzid = saslText(message.subarray(0, first), 'authzid');
  const user = saslText(message.subarray(first + 1, second), 'authcid');
  const password = saslText(message.subarray(second + 1), 'passwd');
  if (user === '') throw new SaslSyntaxError('PLAIN authcid is empty');
  if (password === '') throw new SaslSyntaxError('PLAIN passwd is empty');
  return { authzid, user, password };
}

/**
 * RFC 4616 §2: with an authzid, the server must check that the authcid may act as it, and
 * refuse otherwise. Postern authorises nobody to act for another user (it tells the
 * backend a single login, XCLIENT LOGIN=), so an authzid is accepted only when it names
 * the authcid itself. One rule for every verifier (Authenticator applies it first).
 */
export function actsAsItself(m: Pick<PlainMessage, 'authzid' | 'user'>): boolean {
  return m.authzid === '' || m.authzid === m.user;
}

export function encodePlain(m: PlainMessage): Buffer {
  return Buffer.concat([Buffer.from(m.authzid, 'utf8'), Buffer.of(0), Buffer.from(m.user, 'utf8'), Buffer.of(0), Buffer.from(m.password, 'utf8')]);
}
