// Reading the client's first flight before TLS starts, to learn the SNI name (and whether it offers TLS 1.3). Node's SNICallback can
// only copy ONE certificate into a connection whose initial context already holds others, so a name
// served by RSA + ECDSA (or a default that is) would leak the wrong certificate: the context has to be
// right from the start. The bytes read are put back with unshift(); TLSSocket feeds buffered bytes
// to OpenSSL before reading the socket itself (lib/_tls_wrap.js initRead).
import type net from 'node:net';
import { TlsHandshakeError } from './errors.js';
import { reasonOf } from './handshake.js';

/** Enough for any real ClientHello (post-quantum key shares included); beyond it OpenSSL decides. */
const MAX_HELLO = 64 * 1024;

export interface HelloInfo {
  /** The SNI host name, lower-cased; null if none or not a parseable ClientHello (OpenSSL will say what is wrong). */
  servername: string | null;
  /** The client offers TLS 1.3 (supported_versions), so with our maximum of 1.3 it will get 1.3. */
  tls13: boolean;
  /** The client sends the SessionTicket extension (RFC 5077 3.2), empty or with a ticket: it takes tickets. */
  ticket: boolean;
  /** ALPN protocol names offered (RFC 7301), e.g. `acme-tls/1` from an ACME validator (RFC 8737). */
  alpn: string[];
}

export type HelloParse = { state: 'more' } | ({ state: 'done' } & HelloInfo);

const NOTHING: HelloInfo = { servername: null, tls13: false, ticket: false, alpn: [] };

/** Looks at the TLS records received so far for a complete ClientHello, its server_name and versions. */
export function parseClientHello(buf: Buffer): HelloParse {
  const done = (info: HelloInfo = NOTHING): HelloParse => ({ state: 'done', ...info });
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
  return done(helloInfo(Buffer.concat(parts).subarray(4, need)));
}

function helloInfo(body: Buffer): HelloInfo {
  const info: HelloInfo = { servername: null, tls13: false, ticket: false, alpn: [] };
  try {
    let p = 2 + 32; // legacy_version, random
    p += 1 + body.readUInt8(p); // session id
    p += 2 + body.readUInt16BE(p); // cipher suites
    p += 1 + body.readUInt8(p); // compression methods
    const end = Math.min(p + 2 + body.readUInt16BE(p), body.length);
    p += 2;
    while (p + 4 <= end) {
      const type = body.readUInt16BE(p);
      const len = body.readUInt16BE(p + 2);
      p += 4;
      if (type === 0) info.servername = hostName(body.subarray(p, p + len));
      else if (type === 43) {
        // supported_versions: [len8] version16...
        const list = body.subarray(p + 1, p + 1 + body.readUInt8(p));
        for (let i = 0; i + 1 < list.length; i += 2) if (list.readUInt16BE(i) === 0x0304) info.tls13 = true;
      } else if (type === 35) info.ticket = true;
      else if (type === 16) info.alpn = alpnNames(body.subarray(p, p + len));
      p += len;
    }
  } catch {
    // RangeError from a truncated field: keep what was read
  }
  return info;
}

/** ProtocolNameList: [len16] { len8 name }... (RFC 7301 3.1); at most 16 names kept. */
function alpnNames(ext: Buffer): string[] {
  const out: string[] = [];
  const end = Math.min(2 + ext.readUInt16BE(0), ext.length);
  let q = 2;
  while (q < end && out.length < 16) {
    const len = ext.readUInt8(q);
    if (q + 1 + len > end) break;
    out.push(ext.subarray(q + 1, q + 1 + len).toString('latin1'));
    q += 1 + len;
  }
  return out;
}

/** server_name_list: [len16] { name_type(0 = host_name) len16 name } */
function hostName(ext: Buffer): string | null {
  const listEnd = Math.min(2 + ext.readUInt16BE(0), ext.length);
  let q = 2;
  while (q + 3 <= listEnd) {
    const nameLen = ext.readUInt16BE(q + 1);
    if (ext[q] === 0) {
      const name = ext.subarray(q + 3, q + 3 + nameLen).toString('latin1');
      return /^[A-Za-z0-9._-]+$/.test(name) ? name.toLowerCase() : null;
    }
    q += 3 + nameLen;
  }
  return null;
}

/**
 * Reads from `raw` until a ClientHello is complete (or clearly isn't coming), puts every byte
 * back, and leaves `raw` paused without our listeners. Rejects on close, error or timeout.
 */
export function peekClientHello(raw: net.Socket, timeoutMs: number): Promise<HelloInfo> {
  return new Promise((resolve, reject) => {
    if (raw.destroyed || !raw.readable) {
      raw.destroy();
      return reject(new TlsHandshakeError('connection closed', 'server'));
    }
    let buf: Buffer = Buffer.alloc(0);
    const finish = (err: TlsHandshakeError | null, info: HelloInfo = NOTHING) => {
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
      resolve(info);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseClientHello(buf);
      if (r.state === 'done') finish(null, { servername: r.servername, tls13: r.tls13, ticket: r.ticket, alpn: r.alpn });
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
