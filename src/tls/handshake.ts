// Waiting for a handshake with a deadline, and turning whatever ended it into a TlsHandshakeError.
import type net from 'node:net';
import type tls from 'node:tls';
import { TlsHandshakeError } from './errors.js';

interface SslError extends Error {
  code?: string;
  reason?: string;
}

/** OpenSSL's reason when there is one (`wrong version number`), else the error code (`ECONNRESET`). */
export function reasonOf(err: unknown): string {
  const e = err as SslError;
  if (typeof e?.reason === 'string' && e.reason !== '') return e.reason;
  if (typeof e?.code === 'string' && e.code !== '') return e.code;
  return typeof e?.message === 'string' && e.message !== '' ? e.message : 'unknown error';
}

const noop = (): void => undefined;

/**
 * Resolves on `event` ('secure' for server sockets made with `new TLSSocket`, 'secureConnect' for
 * tls.connect). On error, close or timeout: destroys the TLS socket and the raw one under it and
 * rejects; errors after that are swallowed so none is ever unhandled.
 */
export function awaitHandshake(
  sock: tls.TLSSocket,
  raw: net.Socket,
  event: 'secure' | 'secureConnect',
  side: 'server' | 'client',
  timeoutMs: number,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      sock.off(event, onSecure);
      sock.off('error', onError);
      sock.off('close', onClose);
      sock.off('end', onClose);
    };
    const fail = (reason: string, verify: boolean, cause?: unknown) => {
      cleanup();
      sock.on('error', noop);
      raw.on('error', noop);
      sock.destroy();
      raw.destroy();
      reject(new TlsHandshakeError(reason, side, verify, cause === undefined ? undefined : { cause }));
    };
    const onSecure = () => {
      cleanup();
      resolve();
    };
    const onError = (err: unknown) => {
      // A failed verification is reported after the handshake: authorizationError tells it apart.
      const verifyCode = side === 'client' && !sock.authorized ? sock.authorizationError : null;
      if (verifyCode) fail(String(verifyCode), true, err);
      else fail(reasonOf(err), false, err);
    };
    const onClose = () => fail('connection closed', false);
    const timer = setTimeout(() => fail('timeout', false), timeoutMs);
    sock.once(event, onSecure);
    sock.on('error', onError);
    sock.once('close', onClose);
    // The peer's EOF: the handshake can never finish, since both sides' last step needs input.
    // With allowHalfOpen (Postern's listeners, inherited by the TLS socket) Node would not close on
    // it, so the socket, its fd and its ~48 KB of TLS state would wait for the timeout. A handshake
    // that completes with the same read emits `event` first: input is processed before the EOF.
    sock.once('end', onClose);
  });
}
