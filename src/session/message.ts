// One message from DATA or BDAT to its final reply: the body streamed to the backend with
// backpressure (body.ts scans and judges it), Postern's Received header in front, size
// accounting, a refused body read to its end and answered in its place, and the
// transaction record once the backend (or Postern) has given the final answer, or has
// refused the sender.

import { C354StartMailInput, C552MailboxFull } from '../smtp/codes.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../observe/logger.js';
import type { Metrics } from '../observe/metrics.js';
import type { AnomalyKind, CloseReason, TransactionRecord } from '../observe/records.js';
import { observeTransaction } from '../observe/record-metrics.js';
import { formatBdat, parseBdat } from '../smtp/bdat.js';
import type { SmtpError } from '../smtp/errors.js';
import type { Reply } from '../smtp/reply.js';
import type { SessionBinding } from './binding.js';
import { Body } from './body.js';
import type { ClientIo } from './client-io.js';
import type { Input } from './input.js';
import { tooBig } from './limits.js';
import * as R from './replies.js';
import type { ReplyQueue } from './reply-queue.js';
import type { Transactions } from './transaction.js';

/** What the message phase shares with its session. */
export interface MessageHost {
  readonly id: string;
  readonly cfg: Config;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly binding: SessionBinding;
  readonly queue: ReplyQueue;
  readonly tx: Transactions;
  readonly io: ClientIo;
  readonly input: Input;
  /** Body bytes now, or commands again (unless the session is closing). */
  bodyMode(mode: 'data' | 'bdat' | 'command'): void;
  /** SIZE in force. */
  sizeLimit(): number;
  /** Postern's Received: header for the open transaction, or null when not wanted (received_header). */
  trace(): Buffer | null;
  anomaly(kind: AnomalyKind, detail: string): void;
  closeWith(reason: CloseReason, reply: string): void;
}

export class MessageFlow {
  readonly body: Body;

  constructor(private readonly host: MessageHost) {
    this.body = new Body({
      relay: (data) => this.#relay(data),
      anomaly: (kind, detail) => host.anomaly(kind, detail),
      poisoned: (err) => {
        if (err.smtpCode === C552MailboxFull) host.metrics.limitRejections.inc({ limit: 'message_size' });
        host.binding.abort();
      },
    });
  }

  /** DATA (checked by the session): wait for 354 to know whether what follows is body (RFC 2920 §3.1). */
  data(): void {
    const h = this.host;
    h.input.wait();
    h.binding.forward('DATA', (r) => {
      if (r.code === C354StartMailInput) {
        h.bodyMode('data');
        this.body.startData(h.cfg.smtp.bare_lf === 'normalize');
        // Before any body byte, so the header leads the message.
        const trace = h.trace();
        if (trace) this.#relay(trace);
        h.io.startBody(h.cfg.limits.timeouts.data, h.cfg.limits.min_data_rate);
      }
      h.input.resume();
      return r.raw;
    });
  }

  /** A chunk of the DATA body; at its end, the final reply is owed in its place. */
  dataChunk(chunk: Buffer): void {
    const h = this.host;
    const end = this.body.data(chunk, h.sizeLimit());
    if (end === -1) return;
    h.bodyMode('command');
    h.io.setTimer(h.cfg.limits.timeouts.command);
    const tx = h.tx.open;
    if (tx) tx.size = this.body.dataBytes;
    const refused = this.body.takePoison();
    if (refused) {
      h.queue.reply(refused.reply);
      this.#end(null, refused);
    } else {
      h.binding.expectFinal((r) => {
        this.#end(r, null);
        return r.raw;
      });
    }
    if (end < chunk.length) h.input.pushRest(chunk.subarray(end));
  }

  /** BDAT (RFC 3030 §2): the chunk's octets follow the command, whatever we answer. */
  bdat(args: string, line: string): void {
    const h = this.host;
    let cmd;
    try {
      cmd = parseBdat(args);
    } catch (err) {
      // Unable to know where the chunk ends: close, as Postfix does.
      h.closeWith('error', (err as SmtpError).reply);
      return;
    }
    this.body.startBdat(cmd.size, cmd.last, false);
    h.bodyMode(cmd.size > 0 ? 'bdat' : 'command');
    if (cmd.size > 0) h.io.startBody(h.cfg.limits.timeouts.data, h.cfg.limits.min_data_rate);
    const bound = h.binding.bound;
    const refuse = this.body.poisoned ?? (!bound ? R.needMail() : !bound.caps.has('CHUNKING') ? R.notAvailable('BDAT') : null);
    if (refuse) return this.#refuseBdat(refuse, cmd.last, cmd.size);
    const tx = h.tx.open;
    if (tx) tx.size += cmd.size;
    if (tx && tx.size > h.sizeLimit()) {
      const err = tooBig();
      this.body.poison(err);
      return this.#refuseBdat(err, cmd.last, cmd.size);
    }
    const last = cmd.last;
    // BDAT counts octets exactly: the first chunk grows by the header.
    const trace = tx && !tx.traced ? h.trace() : null;
    if (trace) line = formatBdat({ size: cmd.size + trace.length, last }).trimEnd();
    h.binding.forward(
      line,
      (r) => {
        if (last || r.code >= 400) this.#end(r, null);
        return r.raw;
      },
      { final: last },
    );
    if (trace) this.#relay(trace);
    if (cmd.size === 0) this.#bdatDone();
  }

  /** Octets of the current BDAT chunk. */
  bdatChunk(chunk: Buffer): void {
    const rest = this.body.bdat(chunk, this.host.binding.bound !== null);
    if (this.body.bdatLeft > 0) return;
    this.#bdatDone();
    if (rest) this.host.input.pushRest(rest);
  }

  #refuseBdat(err: SmtpError, last: boolean, size: number): void {
    this.body.skipBdat();
    this.host.queue.reply(err.reply);
    if (last) this.#end(null, err);
    if (size === 0) this.#bdatDone();
  }

  #bdatDone(): void {
    const h = this.host;
    h.bodyMode('command');
    this.body.bdatDone();
    h.io.setTimer(h.cfg.limits.timeouts.command);
  }

  /** Body bytes to the backend; a backend slower than the client stops reading the client. */
  #relay(data: Buffer): void {
    const h = this.host;
    if (h.binding.body(data) || h.io.paused) return;
    const source = h.binding.drainSource;
    if (source) h.io.pauseUntilDrain(source);
  }

  /**
   * The backend refused MAIL from `from` with `r` (held or not): the transaction's record,
   * with the backend's reply as its final one. Nothing follows it: the RCPTs and DATA after
   * a refused held MAIL carry the same refusal and open nothing.
   */
  senderRefused(from: string, r: Reply): void {
    const h = this.host;
    this.#write(h.tx.refusedSender(from, r, h.id, h.binding.record()?.address ?? null, h.cfg.log.addresses));
  }

  /** The final answer for the message: the backend's `r`, or Postern's refusal. */
  #end(r: Reply | null, refused: SmtpError | null): void {
    const h = this.host;
    const rec = h.tx.end(r, refused, h.id, h.binding.record()?.address ?? null, h.cfg.log.addresses);
    if (rec) this.#write(rec);
  }

  #write(rec: TransactionRecord): void {
    // The pool goes beside the backend it names (routing, issue #24).
    const pool = this.host.binding.record()?.pool ?? null;
    // Added to the record rather than copied into a new one: V8 gives a `{ ...rec, pool }`
    // copy a map of its own each time (issue 26).
    if (rec.backend !== null || pool !== null) rec.pool = pool;
    observeTransaction(this.host.metrics, rec);
    this.host.logger.info(rec, 'transaction');
  }
}
