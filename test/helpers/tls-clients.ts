// Real TLS clients for implicit-TLS SMTP listeners: Node's tls with a saved session, and
// `openssl s_client` with -sess_out / -sess_in. Each reports whether the session was resumed.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import tls from 'node:tls';

export interface TlsVisit {
  reused: boolean;
  /** The newest session (ticket) the server gave, to resume with next time; null if none came. */
  session: Buffer | null;
  version: string | null;
  /** Client port, to find the server's session record. */
  localPort: number;
}

export interface NodeTlsOptions {
  port: number;
  host?: string;
  ca: string;
  servername: string;
  version: tls.SecureVersion;
  session?: Buffer | null;
  timeoutMs?: number;
  /** The client's own address (127.0.0.2, ... to be another client). */
  localAddress?: string;
}

/**
 * Connects, reads the 220 greeting, says QUIT and closes once the 221 is read, as mail clients
 * do (waiting for the server's close instead costs Postern's QUIT_FIN_WAIT_MS under TLS).
 * Rejects on any error.
 */
export function nodeTlsVisit(o: NodeTlsOptions): Promise<TlsVisit> {
  return new Promise((resolve, reject) => {
    let latest: Buffer | null = null;
    let text = '';
    let localPort = 0;
    let reused = false;
    let version: string | null = null;
    const s = tls.connect({
      port: o.port,
      host: o.host ?? '127.0.0.1',
      servername: o.servername,
      ca: o.ca,
      minVersion: o.version,
      maxVersion: o.version,
      session: o.session ?? undefined,
      ...(o.localAddress ? { localAddress: o.localAddress } : {}),
    });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`TLS visit timed out; got ${JSON.stringify(text)}`));
    }, o.timeoutMs ?? 10_000);
    s.on('session', (x: Buffer) => (latest = x));
    s.once('secureConnect', () => {
      localPort = s.localPort ?? 0;
      reused = s.isSessionReused();
      version = s.getProtocol();
    });
    s.on('data', (d: Buffer) => {
      const before = text;
      text += d.toString('latin1');
      if (!/^220 /m.test(before) && /^220 /m.test(text)) s.write('QUIT\r\n');
      if (!/^221 /m.test(before) && /^221 /m.test(text)) s.end();
    });
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      if (!/^220 /m.test(text)) return reject(new Error(`no greeting over TLS; got ${JSON.stringify(text)}`));
      // TLS 1.2 sends its ticket in the handshake; getSession() then holds it.
      resolve({ reused, session: latest ?? s.getSession() ?? null, version, localPort });
    });
  });
}

/** A real ClientHello, as Node's TLS client sends it first, caught by a plain TCP server. */
export async function realClientHello(servername = 'mx.postern.test'): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ClientHello')), 5000);
      server.once('connection', (s) => {
        let got = Buffer.alloc(0);
        s.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d]);
          // The record header says how long the record is: wait for all of it.
          if (got.length >= 5 && got.length >= 5 + got.readUInt16BE(3)) {
            clearTimeout(timer);
            s.destroy();
            resolve(got);
          }
        });
      });
      const c = tls.connect({ port, host: '127.0.0.1', servername });
      c.on('error', () => undefined);
    });
  } finally {
    server.close();
  }
}

export const opensslAvailable = (): boolean => spawnSync('openssl', ['version']).status === 0;

export interface SClientResult {
  reused: boolean;
  out: string;
}

/**
 * `openssl s_client` on an implicit-TLS port: waits for the greeting, sends QUIT, and reports
 * `Reused` or `New` from its summary. `args` carry -sess_out / -sess_in and the version flag.
 */
export function sClientVisit(port: number, ca: string, servername: string, args: string[], timeoutMs = 10_000): Promise<SClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', servername, '-CAfile', ca, '-ign_eof', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let quit = false;
    const onData = (d: Buffer) => {
      out += d.toString();
      // After the 220 the TLS 1.3 tickets have arrived too (the server sends them first).
      if (!quit && /^220 /m.test(out)) {
        quit = true;
        child.stdin.write('QUIT\r\n');
        child.stdin.end();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`openssl s_client timed out:\n${out}`));
    }, timeoutMs);
    child.on('close', () => {
      clearTimeout(timer);
      const m = /^(New|Reused), (TLSv1\.[23])/m.exec(out);
      if (!m) return reject(new Error(`openssl s_client: no handshake summary:\n${out}`));
      resolve({ reused: m[1] === 'Reused', out });
    });
  });
}
