// The session's side of its backend: binding at the first command that needs one,
// forwarding commands and bodies, releasing the backend's replies into the ordered reply
// queue, noticing a backend that goes away, and ending the binding (QUIT, park for the
// next session, or abort). The pool's bookkeeping is backend/bind.ts's.

import { C250Completed, C421ServiceUnavail } from '../smtp/codes.js';
import type { Config, HostPort } from '../config/types.js';
import { bind, type Binding } from '../backend/bind.js';
import { BackendError } from '../backend/errors.js';
import type { BackendClient } from '../backend/handshake.js';
import type { BackendPool } from '../backend/pool.js';
import type { Logger } from '../observe/logger.js';
import type net from 'node:net';
import type { AnomalyKind, BackendAttempt, BackendSessionRecord } from '../observe/records.js';
import { parseEhlo } from '../smtp/ehlo.js';
import { replyText, type Reply } from '../smtp/reply.js';
import type { BackendLimits } from './limits.js';
import type { BackendHandler, ReplyQueue, Slot } from './reply-queue.js';
import { HeldMail } from './held-mail.js';
import { ReplyDeadlines } from './reply-deadlines.js';
import { BYE, noBackend, backendLost } from './replies.js';

/** Failed backend attempts a session record lists (a session rebinding after each loss cannot grow it without end). */
const MAX_ATTEMPTS = 16;
/** How long an early bind's failure answers a MAIL (no second round of every server for one command). */
const EARLY_FAILURE_STANDS_MS = 1000;

/** What the binding needs of its session. */
export interface BindingHost {
  readonly queue: ReplyQueue;
  readonly closed: boolean;
  /** The session ended (its record is written): nothing more may start. */
  readonly finished: boolean;
  /** A transaction is open, or a body is coming: losing the backend now loses the client's work. */
  readonly inTransaction: boolean;
  anomaly(kind: AnomalyKind, detail: string): void;
  /** The backend ended the session: `reply` (none when '') in place of what it owed, then close. */
  backendFailed(reply: string): void;
  /** A backend is bound to the session now. */
  bound(): void;
  /** Input processing waits for the bind. */
  wait(): void;
  resume(): void;
  log(): Logger;
}

export interface BindingContext {
  config: Config;
  pool: BackendPool;
  logger: Logger;
  connId: string;
}

/** Where a bind goes (routing): a pool, and the route that chose it (null: no route matched, the default). */
export interface PoolChoice {
  pool: BackendPool;
  /** Absent when there are no routes (the record then names no route). */
  route?: number | null;
}

/** How a MAIL may be held (SessionBinding.toBackend). */
export interface MailHold {
  /** Postern's reply to the MAIL while it is held. */
  reply: string | Buffer;
  /** The MAIL is held: the session opens its transaction now. */
  held(): void;
}

export interface ForwardOptions {
  /** A slot reserved earlier (the command was read while binding). */
  slot?: Slot;
  flushed?: (() => void) | null;
  internal?: boolean;
  final?: boolean;
}

export class SessionBinding {
  #b: Binding | null = null;
  /** The last binding, for the session record. */
  #last: BackendSessionRecord | null = null;
  /** Servers that failed while binding, over the session (bounded: MAX_ATTEMPTS). */
  readonly #attempts: BackendAttempt[] = [];
  /** Where a verifier routed this session (auth_http's Auth-Server), or null. */
  route: HostPort | null = null;
  /** MAIL held back until the next command (#holdMail). */
  readonly #mail = new HeldMail();
  /** A QUIT waiting for the backend's owed replies before it decides reuse. */
  #onIdle: (() => void) | null = null;
  /** A bind started ahead of the MAIL that needs it (`prebind`), while it runs. */
  #early: Promise<boolean> | null = null;
  /** When an early bind found no backend: a MAIL soon after takes that answer, a later one binds anew. */
  #earlyFailedAt = 0;
  /** Bumped whenever the binding is let go: a bind that ends after that is stale, and quits. */
  #epoch = 0;
  /** An EHLO the client gave while the early bind was on its way, for the backend once bound. */
  #ehloOnBind: string | null = null;
  /** The replies the backend owes, and how long it may take (a late one: the backend is lost). */
  readonly #deadlines = new ReplyDeadlines(
    () => this.ctx.config.limits.timeouts,
    (why) => {
      if (this.#b) this.#lost(this.#b, why);
    },
  );

  constructor(
    private readonly host: BindingHost,
    private readonly ctx: BindingContext,
  ) {}

  get bound(): Binding | null {
    return this.#b;
  }

  /** SIZE and LIMITS on the backend side: the bound server's, or what every live one offers. */
  backendLimits(): BackendLimits {
    return this.#b ?? this.ctx.pool.offered();
  }

  /** Extensions the backend side offers. */
  extensions(): ReadonlySet<string> {
    return this.#b ? new Set(this.#b.caps.keys()) : this.ctx.pool.offered().extensions;
  }

  /** The backend for the session record: the last one bound, and every server that failed before (failover). */
  record(): BackendSessionRecord | null {
    if (this.#attempts.length === 0) return this.#last;
    // Every attempt failed: no server, but the record still says what was tried and why.
    const base = this.#last ?? { address: null, identity: this.ctx.pool.cfg.identity };
    return { ...base, attempts: [...this.#attempts] };
  }

  /**
   * Forwards a command that needs a backend, binding one first if needed. `hold` (MAIL):
   * the command may wait for the next one, answered meanwhile by `hold.reply` (see
   * #holdMail). `target`: the pool a route chose; a backend of another pool is left first.
   */
  toBackend(client: () => Promise<BackendClient>, line: string, handler: BackendHandler, hold?: MailHold, target?: PoolChoice): void {
    this.#withBackend(client, target ?? null, (slot) => {
      if (hold && this.#holdMail(line, handler, hold)) {
        if (slot) this.host.queue.fill(slot, hold.reply);
        else this.host.queue.reply(hold.reply);
      } else this.forward(line, handler, slot ? { slot } : {});
    });
  }

  /**
   * A MAIL Postern answered itself while the route waited for a recipient (a route on
   * recipient_domain), sent now ahead of that first RCPT, in one write, to the pool the
   * RCPT routes to. A refusal of the MAIL stands for the RCPT's reply, as with #holdMail.
   */
  toBackendWithMail(client: () => Promise<BackendClient>, target: PoolChoice, mail: { line: string; handler: BackendHandler }, line: string, handler: BackendHandler): void {
    this.#withBackend(client, target, (slot) => {
      this.#mail.hold(mail.line, mail.handler);
      this.forward(line, handler, slot ? { slot } : {});
    });
  }

  /** The pool of the bound backend, or null. */
  get pool(): BackendPool | null {
    return this.#b?.pool ?? null;
  }

  /**
   * Runs `send` with a backend of `target`'s pool (any when null): the bound one, or one
   * bound now, in which case `send` gets the slot reserved for the command's reply. A
   * backend of another pool is left (QUIT) once it owes no reply: a transaction ended on it.
   */
  #withBackend(client: () => Promise<BackendClient>, target: PoolChoice | null, send: (slot?: Slot) => void): void {
    const { queue } = this.host;
    if (this.#b && target && this.#b.pool !== target.pool) {
      if (queue.pendingBackend > 0) {
        const slot = queue.reserve();
        this.host.wait();
        this.#onIdle = () => {
          this.unbind();
          this.#bindThen(client, target, slot, send);
        };
        return;
      }
      this.unbind();
    }
    if (this.#b) {
      // Bound early, before this first command that needed it: the session is relaying now
      // (no change when it already was).
      this.host.bound();
      return send();
    }
    const slot = queue.reserve();
    this.host.wait();
    const early = this.#early;
    if (!early) {
      if (Date.now() - this.#earlyFailedAt < EARLY_FAILURE_STANDS_MS) return this.#noBackendFor(slot);
      return this.#bindThen(client, target, slot, send);
    }
    // The early bind is on its way: the command waits for it, as for a bind of its own.
    void early.then((ok) => {
      if (this.host.finished) return;
      if (!ok) return this.#noBackendFor(slot);
      // Bound to another pool than the command's (as at the top): left, and one of its pool bound.
      if (this.#b && target && this.#b.pool !== target.pool) this.unbind();
      if (!this.#b) return this.#bindThen(client, target, slot, send);
      this.host.bound();
      send(slot);
      this.host.resume();
    });
  }

  #noBackendFor(slot: Slot): void {
    this.host.queue.fill(slot, noBackend(this.ctx.config.hostname));
    this.host.resume();
  }

  /**
   * Binds now, ahead of the command that will need it (issue 26): the backend's handshake
   * runs while the client reads our reply and sends its MAIL, which then waits only for what
   * is left of it. The caller knows nothing the client may still say changes what the
   * backend is told; if it does (EHLO with another name, STARTTLS, AUTH, XCLIENT), the
   * binding is let go as a bound one is, and the next MAIL binds anew.
   */
  prebind(client: () => Promise<BackendClient>): void {
    if (this.#b || this.#early || this.host.finished) return;
    this.#earlyFailedAt = 0;
    const early = this.#bind(client, null);
    this.#early = early;
    void early.then((ok) => {
      if (this.#early !== early) return;
      this.#early = null;
      if (!ok) this.#earlyFailedAt = Date.now();
    });
  }

  #bindThen(client: () => Promise<BackendClient>, target: PoolChoice | null, slot: Slot, send: (slot: Slot) => void): void {
    const { queue } = this.host;
    void this.#bind(client, target).then((ok) => {
      if (this.host.finished) return;
      if (!ok) queue.fill(slot, noBackend(this.ctx.config.hostname));
      else {
        this.host.bound();
        send(slot);
      }
      this.host.resume();
    });
  }

  /** MAIL held (session/held-mail.ts) only with a backend that offers PIPELINING (RFC 2920: MAIL and RCPT may share a group). */
  #holdMail(line: string, handler: BackendHandler, hold: MailHold): boolean {
    if (!this.#b!.caps.has('PIPELINING')) return false;
    this.#mail.hold(line, handler);
    hold.held();
    return true;
  }

  /** The held MAIL, owed its reply now, as the line to go out ahead of the next command. */
  #takeHeld(): string {
    const held = this.#mail.take();
    this.#expect(held.handler, { internal: true });
    return held.line + '\r\n';
  }

  /** A new transaction (RSET, EHLO, QUIT...): a held MAIL is forgotten, never sent. */
  dropHeld(): void {
    this.#mail.drop();
  }

  /** Binds a backend of `target`'s pool (the session's when null); false when none would take it. Never rejects. */
  #bind(client: () => Promise<BackendClient>, target: PoolChoice | null): Promise<boolean> {
    // A bind that throws (the client's PTR lookup, a bug) is no backend, never a hang.
    return this.#tryBind(client, target).catch((err: unknown) => {
      this.host.log().warn({ err: err instanceof Error ? err.message : String(err) }, 'bind failed');
      return false;
    });
  }

  async #tryBind(client: () => Promise<BackendClient>, target: PoolChoice | null): Promise<boolean> {
    const { config, logger, connId } = this.ctx;
    const pool = target?.pool ?? this.ctx.pool;
    const epoch = this.#epoch;
    const who = await client();
    const t0 = Date.now();
    const b = await bind({
      pool,
      cfg: pool.cfg,
      hostname: config.hostname,
      client: who,
      clientKey: who.address,
      route: this.route,
      logger,
      connId,
      cancelled: () => this.host.finished,
      failed: (a) => {
        if (this.#attempts.length < MAX_ATTEMPTS) this.#attempts.push(a);
      },
    });
    if (!b) return false;
    if (epoch !== this.#epoch || this.host.finished) {
      // Let go while it was binding (an early bind the client's next command voided).
      b.unbind();
      return false;
    }
    this.#b = b;
    const conn = b.conn;
    const s = conn.socket;
    this.#last = {
      address: b.server.key,
      identity: pool.cfg.identity,
      pool: pool.name,
      ...(target?.route !== undefined ? { route: target.route } : {}),
      // What the backend logs as its peer (Postfix: `connect from ...[127.0.0.1]:PORT`). Only
      // the logged record shows it, so it is read (a getsockname) only when that record will
      // be written (issue 26).
      local: logger.isLevelEnabled('info') ? localEndpoint(s) : undefined,
      handshake_ms: Date.now() - t0,
      ...(b.reused ? { reused: b.reused } : {}),
      ...(conn.tls ? { tls: conn.tls } : {}),
    };
    b.relay({
      onReply: (r) => this.#onReply(b, r),
      onClose: (err) => this.#onClose(b, err),
    });
    const ehlo = this.#ehloOnBind;
    this.#ehloOnBind = null;
    if (ehlo !== null) this.ehlo(ehlo);
    return true;
  }

  /**
   * Sends a command to the bound backend; its reply fills `slot` (or a new one). `internal`:
   * Postern's own command, no reply owed to the client. `final`: the reply ends a message.
   */
  forward(line: string, handler: BackendHandler, opts: ForwardOptions = {}): void {
    // The held MAIL and this command in one write: one segment, with the sockets corked or not.
    const held = this.#mail.waiting && !opts.internal ? this.#takeHeld() : '';
    this.#expect(this.#mail.after(handler), opts);
    this.#b!.write(held + line + '\r\n');
  }

  /** The backend's reply to the end of a DATA body, already sent. */
  expectFinal(handler: BackendHandler): void {
    this.#expect(handler, { final: true });
  }

  /** A reply the backend owes for what was just sent: its slot, and its deadline (session/reply-deadlines.ts). */
  #expect(handler: BackendHandler, opts: ForwardOptions): void {
    const b = this.#b!;
    this.#deadlines.owe(opts.final === true);
    this.host.queue.expect(
      (r) => {
        this.#deadlines.paid(this.#b === b);
        return handler(r);
      },
      opts.slot,
      opts.flushed ?? null,
      opts.internal,
    );
  }

  /** Body bytes; false when the backend's buffer is full (stop reading the client until it drains). */
  body(data: Buffer): boolean {
    const b = this.#b;
    if (!b || data.length === 0) return true;
    return b.write(data);
  }

  /** What to wait on for `body` returning false. */
  get drainSource(): NodeJS.EventEmitter | null {
    return this.#b?.conn.socket ?? null;
  }

  /** EHLO passed on (RFC 5321 §4.1.4): the backend forgets the transaction and learns the new name. */
  ehlo(name: string): void {
    const b = this.#b;
    if (!b) {
      // An early bind on its way told the backend the name before this one: the EHLO follows
      // once it is bound (voiding it instead would let a client that repeats EHLO open a
      // backend connection per line).
      if (this.#early) this.#ehloOnBind = name;
      return;
    }
    b.conn.helo = name;
    this.forward(
      `EHLO ${name}`,
      (r) => {
        if (r.code === C250Completed) b.setCaps(parseEhlo(r));
        return null;
      },
      { internal: true },
    );
  }

  /** Counts a transaction on the connection (the backend's MAILMAX spans sessions). */
  countTransaction(): void {
    if (this.#b) this.#b.conn.transactions++;
  }

  #onReply(b: Binding, r: Reply): void {
    if (b !== this.#b) return;
    const { queue } = this.host;
    if (!queue.backendReply(r)) {
      // Nothing was asked: a server closing on us (421) or talking out of turn.
      if (r.code !== 421) this.host.anomaly('backend_protocol_error', `unsolicited reply from ${b.server.key}: ${replyText(r)}`);
      this.#lost(b, `unsolicited ${r.code}`);
      return;
    }
    if (r.code === C421ServiceUnavail && !this.host.closed) {
      // The backend is closing the session (RFC 5321 §3.8): so do we, after this reply. A
      // 421 to a held MAIL reached nobody: it goes in place of the next reply owed.
      const unseen = this.#mail.refused(r);
      this.abort();
      this.host.backendFailed(unseen ? r.raw.toString('latin1') : '');
      return;
    }
    if (this.#onIdle && queue.pendingBackend === 0) {
      const next = this.#onIdle;
      this.#onIdle = null;
      next();
    }
  }

  #onClose(b: Binding, err: Error | null): void {
    if (b !== this.#b) return;
    if (err instanceof BackendError && err.code === 'BACKEND_PROTOCOL') this.host.anomaly('backend_protocol_error', err.message);
    this.#lost(b, err ? err.message : 'connection closed');
  }

  /** The bound backend went away without being asked to. */
  #lost(b: Binding, why: string): void {
    this.abort();
    const busy = this.host.queue.pendingBackend > 0 || this.host.inTransaction;
    if (!busy) {
      // Idle between transactions (e.g. the backend's own timeout): bind anew at the next MAIL.
      this.host.log().info({ backend: b.server.key, reason: why }, 'backend closed an idle session');
      return;
    }
    this.host.log().warn({ backend: b.server.key, reason: why }, 'backend lost mid-session');
    // Never a 250 the backend did not give: what it owed becomes a temporary failure.
    this.host.backendFailed(backendLost(this.ctx.config.hostname));
  }

  /** Any early bind on its way ends unused (it quits when it completes). */
  #letGo(): void {
    this.#epoch++;
    this.#early = null;
    this.#ehloOnBind = null;
    this.#earlyFailedAt = 0;
  }

  #take(): Binding | null {
    this.#letGo();
    const b = this.#b;
    this.#b = null;
    this.dropHeld();
    this.#onIdle = null;
    this.#deadlines.clear();
    return b;
  }

  /** Drops the backend: it sees the connection go and forgets any open transaction. */
  abort(): void {
    this.#take()?.abort();
  }

  /** Ends the binding politely (QUIT): no transaction is open on it. */
  unbind(): void {
    this.#take()?.unbind();
  }

  /**
   * Whether the connection can carry the next session: the session is idle (`quiet`), no
   * reply is owed, and the backend side allows it (Binding.reusable).
   */
  #parkable(b: Binding, quiet: boolean): boolean {
    if (!quiet || this.host.queue.pendingBackend > 0) return false;
    return b.reusable(b.pool.cfg.pool.reuse, this.ctx.config.limits.mailmax);
  }

  /** The session ends: park the connection if it can serve another, else QUIT, or abort mid-body. */
  finish(quiet: boolean, midBody: boolean): void {
    const b = this.#b;
    if (!b) return this.#letGo();
    if (midBody) this.abort();
    else if (this.#parkable(b, quiet)) this.#take()!.park();
    else this.unbind();
  }

  /**
   * The client's QUIT: the 221 is ours, at once when nothing is owed (the backend's own 221
   * says nothing the client needs, and waiting for it costs the client a round trip). The
   * backend gets QUIT (never a bare drop), or keeps the connection for the next session.
   * Replies still owed (QUIT pipelined after the end of DATA) go out first: the binding
   * stays until they are in. `quiet`: whether the session is idle once they are.
   */
  quit(flushed: () => void, quiet: () => boolean): void {
    const b = this.#b;
    const { queue } = this.host;
    if (!b || b.conn.closed) {
      queue.reply(BYE, flushed);
    } else if (queue.pendingBackend > 0) {
      const slot = queue.reserve();
      // A move to another pool may be waiting for the same moment (#withBackend): it goes first.
      const before = this.#onIdle;
      this.#onIdle = () => {
        before?.();
        this.#quitBound(b, flushed, quiet(), slot);
      };
    } else {
      this.#quitBound(b, flushed, quiet());
    }
  }

  #quitBound(b: Binding, flushed: () => void, quiet: boolean, slot?: Slot): void {
    const { queue } = this.host;
    // The 221 is what the client waits for: it leaves first, the backend's QUIT once it has
    // reached the kernel (a write fewer before it on the critical path). The binding is idle,
    // so a backend that closes meanwhile is only logged; a session that ends before the 221
    // flushes lets go of the binding in its finish.
    const done = (): void => {
      flushed();
      if (this.#b !== b) return;
      if (this.#parkable(b, quiet)) this.#take()!.park();
      else this.unbind();
    };
    if (slot) queue.fill(slot, BYE, done);
    else queue.reply(BYE, done);
  }
}

/** A socket's local endpoint as `ADDRESS:PORT` (`[v6]:PORT`), or undefined once it is closed. */
function localEndpoint(s: net.Socket): string | undefined {
  const a = s.localAddress;
  return a ? `${a.includes(':') ? `[${a}]` : a}:${s.localPort}` : undefined;
}
