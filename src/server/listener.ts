// One listening socket per configured listener.
import net from 'node:net';
import type { ListenerConfig } from '../config/types.js';

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

  constructor(
    public cfg: ListenerConfig,
    onConnection: (socket: net.Socket, l: Listener) => void,
  ) {
    // pauseOnConnect: nothing is read before the session is set up.
    this.server = net.createServer({ pauseOnConnect: true, noDelay: true }, (s) => onConnection(s, this));
  }

  listen(): Promise<void> {
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
      this.server.listen({ host, port, backlog: 1024 }, () => {
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

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
