// The mail transactions of a session (RFC 5321 §3.3): the one open now, the recipients
// as answered in command order, and the counts the session record gives. Ending a
// transaction yields its record.

import type { Endpoint, RecipientRecord, TransactionRecord } from '../observe/records.js';
import { transactionRecord } from '../observe/records.js';
import { isCompletion } from '../smtp/codes.js';
import type { SmtpError } from '../smtp/errors.js';
import { queueId } from '../smtp/queue-id.js';
import { replyText, type Reply } from '../smtp/reply.js';

export interface Transaction {
  readonly from: string;
  /** The first recipient the backend accepted (for Received: ... for <rcpt>). */
  firstRcpt: string | null;
  /** Postern's Received: header already went into this transaction's body. */
  traced: boolean;
  /** Recipients the backend accepted. */
  rcpts: number;
  /** Every RCPT and its answer, in command order. */
  readonly recipients: RecipientRecord[];
  /** Body bytes (DATA: as on the wire; BDAT: chunk sizes). */
  size: number;
}

/** A refusal as a reply line, for records. */
export const errorText = (e: SmtpError): string => `${e.smtpCode} ${e.enhanced} ${e.text}`;

export class Transactions {
  #open: Transaction | null = null;
  /**
   * Recipients of the transaction being opened. A pipelined RCPT is read before MAIL's
   * reply says whether there is a transaction, so entries are made at command time.
   */
  #pending: RecipientRecord[] = [];
  /** Bumped by every MAIL and reset: a MAIL's late reply must not reopen a transaction reset since. */
  #generation = 0;
  /** Transactions ended (accepted, refused or failed). */
  count = 0;
  /** Recipients the backend accepted, over the session. */
  rcpts = 0;
  /** The client as the session believes it at MAIL (for the records). */
  client: Endpoint | null = null;

  get open(): Transaction | null {
    return this.#open;
  }

  /** MAIL was sent: recipients from here on belong to it. Returns the hook for MAIL's reply. */
  mail(from: string): (accepted: boolean) => void {
    const recipients: RecipientRecord[] = (this.#pending = []);
    const generation = ++this.#generation;
    return (accepted) => {
      if (generation !== this.#generation) return;
      // Opened early (a held MAIL) and confirmed by the backend's 250: the same transaction.
      if (accepted && this.#open?.recipients === recipients) return;
      this.#open = accepted ? { from, rcpts: 0, recipients, size: 0, firstRcpt: null, traced: false } : null;
    };
  }

  #client(): { client?: Endpoint } {
    return this.client === null ? {} : { client: { address: this.client.address, port: this.client.port } };
  }

  /** RCPT read: its entry, to be answered by Postern (refused) or the backend (`answer`). */
  rcpt(address: string): RecipientRecord {
    const entry: RecipientRecord = { address, code: 0, reply: '' };
    this.#pending.push(entry);
    return entry;
  }

  refuse(entry: RecipientRecord, err: SmtpError): void {
    entry.code = err.smtpCode;
    entry.reply = errorText(err);
  }

  /** The backend's answer to a RCPT. */
  answer(entry: RecipientRecord, r: Reply): void {
    entry.code = r.code;
    entry.reply = replyText(r);
    if (!isCompletion(r.code)) return;
    const tx = this.#open;
    if (tx) {
      tx.rcpts++;
      tx.firstRcpt ??= entry.address;
    }
    this.rcpts++;
  }

  /** RSET, EHLO and the like: no transaction. */
  reset(): void {
    this.#open = null;
    this.#pending = [];
    this.#generation++;
  }

  /**
   * The backend refused the sender: `r` is its reply to MAIL (a held MAIL's arrives with the
   * first RCPT, after Postern's own 250). Nothing was accepted, but the attempt is a
   * transaction record like a refused message, with the backend's reply as the final one.
   * Counted with the others, so the session's `transactions` and its records agree.
   */
  refusedSender(from: string, r: Reply, conn: string, backend: string | null, addresses = true): TransactionRecord {
    this.count++;
    return transactionRecord({ conn, ...this.#client(), from, rcpts: 0, size: 0, reply: replyText(r), backend, queue_id: null, recipients: [] }, { addresses });
  }

  /** The final reply for the message (the backend's `r`, or Postern's refusal): its record, or null if none was open. */
  end(r: Reply | null, refused: SmtpError | null, conn: string, backend: string | null, addresses = true): TransactionRecord | null {
    const tx = this.#open;
    this.#open = null;
    // A stray RCPT after the end (no new MAIL) must not change the record.
    this.#pending = [];
    if (!tx) return null;
    this.count++;
    return transactionRecord({
      conn,
      ...this.#client(),
      from: tx.from,
      rcpts: tx.rcpts,
      size: tx.size,
      reply: r ? replyText(r) : errorText(refused!),
      backend,
      queue_id: r && isCompletion(r.code) ? queueId(r) : null,
      recipients: tx.recipients,
    }, { addresses });
  }
}
