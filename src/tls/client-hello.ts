// Reading the client's first flight before TLS starts, to learn the SNI name. Node's SNICallback can
// only copy ONE certificate into a connection whose initial context already holds others, so a name
// served by RSA + ECDSA (or a default that is) would leak the wrong certificate: the context has to be
// right from the start. The bytes read are put back with unshift(); TLSSocket feeds buffered bytes
// to OpenSSL before reading the socket itself (lib/_tls_wrap.js initRead).
import type net from 'node:net';
import { TlsHandshakeError } from './errors.js';
import { reasonOf } from './handshake.js';

/** Enough for any real ClientHello (post-quantum key shares included); beyond it OpenSSL decides. */
const MAX_HELLO = 64 * 1024;

export type HelloParse =
  | { state: 'more' }
  /** servername null: no SNI, or not a parseable ClientHello (OpenSSL will say what is wrong). */
  | { state: 'done'; servername: string | null };

/** Looks at the TLS records received so far for a complete ClientHello and its server_name. */
export function parseClientHello(buf: Buffer): HelloParse {
  const done = (servername: string | null = null): HelloParse => ({ state: 'done', servername });
  // Reassemble the handshake message from as many handshake records as it spans.
  const parts: Buffer[] = [];
  let have = 0;
  let need = -1;
  let off = 0;
  while (need < 0 || have < need) {
    if (off + 5 > buf.length) return buf.length > MAX_HELLO ? done() : { state: 'more' };
    if (buf[off] !== 0x16 || buf[off + 1] !== 0x03) return done();
    const len = buf.readUInt16BE(off + 3);
    if (off + 5 + len > buf.length) return buf.length > MAX_HELLO ? done() : { state: 'more' };
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (need < 0 && have >= 4) {
      const head = Buffer.concat(parts);
      if (head[0] !== 0x01) return done();
      need = 4 + head.readUIntBE(1, 3);
    }
    if (len === 0) return done();
  }
  return done(serverName(Buffer.concat(parts).subarray(4, need)));
}

function serverName(body: Buffer): string | null {
  try {
    let p = 2 + 32; // legacy_version, random
    p += 1 + body.readUInt8(p); // session id
    p += 2 + body.readUInt16BE(p); // cipher suites
    p += 1 + body.readUInt8(p); // compression methods
    const end = p + 2 + body.readUInt16BE(p);
    p += 2;
    while (p + 4 <= end && end <= body.length) {
      const type = body.readUInt16BE(p);
      const len = body.readUInt16BE(p + 2);
      p += 4;
      if (type === 0) {
        // server_name_list: [len16] { name_type(0 = host_name) len16 name }
        const listEnd = p + 2 + body.readUInt16BE(p);
        let q = p + 2;
        while (q + 3 <= listEnd) {
          const nameLen = body.readUInt16BE(q + 1);
          if (body[q] === 0) {
            const name = body.subarray(q + 3, q + 3 + nameLen).toString('latin1');
            return /^[A-Za-z0-9._-]+$/.test(name) ? name.toLowerCase() : null;
          }
          q += 3 + nameLen;
        }
        return null;
      }
      p += len;
    }
  } catch {
    // RangeError from a truncated field: no usable name
  }
  return null;
}

/**
 * Reads from `raw` until a ClientHello is complete (or clearly isn't coming), puts every byte
 * back, and leaves `raw` paused without our listeners. Rejects on close, error or timeout.
 */
export function peekClientHello(raw: net.Socket, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const finish = (err: TlsHandshakeError | null, servername: string | null = null) => {
      clearTimeout(timer);
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('close', onEnd);
      raw.off('error', onError);
      raw.pause();
      if (err) {
        raw.on('error', () => undefined);
        raw.destroy();
        return reject(err);
      }
      try {
        if (buf.length > 0) raw.unshift(buf);
      } catch (e) {
        raw.destroy();
        return reject(new TlsHandshakeError('connection closed', 'server', false, { cause: e }));
      }
      resolve(servername);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseClientHello(buf);
      if (r.state === 'done') finish(null, r.servername);
    };
    const onEnd = () => finish(new TlsHandshakeError('connection closed', 'server'));
    const onError = (err: unknown) => finish(new TlsHandshakeError(reasonOf(err), 'server', false, { cause: err }));
    const timer = setTimeout(() => finish(new TlsHandshakeError('timeout', 'server')), timeoutMs);
    raw.on('data', onData);
    raw.once('end', onEnd);
    raw.once('close', onEnd);
    raw.on('error', onError);
    raw.resume();
  });
}
