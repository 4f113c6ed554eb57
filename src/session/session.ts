// One client connection, from greeting to session record. Postern answers the front
// phase itself (RFC 5321 §4.1.1), binds a backend at the first command that needs one,
// then relays while still parsing both directions: every command has a slot in the
// ordered reply queue, so Postern's own refusals and the backend's replies reach the
// client in command order even when the client pipelines (RFC 2920).

import { isIP } from 'node:net';
import type net from 'node:net';
import { domainToASCII } from 'node:url';
import type { Config, ListenerConfig } from '../config/types.js';
import type { BackendConnection } from '../backend/connection.js';
import { BackendError } from '../backend/errors.js';
import { handshake, type BackendClient } from '../backend/handshake.js';
import { reverseName } from '../backend/reverse.js';
import type { BackendPool, ServerState } from '../backend/pool.js';
import type { AnomalyKind } from '../observe/anomalies.js';
import type { Logger } from '../observe/logger.js';
import type { Metrics } from '../observe/metrics.js';
import { anomalyRecord } from '../observe/records.js';
import { parseBdat } from '../smtp/bdat.js';
import { ENDS_GROUP, addressDomain, parseCommand, parsePathCommand } from '../smtp/command.js';
import { DataScanner } from '../smtp/data.js';
import { capSize, lowerLimits, parseEhlo, parseLimits, renderEhlo, renderLimits, type Capabilities, type Limits } from '../smtp/ehlo.js';
import { SmtpError } from '../smtp/errors.js';
import { LineReader, type Line } from '../smtp/lines.js';
import { BareLineNormalizer } from '../smtp/normalize.js';
import { receivedHeader } from '../smtp/received.js';
import { replyText, type Reply } from '../smtp/reply.js';
import { xtextDecode } from '../smtp/xtext.js';
import type { TlsInfo, TlsTerminator } from '../tls/index.js';
import { ReplyQueue, type Slot } from './reply-queue.js';
import { isNonSmtp } from './non-smtp.js';

export type CloseReason = 'quit' | 'client_closed' | 'client_reset' | 'timeout' | 'limit' | 'backend_failed' | 'shutdown' | 'error';

export interface Endpoint {
  address: string;
  port: number;
}

export interface SessionContext {
  id: string;
  config: Config;
  listener: ListenerConfig;
  pool: BackendPool;
  logger: Logger;
  metrics: Metrics;
  /** Whether an anomaly kind gets its own log record (`log.anomalies`). */
  logAnomaly: (kind: AnomalyKind) => boolean;
  /** The real client (after PROXY / XCLIENT from a trusted upstream). */
  client: Endpoint;
  /** Where the client connected to. */
  local: Endpoint;
  /** The upstream proxy that vouched for `client`, or null. */
  proxy: string | null;
  /** The peer is in the listener's trusted_proxies: it may send XCLIENT. */
  trusted?: boolean;
  /** Bytes that arrived with the PROXY header, before our greeting. */
  initial?: Buffer | null;
  /** A trusted peer's PROXY header failed: refuse everything but QUIT (as Exim does). */
  proxyFailure?: string | null;
  /** The handshake already done on this socket (implicit TLS). */
  tls?: TlsInfo | null;
  /** Does STARTTLS handshakes for `tls: starttls` listeners. */
  terminator?: TlsTerminator | null;
  /** XCLIENT named another client: count it for the per-IP limits; a refusal text if over. */
  readmit?: (address: string) => string | null | Promise<string | null>;
  onEnd?: (s: Session) => void;
}

type Mode = 'command' | 'data' | 'bdat' | 'starttls' | 'closed';

interface Transaction {
  from: string;
  /** The first recipient the backend accepted (for Received: ... for <rcpt>). */
  firstRcpt: string | null;
  /** Postern's Received: header already went into this transaction's body. */
  traced: boolean;
  /** Recipients the backend accepted. */
  rcpts: number;
  /** Body bytes (DATA: as on the wire; BDAT: chunk sizes). */
  size: number;
}

interface Bound {
  conn: BackendConnection;
  server: ServerState;
  caps: Capabilities;
  /** Derived from `caps` once per EHLO, not per RCPT or body chunk. */
  size: number | null;
  limits: Limits;
}

/** A binding's capabilities and what follows from them. */
function withCaps(conn: BackendConnection, server: ServerState, caps: Capabilities): Bound {
  return { conn, server, caps, size: capSize(caps), limits: parseLimits(caps) };
}

/** What a trusted upstream may tell us with XCLIENT (Postfix's XCLIENT_README set). */
const XCLIENT_ATTRS = ['ADDR', 'PORT', 'NAME', 'HELO', 'PROTO', 'LOGIN', 'DESTADDR', 'DESTPORT'] as const;

/**
 * The HELO name the backend is given (XCLIENT HELO and the EHLO made as the client).
 * Whatever the client sent must not make the backend refuse the handshake, or one client
 * could get a server marked down: one token of printable ASCII, else the address literal
 * (RFC 5321 §4.1.3).
 */
export function backendHelo(helo: string | null, address: string): string | null {
  if (helo === null) return null;
  const first = helo.split(/\s+/)[0] ?? '';
  if (/^[\x21-\x7e]{1,255}$/.test(first)) return first;
  return address.includes(':') ? `[IPv6:${address}]` : `[${address}]`;
}

/** Anomaly detail for early bytes: printable, short. */
function describeBytes(b: Buffer): string {
  return JSON.stringify(b.subarray(0, 60).toString('latin1'));
}

/** Postfix's smtpd_hard_error_limit default. */
const MAX_ERRORS = 20;
/** While input processing waits (binding, DATA reply), stop reading past this much. */
const MAX_BUFFERED = 256 * 1024;

export class Session {
  readonly id: string;
  readonly started = Date.now();
  readonly #ctx: SessionContext;
  readonly #cfg: Config;
  #socket: net.Socket;
  readonly #reader = new LineReader();
  readonly #queue: ReplyQueue;
  readonly #scanner = new DataScanner();
  /** `smtp.bare_lf: normalize`: rewrites each body so that only CRLF line ends reach the backend. */
  #normalizer: BareLineNormalizer | null = null;

  #mode: Mode = 'command';
  #client: Endpoint;
  #local: Endpoint;
  #proxy: string | null;
  /** PTR name told by a trusted upstream's XCLIENT NAME. */
  #clientName: string | null = null;
  #auth: string | null = null;
  /** backends.reverse_lookup done for this client (once per session). */
  #nameLooked = false;
  #refuseAll = false;
  /** Set once the client's TLS handshake is done (implicit TLS or STARTTLS). */
  #tls: TlsInfo | null = null;
  /** The final 220 has gone out (at once unless smtp.pregreet.wait). */
  #greeted = true;
  #greetTimer: NodeJS.Timeout | null = null;
  /** Input processing waits for an asynchronous step (bind, DATA's reply). */
  #waiting = false;
  #readPaused = false;
  #helo: string | null = null;
  #esmtp = false;
  #bound: Bound | null = null;
  #lastBackend: string | null = null;
  /** TLS with the last bound backend (STARTTLS), for the record. */
  #lastBackendTls: { version: string; cipher: string; resumed: boolean } | null = null;
  /** Sessions the bound connection served before this one (backends.pool.reuse). */
  #lastBackendReused = 0;
  /** No reply of the bound backend was a 4xx/5xx: its error counters are still clean. */
  #backendClean = true;
  /** A QUIT waiting for the backend's owed replies before it decides reuse. */
  #onBackendIdle: (() => void) | null = null;
  #tx: Transaction | null = null;
  /** Why the body being received will not be relayed; it is answered after its terminator. */
  #poisoned: SmtpError | null = null;
  #bdatLeft = 0;
  #bdatLast = false;
  #bdatSkip = false;

  /** MAIL commands this session, failed ones included (RFC 9422 §4.1 MAILMAX). */
  #mailCommands = 0;
  /** RCPT commands in the current transaction (RCPTMAX counts commands, §4.2). */
  #txRcptCommands = 0;
  /** Distinct recipient domains in the current transaction (RCPTDOMAINMAX, §4.3). */
  readonly #txDomains = new Set<string>();
  readonly #limitRejections: Record<string, number> = {};
  #transactions = 0;
  #rcpts = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  #errors = 0;
  readonly #anomalies = new Set<AnomalyKind>();

  #prevVerb: string | null = null;
  #pipelinedNext = false;
  #quitSeen = false;
  #quitFlushed = false;
  #close: CloseReason | null = null;
  /** The client vanished while sending a body: the backend must see a drop, never a terminator. */
  #midBody = false;
  #finished = false;
  #timer: NodeJS.Timeout | null = null;
  #timerMs = 0;

  constructor(socket: net.Socket, ctx: SessionContext) {
    this.id = ctx.id;
    this.#ctx = ctx;
    this.#cfg = ctx.config;
    this.#socket = socket;
    this.#client = ctx.client;
    this.#local = ctx.local;
    this.#proxy = ctx.proxy;
    this.#queue = new ReplyQueue({ write: (chunks, done) => this.#write(chunks, done) });
  }

  /** Public view for /sessions and the shutdown path. */
  get state(): string {
    if (this.#finished) return 'closed';
    if (this.#mode !== 'command') return this.#mode;
    return this.#bound ? 'relay' : this.#helo ? 'front' : 'greeting';
  }

  readonly #listeners = {
    data: (chunk: Buffer) => this.#onData(chunk),
    end: () => this.#onClientEnd(),
    error: (err: NodeJS.ErrnoException) => this.#onClientError(err),
    close: () => {
      if (this.#close === null && !this.#quitSeen) this.#clientGone('client_closed');
      this.#finish(this.#quitSeen ? 'quit' : 'client_closed');
    },
  };

  #attach(s: net.Socket): void {
    s.setNoDelay?.(true);
    s.on('data', this.#listeners.data);
    s.on('end', this.#listeners.end);
    s.on('error', this.#listeners.error);
    s.on('close', this.#listeners.close);
  }

  #detach(s: net.Socket): void {
    s.off('data', this.#listeners.data);
    s.off('end', this.#listeners.end);
    s.off('error', this.#listeners.error);
    s.off('close', this.#listeners.close);
  }

  start(): void {
    if (this.#ctx.tls) {
      this.#tls = this.#ctx.tls;
    }
    this.#attach(this.#socket);
    this.#setTimer(this.#cfg.limits.timeouts.greeting);
    if (this.#ctx.proxyFailure) {
      this.#anomaly('proxy_header_invalid', this.#ctx.proxyFailure);
      this.#refuseAll = true;
    }
    const wait = this.#cfg.smtp.pregreet.wait;
    if (wait > 0) {
      // postscreen's greet wait: a `220-` line, then the final 220 later; a client that
      // talks in between did not wait for the greeting (RFC 5321 §3.1, §4.3.1).
      this.#greeted = false;
      this.#wait();
      this.#writeNow(`220-${this.#cfg.hostname} ESMTP Postern\r\n`);
      this.#greetTimer = setTimeout(() => this.#greet(), wait);
    } else {
      this.#queue.reply(this.#greeting());
    }
    if (this.#ctx.initial) {
      // Arrived with the PROXY header, so before any greeting could have been seen.
      this.#anomaly('pregreet', describeBytes(this.#ctx.initial));
      this.#onData(this.#ctx.initial);
    }
  }

  #greet(): void {
    this.#greetTimer = null;
    if (this.#finished || this.#mode === 'closed') return;
    this.#greeted = true;
    if (this.#anomalies.has('pregreet') && this.#cfg.smtp.pregreet.action === 'reject') {
      this.#close ??= 'error';
      this.#mode = 'closed';
      this.#queue.reply(`554 5.5.0 ${this.#cfg.hostname} Protocol error: talked before the greeting\r\n`, () => this.#socket.end());
      return;
    }
    this.#queue.reply(this.#greeting());
    this.#resume();
  }

  #greeting(): string {
    return `220 ${this.#cfg.hostname} ESMTP Postern\r\n`;
  }

  /** Shutdown: tell the client and close (SIGTERM after the grace period). */
  shutdown(): void {
    if (this.#finished) return;
    this.#close ??= 'shutdown';
    this.#abortBackend();
    this.#mode = 'closed';
    this.#writeNow(`421 4.3.2 ${this.#cfg.hostname} Service shutting down\r\n`);
    this.#socket.end();
  }

  // ---- client input -------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    this.#bytesIn += chunk.length;
    switch (this.#mode) {
      case 'closed':
      case 'starttls':
        return;
      case 'data':
        this.#setTimer(this.#cfg.limits.timeouts.data);
        this.#dataChunk(chunk);
        return;
      case 'bdat':
        this.#setTimer(this.#cfg.limits.timeouts.data);
        this.#bdatChunk(chunk);
        return;
      case 'command':
        if (!this.#greeted) this.#anomaly('pregreet', describeBytes(chunk));
        // Sent while a reply was still owed: the client did not wait for it.
        if (this.#queue.owed > 0 || this.#waiting) this.#pipelinedNext = true;
        this.#reader.push(chunk);
        this.#processInput();
    }
  }

  #processInput(): void {
    const backend = this.#bound?.conn.socket;
    // One write to the backend per pipelined group (RFC 2920 §3.1).
    backend?.cork();
    try {
      while (!this.#waiting && this.#mode !== 'closed') {
        if (this.#mode === 'data') {
          const rest = this.#reader.takeAll();
          if (rest.length) this.#dataChunk(rest);
          break;
        }
        if (this.#mode === 'bdat') {
          const bytes = this.#reader.readBytes(this.#bdatLeft);
          if (!bytes) break;
          this.#bdatChunk(bytes);
          continue;
        }
        const line = this.#reader.readLine(this.#cfg.limits.line_length);
        if (!line) break;
        this.#setTimer(this.#cfg.limits.timeouts.command);
        this.#handleLine(line);
        if (this.#reader.length > 0) this.#pipelinedNext = true;
      }
    } finally {
      backend?.uncork();
    }
    this.#flowControl();
  }

  /** Stop reading from the client while input piles up behind an asynchronous step. */
  #flowControl(): void {
    const pile = this.#waiting && this.#reader.length > MAX_BUFFERED;
    if (pile && !this.#readPaused) {
      this.#readPaused = true;
      this.#socket.pause();
    } else if (!pile && this.#readPaused) {
      this.#readPaused = false;
      this.#socket.resume();
    }
  }

  #wait(): void {
    this.#waiting = true;
  }

  #resume(): void {
    if (!this.#waiting) return;
    this.#waiting = false;
    // After the current reply handler has returned and its reply is queued.
    queueMicrotask(() => this.#processInput());
  }

  #handleLine(line: Line): void {
    const pipelined = this.#pipelinedNext;
    this.#pipelinedNext = false;
    if (line.tooLong) {
      this.#anomaly('line_too_long', `command line over ${this.#cfg.limits.line_length} bytes`);
      this.#refuse(new SmtpError(500, '5.5.2', 'Line too long'));
      return;
    }
    if (line.bareLf) this.#anomaly('bare_lf', 'command line ended by bare LF or containing bare CR');
    const text = line.text.toString('utf8');
    const cmd = parseCommand(text);
    const prev = this.#prevVerb;
    this.#prevVerb = cmd.verb;
    // A client that is not speaking SMTP at all is named for that alone.
    if (pipelined && prev !== null && (!this.#esmtp || ENDS_GROUP.has(prev)) && !this.#anomalies.has('non_smtp')) {
      this.#anomaly(
        'pipelining_violation',
        this.#esmtp ? `${cmd.verb} sent before the reply to ${prev}` : `${cmd.verb} pipelined without PIPELINING`,
      );
    }
    try {
      this.#dispatch(cmd.verb, cmd.args, text);
    } catch (err) {
      if (!(err instanceof SmtpError)) throw err;
      this.#refuse(err);
    }
  }

  #dispatch(verb: string, args: string, line: string): void {
    if (this.#refuseAll && verb !== 'QUIT') {
      throw new SmtpError(503, '5.7.0', 'Command refused, required Proxy negotiation failed');
    }
    switch (verb) {
      case 'EHLO':
      case 'HELO':
        return this.#hello(verb, args);
      case 'MAIL':
        return this.#mail(args, line);
      case 'RCPT':
        return this.#rcpt(args, line);
      case 'DATA':
        return this.#data(args);
      case 'BDAT':
        return this.#bdat(args, line);
      case 'RSET':
        return this.#rset();
      case 'NOOP':
        return this.#queue.reply('250 2.0.0 Ok\r\n');
      case 'QUIT':
        return this.#quit();
      case 'HELP':
        return this.#queue.reply('214 2.0.0 Postern SMTP proxy; see RFC 5321\r\n');
      case 'VRFY':
      case 'EXPN':
        return this.#vrfy(verb, line);
      case 'XCLIENT':
        if (this.#ctx.trusted) return this.#xclient(args);
        // Never passed on: a backend trusting us would take the client's word for its identity.
        this.#anomaly('xclient_untrusted', `XCLIENT from ${this.#client.address}`);
        throw new SmtpError(550, '5.7.0', 'XCLIENT not allowed');
      case 'PROXY':
        if (this.#ctx.listener.proxy_protocol === 'on') {
          // A header from a peer not in trusted_proxies, or a second one: never believed.
          this.#anomaly('proxy_header_invalid', `PROXY line from untrusted peer ${this.#client.address}`);
          throw new SmtpError(503, '5.5.1', 'PROXY header not accepted from your address');
        }
        throw new SmtpError(550, '5.7.0', 'PROXY header not allowed here');
      case 'STARTTLS':
        return this.#starttls(args);
      case 'AUTH':
        throw new SmtpError(502, '5.5.1', `${verb} not available`);
      default:
        if (isNonSmtp(verb, line)) {
          this.#anomaly('non_smtp', line.slice(0, 80));
          if (this.#cfg.smtp.non_smtp.action === 'disconnect') {
            this.#close ??= 'error';
            this.#mode = 'closed';
            this.#queue.reply(`521 5.5.1 ${this.#cfg.hostname} Non-SMTP command, closing\r\n`, () => this.#socket.end());
            return;
          }
        }
        throw new SmtpError(500, '5.5.2', 'Command not recognized');
    }
  }

  #refuse(err: SmtpError): void {
    if (err.smtpCode >= 500 && ++this.#errors >= MAX_ERRORS) {
      this.#close ??= 'error';
      this.#mode = 'closed';
      this.#queue.reply(err.reply);
      this.#queue.reply(`421 4.7.0 ${this.#cfg.hostname} Too many errors\r\n`, () => this.#socket.end());
      return;
    }
    this.#queue.reply(err.reply);
  }

  // ---- commands ----------------------------------------------------------------------

  #hello(verb: string, args: string): void {
    const name = args.trim();
    if (!name) throw new SmtpError(501, '5.5.4', `Syntax: ${verb} hostname`);
    this.#helo = name;
    this.#esmtp = verb === 'EHLO';
    this.#tx = null;
    this.#newTransaction();
    if (verb === 'HELO') this.#queue.reply(`250 ${this.#cfg.hostname}\r\n`);
    else this.#queue.reply(renderEhlo(`${this.#cfg.hostname} greets ${name}`, this.#capabilities()));
    // EHLO resets any transaction (RFC 5321 §4.1.4): pass it on, so the backend forgets
    // the transaction too and knows the name the client gives now. Its reply is ours to read.
    const bound = this.#bound;
    if (bound) {
      bound.conn.helo = backendHelo(name, this.#client.address);
      this.#forward(
        `EHLO ${bound.conn.helo}`,
        (r) => {
          if (r.code === 250) Object.assign(bound, withCaps(bound.conn, bound.server, parseEhlo(r)));
          return null;
        },
        undefined,
        true,
      );
    }
  }

  /** What Postern offers: its own extensions plus what every live backend (or the bound one) supports. */
  #capabilities(): Capabilities {
    const caps: Capabilities = new Map();
    caps.set('PIPELINING', []);
    if (this.#starttlsOffered()) caps.set('STARTTLS', []); // RFC 3207 §4: not after TLS is up
    caps.set('SIZE', [String(this.#sizeLimit())]);
    const offered = this.#bound ? new Set(this.#bound.caps.keys()) : this.#ctx.pool.offered().extensions;
    for (const ext of ['8BITMIME', 'SMTPUTF8', 'DSN', 'ENHANCEDSTATUSCODES', 'CHUNKING'] as const) {
      if (offered.has(ext)) caps.set(ext, []);
    }
    const limits = renderLimits(this.#limits());
    if (limits) caps.set('LIMITS', limits); // RFC 9422 §3
    if (this.#ctx.trusted) caps.set('XCLIENT', [...XCLIENT_ATTRS]);
    return caps;
  }

  /** LIMITS in force: ours, lowered to what the bound backend (or every live one) announces. */
  #limits(): Limits {
    const own: Limits = { mailmax: this.#cfg.limits.mailmax, rcptmax: this.#cfg.limits.rcptmax, rcptdomainmax: this.#cfg.limits.rcptdomainmax };
    return lowerLimits(own, this.#bound ? this.#bound.limits : this.#ctx.pool.offered().limits);
  }

  #limitHit(limit: 'mailmax' | 'rcptmax' | 'rcptdomainmax'): void {
    this.#limitRejections[limit] = (this.#limitRejections[limit] ?? 0) + 1;
    this.#ctx.metrics.limitRejections.inc({ limit });
  }

  #newTransaction(): void {
    this.#txRcptCommands = 0;
    this.#txDomains.clear();
  }

  /** SIZE: ours, lowered to what the backend announces. */
  #sizeLimit(): number {
    const own = this.#cfg.limits.message_size;
    const theirs = this.#bound ? this.#bound.size : this.#ctx.pool.offered().size;
    return theirs !== null && theirs < own ? theirs : own;
  }

  #mail(args: string, line: string): void {
    this.#mailCommands++;
    const { mailmax } = this.#limits();
    if (mailmax !== null && this.#mailCommands > mailmax) {
      // MAILMAX (RFC 9422 §4.1) has no standard reply; Exim's practice is 421 and close.
      // Replies owed for earlier commands still go out first; then QUIT to the backend.
      this.#limitHit('mailmax');
      this.#close ??= 'limit';
      this.#mode = 'closed';
      this.#queue.reply(`421 4.7.0 Too many transactions in this session\r\n`, () => this.#socket.end());
      return;
    }
    if (!this.#helo) throw new SmtpError(503, '5.5.1', 'Send HELO/EHLO first');
    this.#newTransaction();
    const path = parsePathCommand(args, 'FROM');
    const size = path.params.get('SIZE');
    if (size !== undefined && size !== null) {
      const n = Number(size);
      if (!/^\d{1,20}$/.test(size)) throw new SmtpError(501, '5.5.4', 'Bad SIZE parameter');
      // RFC 1870 §6.1: a declared size over the limit is refused before any data moves.
      if (n > this.#sizeLimit()) throw new SmtpError(552, '5.3.4', 'Message size exceeds fixed limit');
    }
    const from = path.address;
    this.#toBackend(line, (r) => {
      if (this.#bound) this.#bound.conn.transactions++;
      this.#tx = r.code >= 200 && r.code < 300 ? { from, rcpts: 0, size: 0, firstRcpt: null, traced: false } : null;
      return r.raw;
    });
  }

  #rcpt(args: string, line: string): void {
    if (!this.#bound) throw new SmtpError(503, '5.5.1', 'Need MAIL command');
    const path = parsePathCommand(args, 'TO');
    const rcptAddress = path.address;
    const limits = this.#limits();
    if (limits.rcptmax !== null && ++this.#txRcptCommands > limits.rcptmax) {
      // RFC 5321 §4.5.3.1.10: 452 is the reply for too many recipients.
      this.#limitHit('rcptmax');
      throw new SmtpError(452, '4.5.3', 'Too many recipients');
    }
    if (limits.rcptdomainmax !== null) {
      const raw = addressDomain(path.address);
      // Compare A-labels, so a U-label and its punycode form are one domain (IDNA only
      // when there is a non-ASCII character: the common case costs a lower-casing).
      const domain = /^[\x00-\x7f]*$/.test(raw) ? raw.toLowerCase() : (domainToASCII(raw) || raw).toLowerCase();
      if (!this.#txDomains.has(domain)) {
        if (this.#txDomains.size >= limits.rcptdomainmax) {
          this.#limitHit('rcptdomainmax');
          throw new SmtpError(452, '4.5.3', 'Too many recipient domains');
        }
        this.#txDomains.add(domain);
      }
    }
    this.#forward(line, (r) => {
      if (r.code >= 200 && r.code < 300) {
        if (this.#tx) {
          this.#tx.rcpts++;
          this.#tx.firstRcpt ??= rcptAddress;
        }
        this.#rcpts++;
      }
      return r.raw;
    });
  }

  #data(args: string): void {
    if (args.trim()) throw new SmtpError(501, '5.5.4', 'Syntax: DATA');
    if (!this.#bound) throw new SmtpError(503, '5.5.1', 'Need MAIL command');
    // The client may not send the body before 354 (RFC 2920 §3.1): wait for the reply
    // to know whether what follows is body or commands.
    this.#wait();
    this.#forward('DATA', (r) => {
      if (r.code === 354) {
        this.#mode = 'data';
        this.#scanner.reset();
        this.#normalizer = this.#cfg.smtp.bare_lf === 'normalize' ? new BareLineNormalizer() : null;
        // Before any body byte, so the header leads the message.
        if (this.#cfg.received_header) this.#toBackendBody(this.#trace());
        this.#poisoned = null;
        this.#setTimer(this.#cfg.limits.timeouts.data);
      }
      this.#resume();
      return r.raw;
    });
  }

  #bdat(args: string, line: string): void {
    // Parse errors leave us unable to know where the chunk ends: close, as Postfix does.
    let cmd;
    try {
      cmd = parseBdat(args);
    } catch (err) {
      this.#mode = 'closed';
      this.#close ??= 'error';
      this.#queue.reply((err as SmtpError).reply, () => this.#socket.end());
      return;
    }
    this.#bdatLeft = cmd.size;
    this.#bdatLast = cmd.last;
    this.#bdatSkip = false;
    this.#mode = cmd.size > 0 ? 'bdat' : 'command';
    const refuse =
      this.#poisoned ??
      (!this.#bound
        ? new SmtpError(503, '5.5.1', 'Need MAIL command')
        : !this.#bound.caps.has('CHUNKING')
          ? new SmtpError(502, '5.5.1', 'BDAT not available')
          : null);
    if (refuse) {
      // The chunk still has to be read past (RFC 3030 §2).
      this.#refuseBdat(refuse, cmd.last, cmd.size);
      return;
    }
    if (this.#tx) this.#tx.size += cmd.size;
    if (this.#tx && this.#tx.size > this.#sizeLimit()) {
      const err = new SmtpError(552, '5.3.4', 'Message size exceeds fixed limit');
      this.#poison(err);
      this.#refuseBdat(err, cmd.last, cmd.size);
      return;
    }
    const last = cmd.last;
    let trace: Buffer | null = null;
    if (this.#cfg.received_header && this.#tx && !this.#tx.traced) {
      // BDAT counts octets exactly (RFC 3030 §2): the first chunk grows by the header.
      trace = this.#trace();
      line = `BDAT ${cmd.size + trace.length}${cmd.last ? ' LAST' : ''}`;
    }
    this.#forward(line, (r) => {
      if (last || r.code >= 400) this.#endTransaction(r, null);
      return r.raw;
    });
    if (trace) this.#toBackendBody(trace);
    if (cmd.size === 0) this.#bdatDone();
  }

  /** Postern's Received: header for the current transaction. */
  #trace(): Buffer {
    if (this.#tx) this.#tx.traced = true;
    return receivedHeader({
      helo: this.#helo,
      address: this.#client.address,
      port: this.#client.port,
      name: this.#clientName,
      by: this.#cfg.hostname,
      esmtp: this.#esmtp,
      tls: this.#tls,
      auth: this.#auth !== null,
      id: this.id,
      rcpt: this.#tx && this.#tx.rcpts === 1 ? this.#tx.firstRcpt : null,
      date: new Date(),
    });
  }

  #refuseBdat(err: SmtpError, last: boolean, size: number): void {
    this.#bdatSkip = true;
    this.#queue.reply(err.reply);
    if (last) this.#endTransaction(null, err);
    if (size === 0) this.#bdatDone();
  }

  #bdatChunk(chunk: Buffer): void {
    let rest: Buffer | null = null;
    let part = chunk;
    if (chunk.length > this.#bdatLeft) {
      part = chunk.subarray(0, this.#bdatLeft);
      rest = chunk.subarray(this.#bdatLeft);
    }
    this.#bdatLeft -= part.length;
    if (!this.#bdatSkip && this.#bound) this.#toBackendBody(part);
    if (this.#bdatLeft === 0) {
      this.#bdatDone();
      if (rest) {
        this.#reader.push(rest);
        this.#pipelinedNext = true;
        this.#processInput();
      }
    }
  }

  #bdatDone(): void {
    this.#mode = this.#mode === 'closed' ? 'closed' : 'command';
    if (this.#bdatLast) this.#poisoned = null;
    this.#setTimer(this.#cfg.limits.timeouts.command);
  }

  #rset(): void {
    this.#tx = null;
    this.#newTransaction();
    this.#poisoned = null;
    if (this.#bound) this.#forward('RSET', (r) => r.raw);
    else this.#queue.reply('250 2.0.0 Ok\r\n');
  }

  #vrfy(verb: string, line: string): void {
    const mode = verb === 'VRFY' ? this.#cfg.smtp.vrfy : this.#cfg.smtp.expn;
    if (mode !== 'relay') throw new SmtpError(502, '5.5.1', `${verb} command is disabled`);
    if (!this.#helo) throw new SmtpError(503, '5.5.1', 'Send HELO/EHLO first');
    this.#toBackend(line, (r) => r.raw);
  }

  /**
   * XCLIENT from a trusted upstream (another Postern, nginx's mail proxy): Postfix's
   * semantics (XCLIENT_README): not inside a transaction, xtext values, `[UNAVAILABLE]`
   * leaves an attribute unset, success is the greeting again and the client must EHLO anew.
   */
  #xclient(args: string): void {
    if (this.#tx !== null) throw new SmtpError(503, '5.5.1', 'Error: MAIL transaction in progress');
    const attrs = args.trim().split(/ +/).filter(Boolean);
    if (attrs.length === 0) throw new SmtpError(501, '5.5.4', 'Syntax: XCLIENT attribute=value...');
    const told = new Map<string, string | null>();
    for (const a of attrs) {
      const eq = a.indexOf('=');
      const name = (eq === -1 ? a : a.slice(0, eq)).toUpperCase();
      if (eq === -1 || !(XCLIENT_ATTRS as readonly string[]).includes(name)) {
        throw new SmtpError(501, '5.5.4', `Bad XCLIENT attribute name: ${name.slice(0, 40)}`);
      }
      let value: string;
      try {
        value = xtextDecode(a.slice(eq + 1)).toString('utf8');
      } catch {
        throw new SmtpError(501, '5.5.4', `Bad XCLIENT ${name} value`);
      }
      const unset = /^\[(UNAVAILABLE|TEMPUNAVAIL)\]$/i.test(value);
      told.set(name, unset ? null : value);
    }
    const addr = (v: string | null | undefined, what: string): string | null | undefined => {
      if (v === undefined || v === null) return v;
      const ip = v.replace(/^IPV6:/i, '');
      if (!isIP(ip)) throw new SmtpError(501, '5.5.4', `Bad ${what} syntax: ${v.slice(0, 60)}`);
      return ip.toLowerCase();
    };
    const port = (v: string | null | undefined, what: string): number | null | undefined => {
      if (v === undefined || v === null) return v;
      if (!/^\d{1,5}$/.test(v) || Number(v) > 65535) throw new SmtpError(501, '5.5.4', `Bad ${what} syntax: ${v.slice(0, 20)}`);
      return Number(v);
    };
    const newAddr = addr(told.get('ADDR'), 'ADDR');
    const newPort = port(told.get('PORT'), 'PORT');
    const destAddr = addr(told.get('DESTADDR'), 'DESTADDR');
    const destPort = port(told.get('DESTPORT'), 'DESTPORT');
    const proto = told.get('PROTO');
    if (proto && !/^E?SMTP$/i.test(proto)) throw new SmtpError(501, '5.5.4', 'Bad PROTO syntax');
    const apply = () => this.#xclientApply(told, newAddr, newPort, destAddr, destPort, proto);
    if (newAddr && newAddr !== this.#client.address && this.#ctx.readmit) {
      const refuse = (refused: string) => {
        this.#close ??= 'limit';
        this.#mode = 'closed';
        this.#queue.reply(`421 4.7.0 ${this.#cfg.hostname} ${refused}\r\n`, () => this.#socket.end());
      };
      const r = this.#ctx.readmit(newAddr);
      if (r instanceof Promise) {
        // The cluster primary decides: hold later commands until it has.
        const slot = this.#queue.reserve();
        this.#wait();
        void r.then((refused) => {
          if (this.#finished) return;
          this.#queue.fill(slot, null);
          if (refused) refuse(refused);
          else apply();
          this.#resume();
        });
        return;
      }
      if (r) return refuse(r);
    }
    apply();
  }

  #xclientApply(
    told: Map<string, string | null>,
    newAddr: string | null | undefined,
    newPort: number | null | undefined,
    destAddr: string | null | undefined,
    destPort: number | null | undefined,
    proto: string | null | undefined,
  ): void {
    const upstream = this.#proxy ?? `${this.#ctx.client.address}:${this.#ctx.client.port}`;
    const moved = !!newAddr && newAddr !== this.#client.address;
    this.#client = { address: newAddr ?? this.#client.address, port: newPort ?? this.#client.port };
    this.#local = { address: destAddr ?? this.#local.address, port: destPort ?? this.#local.port };
    this.#proxy = upstream;
    if (told.has('NAME')) this.#clientName = told.get('NAME') ?? null;
    else if (moved) {
      // Another client: its own PTR name, if looked up at all.
      this.#clientName = null;
      this.#nameLooked = false;
    }
    if (told.has('LOGIN')) this.#auth = told.get('LOGIN') ?? null;
    // HELO and PROTO are reset unless supplied; the client must say EHLO again.
    this.#helo = told.get('HELO') ?? null;
    this.#esmtp = (proto ?? '').toUpperCase() === 'ESMTP';
    this.#newTransaction();
    // A backend already bound was told the old identity: the next MAIL binds anew.
    this.#unbind();
    this.#queue.reply(this.#greeting());
  }

  #starttlsOffered(): boolean {
    return this.#ctx.listener.tls === 'starttls' && !!this.#ctx.terminator && this.#tls === null;
  }

  /** RFC 3207: `220 2.0.0 Ready to start TLS`, then the handshake on this connection. */
  #starttls(args: string): void {
    if (!this.#starttlsOffered()) {
      throw this.#tls ? new SmtpError(503, '5.5.1', 'TLS already active') : new SmtpError(502, '5.5.1', 'STARTTLS not available');
    }
    if (args.trim()) throw new SmtpError(501, '5.5.4', 'Syntax: STARTTLS');
    if (this.#tx !== null) throw new SmtpError(503, '5.5.1', 'MAIL transaction in progress');
    const raw = this.#socket;
    // Stop reading now, before the 220 leaves: whatever arrives from here on is the
    // client's TLS handshake and waits in the socket for it. Anything already read after
    // the STARTTLS line was sent before our reply and is discarded (RFC 3207 §4.2).
    raw.pause();
    this.#detach(raw);
    raw.on('error', () => undefined);
    this.#mode = 'starttls';
    this.#wait();
    const injected = this.#reader.clear();
    if (injected > 0) this.#anomaly('starttls_injection', `${injected} bytes pipelined after STARTTLS, discarded`);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#queue.reply('220 2.0.0 Ready to start TLS\r\n', () => this.#handshake(raw));
  }

  #handshake(raw: net.Socket): void {
    const terminator = this.#ctx.terminator!;
    terminator.accept(raw, { timeoutMs: this.#cfg.limits.timeouts.command }).then(
      ({ socket, info }) => {
        if (this.#finished) {
          socket.destroy();
          return;
        }
        this.#socket = socket;
        this.#attach(socket);
        this.#tls = info;
        this.#ctx.metrics.tlsHandshakes.inc({ listener: this.#ctx.listener.name, resumed: String(info.resumed) });
        // RFC 3207 §4.2: forget what the client said before TLS; it must EHLO again.
        this.#helo = null;
        this.#esmtp = false;
        this.#prevVerb = null;
        this.#pipelinedNext = false;
        this.#newTransaction();
        // Bound before TLS: the backend was told a plaintext client. Bind anew at MAIL.
        this.#unbind();
        this.#mode = 'command';
        this.#setTimer(this.#cfg.limits.timeouts.command);
        this.#resume();
        socket.resume();
      },
      (err: Error & { reason?: string }) => {
        this.#anomaly('tls_handshake_failed', err.reason ?? err.message);
        this.#close ??= 'error';
        this.#mode = 'closed';
        raw.destroy();
        this.#finish('error');
      },
    );
  }

  #quit(): void {
    this.#quitSeen = true;
    this.#close ??= 'quit';
    this.#mode = 'closed';
    const flushed = () => {
      this.#quitFlushed = true;
      this.#socket.end();
    };
    const bound = this.#bound;
    if (!bound || bound.conn.closed) {
      this.#queue.reply('221 2.0.0 Bye\r\n', flushed);
    } else if (this.#ctx.pool.reuses && this.#queue.pendingBackend > 0) {
      // Replies still owed (QUIT pipelined after the end of DATA): whether the connection
      // can serve another session is known once they are in.
      const slot = this.#queue.reserve();
      this.#onBackendIdle = () => this.#quitBound(bound, flushed, slot);
    } else {
      this.#quitBound(bound, flushed);
    }
  }

  #quitBound(bound: Bound, flushed: () => void, slot?: Slot): void {
    if (this.#bound === bound && this.#parkable(bound)) {
      // The backend keeps the connection for the next session: the 221 is ours.
      this.#park(bound);
      if (slot) this.#queue.fill(slot, '221 2.0.0 Bye\r\n', flushed);
      else this.#queue.reply('221 2.0.0 Bye\r\n', flushed);
      return;
    }
    // Relay the backend's own 221, then let it close its side.
    this.#queue.expect(
      (r) => {
        this.#release(bound, 'quit');
        return r.code === 221 ? r.raw : `221 2.0.0 Bye\r\n`;
      },
      slot,
      flushed,
    );
    bound.conn.write('QUIT\r\n');
  }

  // ---- DATA body -----------------------------------------------------------------------

  #dataChunk(chunk: Buffer): void {
    const res = this.#scanner.scan(chunk);
    const body = res.end === -1 ? chunk : chunk.subarray(0, res.end);
    if (!this.#poisoned) {
      const normalizer = this.#normalizer;
      if (res.bare && !normalizer) {
        // Never relay a body with a bare CR or LF: backends disagree on what ends DATA
        // (SMTP smuggling). Drop the backend so it never sees a terminator.
        this.#anomaly('bare_lf', 'bare CR or LF in message body');
        this.#poison(new SmtpError(550, '5.5.2', 'Message contains bare CR or LF, refused (see SMTP smuggling)'));
      } else if (this.#scanner.bytes > this.#sizeLimit()) {
        this.#poison(new SmtpError(552, '5.3.4', 'Message size exceeds fixed limit'));
      } else if (normalizer) {
        if (res.bare) this.#anomaly('bare_lf', 'bare CR or LF in message body (normalized to CRLF)');
        this.#toBackendBody(normalizer.transform(body));
      } else {
        this.#toBackendBody(body);
      }
    }
    if (res.end === -1) return;
    // End of data.
    this.#mode = 'command';
    this.#prevVerb = '.';
    this.#setTimer(this.#cfg.limits.timeouts.command);
    if (this.#poisoned) {
      const err = this.#poisoned;
      this.#poisoned = null;
      this.#queue.reply(err.reply);
      this.#endTransaction(null, err);
    } else {
      if (this.#tx) this.#tx.size = this.#scanner.bytes;
      this.#forwardReply((r) => {
        this.#endTransaction(r, null);
        return r.raw;
      });
    }
    if (res.end < chunk.length) {
      this.#reader.push(chunk.subarray(res.end));
      this.#pipelinedNext = true;
      this.#processInput();
    }
  }

  /** This body will not be relayed: abort the backend transaction by dropping the connection. */
  #poison(err: SmtpError): void {
    this.#poisoned = err;
    if (err.smtpCode === 552) this.#ctx.metrics.limitRejections.inc({ limit: 'message_size' });
    if (this.#bound) this.#release(this.#bound, 'abort');
  }

  #endTransaction(r: Reply | null, refused: SmtpError | null): void {
    const tx = this.#tx;
    this.#tx = null;
    if (!tx) return;
    this.#transactions++;
    const code = r ? r.code : refused!.smtpCode;
    const result = code < 300 ? 'accepted' : code < 500 ? 'tempfail' : 'rejected';
    this.#ctx.metrics.messages.inc({ result });
    this.#ctx.logger.info(
      {
        event: 'transaction',
        conn: this.id,
        from: tx.from,
        rcpts: tx.rcpts,
        size: tx.size,
        reply: r ? replyText(r) : `${refused!.smtpCode} ${refused!.enhanced} ${refused!.text}`,
        backend: this.#lastBackend,
      },
      'transaction',
    );
  }

  // ---- backend -----------------------------------------------------------------------

  /** Forward a command that needs a backend, binding one first if needed. */
  #toBackend(line: string, handler: (r: Reply) => string | Buffer | null): void {
    if (this.#bound) {
      this.#forward(line, handler);
      return;
    }
    const slot = this.#queue.reserve();
    this.#wait();
    void this.#bind().then((ok) => {
      if (this.#finished) return;
      if (!ok) {
        this.#queue.fill(slot, `451 4.4.1 ${this.#cfg.hostname} No backend available, try again later\r\n`);
      } else {
        this.#forward(line, handler, slot);
      }
      this.#resume();
    });
  }

  /** Sends a command to the bound backend; its reply fills `slot` (or a new one). */
  #forward(line: string, handler: (r: Reply) => string | Buffer | null, flushedOrSlot?: Slot | (() => void), internal = false): void {
    const bound = this.#bound!;
    const slot = typeof flushedOrSlot === 'object' ? flushedOrSlot : undefined;
    const flushed = typeof flushedOrSlot === 'function' ? flushedOrSlot : null;
    this.#queue.expect(handler, slot, flushed, internal);
    bound.conn.write(line + '\r\n');
  }

  /** The reply to something already sent (the end of DATA). */
  #forwardReply(handler: (r: Reply) => string | Buffer | null): void {
    this.#queue.expect(handler);
  }

  #toBackendBody(data: Buffer): void {
    const conn = this.#bound?.conn;
    if (!conn || data.length === 0) return;
    if (!conn.write(data) && !this.#readPaused) {
      // A slow backend must not grow our memory: stop reading the client until it drains.
      this.#readPaused = true;
      this.#socket.pause();
      conn.socket.once('drain', () => {
        this.#readPaused = false;
        if (!this.#finished) this.#socket.resume();
      });
    }
  }

  async #bind(): Promise<boolean> {
    const cfg = this.#cfg.backends;
    const client = this.#client;
    const identity: BackendClient = {
      connId: this.id,
      tls: this.#tls ? { version: this.#tls.version, cipher: this.#tls.cipher, sni: this.#tls.sni } : null,
      address: client.address,
      port: client.port,
      destAddress: this.#local.address,
      destPort: this.#local.port,
      helo: backendHelo(this.#helo, client.address),
      proto: this.#esmtp ? 'ESMTP' : 'SMTP',
      name: this.#clientName,
      login: this.#auth,
    };
    if (cfg.reverse_lookup && this.#clientName === null && !this.#nameLooked) {
      this.#nameLooked = true;
      identity.name = this.#clientName = await reverseName(client.address, Math.min(cfg.reply_timeout, 5000));
    }
    const tried: string[] = [];
    for (const server of this.#ctx.pool.candidates(client.address)) {
      if (this.#finished) return false;
      tried.push(server.key);
      this.#ctx.pool.acquire(server);
      try {
        const b = await handshake(
          server.cfg.address,
          identity,
          {
            identity: cfg.identity,
            hostname: this.#cfg.hostname,
            connectTimeout: cfg.connect_timeout,
            replyTimeout: cfg.reply_timeout,
            tls: this.#ctx.pool.tlsPolicy,
            known: server.caps,
          },
          (await server.greeted?.acquire(identity.helo ?? this.#cfg.hostname)) ?? null,
        );
        this.#ctx.pool.reportSuccess(server, b.caps);
        if (this.#finished) {
          b.conn.quit();
          this.#ctx.pool.release(server);
          return false;
        }
        const bound = withCaps(b.conn, server, b.caps);
        this.#bound = bound;
        this.#lastBackend = server.key;
        this.#lastBackendTls = b.conn.tls;
        this.#lastBackendReused = b.conn.sessions++;
        this.#backendClean = true;
        b.conn.relay({
          onReply: (r) => this.#onBackendReply(bound, r),
          onClose: (err) => this.#onBackendClose(bound, err),
        });
        return true;
      } catch (err) {
        this.#ctx.pool.release(server);
        if (!(err instanceof BackendError)) {
          // Not the server's fault (e.g. a PROXY header cannot name this client): no
          // other server would do better, and none should be marked down for it.
          this.#ctx.logger.warn({ conn: this.id, backend: server.key, err: (err as Error).message }, 'cannot bind this client');
          break;
        }
        this.#ctx.pool.reportFailure(server, err);
        this.#ctx.logger.warn(
          { conn: this.id, backend: server.key, err: (err as Error).message, code: err instanceof BackendError ? err.code : undefined },
          'backend handshake failed',
        );
      }
    }
    this.#ctx.logger.warn({ event: 'bind_failed', conn: this.id, tried }, tried.length ? 'every backend failed' : 'no backend is up');
    return false;
  }

  #onBackendReply(bound: Bound, r: Reply): void {
    if (bound !== this.#bound) return;
    // Postfix counts refusals per connection (smtpd_soft/hard_error_limit, then it slows
    // down and hangs up): a connection that has seen one is not handed to another client.
    if (r.code >= 400) this.#backendClean = false;
    if (!this.#queue.backendReply(r)) {
      // Nothing was asked: a server closing on us (421) or talking out of turn.
      if (r.code !== 421) this.#anomaly('backend_protocol_error', `unsolicited reply from ${bound.server.key}: ${replyText(r)}`);
      this.#backendLost(bound, `unsolicited ${r.code}`);
      return;
    }
    if (r.code === 421 && this.#mode !== 'closed') {
      // The backend is closing the session (RFC 5321 §3.8): so do we, after this reply.
      this.#close ??= 'backend_failed';
      this.#mode = 'closed';
      this.#release(bound, 'abort');
      this.#queue.failBackend('', () => this.#socket.end());
      return;
    }
    if (this.#onBackendIdle && this.#queue.pendingBackend === 0) {
      const next = this.#onBackendIdle;
      this.#onBackendIdle = null;
      next();
    }
  }

  #onBackendClose(bound: Bound, err: Error | null): void {
    if (bound !== this.#bound) return;
    if (err instanceof BackendError && err.code === 'BACKEND_PROTOCOL') this.#anomaly('backend_protocol_error', err.message);
    this.#backendLost(bound, err ? err.message : 'connection closed');
  }

  /** The bound backend went away without being asked to. */
  #backendLost(bound: Bound, why: string): void {
    this.#release(bound, 'abort');
    const busy = this.#queue.pendingBackend > 0 || this.#tx !== null || this.#mode === 'data' || this.#mode === 'bdat';
    if (!busy) {
      // Idle between transactions (e.g. the backend's own timeout): bind anew at the next MAIL.
      this.#ctx.logger.info({ conn: this.id, backend: bound.server.key, reason: why }, 'backend closed an idle session');
      return;
    }
    this.#ctx.logger.warn({ conn: this.id, backend: bound.server.key, reason: why }, 'backend lost mid-session');
    this.#close ??= 'backend_failed';
    this.#mode = 'closed';
    // Never a 250 the backend did not give: what it owed becomes a temporary failure.
    this.#queue.failBackend(`421 4.4.2 ${this.#cfg.hostname} Backend connection lost, try again later\r\n`, () =>
      this.#socket.end(),
    );
  }

  #release(bound: Bound, how: 'quit' | 'abort'): void {
    if (this.#bound !== bound) return;
    this.#bound = null;
    this.#onBackendIdle = null;
    if (how === 'abort') bound.conn.destroy();
    else {
      // QUIT was forwarded already; the backend closes after its 221.
      setTimeout(() => bound.conn.destroy(), 2000).unref();
    }
    this.#ctx.pool.release(bound.server);
  }

  /** Ends the binding politely (QUIT): no transaction is open on it. */
  #unbind(): void {
    const bound = this.#bound;
    if (!bound) return;
    this.#bound = null;
    this.#onBackendIdle = null;
    bound.conn.quit();
    this.#ctx.pool.release(bound.server);
  }

  /**
   * Whether the bound connection can serve another session (backends.pool.reuse, identity
   * none): nothing open or owed on it, and nothing that would follow the next client.
   */
  #parkable(bound: Bound): boolean {
    if (!this.#ctx.pool.reuses || !bound.server.greeted || !this.#backendClean) return false;
    if (bound.conn.sessions >= this.#cfg.backends.pool.reuse || !bound.conn.idle) return false;
    if (this.#tx !== null || this.#poisoned || this.#midBody || this.#queue.pendingBackend > 0) return false;
    if (this.#mode === 'data' || this.#mode === 'bdat') return false;
    // RFC 9422 §4.1: the backend's MAILMAX counts every transaction on the connection, so
    // the next session must still get all of ours.
    const max = bound.limits.mailmax;
    return max === null || bound.conn.transactions + (this.#cfg.limits.mailmax ?? Infinity) <= max;
  }

  /** Hands the bound connection back for the next session, without QUIT. */
  #park(bound: Bound): void {
    this.#bound = null;
    this.#onBackendIdle = null;
    bound.conn.park();
    this.#ctx.pool.release(bound.server);
    bound.server.greeted!.give({ conn: bound.conn, caps: bound.caps, parked: null });
  }

  #abortBackend(): void {
    if (this.#bound) this.#release(this.#bound, 'abort');
  }

  // ---- client output and end ------------------------------------------------------------

  #write(chunks: (string | Buffer)[], done: (() => void) | null): void {
    const s = this.#socket;
    if (s.destroyed || !s.writable) return;
    s.cork();
    for (let i = 0; i < chunks.length; i++) {
      const c = chunks[i]!;
      this.#bytesOut += c.length;
      if (i === chunks.length - 1 && done) s.write(c, (err) => (err ? undefined : done()));
      else s.write(c);
    }
    s.uncork();
  }

  #writeNow(data: string): void {
    this.#write([data], null);
  }

  #setTimer(ms: number): void {
    if (this.#timer && this.#timerMs === ms) {
      this.#timer.refresh();
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timerMs = ms;
    this.#timer = setTimeout(() => this.#onTimeout(), ms);
  }

  #onTimeout(): void {
    if (this.#finished || (this.#mode === 'closed' && this.#quitSeen)) return;
    const phase = this.#mode === 'data' || this.#mode === 'bdat' ? 'data' : this.#helo ? 'command' : 'greeting';
    this.#anomaly('timeout', `${phase} timeout after ${this.#timerMs} ms`);
    this.#close ??= 'timeout';
    this.#mode = 'closed';
    this.#abortBackend();
    this.#writeNow(`421 4.4.2 ${this.#cfg.hostname} Error: timeout exceeded\r\n`);
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 5000).unref();
  }

  #onClientEnd(): void {
    if (this.#quitSeen) {
      if (!this.#quitFlushed) this.#anomaly('quit_no_wait', 'client closed after QUIT before the 221 was written');
    } else if (this.#close === null) {
      this.#clientGone('client_closed');
    }
    this.#socket.end();
  }

  #onClientError(err: NodeJS.ErrnoException): void {
    if (this.#quitSeen && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) {
      // Our 221's own write hit the reset, or the reset came before it was out: the client
      // did not wait for it (Outlook's QUIT+RST). A reset read after the 221 is how many
      // clients close with our last bytes (the 221 they never read, a TLS close_notify)
      // still unread: a normal close, not worth a name. (Under TLS the write callback fires
      // once the 221 is encrypted, so the syscall is what tells.)
      if (!this.#quitFlushed || err.syscall === 'write') {
        this.#anomaly('rst_after_quit', `${err.code} (${err.syscall ?? '?'}) after QUIT, before the client read the 221`);
      }
    } else if (this.#close === null) {
      this.#clientGone(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'client_reset' : 'error');
      if (this.#close === 'error') this.#ctx.logger.info({ conn: this.id, err: err.message }, 'client socket error');
    }
    this.#finish(this.#close ?? 'error');
  }

  /** The client left without QUIT. */
  #clientGone(reason: CloseReason): void {
    this.#close = reason;
    if (this.#mode === 'data' || this.#mode === 'bdat') {
      this.#midBody = true;
      this.#anomaly('disconnect_in_data', `after ${this.#mode === 'data' ? this.#scanner.bytes : 'some'} body bytes`);
    } else if (this.#transactions === 0 || this.#tx !== null || this.#queue.owed > 0) {
      // Hanging up after delivering its mail is what many senders do (nodemailer, for
      // one); Postfix counts it a normal disconnect. Leaving before any work was done,
      // mid-transaction or with replies still owed is what deserves a name.
      this.#anomaly('no_quit', this.#tx !== null ? 'closed without QUIT inside a transaction' : 'closed without QUIT');
    }
    this.#mode = 'closed';
  }

  #anomaly(kind: AnomalyKind, detail: string): void {
    if (this.#anomalies.has(kind)) return;
    this.#anomalies.add(kind);
    this.#ctx.metrics.anomalies.inc({ kind });
    if (this.#ctx.logAnomaly(kind)) this.#ctx.logger.info(anomalyRecord(this.id, kind, detail), `anomaly ${kind}`);
  }

  #finish(reason: CloseReason): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#close ??= reason;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#greetTimer) clearTimeout(this.#greetTimer);
    if (this.#bound) {
      const bound = this.#bound;
      if (this.#midBody || this.#mode === 'data' || this.#mode === 'bdat') this.#release(bound, 'abort');
      else if (this.#parkable(bound)) this.#park(bound);
      // Otherwise say goodbye politely, so the backend's log shows no lost connection.
      else this.#unbind();
    }
    this.#socket.destroy();
    this.#ctx.logger.info(this.record(), 'session');
    this.#ctx.onEnd?.(this);
  }

  /** The `session` log record (CONTRACT.md). */
  record(): Record<string, unknown> {
    return {
      event: 'session',
      conn: this.id,
      client: { address: this.#client.address, port: this.#client.port },
      listener: this.#ctx.listener.name,
      proxy: this.#proxy,
      tls: this.#tls,
      helo: this.#helo,
      auth: this.#auth,
      backend: this.#lastBackend
        ? {
            address: this.#lastBackend,
            identity: this.#cfg.backends.identity,
            ...(this.#lastBackendReused ? { reused: this.#lastBackendReused } : {}),
            ...(this.#lastBackendTls ? { tls: this.#lastBackendTls } : {}),
          }
        : null,
      transactions: this.#transactions,
      rcpts: this.#rcpts,
      bytes_in: this.#bytesIn,
      bytes_out: this.#bytesOut,
      duration_ms: Date.now() - this.started,
      close: this.#close,
      anomalies: [...this.#anomalies],
      limit_rejections: this.#limitRejections,
    };
  }
}
