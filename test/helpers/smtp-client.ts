// A raw SMTP client for tests: exact bytes out, replies parsed as they come back.
import net from 'node:net';
import { ReplyParser, type Reply } from '../../src/smtp/reply.js';

export class SmtpClient {
  readonly socket: net.Socket;
  readonly replies: Reply[] = [];
  #parser = new ReplyParser();
  #waiters: (() => void)[] = [];
  closed = false;
  received = Buffer.alloc(0);

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.received = Buffer.concat([this.received, d]);
      try {
        this.replies.push(...this.#parser.push(d));
      } catch {
        /* a test may send garbage on purpose; raw bytes stay in `received` */
      }
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, opts: { host?: string; localAddress?: string } = {}): Promise<SmtpClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress }, () => resolve(new SmtpClient(s)));
      s.once('error', reject);
    });
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  #until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.received.toString('latin1').slice(-600))}`)), timeoutMs);
      const check = () => {
        if (cond()) {
          clearTimeout(timer);
          resolve();
        } else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }

  /** Waits until `n` replies in total have arrived; returns them all. */
  async waitReplies(n: number, timeoutMs = 5000): Promise<Reply[]> {
    await this.#until(() => this.replies.length >= n, timeoutMs, `${n} replies`);
    return this.replies.slice(0, n);
  }

  /** Sends `data` and returns the next `count` replies. */
  async send(data: string | Buffer, count = 1, timeoutMs = 5000): Promise<Reply[]> {
    const have = this.replies.length;
    this.socket.write(data);
    await this.waitReplies(have + count, timeoutMs);
    return this.replies.slice(have, have + count);
  }

  /** Sends one command line and returns its reply. */
  async cmd(line: string, timeoutMs = 5000): Promise<Reply> {
    return (await this.send(line + '\r\n', 1, timeoutMs))[0]!;
  }

  waitClose(timeoutMs = 5000): Promise<void> {
    return this.#until(() => this.closed, timeoutMs, 'close');
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** EHLO, MAIL, RCPTs, DATA, body, QUIT: a whole plain session. Returns the final DATA reply. */
export async function sendMessage(
  c: SmtpClient,
  opts: { from?: string; to?: string[]; body?: string | Buffer; helo?: string; quit?: boolean },
): Promise<Reply> {
  await c.waitReplies(1);
  await c.cmd(`EHLO ${opts.helo ?? 'client.test'}`);
  const m = await c.cmd(`MAIL FROM:<${opts.from ?? 'a@example.org'}>`);
  if (m.code !== 250) return m;
  for (const t of opts.to ?? ['b@example.net']) await c.cmd(`RCPT TO:<${t}>`);
  const d = await c.cmd('DATA');
  if (d.code !== 354) return d;
  const body = opts.body ?? 'Subject: test\r\n\r\nhello\r\n';
  const [r] = await c.send(Buffer.concat([Buffer.from(body), Buffer.from('.\r\n')]));
  if (opts.quit !== false) await c.cmd('QUIT');
  return r!;
}
