import net from 'node:net';

/** Ports this process has handed out: the kernel may give a closed one again at once. */
const given = new Set<number>();

/**
 * A loopback port that was free a moment ago (for configs that need a fixed port), never one
 * handed out before in this process: two calls for one config (a listener and the metrics
 * address) once got the same port from the kernel.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise((r) => s.close(r));
    if (given.has(port)) continue;
    given.add(port);
    return port;
  }
}
