// A TCP relay in front of a real backend that a test can cut, to kill the backend side of
// a session at a chosen moment (e.g. mid-DATA) with real sockets on both ends.
import net from 'node:net';

export interface TcpCut {
  port: number;
  /** Bytes seen flowing towards the backend, per connection. */
  toBackend: Buffer[];
  /** Resolves when the total bytes sent towards the backend reach `n`. */
  waitBytes(n: number, timeoutMs?: number): Promise<void>;
  /** Destroys every relayed connection now. */
  cut(): void;
  close(): Promise<void>;
}

export async function startTcpCut(target: { host: string; port: number }, listenPort = 0): Promise<TcpCut> {
  const pairs: [net.Socket, net.Socket][] = [];
  const toBackend: Buffer[] = [];
  let total = 0;
  let waiters: (() => void)[] = [];
  const server = net.createServer((client) => {
    const idx = toBackend.push(Buffer.alloc(0)) - 1;
    const upstream = net.connect(target.port, target.host);
    pairs.push([client, upstream]);
    client.on('data', (d: Buffer) => {
      toBackend[idx] = Buffer.concat([toBackend[idx]!, d]);
      total += d.length;
      upstream.write(d);
      const w = waiters;
      waiters = [];
      w.forEach((f) => f());
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(listenPort, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    toBackend,
    waitBytes(n, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${total} of ${n} bytes relayed`)), timeoutMs);
        const check = () => {
          if (total >= n) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      });
    },
    cut() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
    },
    close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** A server that greets with `banner` and closes: a backend refusing service (e.g. `421 ...`). */
export async function startRefuser(banner: string): Promise<{ port: number; connections: number; close(): Promise<void> }> {
  const state = { port: 0, connections: 0, close: () => Promise.resolve() };
  const server = net.createServer((s) => {
    state.connections++;
    s.on('error', () => undefined);
    s.end(banner + '\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as net.AddressInfo).port;
  state.close = () => new Promise((r) => server.close(() => r()));
  return state;
}

/** A loopback port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}
