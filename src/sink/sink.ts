import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { SMTPServerDataStream, SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { C552MailboxFull } from '../smtp/codes.js';
import { enhanced, SeSys3MsgLimitExceeded4 } from '../smtp/enhanced.js';
import { limitsKeyword, replyError } from './reply.js';
import { SinkServer } from './server.js';
import type { Sink, SinkMessage, SinkOptions } from './types.js';

const DEFAULT_SIZE = 100 * 1024 * 1024;
const DEFAULT_WAIT_MS = 5000;
// Sessions still open at close() get this long before smtp-server answers them 421.
const CLOSE_GRACE_MS = 1000;

interface Waiter {
  n: number;
  resolve: (m: SinkMessage[]) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Starts the development backend; resolves once it is listening. */
export async function startSink(opts: SinkOptions = {}): Promise<Sink> {
  const messages: SinkMessage[] = [];
  const waiters = new Set<Waiter>();
  const hide = opts.hide ?? {};
  const size = opts.size ?? DEFAULT_SIZE;

  const options: SMTPServerOptions = {
    name: opts.hostname ?? 'sink.localhost',
    authOptional: true,
    // TLS comes later; AUTH is off because the sink has no users (like a default Postfix MX)
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    disableReverseLookup: true, // no DNS waits for loopback test clients
    closeTimeout: CLOSE_GRACE_MS,
    useXClient: opts.xclient === true,
    useProxy: opts.proxyProtocol === true,
    hide8BITMIME: hide['8BITMIME'] === true,
    hideSMTPUTF8: hide.SMTPUTF8 === true,
    hidePIPELINING: hide.PIPELINING === true,
    hideDSN: hide.DSN === true,
    hideENHANCEDSTATUSCODES: hide.ENHANCEDSTATUSCODES === true,
    ...(size > 0 ? { size } : {}),
    ...(opts.limits?.rcptmax !== undefined ? { maxRecipients: opts.limits.rcptmax } : {}),
    onRcptTo(address, _session, callback) {
      const refusal = opts.rejectRcpt?.(address.address) ?? null;
      callback(refusal === null ? null : replyError(refusal));
    },
    onData(stream, session, callback) {
      receive(stream, opts.keepBodies === true).then(
        ({ size: bytes, body }) => {
          if (stream.sizeExceeded) return callback(replyError(`${C552MailboxFull} ${enhanced(C552MailboxFull, SeSys3MsgLimitExceeded4)} Message size exceeds fixed limit of ${size} bytes`));
          const msg = record(server, session, bytes, body);
          messages.push(msg);
          if (opts.print) process.stdout.write(JSON.stringify(printable(msg)) + '\n');
          opts.onMessage?.(msg);
          settle();
          callback(null, `Ok: queued as ${msg.id}`);
        },
        (err: Error) => callback(err),
      );
    },
  };
  const server = new SinkServer(options, limitsKeyword(opts.limits));

  function settle(): void {
    for (const w of waiters) {
      if (messages.length >= w.n) {
        waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(messages.slice());
      }
    }
  }

  let listening = false;
  await new Promise<void>((resolve, reject) => {
    server.on('error', (err: Error) => {
      // Before listening this is a bind failure; afterwards it is one client's
      // socket error (resets, timeouts), which a sink just ignores.
      if (!listening) reject(err);
    });
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      listening = true;
      resolve();
    });
  });

  let closing: Promise<void> | null = null;
  return {
    messages,
    address() {
      const a = server.server.address() as AddressInfo;
      return { host: a.address, port: a.port };
    },
    waitFor(n, timeoutMs = DEFAULT_WAIT_MS) {
      if (messages.length >= n) return Promise.resolve(messages.slice());
      return new Promise((resolve, reject) => {
        const w: Waiter = {
          n,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(w);
            reject(new Error(`sink: waited ${timeoutMs}ms for ${n} message(s), got ${messages.length}`));
          }, timeoutMs),
        };
        waiters.add(w);
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const w of waiters) {
          clearTimeout(w.timer);
          w.reject(new Error('sink: closed'));
        }
        waiters.clear();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

/** Reads the message; smtp-server has already undone dot-stuffing. */
function receive(stream: SMTPServerDataStream, keep: boolean): Promise<{ size: number; body?: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (keep) chunks.push(chunk);
    });
    stream.once('error', reject);
    stream.once('end', () => resolve(keep ? { size, body: Buffer.concat(chunks, size) } : { size }));
  });
}

function record(server: SinkServer, session: SMTPServerSession, size: number, body: Buffer | undefined): SinkMessage {
  const facts = server.factsOf(session);
  const peer = facts?.peer ?? { address: session.remoteAddress, port: session.remotePort };
  const xclient = Boolean(session.xClient.get('ADDR') || session.xClient.get('PORT'));
  const env = session.envelope;
  const msg: SinkMessage = {
    id: randomBytes(5).toString('hex').toUpperCase(),
    from: env.mailFrom ? env.mailFrom.address : '',
    rcpts: env.rcptTo.map((r) => r.address),
    size,
    // false until HELO/EHLO, whatever the type says
    helo: session.hostNameAppearsAs || null,
    client: { address: session.remoteAddress, port: Number(session.remotePort) || 0 },
    told: xclient ? 'xclient' : facts?.proxied ? 'proxy' : null,
    peer,
  };
  if (body) msg.body = body;
  return msg;
}

function printable(m: SinkMessage): Record<string, unknown> {
  return { event: 'message', id: m.id, from: m.from, rcpts: m.rcpts, size: m.size, helo: m.helo, client: m.client, told: m.told, peer: m.peer };
}
