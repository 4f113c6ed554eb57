// The Node floor for plain SMTP relaying (issue 17): a bare TCP proxy, `socket.pipe` both ways
// to one backend, no SMTP at all. It shows what the runtime itself costs per session and per
// byte. Run as its own process, transpiled to plain JavaScript (no loader at run time):
//   node node-pipe-server.mjs LISTEN_PORT BACKEND_PORT WORKERS
// WORKERS > 1: a node:cluster primary with that many workers accepting on the shared socket
// (SCHED_NONE, as Postern's cluster does); WORKERS = 1: this process serves alone.

import cluster from 'node:cluster';
import net from 'node:net';

const [listenPort, backendPort, workers] = process.argv.slice(2).map(Number);
if (!listenPort || !backendPort || !workers) {
  process.stderr.write('usage: node-pipe-server LISTEN_PORT BACKEND_PORT WORKERS\n');
  process.exit(2);
}

function serve(): void {
  // TCP_NODELAY both ways, as Postern sets it: a reply split over two segments must not wait
  // for the peer's delayed ACK.
  const server = net.createServer({ noDelay: true }, (client) => {
    const backend = net.connect({ host: '127.0.0.1', port: backendPort!, noDelay: true });
    // A reset on either side tears down both; no error may crash the proxy.
    const close = () => {
      client.destroy();
      backend.destroy();
    };
    client.on('error', close);
    backend.on('error', close);
    client.pipe(backend);
    backend.pipe(client);
  });
  server.listen({ host: '127.0.0.1', port: listenPort, backlog: 1024 });
}

if (workers > 1 && cluster.isPrimary) {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  for (let i = 0; i < workers; i++) cluster.fork();
  // The harness stops the whole process group; a worker that dies is not replaced.
  cluster.on('exit', (w, code) => process.stderr.write(`worker ${w.id} exited (${String(code)})\n`));
} else {
  serve();
}
// Exit on SIGTERM rather than die of it, so that `--cpu-prof` (bench/profile.ts) writes its profile.
process.once('SIGTERM', () => process.exit(0));
