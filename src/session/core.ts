// One client connection's state and lifecycle: the socket and its timers, input routed by
// mode (command lines, DATA, BDAT), the reply queue, how the session ends and its record.
// The greeting is greeting.ts's, asynchronous steps steps.ts's. The SMTP command handlers
// (and the AUTH part they drive) are session.ts's (a subclass: the handlers and this state
// are one machine, split in two files by what they do).

import type net from 'node:net';
import type { Config } from '../config/types.js';
import type { BackendPool } from '../backend/pool.js';
import type { RouteFacts } from '../route/index.js';
import type { Logger } from '../observe/logger.js';
import { observeAnomaly, observeSession } from '../observe/record-metrics.js';
import { receivedHeaderWanted } from '../config/received.js';
import { anomalyRecord, sessionRecord, type AnomalyKind, type CloseReason, type LimitName, type SessionRecord, type TlsRecord } from '../observe/records.js';
import type { SmtpError } from '../smtp/errors.js';
import type { Line } from '../smtp/lines.js';
import { SessionBinding } from './binding.js';
import { ClientIo } from './client-io.js';
import type { SessionContext } from './context.js';
import { Farewell } from './farewell.js';
import { splitterLineMax, withinLineLength } from '../auth/line-limit.js';
import { acceptedIdentity, receivedFor, type ClientIdentity } from './identity.js';
import { Input, MAX_OVERLONG_LINES } from './input.js';
import { Lifecycle, type Phase } from './lifecycle.js';
import type { SessionFacts } from './decision.js';
import { Greeting } from './greeting.js';
import { SessionLimits } from './limits.js';
import { MessageFlow } from './message.js';
import { proxyV2Header } from './non-smtp.js';
import * as R from './replies.js';
import { ReplyQueue } from './reply-queue.js';
import { SessionSteps } from './steps.js';
import type { ScreenSession } from '../screen/screener.js';
import { Transactions } from './transaction.js';
import { withGetters } from './with-getters.js';

/** How input is read: command lines, a DATA body, BDAT chunks, or nothing (STARTTLS handshake). */
export type InputMode = 'command' | 'data' | 'bdat' | 'starttls';
/** The input mode, or `closed` once the session is ending (lifecycle.ts). */
export type Mode = InputMode | 'closed';

/** Anomaly detail for early bytes: printable, short. */
function describeBytes(b: Buffer): string {
  return JSON.stringify(b.subarray(0, 60).toString('latin1'));
}

/** Postfix's smtpd_hard_error_limit default. */
const MAX_ERRORS = 20;

export abstract class SessionCore {
  readonly id: string;
  readonly started = Date.now();
  protected readonly ctx: SessionContext;
  protected readonly cfg: Config;
  protected readonly io: ClientIo;
  protected readonly input: Input;
  /** How the client leaves (farewell.ts), made when it starts to: an idle connection has none (W5). */
  #farewell: Farewell | null = null;
  protected readonly queue: ReplyQueue;
  /**
   * The session's side of the backend, made at its first use (EHLO's offer, a command that
   * needs a backend): a connection that only greets and waits, or a TLS handshake that ends,
   * never needs one (issue 26; W5 counts every byte of an idle connection).
   */
  #binding: SessionBinding | null = null;
  protected readonly limits: SessionLimits;
  #log: Logger | null = null;

  /** The session's phase and why it ends: every transition goes through it. */
  protected readonly life = new Lifecycle();
  /** Asynchronous steps the session awaits (decisions, holds): bounded, cancelled at the end. */
  /** Asynchronous steps: holds and decisions (steps.ts). */
  protected readonly steps: SessionSteps;
  readonly #greeting: Greeting;
  #input: InputMode = 'command';
  protected identity: ClientIdentity;
  /** Everything but QUIT gets this refusal (a failed PROXY header, a 554 greeting). */
  protected refuseAll: (() => SmtpError) | null = null;
  /** Set once the client's TLS handshake is done (implicit TLS or STARTTLS). */
  protected tls: TlsRecord | null = null;
  /** The final 220 has gone out (at once unless smtp.pregreet.wait). */
  protected helo: string | null = null;
  protected esmtp = false;
  protected readonly tx = new Transactions();
  /** The limit that closed the session, for the record. */
  protected closedBy: LimitName | null = null;

  #errors = 0;
  protected readonly anomalies = new Set<AnomalyKind>();
  /** Screening, on a listener with `screen: on` (src/screen/screener.ts). */
  protected readonly screen: ScreenSession | null;

  protected prevVerb: string | null = null;
  /** The client vanished while sending a body: the backend must see a drop, never a terminator. */
  #midBody = false;
  /** The client's FIN came while its commands were still being answered (see #endWhenAnswered). */
  #clientEnded = false;

  /** How input is read now; `closed` once the session is ending (quitting, closing, closed). */
  protected get mode(): Mode {
    return this.life.ending ? 'closed' : this.#input;
  }

  protected set mode(m: InputMode) {
    this.#input = m;
  }

  /** The record is written: nothing more happens on this session. */
  protected get finished(): boolean {
    return this.life.closed;
  }

  constructor(socket: net.Socket, ctx: SessionContext) {
    this.id = ctx.id;
    this.ctx = ctx;
    this.cfg = ctx.config;
    this.identity = acceptedIdentity(ctx.client, ctx.local, ctx.proxy);
    // An xclient_from upstream (nginx's mail proxy, another Postern) is not the client: it
    // names the client with XCLIENT after the greeting, and screening it would judge the relay.
    const upstream = ctx.xclientFrom?.contains(this.identity.client.address) === true;
    this.screen = ctx.listener.screen === 'on' && ctx.screener && !upstream ? ctx.screener.session(ctx.config, this.identity.client.address) : null;
    this.io = new ClientIo(socket, {
      data: (chunk) => this.#onData(chunk),
      end: () => {
        this.#clientEnded = true;
        this.#endWhenAnswered();
      },
      error: (err) => this.farewell.onError(err),
      close: () => this.farewell.onClose(),
      timeout: () => this.#onTimeout(),
      drain: () => {
        if (this.input.blocked) this.input.kick();
      },
    });
    this.queue = new ReplyQueue({
      write: (chunks, done) => {
        this.io.write(chunks, done);
        this.#replied();
      },
      released: () => {
        if (this.input.blocked) this.input.kick();
        this.#endWhenAnswered();
      },
    });
    this.input = new Input(
      {
        mode: () => this.mode,
        line: (line, pipelined) => this.handleLine(withinLineLength(line, this.cfg.limits.line_length, this.authExchanging), pipelined),
        data: (chunk) => this.message.dataChunk(chunk),
        bdat: (chunk) => this.message.bdatChunk(chunk),
        bdatLeft: () => this.#message?.body.bdatLeft ?? 0,
        owed: () => this.queue.owed,
        unsent: () => this.io.unsent,
        pile: (full) => this.io.pile(full),
        overlong: (bytes, max) => this.#overlong(bytes, max),
        backend: () => this.#binding?.bound?.conn.socket,
        client: () => this.io.socket,
      },
      // An AUTH line (command or response) may be as long as a SASL mechanism makes it
      // (RFC 4954 §4); other commands are held to line_length by withinLineLength above.
      () => splitterLineMax(this.cfg.limits.line_length, this.authExchanging || (ctx.listener.auth !== 'off' && ctx.authenticator != null)),
    );
    this.limits = new SessionLimits(
      () => this.cfg.limits,
      () => this.binding.backendLimits(),
      (limit) => ctx.metrics.limitRejections.inc({ limit }),
    );
    this.steps = new SessionSteps({
      queue: this.queue,
      input: this.input,
      hostname: this.cfg.hostname,
      commandTimeoutMs: () => this.cfg.limits.timeouts.command,
      log: () => this.#logger(),
      closeWith: (reason, reply) => this.closeWith(reason, reply),
      closeNow: (reason, reply) => this.#closeNow(reason, reply),
    });
    this.#greeting = new Greeting({
      cfg: this.cfg,
      life: this.life,
      queue: this.queue,
      input: this.input,
      steps: this.steps,
      writeNow: (line) => this.io.write([line], null),
      facts: () => this.facts(),
      ending: () => this.finished || this.mode === 'closed',
      pregreeted: () => this.anomalies.has('pregreet'),
      closeWith: (reason, reply) => this.closeWith(reason, reply),
      refuseAll: (refusal) => (this.refuseAll = refusal),
    });
  }

  #message: MessageFlow | null = null;

  /** Inside an AUTH exchange: lines are SASL responses (session.ts holds the AUTH part). */
  protected abstract get authExchanging(): boolean;

  /** The message phase (made at the first DATA or BDAT: a session that sends none pays nothing). */
  protected get message(): MessageFlow {
    return (this.#message ??= this.#newMessageFlow());
  }

  #newMessageFlow(): MessageFlow {
    const ctx = this.ctx;
    return new MessageFlow({
      id: this.id,
      cfg: this.cfg,
      metrics: ctx.metrics,
      logger: ctx.logger,
      binding: this.binding,
      queue: this.queue,
      tx: this.tx,
      io: this.io,
      input: this.input,
      bodyMode: (mode) => {
        if (this.mode === 'closed') return;
        this.mode = mode;
        // After the end of a body, a command sent before its reply is pipelined.
        if (mode === 'command') this.prevVerb = '.';
      },
      sizeLimit: () => this.limits.size(),
      trace: () => this.#trace(),
      anomaly: (kind, detail) => this.anomaly(kind, detail),
      closeWith: (reason, reply) => this.closeWith(reason, reply),
    });
  }

  /** Public view for /sessions and the shutdown path. */
  get state(): string {
    const phase = this.life.phase;
    if (phase === 'closed' || phase === 'closing' || phase === 'quitting') return 'closed';
    if (this.#input !== 'command') return this.#input;
    if (phase === 'screening') return 'screening';
    return phase === 'relaying' ? 'relay' : phase === 'front' ? 'front' : 'greeting';
  }

  /** The lifecycle phase (lifecycle.ts), for /sessions and tests. */
  get phase(): Phase {
    return this.life.phase;
  }

  /** Lines about this connection that are not records (records carry `conn` themselves). */
  #logger(): Logger {
    return (this.#log ??= this.ctx.logger.child({ conn: this.id }));
  }

  start(): void {
    if (this.ctx.tls) this.tls = this.ctx.tls;
    this.io.attach();
    this.io.setTimer(this.cfg.limits.timeouts.greeting);
    if (this.ctx.proxyFailure) {
      this.anomaly('proxy_header_invalid', this.ctx.proxyFailure);
      this.refuseAll = R.proxyFailed;
    }
    this.#greeting.start(this.screen ? this.screen.greeting() : (this.ctx.decisions?.greeting?.(this.facts()) ?? null));
    if (this.ctx.initial) {
      // Arrived with the PROXY header, so before any greeting could have been seen.
      this.anomaly('pregreet', describeBytes(this.ctx.initial));
      this.#onData(this.ctx.initial);
    }
  }

  /**
   * A client may half-close right after its last pipelined commands: Exim sends MAIL, RCPTs,
   * `BDAT n LAST`, the body and QUIT in one write, then its FIN, and reads the replies. What it
   * sent is still answered (RFC 5321 §4.1.1.10: QUIT gets its 221): the FIN is acted on once
   * the QUIT has been read, or once nothing is left to process or owed.
   */
  #endWhenAnswered(): void {
    if (!this.#clientEnded) return;
    // Commands still to answer: replies owed, or input held behind a step (a bind, DATA's
    // reply) or backpressure. Input neither held nor blocked is at most a partial line, and
    // a client that leaves during the greet wait has said nothing to answer.
    const held = (this.input.waiting || this.input.blocked) && this.input.buffered > 0;
    const busy = held || this.queue.owed > 0;
    if (!this.farewell.quitSeen && busy && !this.life.ending) return;
    this.#clientEnded = false;
    this.farewell.onEnd();
  }

  /** Shutdown: tell the client and close (SIGTERM after the grace period). */
  shutdown(): void {
    // Past the 221 (its linger, or under TLS the wait for the client's FIN) nothing more is said.
    if (this.finished || this.#farewell?.shutdown()) return;
    this.#closeNow('shutdown', R.shuttingDown(this.cfg.hostname));
  }

  /**
   * Ends the session at once, ahead of anything owed (shutdown, the client's own timeout):
   * the backend is dropped, `reply` written, our side closed; the close guard (client-io.ts)
   * bounds how long a client that does not read can keep the socket.
   */
  #closeNow(reason: CloseReason, reply: string): void {
    this.life.end(reason);
    this.#binding?.abort();
    this.io.write([reply], null);
    this.io.end();
  }

  /**
   * The one way a session ends on its own initiative: `reply` goes out in its place after
   * the replies still owed, then the connection closes.
   */
  protected closeWith(reason: CloseReason, reply: string): void {
    this.life.end(reason);
    this.queue.reply(reply, () => this.io.end());
  }

  /** The one reset (RFC 5321 §4.1.1.5 RSET, and what EHLO, XCLIENT and STARTTLS imply): no transaction. */
  protected reset(): void {
    this.tx.reset();
    this.#binding?.dropHeld();
    this.limits.newTransaction();
    this.#message?.body.reset();
  }

  // ---- client input -------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    switch (this.mode) {
      case 'closed':
      case 'starttls':
        return;
      case 'data':
        this.io.bodyBytes(chunk.length);
        this.message.dataChunk(chunk);
        return;
      case 'bdat':
        this.io.bodyBytes(chunk.length);
        this.message.bdatChunk(chunk);
        return;
      case 'command':
        if (!this.#greeting.sent) this.anomaly('pregreet', describeBytes(chunk));
        if (this.prevVerb === null && this.input.buffered === 0) {
          const header = proxyV2Header(chunk);
          if (header > 0) {
            this.#proxyV2(header);
            chunk = chunk.subarray(header);
            if (chunk.length === 0) return;
          }
        }
        // Sent while a reply was still owed: the client did not wait for it.
        this.input.push(chunk, this.queue.owed > 0);
    }
  }

  /** A PROXY v2 header from a peer not allowed to send one: not SMTP, never believed. */
  #proxyV2(bytes: number): void {
    this.anomaly('non_smtp', `PROXY v2 header (${bytes} bytes) from untrusted peer ${this.identity.client.address}`);
    if (this.mode === 'closed') return;
    if (this.cfg.smtp.non_smtp.action === 'disconnect') return this.closeWith('error', R.nonSmtpClosing(this.cfg.hostname));
    this.refuse(this.ctx.listener.proxy_protocol === 'on' ? R.proxyUntrusted() : R.proxyNotHere());
  }

  protected refuse(err: SmtpError): void {
    this.queue.reply(err.reply);
    if (err.smtpCode >= 500 && ++this.#errors >= MAX_ERRORS) this.closeWith('error', R.tooManyErrors(this.cfg.hostname));
  }

  /** Postern's Received: header for the current transaction. */
  #trace(): Buffer | null {
    // received_header (auto: when XCLIENT cannot tell the backend the client used TLS).
    if (!receivedHeaderWanted(this.cfg, this.tls !== null)) return null;
    const tx = this.tx.open;
    if (tx) tx.traced = true;
    const rcpt = tx && tx.rcpts === 1 ? tx.firstRcpt : null;
    return receivedFor(this.identity, { helo: this.helo, esmtp: this.esmtp, tls: this.tls, by: this.cfg.hostname, id: this.id, rcpt });
  }

  /** What a decision may look at. */
  /** A no-route refusal's record (and anything else a command handler logs about the session). */
  protected sessionLog(): Logger {
    return this.#logger();
  }

  /** What a route looks at; `sender` and `recipient` stay undefined until known. */
  protected routeFacts(sender?: string, recipient?: string): RouteFacts {
    const id = this.identity;
    const f: RouteFacts = { listener: this.ctx.listener.name, sni: this.tls?.sni ?? null, client: id.client.address, auth: id.auth?.user ?? null };
    if (sender !== undefined) f.sender = sender;
    if (recipient !== undefined) f.recipient = recipient;
    return f;
  }

  protected get farewell(): Farewell {
    return (this.#farewell ??= this.#makeFarewell());
  }

  #makeFarewell(): Farewell {
    return new Farewell(
      withGetters(
        {
          anomaly: (kind: AnomalyKind, detail: string) => this.anomaly(kind, detail),
          gone: (reason: CloseReason, why?: string) => this.#clientGone(reason, why),
          closing: () => this.io.closing(),
          end: () => this.io.end(),
          destroy: () => this.io.destroy(),
          linger: (ms: number) => this.io.setTimer(ms),
          finish: (reason: CloseReason) => this.finish(reason),
        },
        { reason: () => this.life.reason, secure: () => this.io.secure },
      ),
    );
  }

  protected get binding(): SessionBinding {
    return (this.#binding ??= this.#makeBinding());
  }

  /** The binding if the session has needed one yet, without making it. */
  protected get bindingIfMade(): SessionBinding | null {
    return this.#binding;
  }

  #makeBinding(): SessionBinding {
    const ctx = this.ctx;
    return new SessionBinding(
      withGetters(
        {
          queue: this.queue,
          anomaly: (kind: AnomalyKind, detail: string) => this.anomaly(kind, detail),
          backendFailed: (reply: string) => {
            this.life.end('backend_failed');
            this.queue.failBackend(reply, () => this.io.end());
            // The 421 may never flush (a client that does not read): the guard still ends it.
            this.io.closing();
          },
          bound: () => this.life.toIfAllowed('relaying'),
          wait: () => this.input.wait(),
          resume: () => this.input.resume(),
          log: () => this.#logger(),
        },
        {
          closed: () => this.mode === 'closed',
          finished: () => this.finished,
          inTransaction: () => this.tx.open !== null || this.mode === 'data' || this.mode === 'bdat',
        },
      ),
      withGetters(
        { config: ctx.config, logger: ctx.logger, connId: ctx.id },
        // Before a route decides: the pool the session facts route to (routing), else the default.
        { pool: () => this.frontPool() },
      ),
    );
  }

  /**
   * The pool the session's own facts (listener, SNI, client, login) route to, or the default
   * pool when no route is decided without the envelope, or an auth_http answer routes the
   * session: what EHLO offers and what limits are read from before a backend is bound.
   */
  frontPool(): BackendPool {
    const r = this.ctx.routing;
    if (!r || this.#binding?.route) return this.ctx.pool;
    const m = r.table.match(this.routeFacts());
    return (m.kind === 'pool' ? r.pool(m.pool) : undefined) ?? this.ctx.pool;
  }

  protected facts(from: string | null = null): SessionFacts {
    const id = this.identity;
    return { id: this.id, listener: this.ctx.listener.name, client: id.client, helo: this.helo, tls: this.tls, auth: id.auth, from };
  }

  /** Nothing open that the next session on this backend connection could inherit. */
  protected quiet(): boolean {
    return this.tx.open === null && (this.#message?.body.poisoned ?? null) === null && !this.#midBody && this.#input !== 'data' && this.#input !== 'bdat';
  }

  // ---- end -----------------------------------------------------------------------------

  #onTimeout(): void {
    // Read without making one: a fresh Farewell is neither lingering nor past QUIT.
    if (this.#farewell?.lingering) return this.#farewell.lingerOver();
    if (this.finished || (this.mode === 'closed' && this.#farewell?.quitSeen === true)) return;
    if (this.queue.owed > 0) {
      // The client is waiting for us (a bind, a backend's reply, a verifier): each of those
      // has its own timeout. Cutting the client now could make it send a message again that
      // the backend kept (RFC 5321 §4.5.3.2.6 gives 10 minutes for that reply).
      this.io.setTimer(this.cfg.limits.timeouts.command);
      return;
    }
    const phase = this.mode === 'data' || this.mode === 'bdat' ? 'data' : this.helo ? 'command' : 'greeting';
    this.anomaly('timeout', `${phase} timeout after ${this.io.timerMs} ms`);
    this.#closeNow('timeout', R.timedOut(this.cfg.hostname));
  }

  /**
   * Replies were written: the client's time to send its next command runs from now (issue
   * 21, B3), however long it waited for them; in a body the body's timer stays in force.
   */
  #replied(): void {
    if (this.mode !== 'command') return;
    const t = this.cfg.limits.timeouts;
    this.io.setTimer(this.helo ? t.command : t.greeting);
  }

  /**
   * A line past the limit in force and still without its end: named at once, and after
   * MAX_OVERLONG_LINES times the limit the session closes (a peer streaming bytes without
   * a line end is not sending SMTP; Postern would otherwise read it until the timeout).
   */
  #overlong(bytes: number, max: number): void {
    this.anomaly('line_too_long', `line over ${max} bytes without a line end`);
    if (bytes < MAX_OVERLONG_LINES * max || this.mode === 'closed') return;
    this.closeWith('error', R.lineTooLong().reply);
  }

  /** The client left without QUIT. */
  #clientGone(reason: CloseReason, why?: string): void {
    if (reason === 'error') this.#logger().info({ err: why }, 'client socket error');
    if (this.mode === 'data' || this.mode === 'bdat') {
      this.#midBody = true;
      this.anomaly('disconnect_in_data', `after ${this.mode === 'data' ? (this.#message?.body.dataBytes ?? 0) : 'some'} body bytes`);
    } else if (this.tx.count === 0 || this.tx.open !== null || this.queue.owed > 0) {
      // Hanging up after delivering its mail is what many senders do (nodemailer, for
      // one); Postfix counts it a normal disconnect. Leaving before any work was done,
      // mid-transaction or with replies still owed is what deserves a name.
      this.anomaly('no_quit', this.tx.open !== null ? 'closed without QUIT inside a transaction' : 'closed without QUIT');
    }
    this.life.end(reason);
  }

  /** An anomaly, named once in the session record; `each`: a record every time (each failed login). */
  protected anomaly(kind: AnomalyKind, detail: string, each = false): void {
    if (this.anomalies.has(kind) && !each) return;
    this.anomalies.add(kind);
    const rec = anomalyRecord(this.id, kind, detail, this.identity.client);
    observeAnomaly(this.ctx.metrics, rec);
    if (this.ctx.logAnomaly(kind)) this.ctx.logger.info(rec, `anomaly ${kind}`);
    // A deep screening test (before the first MAIL): drop ends the session now.
    this.screenDrop(this.screen?.anomaly(kind));
  }

  /** Screening said drop: `521 5.7.1` ahead of anything owed, and close. True when it did. */
  protected screenDrop(r: { drop: string } | null | undefined): boolean {
    if (!r || this.finished || this.mode === 'closed') return false;
    this.#closeNow('screened', r.drop);
    return true;
  }

  /**
   * The end of every session, whatever ended it: timers stopped, the backend let go (QUIT,
   * or a drop mid-body), the client socket destroyed, the one record written and counted,
   * and the server told (admission released).
   */
  protected finish(reason: CloseReason): void {
    const inBody = this.#midBody || this.#input === 'data' || this.#input === 'bdat';
    const quiet = this.quiet();
    if (!this.life.close(reason)) return;
    this.io.clearTimer();
    this.io.clearGuard();
    this.#greeting.stop();
    this.steps.abort();
    this.screen?.end();
    // Otherwise the binding says goodbye politely, so the backend's log shows no lost connection.
    this.#binding?.finish(quiet, inBody);
    this.io.destroy();
    const rec = this.record();
    observeSession(this.ctx.metrics, rec);
    this.ctx.logger.info(rec, 'session');
    this.ctx.onEnd?.();
    this.io.release();
  }

  /** The `session` log record. */
  record(): SessionRecord {
    const id = this.identity;
    return sessionRecord({
      conn: this.id,
      client: { address: id.client.address, port: id.client.port },
      listener: this.ctx.listener.name,
      proxy: id.proxy,
      tls: this.tls,
      helo: this.helo,
      auth: id.auth,
      backend: this.#binding?.record() ?? null,
      transactions: this.tx.count,
      rcpts: this.tx.rcpts,
      bytes_in: this.io.bytesIn,
      bytes_out: this.io.bytesOut,
      duration_ms: Date.now() - this.started,
      close: this.life.reason ?? 'error',
      anomalies: [...this.anomalies],
      limit_rejections: this.limits.rejections,
      ...(this.closedBy ? { limit: this.closedBy } : {}),
      ...(this.screen ? { screen: this.screen.record() } : {}),
    });
  }

  /** A command line, with whether it was pipelined: the handlers' entry (session.ts). */
  protected abstract handleLine(line: Line, pipelined: boolean): void;
}
