// The http-01 responder (RFC 8555 8.3): GET /.well-known/acme-challenge/TOKEN answered with the
// key authorization, on `tls.acme.listen`. Nothing else is served.
import http from 'node:http';
import type { HostPort } from '../config/types.js';
import type { ChallengeBoard } from './acme-challenges.js';

const PREFIX = '/.well-known/acme-challenge/';

export class Http01Responder {
  readonly #server: http.Server;
  readonly #board: ChallengeBoard;

  private constructor(board: ChallengeBoard) {
    this.#board = board;
    this.#server = http.createServer((req, res) => void this.#answer(req, res));
    // Validators send one small request; anything slow is not one.
    this.#server.requestTimeout = 10_000;
    this.#server.headersTimeout = 5_000;
    this.#server.maxHeadersCount = 50;
  }

  static async listen(at: HostPort, board: ChallengeBoard): Promise<Http01Responder> {
    const r = new Http01Responder(board);
    await new Promise<void>((resolve, reject) => {
      r.#server.once('error', reject);
      r.#server.listen(at.port, at.host, () => {
        r.#server.off('error', reject);
        resolve();
      });
    });
    return r;
  }

  get port(): number {
    const a = this.#server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  async #answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '';
    const token = url.startsWith(PREFIX) ? url.slice(PREFIX.length) : null;
    const value = req.method === 'GET' && token !== null ? await this.#board.get('http-01', token) : null;
    if (value === null) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(value);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }
}
