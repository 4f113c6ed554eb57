// The Node floor for TLS handshakes (issue 17): a bare `tls.createServer` per certificate that
// completes the handshake and closes. Session tickets and the session cache are Node's
// defaults. Run as its own process, transpiled to plain JavaScript (no loader at run time):
//   node node-tls-server.mjs '{"workers":2,"listeners":[{"port":4650,"cert":"c.pem","key":"k.pem"}]}'
// WORKERS > 1: a node:cluster primary with that many workers on the shared sockets
// (SCHED_NONE, as Postern's cluster does). The workers share one ticket key, made by the
// primary, so a ticket from one worker resumes on another (Postern's workers share theirs too);
// with Node's default (a random key per server) half the resumptions would fail.

import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

const TICKET_ENV = 'BENCH_NODE_TLS_TICKET_KEYS';

export interface NodeTlsSpec {
  workers: number;
  listeners: { port: number; cert: string; key: string }[];
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Partial<NodeTlsSpec>;
const workers = spec.workers ?? 0;
const listeners = spec.listeners ?? [];
if (workers < 1 || listeners.length === 0) {
  process.stderr.write('usage: node-tls-server \'{"workers":N,"listeners":[{"port":P,"cert":FILE,"key":FILE}]}\'\n');
  process.exit(2);
}

function serve(): void {
  const shared = process.env[TICKET_ENV];
  for (const l of listeners) {
    const server = tls.createServer(
      {
        cert: readFileSync(l.cert),
        key: readFileSync(l.key),
        ...(shared ? { ticketKeys: Buffer.from(shared, 'hex') } : {}),
      },
      (socket) => {
        // The client may reset first; that is not an error here.
        socket.on('error', () => socket.destroy());
        // Close on the next turn: TLS 1.3 session tickets are written after this callback
        // returns, and an end() here would shut the connection before they go out (no
        // resumption at all).
        setImmediate(() => socket.end());
      },
    );
    // A client that goes away mid-handshake must not stop the server.
    server.on('tlsClientError', () => {});
    server.listen({ host: '127.0.0.1', port: l.port, backlog: 1024 });
  }
}

// Exit on SIGTERM rather than die of it, so that `--cpu-prof` (bench/profile.ts) writes its profile.
process.once('SIGTERM', () => process.exit(0));

if (workers > 1 && cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  // 48 bytes: Node's ticket key format (name, HMAC key, AES key).
  const keys = randomBytes(48).toString('hex');
  for (let i = 0; i < workers; i++) cluster.fork({ [TICKET_ENV]: keys });
  cluster.on('exit', (w, code) => process.stderr.write(`worker ${w.id} exited (${String(code)})\n`));
} else {
  serve();
}
