// One client connection, from greeting to session record. Postern answers the front
// phase itself (RFC 5321 §4.1.1), binds a backend at the first command that needs one,
// then relays while still parsing both directions: every command has a slot in the
// ordered reply queue, so Postern's own refusals and the backend's replies reach the
// client in command order even when the client pipelines (RFC 2920).
//
// This file is the command handlers; the connection's state and lifecycle are core.ts's.
// Each concern with fields of its own is a module beside them: client-io (socket, timers,
// flow), input (lines and bytes, backpressure), binding (the backend), message and body
// (DATA/BDAT), limits (LIMITS/SIZE counters), identity (who the client is), farewell (how
// the client leaves).

import { isUtf8 } from 'node:buffer';
import { isCompletion } from '../smtp/codes.js';
import { ENDS_GROUP, checkCharset, parseCommand, parsePathCommand, printable } from '../smtp/command.js';
import { renderEhlo, type Capabilities } from '../smtp/ehlo.js';
import { SmtpError } from '../smtp/errors.js';
import type { Line } from '../smtp/lines.js';
import type { Reply } from '../smtp/reply.js';
import type { BackendPool } from '../backend/pool.js';
import { parseXclientArgs, type XclientArgs } from '../smtp/xclient-args.js';
import { SessionAuth } from './auth.js';
import { authenticated, backendClient, backendHelo, withName, xclientIdentity } from './identity.js';
import { isNonSmtp } from './non-smtp.js';
import { offer } from './offer.js';
import * as R from './replies.js';
import { SessionCore } from './core.js';

export class Session extends SessionCore {
  /** The last MAIL declared SMTPUTF8 (RFC 6531 §3.4): its RCPTs may be non-ASCII. */
  #utf8 = false;
  /** AUTH (RFC 4954), made at the first use. */
  #auth: SessionAuth | null = null;
  /**
   * Routing by recipient (issue #24): a MAIL answered by Postern, waiting for the first RCPT
   * to choose its pool; then the transaction's pool, which every later RCPT must route to.
   * Both null when the route was decided without recipients (or there is no routing).
   */
  #deferred: { line: string; from: string; handler: (r: Reply) => Buffer | null } | null = null;
  #txRoute: { from: string; pool: BackendPool } | null = null;

  /** Inside an AUTH exchange: lines are SASL responses. */
  protected get authExchanging(): boolean {
    return this.#auth?.exchanging === true;
  }

  /** AUTH (made at the first use: most sessions never authenticate). */
  protected get auth(): SessionAuth {
    return (this.#auth ??= this.#newSessionAuth());
  }

  #newSessionAuth(): SessionAuth {
    const ctx = this.ctx;
    return new SessionAuth(
      {
        queue: this.queue,
        metrics: ctx.metrics,
        id: this.id,
        identity: () => this.identity,
        tls: () => this.tls !== null,
        helo: () => this.helo,
        esmtp: () => this.esmtp,
        inTransaction: () => this.tx.open !== null,
        hold: (p, then) => this.steps.hold(p, then),
        authenticated: (auth, route) => {
          this.identity = authenticated(this.identity, auth);
          // A backend bound before was told an anonymous client: the next MAIL binds anew.
          this.binding.unbind();
          this.life.toIfAllowed('front');
          this.binding.route = route;
          // What follows a login is MAIL: its backend can be bound now.
          this.#bindEarly();
        },
        anomaly: (kind, detail) => this.anomaly(kind, detail, kind === 'auth_failed'),
        closeWith: (reason, reply) => this.closeWith(reason, reply),
        refuse: (err) => this.refuse(err),
      },
      ctx.listener.auth,
      ctx.config.auth,
      ctx.authenticator ?? null,
    );
  }

  protected handleLine(line: Line, pipelined: boolean): void {
    // Inside an AUTH exchange a line is a SASL response, never a command (and never logged).
    if (this.authExchanging) return this.auth.line(line.text.toString('latin1'), line.tooLong);
    if (line.tooLong) {
      this.anomaly('line_too_long', `command line over ${this.cfg.limits.line_length} bytes`);
      this.refuse(R.lineTooLong());
      return;
    }
    if (line.bareLf) this.anomaly('bare_lf', 'command line ended by bare LF or containing bare CR');
    if (this.screen && this.life.ending) return;
    if (!isUtf8(line.text)) {
      // Never decoded lossily: a U+FFFD would reach the backend as an address the client
      // never sent. Postfix answers the same (smtputf8_enable).
      this.refuse(R.badUtf8());
      return;
    }
    const text = line.text.toString('utf8');
    const cmd = parseCommand(text);
    const prev = this.prevVerb;
    this.prevVerb = cmd.verb;
    // A client that is not speaking SMTP at all is named for that alone.
    if (pipelined && prev !== null && (!this.esmtp || ENDS_GROUP.has(prev)) && !this.anomalies.has('non_smtp')) {
      this.anomaly(
        'pipelining_violation',
        this.esmtp ? `${cmd.verb} sent before the reply to ${prev}` : `${cmd.verb} pipelined without PIPELINING`,
      );
    }
    // Screening's command count and time limits, before the first MAIL.
    if ((this.screen && this.life.ending) || (cmd.verb !== 'MAIL' && cmd.verb !== 'QUIT' && this.screenDrop(this.screen?.command()))) return;
    try {
      this.#dispatch(cmd.verb, cmd.args, text);
    } catch (err) {
      if (!(err instanceof SmtpError)) throw err;
      this.refuse(err);
    }
  }

  #dispatch(verb: string, args: string, line: string): void {
    if (this.refuseAll && verb !== 'QUIT') throw this.refuseAll();
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
        return this.message.bdat(args, line);
      case 'RSET':
        return this.#rset();
      case 'NOOP':
        return this.queue.reply(R.OK);
      case 'QUIT':
        return this.#quit();
      case 'HELP':
        return this.queue.reply(R.HELP);
      case 'VRFY':
      case 'EXPN':
        return this.#vrfy(verb, line);
      case 'XCLIENT':
        if (this.#xclientAllowed()) return this.#xclient(args);
        // Never passed on: a backend trusting us would take the client's word for its identity.
        this.anomaly('xclient_untrusted', `XCLIENT from ${this.identity.client.address}`);
        throw R.xclientNotAllowed();
      case 'PROXY':
        if (this.ctx.listener.proxy_protocol === 'on') {
          // A header from a peer not in trusted_proxies, or a second one: never believed.
          this.anomaly('proxy_header_invalid', `PROXY line from untrusted peer ${this.identity.client.address}`);
          throw R.proxyUntrusted();
        }
        throw R.proxyNotHere();
      case 'STARTTLS':
        return this.#starttls(args);
      case 'AUTH':
        return this.auth.command(args);
      default:
        if (isNonSmtp(verb, line)) {
          this.anomaly('non_smtp', line.slice(0, 80));
          if (this.screen && this.life.ending) return;
          if (this.cfg.smtp.non_smtp.action === 'disconnect') return this.closeWith('error', R.nonSmtpClosing(this.cfg.hostname));
        }
        throw R.notRecognized();
    }
  }

  // ---- commands ----------------------------------------------------------------------

  #hello(verb: string, args: string): void {
    const name = args.trim();
    if (!name) throw R.syntax(`${verb} hostname`);
    this.helo = name;
    this.esmtp = verb === 'EHLO';
    if (this.life.phase === 'greeted') this.life.to('front');
    this.reset();
    if (verb === 'HELO') this.queue.reply(R.heloReply(this.cfg.hostname));
    else this.queue.reply(renderEhlo(`${this.cfg.hostname} greets ${printable(name)}`, this.#capabilities()));
    // EHLO resets any transaction (RFC 5321 §4.1.4): pass it on, so the backend forgets
    // the transaction too and knows the name the client gives now. Its reply is ours to read.
    const helo = backendHelo(name, this.identity.client.address);
    if (helo !== null) this.binding.ehlo(helo);
    this.#bindEarly();
  }

  /**
   * `backends.bind_at: ehlo` (issue 26): the backend is bound now, while the client reads the
   * reply and sends MAIL, when nothing it may still say changes what the backend is told or
   * which pool it is in. Not while screening judges the client (sparing the backend is its
   * point), with routes (the envelope may choose the pool), a `mail` decision to come, STARTTLS
   * or AUTH still on offer, or XCLIENT rights (each would void the binding).
   */
  #bindEarly(): void {
    if (this.ctx.pool.cfg.bind_at !== 'ehlo' || this.binding.bound || this.screen || this.refuseAll || !this.helo) return;
    if ((this.ctx.routing?.table.routes.length ?? 0) > 0 || this.ctx.decisions?.mail || this.#starttlsOffered() || this.#xclientAllowed()) return;
    if (this.identity.auth === null && this.auth.offered().length > 0) return;
    this.binding.prebind(() => this.#backendClient());
  }

  /** What Postern offers: its own extensions plus what every live backend (or the bound one) supports. */
  #capabilities(): Capabilities {
    return offer({
      starttls: this.#starttlsOffered(),
      size: this.limits.size(),
      backend: this.binding.extensions(),
      limits: this.limits.inForce(),
      xclient: this.#xclientAllowed(),
      auth: this.ctx.authenticator ? this.auth.offered() : [],
    });
  }

  /**
   * XCLIENT rights follow the client the session believes now, never the socket's peer:
   * after a PROXY header every byte is the client's behind the balancer, and after one
   * XCLIENT the told client is judged (Postfix re-checks smtpd_authorized_xclient_hosts
   * against the new address the same way).
   */
  #xclientAllowed(): boolean {
    return this.ctx.xclientFrom?.contains(this.identity.client.address) === true;
  }

  #mail(args: string, line: string): void {
    if (this.limits.mailOverMax()) {
      // MAILMAX (RFC 9422 §4.1) has no standard reply; Exim's practice is 421 and close.
      // Replies owed for earlier commands still go out first; then QUIT to the backend.
      this.closedBy = 'mailmax';
      this.closeWith('limit', R.tooManyTransactions());
      return;
    }
    if (!this.helo) throw R.needHelo();
    if (this.ctx.authenticator) this.auth.checkMail();
    this.limits.newTransaction();
    const path = parsePathCommand(args, 'FROM');
    const utf8 = path.params.has('SMTPUTF8');
    checkCharset(path, utf8);
    this.#utf8 = utf8;
    this.limits.checkDeclaredSize(path.params.get('SIZE'));
    const from = path.address;
    this.tx.client = this.identity.client;
    const opened = this.tx.mail(from);
    if (this.screen) {
      this.screen.mail();
      // Enforced by screening (postscreen's enforce): the sender is taken, no backend is spent.
      if (this.screen.refusal) {
        opened(true);
        this.queue.reply(R.MAIL_OK);
        return;
      }
    }
    // The decision seam's `mail` point: before the first backend is spent on this client.
    const facts = this.facts(from);
    const d = this.binding.bound ? null : (this.ctx.decisions?.mail?.(facts) ?? null);
    if (d) this.steps.decide(d, facts, () => this.#toBackend(line, from, opened), () => opened(false));
    else this.#toBackend(line, from, opened);
  }

  #toBackend(line: string, from: string, opened: (ok: boolean) => void): void {
    const handler = (r: Reply) => {
      this.binding.countTransaction();
      const accepted = isCompletion(r.code);
      opened(accepted);
      // A held MAIL's refusal reaches the client only at RCPT: the record is its trace.
      if (!accepted) this.message.senderRefused(from, r);
      return r.raw;
    };
    const hold = { reply: R.MAIL_OK, held: () => opened(true) };
    this.#deferred = null;
    this.#txRoute = null;
    const routing = this.ctx.routing;
    // An auth_http answer (Auth-Server) routes the session ahead of routes:.
    if (!routing || this.binding.route) return this.binding.toBackend(() => this.#backendClient(), line, handler, hold);
    const m = routing.table.match(this.routeFacts(from));
    if (m.kind === 'pending') {
      // A route on recipient_domain: the first RCPT decides; the MAIL goes out with it.
      this.#deferred = { line, from, handler };
      hold.held();
      this.queue.reply(hold.reply);
      return;
    }
    const pool = m.kind === 'pool' ? routing.pool(m.pool) : undefined;
    if (!pool || m.kind !== 'pool') {
      opened(false);
      this.#noRoute(from, null);
      return;
    }
    const routed = routing.table.routes.length > 0;
    this.binding.toBackend(() => this.#backendClient(), line, handler, hold, routed ? { pool, route: m.index } : { pool });
  }

  /** No route matches and there is no pool default: refused, and a record says so. */
  #noRoute(from: string, rcpt: string | null): SmtpError {
    const addresses = this.cfg.log.addresses;
    this.sessionLog().warn(
      { event: 'no_route', listener: this.ctx.listener.name, from: addresses ? from : null, rcpt: addresses ? rcpt : null },
      'no route matches and there is no pool "default"',
    );
    const err = R.noRoute(this.cfg.hostname);
    if (rcpt === null) this.refuse(err);
    return err;
  }

  /** What the backend is told about the client, with its PTR name when wanted (once per identity). */
  async #backendClient() {
    const cfg = this.cfg.backends;
    this.identity = await withName(this.identity, cfg.reverse_lookup, Math.min(cfg.reply_timeout, 5000));
    const tellLogin = this.cfg.auth?.to_backend !== 'none';
    return backendClient(this.identity, { connId: this.id, helo: this.helo, esmtp: this.esmtp, tls: this.tls }, tellLogin);
  }

  #rcpt(args: string, line: string): void {
    const refusal = this.binding.bound ? null : (this.screen?.refusal ?? null);
    if (!this.binding.bound && !this.#deferred && !(refusal && this.tx.open)) throw R.needMail();
    const path = parsePathCommand(args, 'TO');
    checkCharset(path, this.#utf8);
    const address = path.address;
    const entry = this.tx.rcpt(address);
    if (refusal) {
      this.tx.refuse(entry, refusal);
      this.#enforced(address, refusal.reply);
      throw refusal;
    }
    try {
      this.limits.checkRcpt(address);
    } catch (err) {
      if (err instanceof SmtpError) this.tx.refuse(entry, err);
      throw err;
    }
    const answer = (r: Reply) => {
      this.tx.answer(entry, r);
      return r.raw;
    };
    const routing = this.ctx.routing;
    const from = this.#deferred?.from ?? this.#txRoute?.from;
    if (routing && from !== undefined && this.tx.open !== null) {
      // The transaction routes by recipient: this one decides (the first) or must agree.
      const m = routing.table.match(this.routeFacts(from, address));
      const pool = m.kind === 'pool' ? routing.pool(m.pool) : undefined;
      const index = m.kind === 'pool' ? m.index : null;
      const refuse = (err: SmtpError): never => {
        this.tx.refuse(entry, err);
        throw err;
      };
      if (!pool) refuse(this.#noRoute(from, address));
      else if (this.#deferred) {
        const mail = this.#deferred;
        this.#deferred = null;
        this.#txRoute = { from, pool };
        this.binding.toBackendWithMail(() => this.#backendClient(), { pool, route: index }, mail, line, answer);
        return;
      } else if (pool !== this.#txRoute!.pool) refuse(R.otherPool());
    }
    this.binding.forward(line, answer);
  }

  /** A new transaction (RSET, EHLO...): a MAIL waiting for its route is forgotten. */
  protected override reset(): void {
    super.reset();
    this.#deferred = null;
    this.#txRoute = null;
  }

  /** What postscreen logs of an enforced client: HELO, sender and recipient, with the refusal. */
  #enforced(rcpt: string, reply: string): void {
    const addresses = this.cfg.log.addresses;
    const from = this.tx.open?.from ?? null;
    this.ctx.logger.info(
      { conn: this.id, client: this.identity.client.address, helo: this.helo, from: addresses ? from : null, rcpt: addresses ? rcpt : null, reply: reply.trim() },
      'screen enforce: RCPT refused',
    );
  }

  #data(args: string): void {
    if (args.trim()) throw R.syntax('DATA');
    // No recipient accepted: screening refused them all, or a MAIL still waits for its route.
    if (!this.binding.bound && ((this.screen?.refusal && this.tx.open) || this.#deferred)) throw R.noValidRecipients();
    if (!this.binding.bound) throw R.needMail();
    this.message.data();
  }

  #rset(): void {
    this.reset();
    if (this.binding.bound) this.binding.forward('RSET', (r) => r.raw);
    else this.queue.reply(R.OK);
  }

  #vrfy(verb: string, line: string): void {
    const mode = verb === 'VRFY' ? this.cfg.smtp.vrfy : this.cfg.smtp.expn;
    if (mode !== 'relay') throw R.disabled(verb);
    if (!this.helo) throw R.needHelo();
    this.binding.toBackend(() => this.#backendClient(), line, (r) => r.raw);
  }

  /**
   * XCLIENT from an xclient_from upstream (another Postern, nginx's mail proxy): Postfix's
   * semantics (XCLIENT_README): not inside a transaction, xtext values, `[UNAVAILABLE]`
   * leaves an attribute unset, success is the greeting again and the client must EHLO anew.
   */
  #xclient(args: string): void {
    if (this.tx.open !== null) throw R.inTransaction();
    const told = parseXclientArgs(args);
    const apply = () => this.#xclientApply(told);
    const addr = told.addr;
    if (!addr || addr === this.identity.client.address || !this.ctx.readmit) return apply();
    // Another client: it counts against the per-IP limits instead (the cluster primary
    // may decide, asynchronously).
    const decide = (refused: string | null) => (refused ? this.closeWith('limit', R.refusedClient(this.cfg.hostname, refused)) : apply());
    const r = this.ctx.readmit(addr);
    if (r instanceof Promise) this.steps.hold(r, decide);
    else decide(r);
  }

  #xclientApply(told: XclientArgs): void {
    const id = this.identity;
    // The upstream that vouches is the client that sent XCLIENT (behind any balancer).
    const upstream = `${id.client.address}:${id.client.port}`;
    this.identity = xclientIdentity(id, told, upstream);
    // HELO and PROTO are reset unless supplied; the client must say EHLO again.
    this.#startOver(told.helo ?? null, told.proto === 'ESMTP');
    this.queue.reply(R.greeting(this.cfg.hostname, this.cfg.banner));
  }

  /**
   * Who the client is, or how it is protected, changed (XCLIENT, STARTTLS, AUTH): what it
   * said before is void, and a backend bound before was told the old story, so the next
   * MAIL binds anew.
   */
  #startOver(helo: string | null, esmtp: boolean): void {
    this.helo = helo;
    this.esmtp = esmtp;
    this.reset();
    this.binding.unbind();
    this.life.toIfAllowed(helo === null ? 'greeted' : 'front');
  }

  #starttlsOffered(): boolean {
    return this.ctx.listener.tls === 'starttls' && !!this.ctx.terminator && this.tls === null;
  }

  /** RFC 3207: `220 2.0.0 Ready to start TLS`, then the handshake on this connection. */
  #starttls(args: string): void {
    if (!this.#starttlsOffered()) throw this.tls ? R.tlsActive() : R.notAvailable('STARTTLS');
    if (args.trim()) throw R.syntax('STARTTLS');
    if (this.tx.open !== null) throw R.inTransaction();
    this.io.holdForTls();
    this.mode = 'starttls';
    this.input.wait();
    // Anything already read after the STARTTLS line was sent before our reply: discarded
    // (RFC 3207 §4.2).
    const injected = this.input.clear();
    if (injected > 0) this.anomaly('starttls_injection', `${injected} bytes pipelined after STARTTLS, discarded`);
    this.queue.reply(R.READY_FOR_TLS, () => this.#handshake());
  }

  #handshake(): void {
    this.io.upgrade(this.ctx.terminator!, this.cfg.limits.timeouts.tls_handshake).then(
      (info) => {
        if (this.finished) {
          this.io.destroy();
          return;
        }
        this.tls = info;
        this.ctx.metrics.tlsHandshakes.inc({ listener: this.ctx.listener.name, resumed: String(info.resumed) });
        // RFC 3207 §4.2: forget what the client said before TLS; it must EHLO again.
        this.#startOver(null, false);
        this.prevVerb = null;
        this.mode = 'command';
        this.io.setTimer(this.cfg.limits.timeouts.command);
        this.input.resume();
        this.io.resume();
      },
      (err: Error & { reason?: string }) => {
        this.anomaly('tls_handshake_failed', err.reason ?? err.message);
        this.life.end('error');
        this.finish('error');
      },
    );
  }

  #quit(): void {
    this.farewell.quit();
    this.life.quit();
    const flushed = () => this.farewell.flushed();
    const binding = this.bindingIfMade;
    // Never needed a backend (a greeting and QUIT, a TLS handshake and QUIT): the 221 is
    // ours alone, as SessionBinding.quit says when nothing is bound.
    if (!binding) return this.queue.reply(R.BYE, flushed);
    binding.quit(flushed, () => this.quiet());
  }
}
