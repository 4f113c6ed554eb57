// A tiny scripted SMTP server on loopback for unit tests of the backend modules: it
// answers what a test tells it to and records, per connection, every command line it read
// and whether the connection ended with QUIT or was dropped.
import net from 'node:net';

export interface ScriptConn {
  /** Connection number, from 0, in accept order. */
  readonly n: number;
  readonly socket: net.Socket;
  /** Command lines read, without CRLF. */
  readonly commands: string[];
  /** QUIT was read on it. */
  quit: boolean;
  /** The connection has closed (either side). */
  closed: boolean;
}

export interface ScriptOptions {
  /** The greeting for connection `n`, CRLF included. Default `220 script.test ESMTP`. */
  greeting?: (n: number) => string;
  /** EHLO keywords after the first line. Default PIPELINING, 8BITMIME, CHUNKING. */
  ehlo?: string[];
  /** A reply (CRLF included) for a command line; undefined: the default (250, 221 to QUIT). */
  reply?: (line: string, conn: ScriptConn) => string | undefined;
}

export interface ScriptBackend {
  readonly port: number;
  /** `127.0.0.1:port`, as a config's server address. */
  readonly address: string;
  readonly conns: ScriptConn[];
  close(): Promise<void>;
}

export async function startScriptBackend(opts: ScriptOptions = {}): Promise<ScriptBackend> {
  const conns: ScriptConn[] = [];
  const ehloKeys = opts.ehlo ?? ['PIPELINING', '8BITMIME', 'CHUNKING'];
  const ehloReply = (): string => {
    const lines = ['script.test', ...ehloKeys];
    return lines.map((l, i) => `250${i === lines.length - 1 ? ' ' : '-'}${l}\r\n`).join('');
  };
  const server = net.createServer((socket) => {
    const conn: ScriptConn = { n: conns.length, socket, commands: [], quit: false, closed: false };
    conns.push(conn);
    socket.on('error', () => undefined);
    socket.on('close', () => (conn.closed = true));
    socket.write(opts.greeting?.(conn.n) ?? '220 script.test ESMTP\r\n');
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n')) !== -1) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        conn.commands.push(line);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'QUIT') conn.quit = true;
        const scripted = opts.reply?.(line, conn);
        if (scripted !== undefined) {
          if (!socket.destroyed) socket.write(scripted);
        } else if (verb === 'EHLO') socket.write(ehloReply());
        else if (verb === 'QUIT') socket.end('221 2.0.0 Bye\r\n');
        else socket.write('250 2.0.0 Ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    conns,
    close: () => {
      for (const c of conns) c.socket.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Polls `pred` every 5 ms until it holds; throws after `timeoutMs` naming `what`. */
export async function until(pred: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
