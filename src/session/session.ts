// One client connection, from greeting to session record. Postern answers the front
// phase itself (RFC 5321 §4.1.1), binds a backend at the first command that needs one,
// then relays while still parsing both directions: every command has a slot in the
// ordered reply queue, so Postern's own refusals and the backend's replies reach the
// client in command order even when the client pipelines (RFC 2920).
//
// This file is the mode machine and the command handlers. Each concern with fields of its
// own is a module beside it: client-io (socket, timers, flow), binding (the backend),
// body (DATA/BDAT), limits (LIMITS/SIZE counters), identity (who the client is).

import type net from 'node:net';
import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import { anomalyRecord, replyResult, sessionRecord, type AnomalyKind, type CloseReason, type LimitName, type SessionRecord, type TlsRecord } from '../observe/records.js';
import { parseBdat } from '../smtp/bdat.js';
import { ENDS_GROUP, parseCommand, parsePathCommand } from '../smtp/command.js';
import { renderEhlo, renderLimits, type Capabilities } from '../smtp/ehlo.js';
import { SmtpError } from '../smtp/errors.js';
import type { Line } from '../smtp/lines.js';
import { receivedHeader } from '../smtp/received.js';
import type { Reply } from '../smtp/reply.js';
import { XCLIENT_ATTRS, parseXclientArgs, type XclientArgs } from '../smtp/xclient-args.js';
import { SessionBinding } from './binding.js';
import type { SessionContext } from './context.js';
import { Body } from './body.js';
import { ClientIo } from './client-io.js';
import { acceptedIdentity, backendClient, backendHelo, withName, xclientIdentity, type ClientIdentity } from './identity.js';
import { SessionLimits, tooBig } from './limits.js';
import { Input } from './input.js';
import { isNonSmtp } from './non-smtp.js';
import * as R from './replies.js';
import { ReplyQueue } from './reply-queue.js';
import { Transactions } from './transaction.js';


type Mode = 'command' | 'data' | 'bdat' | 'starttls' | 'closed';

/** Anomaly detail for early bytes: printable, short. */
function describeBytes(b: Buffer): string {
  return JSON.stringify(b.subarray(0, 60).toString('latin1'));
}

/** Postfix's smtpd_hard_error_limit default. */
const MAX_ERRORS = 20;

export class Session {
  readonly id: string;
  readonly started = Date.now();
  readonly #ctx: SessionContext<Session>;
  readonly #cfg: Config;
  readonly #io: ClientIo;
  readonly #input: Input;
  readonly #queue: ReplyQueue;
  readonly #binding: SessionBinding;
  readonly #body: Body;
  readonly #limits: SessionLimits;
  #log: Logger | null = null;

  #mode: Mode = 'command';
  #identity: ClientIdentity;
  #refuseAll = false;
  /** Set once the client's TLS handshake is done (implicit TLS or STARTTLS). */
  #tls: TlsRecord | null = null;
  /** The final 220 has gone out (at once unless smtp.pregreet.wait). */
  #greeted = true;
  #greetTimer: NodeJS.Timeout | null = null;
  #helo: string | null = null;
  #esmtp = false;
  readonly #tx = new Transactions();
  /** The limit that closed the session, for the record. */
  #closedBy: LimitName | null = null;

  #errors = 0;
  readonly #anomalies = new Set<AnomalyKind>();

  #prevVerb: string | null = null;
  #quitSeen = false;
  #quitFlushed = false;
  #close: CloseReason | null = null;
  /** The client vanished while sending a body: the backend must see a drop, never a terminator. */
  #midBody = false;
  #finished = false;

  constructor(socket: net.Socket, ctx: SessionContext<Session>) {
    this.id = ctx.id;
    this.#ctx = ctx;
    this.#cfg = ctx.config;
    this.#identity = acceptedIdentity(ctx.client, ctx.local, ctx.proxy);
    this.#io = new ClientIo(socket, {
      data: (chunk) => this.#onData(chunk),
      end: () => this.#onClientEnd(),
      error: (err) => this.#onClientError(err),
      close: () => {
        if (this.#close === null && !this.#quitSeen) this.#clientGone('client_closed');
        this.#finish(this.#quitSeen ? 'quit' : 'client_closed');
      },
      timeout: () => this.#onTimeout(),
    });
    this.#queue = new ReplyQueue({ write: (chunks, done) => this.#io.write(chunks, done) });
    this.#input = new Input(
      {
        mode: () => this.#mode,
        line: (line, pipelined) => this.#handleLine(line, pipelined),
        data: (chunk) => this.#dataChunk(chunk),
        bdat: (chunk) => this.#bdatChunk(chunk),
        bdatLeft: () => this.#body.bdatLeft,
        accepting: () => true,
        pile: (full) => this.#io.pile(full),
        backend: () => this.#binding.bound?.conn.socket,
      },
      () => this.#cfg.limits.line_length,
    );
    const session = this;
    this.#binding = new SessionBinding(
      {
        queue: this.#queue,
        get closed() {
          return session.#mode === 'closed';
        },
        get finished() {
          return session.#finished;
        },
        get inTransaction() {
          return session.#tx.open !== null || session.#mode === 'data' || session.#mode === 'bdat';
        },
        anomaly: (kind, detail) => this.#anomaly(kind, detail),
        backendFailed: (reply) => {
          this.#close ??= 'backend_failed';
          this.#mode = 'closed';
          this.#queue.failBackend(reply, () => this.#io.end());
        },
        wait: () => this.#input.wait(),
        resume: () => this.#input.resume(),
        log: () => this.#logger(),
      },
      { config: ctx.config, pool: ctx.pool, logger: ctx.logger, connId: ctx.id },
    );
    this.#body = new Body({
      relay: (data) => this.#toBackendBody(data),
      anomaly: (kind, detail) => this.#anomaly(kind, detail),
      poisoned: (err) => {
        if (err.smtpCode === 552) ctx.metrics.limitRejections.inc({ limit: 'message_size' });
        this.#binding.abort();
      },
    });
    this.#limits = new SessionLimits(
      () => this.#cfg.limits,
      () => this.#binding.backendLimits(),
      (limit) => ctx.metrics.limitRejections.inc({ limit }),
    );
  }

  /** Public view for /sessions and the shutdown path. */
  get state(): string {
    if (this.#finished) return 'closed';
    if (this.#mode !== 'command') return this.#mode;
    return this.#binding.bound ? 'relay' : this.#helo ? 'front' : 'greeting';
  }

  /** Lines about this connection that are not records (records carry `conn` themselves). */
  #logger(): Logger {
    return (this.#log ??= this.#ctx.logger.child({ conn: this.id }));
  }

  start(): void {
    if (this.#ctx.tls) this.#tls = this.#ctx.tls;
    this.#io.attach();
    this.#io.setTimer(this.#cfg.limits.timeouts.greeting);
    if (this.#ctx.proxyFailure) {
      this.#anomaly('proxy_header_invalid', this.#ctx.proxyFailure);
      this.#refuseAll = true;
    }
    const wait = this.#cfg.smtp.pregreet.wait;
    if (wait > 0) {
      // postscreen's greet wait: a `220-` line, then the final 220 later; a client that
      // talks in between did not wait for the greeting (RFC 5321 §3.1, §4.3.1).
      this.#greeted = false;
      this.#input.wait();
      this.#io.write([R.greetingFirstLine(this.#cfg.hostname)], null);
      this.#greetTimer = setTimeout(() => this.#greet(), wait);
    } else {
      this.#queue.reply(R.greeting(this.#cfg.hostname));
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
      this.#closeWith('error', R.pregreetRefused(this.#cfg.hostname));
      return;
    }
    this.#queue.reply(R.greeting(this.#cfg.hostname));
    this.#input.resume();
  }

  /** Shutdown: tell the client and close (SIGTERM after the grace period). */
  shutdown(): void {
    if (this.#finished) return;
    this.#close ??= 'shutdown';
    this.#binding.abort();
    this.#mode = 'closed';
    this.#io.write([R.shuttingDown(this.#cfg.hostname)], null);
    this.#io.end();
  }

  /**
   * The one way a session ends on its own initiative: `reply` goes out in its place after
   * the replies still owed, then the connection closes.
   */
  #closeWith(reason: CloseReason, reply: string): void {
    this.#close ??= reason;
    this.#mode = 'closed';
    this.#queue.reply(reply, () => this.#io.end());
  }

  /** The one reset (RFC 5321 §4.1.1.5 RSET, and what EHLO, XCLIENT and STARTTLS imply): no transaction. */
  #reset(): void {
    this.#tx.reset();
    this.#limits.newTransaction();
    this.#body.reset();
  }

  // ---- client input -------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    switch (this.#mode) {
      case 'closed':
      case 'starttls':
        return;
      case 'data':
        this.#io.setTimer(this.#cfg.limits.timeouts.data);
        this.#dataChunk(chunk);
        return;
      case 'bdat':
        this.#io.setTimer(this.#cfg.limits.timeouts.data);
        this.#bdatChunk(chunk);
        return;
      case 'command':
        if (!this.#greeted) this.#anomaly('pregreet', describeBytes(chunk));
        // Sent while a reply was still owed: the client did not wait for it.
        this.#input.push(chunk, this.#queue.owed > 0);
    }
  }

  #handleLine(line: Line, pipelined: boolean): void {
    if (line.tooLong) {
      this.#anomaly('line_too_long', `command line over ${this.#cfg.limits.line_length} bytes`);
      this.#refuse(R.lineTooLong());
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
    if (this.#refuseAll && verb !== 'QUIT') throw R.proxyFailed();
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
        return this.#queue.reply(R.OK);
      case 'QUIT':
        return this.#quit();
      case 'HELP':
        return this.#queue.reply(R.HELP);
      case 'VRFY':
      case 'EXPN':
        return this.#vrfy(verb, line);
      case 'XCLIENT':
        if (this.#ctx.trusted) return this.#xclient(args);
        // Never passed on: a backend trusting us would take the client's word for its identity.
        this.#anomaly('xclient_untrusted', `XCLIENT from ${this.#identity.client.address}`);
        throw R.xclientNotAllowed();
      case 'PROXY':
        if (this.#ctx.listener.proxy_protocol === 'on') {
          // A header from a peer not in trusted_proxies, or a second one: never believed.
          this.#anomaly('proxy_header_invalid', `PROXY line from untrusted peer ${this.#identity.client.address}`);
          throw R.proxyUntrusted();
        }
        throw R.proxyNotHere();
      case 'STARTTLS':
        return this.#starttls(args);
      case 'AUTH':
        throw R.notAvailable(verb);
      default:
        if (isNonSmtp(verb, line)) {
          this.#anomaly('non_smtp', line.slice(0, 80));
          if (this.#cfg.smtp.non_smtp.action === 'disconnect') return this.#closeWith('error', R.nonSmtpClosing(this.#cfg.hostname));
        }
        throw R.notRecognized();
    }
  }

  #refuse(err: SmtpError): void {
    this.#queue.reply(err.reply);
    if (err.smtpCode >= 500 && ++this.#errors >= MAX_ERRORS) this.#closeWith('error', R.tooManyErrors(this.#cfg.hostname));
  }

  // ---- commands ----------------------------------------------------------------------

  #hello(verb: string, args: string): void {
    const name = args.trim();
    if (!name) throw R.syntax(`${verb} hostname`);
    this.#helo = name;
    this.#esmtp = verb === 'EHLO';
    this.#reset();
    if (verb === 'HELO') this.#queue.reply(R.heloReply(this.#cfg.hostname));
    else this.#queue.reply(renderEhlo(`${this.#cfg.hostname} greets ${name}`, this.#capabilities()));
    // EHLO resets any transaction (RFC 5321 §4.1.4): pass it on, so the backend forgets
    // the transaction too and knows the name the client gives now. Its reply is ours to read.
    const helo = backendHelo(name, this.#identity.client.address);
    if (helo !== null) this.#binding.ehlo(helo);
  }

  /** What Postern offers: its own extensions plus what every live backend (or the bound one) supports. */
  #capabilities(): Capabilities {
    const caps: Capabilities = new Map();
    caps.set('PIPELINING', []);
    if (this.#starttlsOffered()) caps.set('STARTTLS', []); // RFC 3207 §4: not after TLS is up
    caps.set('SIZE', [String(this.#limits.size())]);
    const offered = this.#binding.extensions();
    for (const ext of PASSED_THROUGH) if (offered.has(ext)) caps.set(ext, []);
    const limits = renderLimits(this.#limits.inForce());
    if (limits) caps.set('LIMITS', limits); // RFC 9422 §3
    if (this.#ctx.trusted) caps.set('XCLIENT', [...XCLIENT_ATTRS]);
    return caps;
  }

  #mail(args: string, line: string): void {
    if (this.#limits.mailOverMax()) {
      // MAILMAX (RFC 9422 §4.1) has no standard reply; Exim's practice is 421 and close.
      // Replies owed for earlier commands still go out first; then QUIT to the backend.
      this.#closedBy = 'mailmax';
      this.#closeWith('limit', R.tooManyTransactions());
      return;
    }
    if (!this.#helo) throw R.needHelo();
    this.#limits.newTransaction();
    const path = parsePathCommand(args, 'FROM');
    this.#limits.checkDeclaredSize(path.params.get('SIZE'));
    const from = path.address;
    const opened = this.#tx.mail(from);
    this.#binding.toBackend(() => this.#backendClient(), line, (r) => {
      this.#binding.countTransaction();
      opened(r.code >= 200 && r.code < 300);
      return r.raw;
    });
  }

  /** What the backend is told about the client, with its PTR name when wanted (once per identity). */
  async #backendClient() {
    const cfg = this.#cfg.backends;
    this.#identity = await withName(this.#identity, cfg.reverse_lookup, Math.min(cfg.reply_timeout, 5000));
    return backendClient(this.#identity, { connId: this.id, helo: this.#helo, esmtp: this.#esmtp, tls: this.#tls });
  }

  #rcpt(args: string, line: string): void {
    if (!this.#binding.bound) throw R.needMail();
    const path = parsePathCommand(args, 'TO');
    const address = path.address;
    const entry = this.#tx.rcpt(address);
    try {
      this.#limits.checkRcpt(address);
    } catch (err) {
      if (err instanceof SmtpError) this.#tx.refuse(entry, err);
      throw err;
    }
    this.#binding.forward(line, (r) => {
      this.#tx.answer(entry, r);
      return r.raw;
    });
  }

  #data(args: string): void {
    if (args.trim()) throw R.syntax('DATA');
    if (!this.#binding.bound) throw R.needMail();
    // The client may not send the body before 354 (RFC 2920 §3.1): wait for the reply
    // to know whether what follows is body or commands.
    this.#input.wait();
    this.#binding.forward('DATA', (r) => {
      if (r.code === 354) {
        this.#mode = 'data';
        this.#body.startData(this.#cfg.smtp.bare_lf === 'normalize');
        // Before any body byte, so the header leads the message.
        if (this.#cfg.received_header) this.#toBackendBody(this.#trace());
        this.#io.setTimer(this.#cfg.limits.timeouts.data);
      }
      this.#input.resume();
      return r.raw;
    });
  }

  #bdat(args: string, line: string): void {
    // Parse errors leave us unable to know where the chunk ends: close, as Postfix does.
    let cmd;
    try {
      cmd = parseBdat(args);
    } catch (err) {
      this.#closeWith('error', (err as SmtpError).reply);
      return;
    }
    this.#body.startBdat(cmd.size, cmd.last, false);
    this.#mode = cmd.size > 0 ? 'bdat' : 'command';
    const bound = this.#binding.bound;
    const refuse = this.#body.poisoned ?? (!bound ? R.needMail() : !bound.caps.has('CHUNKING') ? R.notAvailable('BDAT') : null);
    if (refuse) {
      // The chunk still has to be read past (RFC 3030 §2).
      this.#refuseBdat(refuse, cmd.last, cmd.size);
      return;
    }
    const tx = this.#tx.open;
    if (tx) tx.size += cmd.size;
    if (tx && tx.size > this.#limits.size()) {
      const err = tooBig();
      this.#body.poison(err);
      this.#refuseBdat(err, cmd.last, cmd.size);
      return;
    }
    const last = cmd.last;
    let trace: Buffer | null = null;
    if (this.#cfg.received_header && tx && !tx.traced) {
      // BDAT counts octets exactly (RFC 3030 §2): the first chunk grows by the header.
      trace = this.#trace();
      line = `BDAT ${cmd.size + trace.length}${cmd.last ? ' LAST' : ''}`;
    }
    this.#binding.forward(line, (r) => {
      if (last || r.code >= 400) this.#endTransaction(r, null);
      return r.raw;
    });
    if (trace) this.#toBackendBody(trace);
    if (cmd.size === 0) this.#bdatDone();
  }

  /** Postern's Received: header for the current transaction. */
  #trace(): Buffer {
    const tx = this.#tx.open;
    if (tx) tx.traced = true;
    const id = this.#identity;
    return receivedHeader({
      helo: this.#helo,
      address: id.client.address,
      port: id.client.port,
      name: id.name ?? null,
      by: this.#cfg.hostname,
      esmtp: this.#esmtp,
      tls: this.#tls,
      auth: id.auth !== null,
      id: this.id,
      rcpt: tx && tx.rcpts === 1 ? tx.firstRcpt : null,
      date: new Date(),
    });
  }

  #refuseBdat(err: SmtpError, last: boolean, size: number): void {
    this.#body.skipBdat();
    this.#queue.reply(err.reply);
    if (last) this.#endTransaction(null, err);
    if (size === 0) this.#bdatDone();
  }

  #bdatChunk(chunk: Buffer): void {
    const rest = this.#body.bdat(chunk, this.#binding.bound !== null);
    if (this.#body.bdatLeft > 0) return;
    this.#bdatDone();
    if (rest) this.#input.pushRest(rest);
  }

  #bdatDone(): void {
    if (this.#mode !== 'closed') this.#mode = 'command';
    this.#body.bdatDone();
    this.#io.setTimer(this.#cfg.limits.timeouts.command);
  }

  #rset(): void {
    this.#reset();
    if (this.#binding.bound) this.#binding.forward('RSET', (r) => r.raw);
    else this.#queue.reply(R.OK);
  }

  #vrfy(verb: string, line: string): void {
    const mode = verb === 'VRFY' ? this.#cfg.smtp.vrfy : this.#cfg.smtp.expn;
    if (mode !== 'relay') throw R.disabled(verb);
    if (!this.#helo) throw R.needHelo();
    this.#binding.toBackend(() => this.#backendClient(), line, (r) => r.raw);
  }

  /**
   * XCLIENT from a trusted upstream (another Postern, nginx's mail proxy): Postfix's
   * semantics (XCLIENT_README): not inside a transaction, xtext values, `[UNAVAILABLE]`
   * leaves an attribute unset, success is the greeting again and the client must EHLO anew.
   */
  #xclient(args: string): void {
    if (this.#tx.open !== null) throw R.inTransaction();
    const told = parseXclientArgs(args);
    const apply = () => this.#xclientApply(told);
    const addr = told.addr;
    if (addr && addr !== this.#identity.client.address && this.#ctx.readmit) {
      const refuse = (why: string) => this.#closeWith('limit', R.refusedClient(this.#cfg.hostname, why));
      const r = this.#ctx.readmit(addr);
      if (r instanceof Promise) {
        // The cluster primary decides: hold later commands until it has.
        const slot = this.#queue.reserve();
        this.#input.wait();
        void r.then((refused) => {
          if (this.#finished) return;
          this.#queue.fill(slot, null);
          if (refused) refuse(refused);
          else apply();
          this.#input.resume();
        });
        return;
      }
      if (r) return refuse(r);
    }
    apply();
  }

  #xclientApply(told: XclientArgs): void {
    const id = this.#identity;
    const upstream = id.proxy ?? `${this.#ctx.client.address}:${this.#ctx.client.port}`;
    this.#identity = xclientIdentity(id, told, upstream);
    // HELO and PROTO are reset unless supplied; the client must say EHLO again.
    this.#helo = told.helo ?? null;
    this.#esmtp = told.proto === 'ESMTP';
    this.#reset();
    // A backend already bound was told the old identity: the next MAIL binds anew.
    this.#binding.unbind();
    this.#queue.reply(R.greeting(this.#cfg.hostname));
  }

  #starttlsOffered(): boolean {
    return this.#ctx.listener.tls === 'starttls' && !!this.#ctx.terminator && this.#tls === null;
  }

  /** RFC 3207: `220 2.0.0 Ready to start TLS`, then the handshake on this connection. */
  #starttls(args: string): void {
    if (!this.#starttlsOffered()) throw this.#tls ? R.tlsActive() : R.notAvailable('STARTTLS');
    if (args.trim()) throw R.syntax('STARTTLS');
    if (this.#tx.open !== null) throw R.inTransaction();
    this.#io.holdForTls();
    this.#mode = 'starttls';
    this.#input.wait();
    // Anything already read after the STARTTLS line was sent before our reply: discarded
    // (RFC 3207 §4.2).
    const injected = this.#input.clear();
    if (injected > 0) this.#anomaly('starttls_injection', `${injected} bytes pipelined after STARTTLS, discarded`);
    this.#queue.reply(R.READY_FOR_TLS, () => this.#handshake());
  }

  #handshake(): void {
    this.#io.upgrade(this.#ctx.terminator!, this.#cfg.limits.timeouts.command).then(
      (info) => {
        if (this.#finished) {
          this.#io.destroy();
          return;
        }
        this.#tls = info;
        this.#ctx.metrics.tlsHandshakes.inc({ listener: this.#ctx.listener.name, resumed: String(info.resumed) });
        // RFC 3207 §4.2: forget what the client said before TLS; it must EHLO again.
        this.#helo = null;
        this.#esmtp = false;
        this.#prevVerb = null;
        this.#reset();
        // Bound before TLS: the backend was told a plaintext client. Bind anew at MAIL.
        this.#binding.unbind();
        this.#mode = 'command';
        this.#io.setTimer(this.#cfg.limits.timeouts.command);
        this.#input.resume();
        this.#io.resume();
      },
      (err: Error & { reason?: string }) => {
        this.#anomaly('tls_handshake_failed', err.reason ?? err.message);
        this.#close ??= 'error';
        this.#mode = 'closed';
        this.#finish('error');
      },
    );
  }

  #quit(): void {
    this.#quitSeen = true;
    this.#close ??= 'quit';
    this.#mode = 'closed';
    this.#binding.quit(
      () => {
        this.#quitFlushed = true;
        this.#io.end();
      },
      () => this.#quiet(),
    );
  }

  /** Nothing open that the next session on this backend connection could inherit. */
  #quiet(): boolean {
    return this.#tx.open === null && this.#body.poisoned === null && !this.#midBody && this.#mode !== 'data' && this.#mode !== 'bdat';
  }

  // ---- DATA body -----------------------------------------------------------------------

  #dataChunk(chunk: Buffer): void {
    const end = this.#body.data(chunk, this.#limits.size());
    if (end === -1) return;
    // End of data.
    this.#mode = 'command';
    this.#prevVerb = '.';
    this.#io.setTimer(this.#cfg.limits.timeouts.command);
    const tx = this.#tx.open;
    if (tx) tx.size = this.#body.dataBytes;
    const refused = this.#body.takePoison();
    if (refused) {
      this.#queue.reply(refused.reply);
      this.#endTransaction(null, refused);
    } else {
      this.#binding.expectReply((r) => {
        this.#endTransaction(r, null);
        return r.raw;
      });
    }
    if (end < chunk.length) this.#input.pushRest(chunk.subarray(end));
  }

  #toBackendBody(data: Buffer): void {
    if (this.#binding.body(data) || this.#io.paused) return;
    const source = this.#binding.drainSource;
    if (source) this.#io.pauseUntilDrain(source);
  }

  #endTransaction(r: Reply | null, refused: SmtpError | null): void {
    const rec = this.#tx.end(r, refused, this.id, this.#binding.record()?.address ?? null);
    if (!rec) return;
    this.#ctx.metrics.messages.inc({ result: replyResult(r ? r.code : refused!.smtpCode) });
    this.#ctx.logger.info(rec, 'transaction');
  }

  // ---- end -----------------------------------------------------------------------------

  #onTimeout(): void {
    if (this.#finished || (this.#mode === 'closed' && this.#quitSeen)) return;
    const phase = this.#mode === 'data' || this.#mode === 'bdat' ? 'data' : this.#helo ? 'command' : 'greeting';
    this.#anomaly('timeout', `${phase} timeout after ${this.#io.timerMs} ms`);
    this.#close ??= 'timeout';
    this.#mode = 'closed';
    this.#binding.abort();
    this.#io.write([R.timedOut(this.#cfg.hostname)], null);
    this.#io.end();
    this.#io.destroySoon(5000);
  }

  #onClientEnd(): void {
    if (this.#quitSeen) {
      if (!this.#quitFlushed) this.#anomaly('quit_no_wait', 'client closed after QUIT before the 221 was written');
    } else if (this.#close === null) {
      this.#clientGone('client_closed');
    }
    this.#io.end();
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
      if (this.#close === 'error') this.#logger().info({ err: err.message }, 'client socket error');
    }
    this.#finish(this.#close ?? 'error');
  }

  /** The client left without QUIT. */
  #clientGone(reason: CloseReason): void {
    this.#close = reason;
    if (this.#mode === 'data' || this.#mode === 'bdat') {
      this.#midBody = true;
      this.#anomaly('disconnect_in_data', `after ${this.#mode === 'data' ? this.#body.dataBytes : 'some'} body bytes`);
    } else if (this.#tx.count === 0 || this.#tx.open !== null || this.#queue.owed > 0) {
      // Hanging up after delivering its mail is what many senders do (nodemailer, for
      // one); Postfix counts it a normal disconnect. Leaving before any work was done,
      // mid-transaction or with replies still owed is what deserves a name.
      this.#anomaly('no_quit', this.#tx.open !== null ? 'closed without QUIT inside a transaction' : 'closed without QUIT');
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
    this.#io.clearTimer();
    if (this.#greetTimer) clearTimeout(this.#greetTimer);
    // Otherwise the binding says goodbye politely, so the backend's log shows no lost connection.
    this.#binding.finish(this.#quiet(), this.#midBody || this.#mode === 'data' || this.#mode === 'bdat');
    this.#io.destroy();
    this.#ctx.logger.info(this.record(), 'session');
    this.#ctx.onEnd?.(this);
  }

  /** The `session` log record (CONTRACT.md). */
  record(): SessionRecord {
    const id = this.#identity;
    return sessionRecord({
      conn: this.id,
      client: { address: id.client.address, port: id.client.port },
      listener: this.#ctx.listener.name,
      proxy: id.proxy,
      tls: this.#tls,
      helo: this.#helo,
      auth: id.auth,
      backend: this.#binding.record(),
      transactions: this.#tx.count,
      rcpts: this.#tx.rcpts,
      bytes_in: this.#io.bytesIn,
      bytes_out: this.#io.bytesOut,
      duration_ms: Date.now() - this.started,
      close: this.#close ?? 'error',
      anomalies: [...this.#anomalies],
      limit_rejections: this.#limits.rejections,
      ...(this.#closedBy ? { limit: this.#closedBy } : {}),
    });
  }
}

/** Extensions Postern offers when the backend side does (backend/pool.ts computes which). */
const PASSED_THROUGH = ['8BITMIME', 'SMTPUTF8', 'DSN', 'ENHANCEDSTATUSCODES', 'CHUNKING'] as const;
