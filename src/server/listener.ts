// One listening socket per configured listener.
import net from 'node:net';
import type { ListenerConfig } from '../config/types.js';
import { unmapIPv4 } from '../net/ip.js';

export class ListenError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ListenError';
  }
}

export class Listener {
  readonly server: net.Server;
  /** The one local address of every connection, read once (undefined: not yet; null: a wildcard). */
  #local: { address: string; port: number } | null | undefined = undefined;

  constructor(
    public cfg: ListenerConfig,
    onConnection: (socket: net.Socket, l: Listener) => void,
  ) {
    // pauseOnConnect: nothing is read before the session is set up.
    // allowHalfOpen: a client may send QUIT and shut its side (Exim's and Postfix's smtp
    // clients do): the replies still owed, the 221 among them, must still reach it.
    this.server = net.createServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, (s) => onConnection(s, this));
  }

  /**
   * Binds `listen`, or listens on `fd`, a socket already bound to it (systemd, or the
   * process this one took over from). In a cluster worker the primary opens either.
   */
  listen(fd: number | null = null): Promise<void> {
    const { host, port } = this.cfg.listen;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          new ListenError(
            err.code ?? 'LISTEN',
            err.code === 'EADDRINUSE'
              ? `listener ${this.cfg.name}: address ${this.cfg.listen.text} is already in use`
              : `listener ${this.cfg.name}: cannot listen on ${this.cfg.listen.text}: ${err.message}`,
          ),
        );
      };
      this.server.once('error', onError);
      this.#local = undefined;
      this.server.listen(fd === null ? { host, port, backlog: 1024 } : { fd, backlog: 1024 }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  /** The bound address (the real port when the config said 0). */
  address(): { host: string; port: number } {
    const a = this.server.address() as net.AddressInfo;
    return { host: a.address, port: a.port };
  }

  /**
   * Where every connection to this listener arrives, when that is one address: the bound one,
   * unless it is a wildcard (0.0.0.0, ::), where each connection's own must be asked of the
   * kernel. Saves a getsockname per connection (issue 26).
   */
  localEndpoint(): { address: string; port: number } | null {
    if (this.#local === undefined) {
      const a = this.server.address();
      this.#local = a && typeof a === 'object' && a.address !== '0.0.0.0' && a.address !== '::' ? { address: unmapIPv4(a.address), port: a.port } : null;
    }
    return this.#local;
  }

  /**
   * The listening socket's descriptor, to hand to a successor (SIGUSR2). Node has no public
   * accessor; `_handle.fd` is the descriptor libuv listens on (-1 or absent off Unix).
   */
  fd(): number | null {
    const fd = (this.server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    return typeof fd === 'number' && fd >= 0 ? fd : null;
  }

  /** The listening handle itself, to send to the cluster primary over IPC. */
  handle(): object | null {
    return (this.server as unknown as { _handle?: object | null })._handle ?? null;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
