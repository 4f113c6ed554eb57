// The Node floor for XCLIENT relaying (issue 26): the least Node code that does on the wire what
// Postern does with `identity: xclient`. It greets the client itself, answers HELO/EHLO and MAIL,
// opens the backend at MAIL (220, XCLIENT, EHLO), sends MAIL with the first RCPT, relays DATA and
// the message, answers QUIT with 221 and QUITs the backend. No limits, records, metrics, timeouts
// or checks: what is left is the runtime's price for this protocol. node-pipe moves each segment
// once; this floor makes the backend handshake and the local replies too, as Postern must.
// Only for the bench's generators (one transaction, no pipelining beyond MAIL+RCPT):
//   node node-xclient-server.mjs LISTEN_PORT BACKEND_PORT WORKERS

import cluster from 'node:cluster';
import net from 'node:net';

const [listenPort, backendPort, workers] = process.argv.slice(2).map(Number);
if (!listenPort || !backendPort || !workers) {
  process.stderr.write('usage: node-xclient-server LISTEN_PORT BACKEND_PORT WORKERS\n');
  process.exit(2);
}

const GREETING = Buffer.from('220 floor.bench ESMTP\r\n');
const EHLO_REPLY = Buffer.from('250-floor.bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10240000\r\n');
const HELO_REPLY = Buffer.from('250 floor.bench\r\n');
const MAIL_OK = Buffer.from('250 2.1.0 Ok\r\n');
const BYE = Buffer.from('221 2.0.0 Bye\r\n');
const UNKNOWN = Buffer.from('502 5.5.2 Error: command not recognized\r\n');
const QUIT = Buffer.from('QUIT\r\n');
const EHLO = Buffer.from('EHLO floor.bench\r\n');
const END = Buffer.from('\r\n.\r\n');

function session(client: net.Socket): void {
  const addr = client.remoteAddress ?? '127.0.0.1';
  const port = client.remotePort ?? 0;
  let backend: net.Socket | null = null;
  let helo = 'unknown';
  let inData = false;
  let tail: Buffer = Buffer.alloc(0);
  let line = '';
  let heldMail: Buffer | null = null;
  // What to do with each backend reply, in order; a reply is complete at its last line.
  const waiting: ((reply: Buffer) => void)[] = [];
  let reply: Buffer = Buffer.alloc(0);
  const close = () => {
    client.destroy();
    backend?.destroy();
  };
  client.on('error', close);
  client.write(GREETING);

  const relay = (r: Buffer) => void client.write(r);
  const onBackendData = (chunk: Buffer) => {
    reply = reply.length ? Buffer.concat([reply, chunk]) : chunk;
    for (;;) {
      let start = 0;
      let end = -1;
      for (;;) {
        const nl = reply.indexOf(10, start);
        if (nl < 0) break;
        // RFC 5321 §4.2.1: "250-" goes on, "250 " ends the reply.
        if (reply[start + 3] !== 0x2d) {
          end = nl + 1;
          break;
        }
        start = nl + 1;
      }
      if (end < 0) return;
      const one = reply.subarray(0, end);
      reply = reply.subarray(end);
      waiting.shift()?.(one);
    }
  };
  const bind = (then: () => void) => {
    const b = net.connect({ host: '127.0.0.1', port: backendPort!, noDelay: true });
    backend = b;
    b.on('error', close);
    b.on('data', onBackendData);
    waiting.push(() => {
      b.write(`XCLIENT HELO=${helo} ADDR=${addr} PORT=${port} PROTO=ESMTP\r\n`);
      waiting.push(() => {
        b.write(EHLO);
        waiting.push(then);
      });
    });
  };

  const command = (text: string) => {
    const verb = text.slice(0, 4).toUpperCase();
    if (verb === 'EHLO' || verb === 'HELO') {
      helo = text.slice(5).trim() || 'unknown';
      client.write(verb === 'EHLO' ? EHLO_REPLY : HELO_REPLY);
    } else if (verb === 'MAIL') {
      heldMail = Buffer.from(`${text}\r\n`, 'latin1');
      if (backend) client.write(MAIL_OK);
      else bind(() => client.write(MAIL_OK));
    } else if (verb === 'RCPT') {
      const rcpt = Buffer.from(`${text}\r\n`, 'latin1');
      if (heldMail) {
        backend!.write(Buffer.concat([heldMail, rcpt]));
        heldMail = null;
        waiting.push(() => undefined, relay);
      } else {
        backend!.write(rcpt);
        waiting.push(relay);
      }
    } else if (verb === 'DATA') {
      backend!.write(`${text}\r\n`);
      waiting.push((r) => {
        if (r[0] === 0x33) inData = true;
        relay(r);
      });
    } else if (verb === 'QUIT') {
      client.end(BYE);
      backend?.end(QUIT);
    } else {
      client.write(UNKNOWN);
    }
  };

  client.on('data', (chunk: Buffer) => {
    let rest: Buffer = chunk;
    while (rest.length) {
      if (inData) {
        const seen = tail.length ? Buffer.concat([tail, rest]) : rest;
        const at = seen.indexOf(END);
        if (at < 0) {
          backend!.write(rest);
          tail = seen.subarray(Math.max(0, seen.length - 4));
          return;
        }
        const upto = at + END.length - tail.length;
        backend!.write(rest.subarray(0, upto));
        rest = rest.subarray(upto);
        tail = Buffer.alloc(0);
        inData = false;
        waiting.push(relay);
        continue;
      }
      const nl = rest.indexOf(10);
      if (nl < 0) {
        line += rest.toString('latin1');
        return;
      }
      const text = (line + rest.toString('latin1', 0, nl)).replace(/\r$/, '');
      line = '';
      rest = rest.subarray(nl + 1);
      command(text);
    }
  });
}

function serve(): void {
  const server = net.createServer({ noDelay: true }, session);
  server.listen({ host: '127.0.0.1', port: listenPort, backlog: 1024 });
}

if (workers > 1 && cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code) => process.stderr.write(`worker ${w.id} exited (${String(code)})\n`));
} else {
  serve();
}
// Exit on SIGTERM rather than die of it, so that `--cpu-prof` (bench/profile.ts) writes its profile.
process.once('SIGTERM', () => process.exit(0));
