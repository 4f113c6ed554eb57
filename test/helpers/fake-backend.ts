// A real TCP SMTP server that a test scripts to misbehave: at a chosen stage of a connection
// (connect, greeting, EHLO, XCLIENT, MAIL, RCPT, DATA, the final dot) it resets, closes,
// answers 421, sends garbage, stalls, or answers the dot late. Armed faults hit the next
// connections only, so the health checks Postern ran before still passed. It reads a PROXY
// v1/v2 header first when told to, honours XCLIENT when it offers it, and otherwise behaves
// as a plain accepting MTA that records every message it answered 250 to.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { parseProxyHeader, ProxyProtocolError } from '../../src/proxy/index.js';
import { xtextDecode } from '../../src/smtp/xtext.js';

export type FaultStage = 'connect' | 'greeting' | 'ehlo' | 'xclient' | 'mail' | 'rcpt' | 'data' | 'dot';
export type FaultKind = 'refuse' | 'reset' | 'close' | '421' | 'garbage' | 'stall' | 'slow';

export interface Fault {
  stage: FaultStage;
  /** 'refuse' only with 'connect'; 'slow' only with 'dot'. */
  kind: FaultKind;
  /** For 'slow': how late the 250 comes. */
  delayMs?: number;
}

export interface FakeBackendOptions {
  host?: string;
  /** Default: an ephemeral port. */
  port?: number;
  /** Every connection must open with a PROXY header (v1 or v2). */
  proxy?: boolean;
  /** Offer (and honour) XCLIENT. */
  xclient?: boolean;
  hostname?: string;
}

export interface FakeMessage {
  from: string;
  rcpts: string[];
  body: Buffer;
  /** The client as the backend was told (XCLIENT ADDR/PORT or the PROXY source), or null. */
  client: { address: string; port: number } | null;
  told: 'xclient' | 'proxy' | null;
  conn: number;
}

export interface FakeBackend {
  readonly host: string;
  readonly port: number;
  /** `HOST:PORT`, as it goes in Postern's config and logs. */
  readonly text: string;
  readonly messages: FakeMessage[];
  /** Commands (and stages) each connection got, for diagnostics. */
  readonly transcripts: string[][];
  /** Connections accepted so far. */
  connections(): number;
  /** The next `count` connections (default 1) misbehave; `connect`: the listener closes until heal(). */
  arm(fault: Fault, count?: number): Promise<void>;
  /** Listens again after a `connect` fault; disarms any other. */
  heal(): Promise<void>;
  /** Resolves when a connection reaches `stage` with its fault applied. */
  faulted(stage: FaultStage, timeoutMs?: number): Promise<void>;
  /** Destroys every open connection (ends a stall). */
  dropAll(): void;
  close(): Promise<void>;
}

const CAPS = ['PIPELINING', 'SIZE 10485760', '8BITMIME', 'ENHANCEDSTATUSCODES', 'DSN', 'SMTPUTF8'];
const XCLIENT_CAP = 'XCLIENT ADDR PORT NAME HELO PROTO LOGIN DESTADDR DESTPORT';

export async function startFakeBackend(opts: FakeBackendOptions = {}): Promise<FakeBackend> {
  const host = opts.host ?? '127.0.0.1';
  const name = opts.hostname ?? 'fake.test';
  const messages: FakeMessage[] = [];
  const transcripts: string[][] = [];
  const sockets = new Set<net.Socket>();
  const events = new EventEmitter();
  let armed: Fault | null = null;
  let armedCount = 0;
  let accepted = 0;
  let queued = 0;

  const takeFault = (): Fault | null => {
    if (!armed || armedCount <= 0) return null;
    armedCount--;
    const f = armed;
    if (armedCount === 0) armed = null;
    return f;
  };

  const onConnection = (socket: net.Socket): void => {
    const id = ++accepted;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const fault = takeFault();
    const log: string[] = [];
    transcripts.push(log);
    let buf = Buffer.alloc(0);
    let phase: 'proxy' | 'command' | 'data' | 'dead' = opts.proxy ? 'proxy' : 'command';
    let client: FakeMessage['client'] = null;
    let told: FakeMessage['told'] = null;
    let ehloSeen = false;
    let tx: { from: string; rcpts: string[] } | null = null;

    /** Applies the fault if it is for this stage; true when the normal reply must not follow. */
    const misbehave = (stage: FaultStage): boolean => {
      if (!fault || fault.stage !== stage) return false;
      log.push(`fault ${fault.kind} at ${stage}`);
      const done = () => events.emit('faulted', stage);
      switch (fault.kind) {
        case 'reset':
          phase = 'dead';
          socket.resetAndDestroy();
          done();
          return true;
        case 'close':
          phase = 'dead';
          socket.end();
          done();
          return true;
        case '421':
          phase = 'dead';
          socket.end('421 4.3.2 fake.test Service shutting down\r\n');
          done();
          return true;
        case 'garbage':
          phase = 'dead';
          socket.write('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
          done();
          return true;
        case 'stall':
          phase = 'dead';
          done();
          return true;
        default:
          return false;
      }
    };

    const greet = () => {
      if (!misbehave('greeting')) socket.write(`220 ${name} ESMTP fake\r\n`);
    };

    const command = (line: string): void => {
      log.push(line);
      const sp = line.indexOf(' ');
      const verb = (sp === -1 ? line : line.slice(0, sp)).toUpperCase();
      const args = sp === -1 ? '' : line.slice(sp + 1);
      switch (verb) {
        case 'EHLO':
        case 'HELO': {
          const first = !ehloSeen;
          ehloSeen = true;
          if (first && misbehave('ehlo')) return;
          tx = null;
          if (verb === 'HELO') return void socket.write(`250 ${name}\r\n`);
          const caps = [...CAPS, ...(opts.xclient ? [XCLIENT_CAP] : [])];
          socket.write([name, ...caps].map((l, i, a) => `250${i === a.length - 1 ? ' ' : '-'}${l}\r\n`).join(''));
          return;
        }
        case 'XCLIENT': {
          if (!opts.xclient) return void socket.write('502 5.5.1 XCLIENT not available\r\n');
          if (misbehave('xclient')) return;
          const attrs = new Map(
            args
              .split(' ')
              .filter(Boolean)
              .map((a) => {
                const eq = a.indexOf('=');
                return [a.slice(0, eq).toUpperCase(), xtextDecode(a.slice(eq + 1)).toString('utf8')] as const;
              }),
          );
          const addr = (attrs.get('ADDR') ?? client?.address ?? '').replace(/^IPV6:/i, '');
          client = { address: addr, port: Number(attrs.get('PORT') ?? client?.port ?? 0) };
          told = 'xclient';
          tx = null;
          return void socket.write(`220 ${name} ESMTP fake\r\n`);
        }
        case 'MAIL': {
          if (misbehave('mail')) return;
          const m = /^FROM:\s*<([^>]*)>/i.exec(args);
          if (!m) return void socket.write('501 5.5.4 Syntax: MAIL FROM:<address>\r\n');
          tx = { from: m[1]!, rcpts: [] };
          return void socket.write('250 2.1.0 Ok\r\n');
        }
        case 'RCPT': {
          if (misbehave('rcpt')) return;
          const m = /^TO:\s*<([^>]*)>/i.exec(args);
          if (!tx) return void socket.write('503 5.5.1 Error: need MAIL command\r\n');
          if (!m) return void socket.write('501 5.5.4 Syntax: RCPT TO:<address>\r\n');
          tx.rcpts.push(m[1]!);
          return void socket.write('250 2.1.5 Ok\r\n');
        }
        case 'DATA': {
          if (misbehave('data')) return;
          if (!tx || tx.rcpts.length === 0) return void socket.write('503 5.5.1 Error: need RCPT command\r\n');
          phase = 'data';
          return void socket.write('354 End data with <CR><LF>.<CR><LF>\r\n');
        }
        case 'RSET':
          tx = null;
          return void socket.write('250 2.0.0 Ok\r\n');
        case 'NOOP':
          return void socket.write('250 2.0.0 Ok\r\n');
        case 'QUIT':
          phase = 'dead';
          return void socket.end('221 2.0.0 Bye\r\n');
        default:
          return void socket.write('502 5.5.2 Error: command not recognized\r\n');
      }
    };

    const endOfData = (body: Buffer): void => {
      log.push(`<${body.length} bytes>.`);
      const t = tx;
      tx = null;
      if (fault?.stage === 'dot' && fault.kind === 'slow') {
        const answer = () => {
          if (socket.destroyed) return;
          messages.push({ from: t!.from, rcpts: t!.rcpts, body, client, told, conn: id });
          socket.write(`250 2.0.0 Ok: queued as FAKE${++queued}\r\n`);
        };
        setTimeout(answer, fault.delayMs ?? 2000);
        events.emit('faulted', 'dot');
        return;
      }
      if (misbehave('dot')) return;
      messages.push({ from: t!.from, rcpts: t!.rcpts, body, client, told, conn: id });
      socket.write(`250 2.0.0 Ok: queued as FAKE${++queued}\r\n`);
    };

    const pump = (): void => {
      for (;;) {
        if (phase === 'dead') return;
        if (phase === 'proxy') {
          let r;
          try {
            r = parseProxyHeader(buf);
          } catch (err) {
            if (!(err instanceof ProxyProtocolError)) throw err;
            log.push(`bad PROXY header: ${err.code}`);
            phase = 'dead';
            socket.destroy();
            return;
          }
          if (r.kind === 'incomplete') return;
          const h = r.header;
          buf = buf.subarray(r.length);
          log.push(`PROXY v${h.version} ${h.command} ${h.source ? `${h.source.address}:${h.source.port}` : '-'}`);
          if (h.command === 'proxy' && h.source) {
            client = { ...h.source };
            told = 'proxy';
          }
          phase = 'command';
          greet();
          continue;
        }
        if (phase === 'data') {
          const start = buf.subarray(0, 3).equals(Buffer.from('.\r\n')) ? 0 : -1;
          const at = start === 0 ? 0 : buf.indexOf('\r\n.\r\n');
          if (at === -1) return;
          const end = start === 0 ? 3 : at + 5;
          const body = start === 0 ? Buffer.alloc(0) : Buffer.from(buf.subarray(0, at + 2));
          buf = buf.subarray(end);
          phase = 'command';
          endOfData(body);
          continue;
        }
        const lf = buf.indexOf(0x0a);
        if (lf === -1) return;
        const line = buf.subarray(0, lf).toString('utf8').replace(/\r$/, '');
        buf = buf.subarray(lf + 1);
        command(line);
      }
    };

    socket.on('data', (d: Buffer) => {
      if (phase === 'dead') return;
      buf = Buffer.concat([buf, d]);
      pump();
    });
    if (!opts.proxy) greet();
  };

  let server = net.createServer(onConnection);
  let port = opts.port ?? 0;
  const listen = async () => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    port = (server.address() as net.AddressInfo).port;
  };
  const stopListening = () => new Promise<void>((r) => server.close(() => r()));
  await listen();

  const fake: FakeBackend = {
    host,
    get port() {
      return port;
    },
    get text() {
      return `${host}:${port}`;
    },
    messages,
    transcripts,
    connections: () => accepted,
    async arm(fault, count = 1) {
      if (fault.stage === 'connect') {
        await stopListening();
        return;
      }
      armed = fault;
      armedCount = count;
    },
    async heal() {
      armed = null;
      armedCount = 0;
      if (!server.listening) {
        server = net.createServer(onConnection);
        await listen();
      }
    },
    faulted(stage, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off('faulted', on);
          reject(new Error(`fake backend: no fault at ${stage} within ${timeoutMs} ms`));
        }, timeoutMs);
        const on = (s: FaultStage) => {
          if (s !== stage) return;
          clearTimeout(timer);
          events.off('faulted', on);
          resolve();
        };
        events.on('faulted', on);
      });
    },
    dropAll() {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      if (server.listening) await stopListening();
    },
  };
  return fake;
}
