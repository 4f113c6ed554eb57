import net from 'node:net';

/** Ports this process has handed out: a random pick may come again. */
const given = new Set<number>();

/**
 * Below the kernel's ephemeral range (32768-60999 by default): a port taken from that range is
 * free only until any connection on the machine picks it as its local port, and a config that
 * restarts a process on its port leaves it open to exactly that (CI once failed so).
 */
const LOW = 20_000;
const HIGH = 32_000;

/**
 * A loopback port that was free a moment ago (for configs that need a fixed port), outside the
 * ephemeral range, and never one handed out before in this process: two calls for one config (a
 * listener and the metrics address) once got the same port. `alsoV6`: free on ::1 too.
 */
export async function freePort(alsoV6 = false): Promise<number> {
  for (;;) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (given.has(port)) continue;
    if (!(await canBind('127.0.0.1', port)) || (alsoV6 && !(await canBind('::1', port)))) continue;
    given.add(port);
    return port;
  }
}

function canBind(host: string, port: number): Promise<boolean> {
  const s = net.createServer();
  return new Promise<boolean>((r) => {
    s.once('error', () => r(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => r(true)));
  });
}
