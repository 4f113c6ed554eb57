// One short session per kind of listener, as a monitoring probe would run it: plain SMTP,
// STARTTLS, implicit TLS, a PROXY v1 header from a trusted balancer's address, and an HTTP
// GET on the metrics listener. Each resolves when the exchange worked and rejects with
// what went wrong (ECONNREFUSED, a reset, a wrong reply, a timeout).
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';

const PROBE_TIMEOUT_MS = 10_000;

/** Reads from `s` until a final reply line (`NNN text`) has come; resolves with its code. */
function finalReply(s: net.Socket): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const m = /(?:^|\n)(\d{3}) [^\n]*\n/.exec(buf);
      if (m) {
        done();
        resolve(Number(m[1]));
      }
    };
    const onEnd = () => {
      done();
      reject(new Error(`connection closed before a reply; got ${JSON.stringify(buf)}`));
    };
    const onError = (e: Error) => {
      done();
      reject(e);
    };
    const done = () => {
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('close', onEnd);
      s.off('error', onError);
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
    s.once('error', onError);
  });
}

async function expect(s: net.Socket, code: number, what: string): Promise<void> {
  const got = await finalReply(s);
  if (got !== code) throw new Error(`${what}: expected ${code}, got ${got}`);
}

function connected(s: net.Socket, event: 'connect' | 'secureConnect'): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once(event, () => {
      s.off('error', reject);
      resolve();
    });
    s.once('error', reject);
  });
}

/** Runs `body` on a socket with a bound; the socket is always destroyed after. */
async function bounded(s: net.Socket, body: () => Promise<void>): Promise<void> {
  const timer = setTimeout(() => s.destroy(new Error(`probe timed out after ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
  s.on('error', () => undefined);
  try {
    await body();
  } finally {
    clearTimeout(timer);
    s.destroy();
  }
}

async function quit(s: net.Socket): Promise<void> {
  s.write('QUIT\r\n');
  await expect(s, 221, 'QUIT');
}

/** Greeting, EHLO, QUIT on a plain listener. */
export async function probePlain(port: number): Promise<void> {
  const s = net.connect({ port, host: '127.0.0.1' });
  await bounded(s, async () => {
    await connected(s, 'connect');
    await expect(s, 220, 'greeting');
    s.write('EHLO probe.test\r\n');
    await expect(s, 250, 'EHLO');
    await quit(s);
  });
}

/** Greeting, EHLO, STARTTLS, the handshake, EHLO again, QUIT. */
export async function probeStarttls(port: number, ca: string, servername: string): Promise<void> {
  const raw = net.connect({ port, host: '127.0.0.1' });
  await bounded(raw, async () => {
    await connected(raw, 'connect');
    await expect(raw, 220, 'greeting');
    raw.write('EHLO probe.test\r\n');
    await expect(raw, 250, 'EHLO');
    raw.write('STARTTLS\r\n');
    await expect(raw, 220, 'STARTTLS');
    const s = tls.connect({ socket: raw, servername, ca });
    await bounded(s, async () => {
      await connected(s, 'secureConnect');
      s.write('EHLO probe.test\r\n');
      await expect(s, 250, 'EHLO after STARTTLS');
      await quit(s);
    });
  });
}

/** The handshake, the greeting, QUIT on an implicit-TLS listener. */
export async function probeImplicit(port: number, ca: string, servername: string): Promise<void> {
  const s = tls.connect({ port, host: '127.0.0.1', servername, ca });
  await bounded(s, async () => {
    await connected(s, 'secureConnect');
    await expect(s, 220, 'greeting');
    await quit(s);
  });
}

/** From `from` (a trusted balancer's address): a PROXY v1 header naming `client`, then greeting and QUIT. */
export async function probeProxied(port: number, from: string, client: string): Promise<void> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
  await bounded(s, async () => {
    await connected(s, 'connect');
    s.write(`PROXY TCP4 ${client} 127.0.0.1 40000 ${port}\r\n`);
    await expect(s, 220, 'greeting after PROXY');
    await quit(s);
  });
}

/** GET `path` on a new connection (no keep-alive); resolves with status and body. */
export function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: PROBE_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

/** GET /metrics and /readyz: both must answer 200. */
export async function probeMetrics(port: number): Promise<void> {
  for (const path of ['/metrics', '/readyz']) {
    const r = await httpGet(port, path);
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${r.body.trim()}`);
  }
}

/** Runs `probe` again and again until stopped; counts successes and keeps every failure. */
export class ProbeLoop {
  ok = 0;
  readonly failures: string[] = [];
  #stopped = false;
  readonly #done: Promise<void>;

  constructor(
    readonly name: string,
    probe: () => Promise<void>,
    opts: { pauseMs?: number; maxRuns?: number } = {},
  ) {
    const pause = opts.pauseMs ?? 20;
    const max = opts.maxRuns ?? 100_000;
    this.#done = (async () => {
      for (let i = 0; i < max && !this.#stopped; i++) {
        try {
          await probe();
          this.ok++;
        } catch (err) {
          this.failures.push(`${this.name}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, pause));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
  }
}
