// Just enough SMTP client for the generators: read whole replies, send lines.

import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface Reply {
  code: number;
  text: string;
}

/** Reads complete (possibly multi-line) replies from a socket. */
export class ReplyReader {
  #buf = '';
  #lines: string[] = [];
  #waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  #failed: Error | null = null;
  readonly #socket: Socket | TLSSocket;
  readonly #onData = (chunk: Buffer) => this.#push(chunk.toString('latin1'));
  readonly #onEnd = () => this.#fail(new Error('connection closed by the server'));
  readonly #onError = (err: Error) => this.#fail(err);

  constructor(socket: Socket | TLSSocket) {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
  }

  /** Stops listening (before the socket is handed to TLS). */
  detach(): void {
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('error', this.#onError);
  }

  next(): Promise<Reply> {
    if (this.#failed) return Promise.reject(this.#failed);
    const r = this.#take();
    if (r) return Promise.resolve(r);
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  /** Next reply, which must have the `expected` code. */
  async expect(expected: number, what: string): Promise<Reply> {
    const r = await this.next();
    if (r.code !== expected) throw new Error(`${what}: expected ${expected}, got "${r.text.split('\r\n')[0]}"`);
    return r;
  }

  #push(text: string): void {
    this.#buf += text;
    let i: number;
    while ((i = this.#buf.indexOf('\n')) >= 0) {
      this.#lines.push(this.#buf.slice(0, i).replace(/\r$/, ''));
      this.#buf = this.#buf.slice(i + 1);
    }
    if (this.#buf.length > 65536) this.#fail(new Error('reply line too long'));
    if (this.#waiting) {
      const r = this.#take();
      if (r) {
        const w = this.#waiting;
        this.#waiting = null;
        w.resolve(r);
      }
    }
  }

  #take(): Reply | null {
    const end = this.#lines.findIndex((l) => l.length < 4 || l[3] !== '-');
    if (end < 0) return null;
    const lines = this.#lines.splice(0, end + 1);
    return { code: Number(lines[end]!.slice(0, 3)), text: lines.join('\r\n') };
  }

  #fail(err: Error): void {
    if (this.#failed) return;
    this.#failed = err;
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = null;
      w.reject(err);
    }
  }
}

/** Races `p` against a timer; the socket is destroyed on timeout. */
export function withTimeout<T>(p: Promise<T>, ms: number, socket: { destroy(): void } | null, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket?.destroy();
      reject(new Error(`${what}: timed out after ${ms} ms`));
    }, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** One short line: OpenSSL messages carry newlines and source locations. */
export function errorText(err: unknown): string {
  let text = String(err);
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') return 'the server did not answer with TLS (ERR_SSL_WRONG_VERSION_NUMBER: plaintext on a TLS port?)';
    text = code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return text.replace(/:\.\.\/deps\/openssl\S*/g, '').replace(/\s+/g, ' ').trim().slice(0, 200);
}
