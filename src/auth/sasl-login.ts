// The LOGIN mechanism (draft-murchison-sasl-login-00): the server asks for the user name,
// then the password, each answered with one base64 line. The draft's prompts are
// "User Name" and "Password"; deployed servers and clients use "Username:" and
// "Password:" (as [MS-XLOGIN] §2.2.2 writes them), and some clients send the user name as
// an initial response, which is accepted.
import { SaslSyntaxError, saslText } from './sasl-plain.js';

export const LOGIN_USER_CHALLENGE = Buffer.from('Username:', 'ascii').toString('base64');
export const LOGIN_PASSWORD_CHALLENGE = Buffer.from('Password:', 'ascii').toString('base64');

/** A LOGIN answer (user name or password): UTF-8, not empty, no NUL. */
export function decodeLoginField(bytes: Buffer, what: 'user name' | 'password'): string {
  if (bytes.length === 0) throw new SaslSyntaxError(`LOGIN ${what} is empty`);
  if (bytes.includes(0)) throw new SaslSyntaxError(`LOGIN ${what} contains NUL`);
  return saslText(bytes, `LOGIN ${what}`);
}
