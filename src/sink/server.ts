import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import type { SMTPConnection, SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { unmapIPv4 } from '../net/ip.js';
import { ENHANCED_CODE } from './reply.js';

/** What the sink knows about a connection beyond smtp-server's session. */
export interface ConnectionFacts {
  /** The actual TCP peer, before any PROXY header or XCLIENT. */
  peer: { address: string; port: number };
  /** A PROXY header supplied the client address. */
  proxied: boolean;
}

/**
 * smtp-server with three per-connection additions it has no options for:
 * the real peer address is remembered (the session only has the told one),
 * a `LIMITS` line (RFC 9422) is appended to the EHLO reply, and reply texts that
 * already carry an enhanced status code are not given a second one.
 */
export class SinkServer extends SMTPServer {
  private readonly facts = new WeakMap<SMTPServerSession, ConnectionFacts>();

  constructor(options: SMTPServerOptions, private readonly limitsLine: string | null) {
    super(options);
  }

  factsOf(session: SMTPServerSession): ConnectionFacts | undefined {
    return this.facts.get(session);
  }

  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    super.connect(socket, socketOptions);
    // connect() does not return the connection it made; it is the one on this socket
    let conn: SMTPConnection | undefined;
    for (const c of this.connections) if (c._socket === socket) conn = c;
    if (!conn) return; // refused on the spot (maxClients) and already gone
    this.facts.set(conn.session, {
      peer: { address: unmapIPv4(socket.remoteAddress), port: socket.remotePort ?? 0 },
      proxied: Boolean(socketOptions?.remoteAddress),
    });
    this.decorate(conn);
  }

  private decorate(conn: SMTPConnection): void {
    // Instance properties shadow the prototype methods smtp-server calls through `this`.
    // Reply texts with their own enhanced code (rejectRcpt) keep it, and only it;
    // without ENHANCEDSTATUSCODES advertised the code is dropped.
    const enhanced = !this.options.hideENHANCEDSTATUSCODES;
    const send = conn.send.bind(conn);
    conn.send = (code, data, context) => {
      if (typeof data !== 'string' || !ENHANCED_CODE.test(data)) return send(code, data, context);
      send(code, enhanced ? data : data.replace(ENHANCED_CODE, ''), false);
    };

    const limits = this.limitsLine;
    if (!limits) return;
    const ehlo = conn.handler_EHLO;
    conn.handler_EHLO = function (this: SMTPConnection, command, callback) {
      const plain = this.send;
      // The EHLO handler writes its reply with a single multi-line send(250, lines).
      this.send = (code, data, context) =>
        plain(code, code === 250 && Array.isArray(data) ? [...data, limits] : data, context);
      try {
        ehlo.call(this, command, callback);
      } finally {
        this.send = plain;
      }
    };
  }
}
