// The http verifier: nginx's auth_http protocol (see http-protocol.ts) over node:http or
// node:https, one GET per attempt, connections kept alive between attempts.
import http from 'node:http';
import https from 'node:https';
import { authHttpRequestHeaders, interpretAuthHttpResponse, type ResponseHeaders } from './http-protocol.js';
import type { ReloadResult, Verifier, VerifyRequest, VerifyResult } from './verifier.js';

export interface HttpVerifierOptions {
  url: string;
  /** For each request, connection included. */
  timeout: number;
  headers?: Record<string, string>;
}

/** Rounds of `Auth-Status: WAIT` before giving up (nginx asks again forever). */
export const MAX_WAIT_ROUNDS = 5;

export class HttpVerifier implements Verifier {
  readonly type = 'http';
  readonly #url: URL;
  readonly #agent: http.Agent;
  #closed = false;

  constructor(private readonly opts: HttpVerifierOptions) {
    this.#url = new URL(opts.url);
    const Agent = this.#url.protocol === 'https:' ? https.Agent : http.Agent;
    this.#agent = new Agent({ keepAlive: true, maxSockets: 64 });
  }

  async verify(req: VerifyRequest): Promise<VerifyResult> {
    for (let round = 1; ; round++) {
      if (this.#closed) return temporary('the http verifier is closed');
      let headers: ResponseHeaders;
      try {
        headers = await this.#get(authHttpRequestHeaders(req, this.opts.headers));
      } catch (e) {
        return temporary(`auth server ${this.#url.origin}: ${(e as Error).message}`);
      }
      const a = interpretAuthHttpResponse(headers);
      switch (a.kind) {
        case 'ok': {
          const out: VerifyResult = { ok: true, user: a.user ?? req.user };
          if (a.server !== null) out.server = a.server;
          return out;
        }
        case 'refused': {
          const out: VerifyResult = { ok: false, failure: a.temporary ? 'temporary' : 'invalid', reason: a.reason, reply: a.reply };
          // nginx: with Auth-Wait the refusal is held that long and the session goes on;
          // without it the refusal is sent and the connection closed.
          if (a.waitMs === null) out.close = true;
          else out.waitMs = a.waitMs;
          return out;
        }
        case 'wait':
          if (round >= MAX_WAIT_ROUNDS) return temporary(`auth server said WAIT ${round} times`);
          await new Promise((r) => setTimeout(r, a.waitMs));
          continue;
        case 'broken':
          return temporary(a.reason);
      }
    }
  }

  /** One GET; resolves with the response headers, the body is drained and dropped. */
  #get(headers: Record<string, string>, retry = true): Promise<ResponseHeaders> {
    const mod = this.#url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const r = mod.request(this.#url, { method: 'GET', headers, agent: this.#agent, timeout: this.opts.timeout }, (res) => {
        // The body means nothing here; drain it, but never for longer than the timeout.
        const drain = setTimeout(() => res.destroy(), this.opts.timeout);
        res.on('close', () => clearTimeout(drain));
        res.on('error', () => undefined);
        res.resume();
        clearTimeout(deadline);
        resolve(res.headers);
      });
      // `timeout` above is socket inactivity; this bounds the whole exchange.
      const deadline = setTimeout(() => r.destroy(new Error(`no answer within ${this.opts.timeout} ms`)), this.opts.timeout);
      r.on('timeout', () => r.destroy(new Error(`no answer within ${this.opts.timeout} ms`)));
      r.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(deadline);
        // A kept-alive connection the server closed just as we reused it: ask once more
        // on a fresh one (the pattern node:http documents for reusedSocket).
        if (retry && r.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) {
          this.#get(headers, false).then(resolve, reject);
          return;
        }
        reject(new Error(e.code !== undefined && !e.message.includes(e.code) ? `${e.code} ${e.message}` : e.message));
      });
      r.end();
    });
  }

  async reload(): Promise<ReloadResult> {
    return { ok: true, detail: 'nothing to reload (the auth server holds the users)' };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#agent.destroy();
  }
}

function temporary(reason: string): VerifyResult {
  return { ok: false, failure: 'temporary', reason };
}
