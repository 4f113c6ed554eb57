// The dovecot verifier: one connection to Dovecot's auth-client socket (unix or TCP),
// opened on first use and shared by every request of this process, each request with
// its own id. A lost connection fails what was pending as temporary and is reopened by
// the next request. PLAIN carries both of our mechanisms (LOGIN is converted), with the
// client's addresses, `secured` for TLS and `nologin`, as Postfix's xsasl_dovecot does,
// so Dovecot's own penalty delays, logging and policy see the real client.
import net from 'node:net';
import type { DovecotAddress } from '../config/types.js';
import {
  DOVECOT_MAX_LINE, DovecotProtocolError, HandshakeReader, authLine, cancelLine, clientHandshake, failIsTemporary,
  parseReply, type ServerHandshake,
} from './dovecot-protocol.js';
import { encodePlain } from './sasl-plain.js';
import type { ReloadResult, Verifier, VerifyRequest, VerifyResult } from './verifier.js';

export interface DovecotVerifierOptions {
  address: DovecotAddress;
  /** For connecting plus the handshake, and for each request. */
  timeout: number;
  /** Sent as CPID; Dovecot ignores it on auth-client sockets but requires it. */
  pid?: number;
}

export class DovecotVerifier implements Verifier {
  readonly type = 'dovecot';
  #conn: DovecotConnection | null = null;
  #closed = false;
  #opened = 0;

  constructor(private readonly opts: DovecotVerifierOptions) {}

  async verify(req: VerifyRequest): Promise<VerifyResult> {
    if (this.#closed) return temporary('the dovecot verifier is closed');
    let conn: DovecotConnection;
    try {
      conn = await this.#connection();
    } catch (e) {
      return temporary(`dovecot at ${this.opts.address.text}: ${(e as Error).message}`);
    }
    if (!conn.handshake.mechanisms.has('PLAIN')) {
      return { ok: false, failure: 'mechanism', reason: `dovecot at ${this.opts.address.text} offers no PLAIN mechanism (auth_mechanisms)` };
    }
    return conn.request(req, this.opts.timeout);
  }

  /** The connection, opening one when there is none or the last was lost. */
  async #connection(): Promise<DovecotConnection> {
    if (this.#conn === null || this.#conn.lost) {
      this.#conn = new DovecotConnection(this.opts);
      this.#opened++;
    }
    return this.#conn.ready;
  }

  /** Connections opened so far (one, unless Dovecot went away). */
  get connectionsOpened(): number {
    return this.#opened;
  }

  /** Requests in flight (for tests and status). */
  get pending(): number {
    return this.#conn?.pendingCount ?? 0;
  }

  async reload(): Promise<ReloadResult> {
    return { ok: true, detail: 'nothing to reload (dovecot holds the users)' };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#conn?.destroy('the dovecot verifier is closing');
    this.#conn = null;
  }
}

interface Pending {
  resolve: (r: VerifyResult) => void;
  timer: NodeJS.Timeout;
  user: string;
}

/** Largest request id before wrapping (ids are unsigned 32-bit in Dovecot). */
const MAX_ID = 0xffffffff;

class DovecotConnection {
  readonly ready: Promise<DovecotConnection>;
  #handshake: ServerHandshake | null = null;
  #lost = false;
  readonly #socket: net.Socket;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #buf: Buffer = Buffer.alloc(0);

  constructor(opts: DovecotVerifierOptions) {
    const a = opts.address;
    this.#socket = a.type === 'unix' ? net.connect({ path: a.path }) : net.connect({ host: a.host, port: a.port });
    this.#socket.setNoDelay(true);
    this.ready = new Promise<DovecotConnection>((resolve, reject) => {
      const reader = new HandshakeReader();
      const timer = setTimeout(() => this.destroy(`no handshake within ${opts.timeout} ms`), opts.timeout);
      this.#onLine = (line) => {
        const hs = reader.push(line);
        if (hs === null) return;
        clearTimeout(timer);
        this.#handshake = hs;
        this.#onLine = (l) => this.#reply(l);
        resolve(this);
      };
      this.#onLost = (why) => {
        clearTimeout(timer);
        reject(new Error(why));
      };
    });
    // Every waiter of `ready` handles its rejection; this keeps an unobserved one quiet.
    this.ready.catch(() => undefined);
    this.#socket.on('connect', () => this.#socket.write(clientHandshake(opts.pid ?? process.pid)));
    this.#socket.on('data', (chunk: Buffer) => this.#data(chunk));
    this.#socket.on('error', (e: NodeJS.ErrnoException) => this.destroy(e.code === undefined || e.message.includes(e.code) ? e.message : `${e.code} ${e.message}`));
    this.#socket.on('close', () => this.destroy('connection closed by dovecot'));
  }

  // Set in the constructor: the handshake reader first, then the reply handler.
  #onLine: (line: string) => void = () => undefined;
  #onLost: (why: string) => void = () => undefined;

  get handshake(): ServerHandshake {
    if (this.#handshake === null) throw new Error('handshake not done');
    return this.#handshake;
  }

  get lost(): boolean {
    return this.#lost;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  request(req: VerifyRequest, timeoutMs: number): Promise<VerifyResult> {
    if (this.#lost) return Promise.resolve(temporary('connection to dovecot lost'));
    const id = this.#allocateId();
    const params: Array<[string, string | null]> = [];
    if (req.session !== undefined) params.push(['session', req.session]);
    params.push(['lip', req.local.address], ['rip', req.client.address], ['lport', String(req.local.port)], ['rport', String(req.client.port)]);
    if (req.tls) params.push(['secured', 'tls']);
    params.push(['nologin', null]);
    const resp = encodePlain({ authzid: req.authzid, user: req.user, password: req.password }).toString('base64');
    return new Promise<VerifyResult>((resolve) => {
      const timer = setTimeout(() => {
        if (!this.#pending.delete(id)) return;
        // Dovecot would answer eventually; tell it not to bother.
        if (!this.#lost) this.#socket.write(cancelLine(id));
        resolve(temporary(`dovecot did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve, timer, user: req.user });
      this.#socket.write(authLine({ id, mechanism: 'PLAIN', service: 'smtp', params, resp }));
    });
  }

  destroy(why: string): void {
    if (this.#lost) return;
    this.#lost = true;
    this.#socket.destroy();
    this.#onLost(why);
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.resolve(temporary(`connection to dovecot lost: ${why}`));
    }
  }

  #allocateId(): number {
    for (;;) {
      const id = this.#nextId;
      this.#nextId = id >= MAX_ID ? 1 : id + 1;
      if (!this.#pending.has(id)) return id;
    }
  }

  #data(chunk: Buffer): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    let start = 0;
    for (;;) {
      const lf = this.#buf.indexOf(0x0a, start);
      if (lf === -1) break;
      const line = this.#buf.toString('utf8', start, lf);
      start = lf + 1;
      try {
        this.#onLine(line);
      } catch (e) {
        this.destroy(e instanceof DovecotProtocolError ? `protocol error: ${e.message}` : (e as Error).message);
        return;
      }
      if (this.#lost) return;
    }
    this.#buf = this.#buf.subarray(start);
    if (this.#buf.length > DOVECOT_MAX_LINE) this.destroy(`protocol error: a line longer than ${DOVECOT_MAX_LINE} bytes`);
  }

  #reply(line: string): void {
    const r = parseReply(line);
    if (r === null) return;
    const p = this.#pending.get(r.id);
    // An answer to a request that already timed out.
    if (p === undefined) return;
    this.#pending.delete(r.id);
    clearTimeout(p.timer);
    if (r.type === 'OK') {
      p.resolve({ ok: true, user: r.params.get('user') || p.user });
    } else if (r.type === 'FAIL') {
      const reason = r.params.get('reason') ?? r.params.get('code') ?? 'authentication failed';
      p.resolve({ ok: false, failure: failIsTemporary(r.params) ? 'temporary' : 'invalid', reason: `dovecot: ${reason}` });
    } else {
      // PLAIN with its initial response never needs another round.
      this.#socket.write(cancelLine(r.id));
      p.resolve(temporary('dovecot asked for more data on a PLAIN request'));
    }
  }
}

function temporary(reason: string): VerifyResult {
  return { ok: false, failure: 'temporary', reason };
}
