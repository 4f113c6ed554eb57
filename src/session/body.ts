// A message body on its way to the backend: DATA through the terminator scanner (and the
// bare-LF normalizer when configured), BDAT by its chunk counts (RFC 3030 §2), and the
// verdict when a body must not be relayed ("poisoned": it is read to its end, then refused).
// Postern's Received: header (smtp/received.ts) is written by the session, which knows the client.

import type { AnomalyKind } from '../observe/records.js';
import { C550MailboxUnavail } from '../smtp/codes.js';
import { DataScanner } from '../smtp/data.js';
import { SmtpError, smtpError } from '../smtp/errors.js';
import { SeProto5Syntax2 } from '../smtp/enhanced.js';
import { BareLineNormalizer } from '../smtp/normalize.js';
import { tooBig } from './limits.js';

export interface BodyHost {
  /** Body bytes for the backend. */
  relay(data: Buffer): void;
  anomaly(kind: AnomalyKind, detail: string): void;
  /** The body will not be relayed: the backend must be dropped so it never sees a terminator. */
  poisoned(err: SmtpError): void;
}

const bareRefused = () => smtpError(C550MailboxUnavail, SeProto5Syntax2, 'Message contains bare CR or LF, refused (see SMTP smuggling)');

export class Body {
  readonly #scanner = new DataScanner();
  #normalizer: BareLineNormalizer | null = null;
  #poisoned: SmtpError | null = null;
  /** BDAT: octets of the current chunk still to come, whether it is the LAST, whether it is skipped. */
  #bdatLeft = 0;
  #bdatLast = false;
  #bdatSkip = false;

  constructor(private readonly host: BodyHost) {}

  /** Why the body being received will not be relayed, or null. */
  get poisoned(): SmtpError | null {
    return this.#poisoned;
  }

  /** Body bytes of the DATA body so far (dot-stuffed, as on the wire, terminator excluded). */
  get dataBytes(): number {
    return this.#scanner.bytes;
  }

  get bdatLeft(): number {
    return this.#bdatLeft;
  }

  /** This body will not be relayed; it is answered `err` after its end. */
  poison(err: SmtpError): void {
    this.#poisoned = err;
    this.host.poisoned(err);
  }

  /** The verdict for a body that has ended, cleared for the next one. */
  takePoison(): SmtpError | null {
    const err = this.#poisoned;
    this.#poisoned = null;
    return err;
  }

  /** A new transaction: nothing carries over. */
  reset(): void {
    this.#poisoned = null;
  }

  /** After 354: a DATA body starts. */
  startData(normalize: boolean): void {
    this.#scanner.reset();
    this.#normalizer = normalize ? new BareLineNormalizer() : null;
    this.#poisoned = null;
  }

  /**
   * A chunk of the DATA body: relayed unless poisoned. Returns -1 while the body goes on,
   * else the offset just past its terminator (the rest of `chunk` is commands).
   */
  data(chunk: Buffer, sizeLimit: number): number {
    const res = this.#scanner.scan(chunk);
    if (!this.#poisoned) {
      const body = res.end === -1 ? chunk : chunk.subarray(0, res.end);
      const normalizer = this.#normalizer;
      if (res.bare && !normalizer) {
        // Never relay a body with a bare CR or LF: backends disagree on what ends DATA
        // (SMTP smuggling). Drop the backend so it never sees a terminator.
        this.host.anomaly('bare_lf', 'bare CR or LF in message body');
        this.poison(bareRefused());
      } else if (this.#scanner.bytes - this.#scanner.pending > sizeLimit) {
        this.poison(tooBig());
      } else if (normalizer) {
        if (res.bare) this.host.anomaly('bare_lf', 'bare CR or LF in message body (normalized to CRLF)');
        this.host.relay(normalizer.transform(body));
      } else {
        this.host.relay(body);
      }
    }
    return res.end;
  }

  /** A BDAT command was read: `size` octets follow; `skip` reads past them without relaying. */
  startBdat(size: number, last: boolean, skip: boolean): void {
    this.#bdatLeft = size;
    this.#bdatLast = last;
    this.#bdatSkip = skip;
  }

  /** Reads past the rest of the chunk instead of relaying it. */
  skipBdat(): void {
    this.#bdatSkip = true;
  }

  /** Octets of a BDAT chunk; returns what follows the chunk in `chunk` (commands), or null. */
  bdat(chunk: Buffer, relay: boolean): Buffer | null {
    let part = chunk;
    let rest: Buffer | null = null;
    if (chunk.length > this.#bdatLeft) {
      part = chunk.subarray(0, this.#bdatLeft);
      rest = chunk.subarray(this.#bdatLeft);
    }
    this.#bdatLeft -= part.length;
    if (!this.#bdatSkip && relay) this.host.relay(part);
    return rest;
  }

  /** The chunk is complete: after a LAST chunk the body is done, poisoned or not. */
  bdatDone(): void {
    if (this.#bdatLast) this.#poisoned = null;
  }
}
