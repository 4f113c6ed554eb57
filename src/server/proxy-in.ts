// Inbound PROXY header (proxy-protocol.txt §2) from a trusted balancer, read before the
// session starts. The parser never needs bytes past the header, and neither do we: an SMTP
// client is silent until our banner, so waiting for more would deadlock. Whatever arrived
// in the same segment after the header belongs to the session and is handed back as `rest`.

import type net from 'node:net';
import { parseProxyHeader, ProxyProtocolError, type ParseOptions, type ProxyHeader } from '../proxy/index.js';
import type { Endpoint } from '../observe/records.js';
import { unmapIPv4 } from '../net/ip.js';

export type ProxyInErrorCode =
  /** No complete header within the timeout (§2: "at least 3 seconds"). */
  | 'PROXY_TIMEOUT'
  /** The bytes are not a valid header; `proxyError` says why (the codec's error). */
  | 'PROXY_INVALID'
  /** The peer closed, reset or half-closed before a complete header arrived. */
  | 'PROXY_CLOSED';

export class ProxyInError extends Error {
  constructor(
    readonly code: ProxyInErrorCode,
    message: string,
    /** Everything read from the socket before the failure (for logs; nothing is left unread in it). */
    readonly received: Buffer,
    /** PROXY_INVALID: the codec's error (its `code` is e.g. BAD_SIGNATURE, TOO_LONG, CRC_MISMATCH). */
    readonly proxyError: ProxyProtocolError | null = null,
  ) {
    super(message, proxyError ? { cause: proxyError } : undefined);
    this.name = 'ProxyInError';
  }
}

export interface ProxyRead {
  header: ProxyHeader;
  /** Bytes that followed the header in the same read: the client's first SMTP bytes (pipelining), or empty. */
  rest: Buffer;
}

/**
 * Reads exactly one PROXY header from `socket` (paused or flowing). Resolves once the
 * header is complete; rejects with ProxyInError on timeout, invalid bytes, or close.
 * Either way the socket is left paused, with every listener this function added removed
 * and nothing else changed: the caller attaches its own 'error' handler before the next
 * turn of the event loop, and replays `rest` before resuming the socket.
 */
export function readProxyHeader(socket: net.Socket, timeoutMs: number, opts?: ParseOptions): Promise<ProxyRead> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let done = false;

    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      socket.pause();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      socket.off('error', onError);
    };
    const fail = (code: ProxyInErrorCode, message: string, cause: ProxyProtocolError | null = null): void => {
      if (done) return;
      finish();
      reject(new ProxyInError(code, message, buf, cause));
    };

    const onData = (chunk: Buffer): void => {
      if (done) return;
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let r;
      try {
        r = parseProxyHeader(buf, opts);
      } catch (err) {
        if (err instanceof ProxyProtocolError) return fail('PROXY_INVALID', `invalid PROXY header: ${err.message}`, err);
        return fail('PROXY_INVALID', `invalid PROXY header: ${(err as Error).message}`);
      }
      if (r.kind === 'incomplete') return;
      // pause() inside the 'data' handler stops the stream before it emits another chunk;
      // later bytes wait in the socket's buffer for the session.
      finish();
      resolve({ header: r.header, rest: Buffer.from(buf.subarray(r.length)) });
    };
    const onEnd = (): void => fail('PROXY_CLOSED', `peer closed after ${buf.length} bytes, before a complete PROXY header`);
    const onClose = (): void => fail('PROXY_CLOSED', `connection closed after ${buf.length} bytes, before a complete PROXY header`);
    const onError = (err: Error): void => fail('PROXY_CLOSED', `connection error before a complete PROXY header: ${err.message}`);

    const timer = setTimeout(
      () => fail('PROXY_TIMEOUT', `no complete PROXY header within ${timeoutMs} ms (${buf.length} bytes received)`),
      timeoutMs,
    );

    if (socket.destroyed || socket.readableEnded) {
      fail('PROXY_CLOSED', 'connection already closed');
      return;
    }
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onClose);
    socket.on('error', onError);
    // A listener's pauseOnConnect socket is explicitly paused: adding 'data' alone would not start it.
    socket.resume();
  });
}

export interface ResolvedEndpoints {
  /** The real client: the header's source, or the socket's peer when the header carries none. */
  client: Endpoint;
  /** Where the client connected to: the header's destination, or the socket's local end. */
  local: Endpoint;
  /** true when the addresses come from the header, false when they are the socket's own. */
  fromHeader: boolean;
}

/**
 * The endpoints a session should use. LOCAL (§2.2: a balancer's own health check), v1
 * UNKNOWN (§2.1) and UNSPEC carry no addresses: the socket's are kept. UNIX sources are
 * paths, not addresses a backend or an access rule could use, so they keep the socket's
 * too. v4-mapped IPv6 (`::ffff:a.b.c.d`, as HAProxy sends mixed families) becomes IPv4,
 * like Postfix does (haproxy_srvr.c) and as Postern's own peers are normalised.
 */
export function resolveClient(
  header: ProxyHeader,
  socket: net.Socket,
  // The socket's own endpoints when the caller already has them (no second getsockname).
  own: { client: Endpoint; local: Endpoint } = {
    client: { address: unmapIPv4(socket.remoteAddress), port: socket.remotePort ?? 0 },
    local: { address: unmapIPv4(socket.localAddress), port: socket.localPort ?? 0 },
  },
): ResolvedEndpoints {
  const { source, destination } = header;
  if (header.command !== 'proxy' || (header.family !== 'tcp4' && header.family !== 'tcp6') || !source || !destination) {
    return { ...own, fromHeader: false };
  }
  return {
    client: { address: unmapIPv4(source.address), port: source.port },
    local: { address: unmapIPv4(destination.address), port: destination.port },
    fromHeader: true,
  };
}
