// TLS resumption as real clients do it: `openssl s_client` with -sess_out / -sess_in, over
// implicit TLS or STARTTLS, for the three ways a client resumes: TLS 1.2 by session ID
// (-no_ticket), TLS 1.2 by ticket, TLS 1.3 (tickets). Each visit says EHLO with its own
// name, so the server's session record of that visit can be found.
import { spawn, spawnSync } from 'node:child_process';

export type ResumeKind = 'tls12-id' | 'tls12-ticket' | 'tls13';
export const RESUME_KINDS: readonly ResumeKind[] = ['tls12-id', 'tls12-ticket', 'tls13'];

const FLAGS: Record<ResumeKind, string[]> = {
  'tls12-id': ['-tls1_2', '-no_ticket'],
  'tls12-ticket': ['-tls1_2'],
  tls13: ['-tls1_3'],
};

export function opensslAvailable(): boolean {
  return spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
}

export interface VisitOptions {
  port: number;
  starttls: boolean;
  kind: ResumeKind;
  /** The EHLO name sent once TLS is up. */
  helo: string;
  servername: string;
  /** CA file the server's certificate must verify against. */
  ca: string;
  /** Session to offer (a file -sess_out wrote). */
  sessIn?: string;
  /** Where the session (or the latest ticket) is written. */
  sessOut?: string;
  timeoutMs?: number;
}

export interface Visit {
  helo: string;
  /** The client resumed (s_client: "Reused, ..."). */
  reused: boolean;
  protocol: string | null;
  out: string;
}

/**
 * One connection: handshake (after STARTTLS with `starttls`), EHLO, QUIT, then s_client exits
 * as the server closes. Tickets (TLS 1.3's come after the handshake) are read on the way, so
 * -sess_out holds the latest.
 */
export function visit(o: VisitOptions): Promise<Visit> {
  const args = ['s_client', '-connect', `127.0.0.1:${o.port}`, '-servername', o.servername, '-CAfile', o.ca, '-verify_return_error', ...FLAGS[o.kind]];
  if (o.starttls) args.push('-starttls', 'smtp');
  if (o.sessIn) args.push('-sess_in', o.sessIn);
  if (o.sessOut) args.push('-sess_out', o.sessOut);
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let step = 0;
  let mark = 0;
  const advance = () => {
    // 0: the handshake is done and s_client has said whether it resumed.
    if (step === 0) {
      const m = /^(?:New|Reused), TLSv[\d.]+/m.exec(out);
      if (!m) return;
      mark = m.index + m[0].length;
      step = 1;
    }
    // 1: with implicit TLS, the greeting first (STARTTLS already had it).
    if (step === 1) {
      if (!o.starttls && !/^220 /m.test(out.slice(mark))) return;
      mark = out.length;
      child.stdin.write(`EHLO ${o.helo}\r\n`);
      step = 2;
    }
    if (step === 2) {
      if (!/^250 /m.test(out.slice(mark))) return;
      child.stdin.write('QUIT\r\n');
      step = 3;
    }
  };
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    advance();
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.stdin.on('error', () => undefined);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 10_000);
    child.on('close', () => {
      clearTimeout(timer);
      if (step < 3) return reject(new Error(`s_client ${args.slice(1).join(' ')} stopped at step ${step}:\n${out.slice(-3000)}`));
      resolve({ helo: o.helo, reused: /^Reused, TLSv/m.test(out), protocol: /^(?:New|Reused), (TLSv[\d.]+)/m.exec(out)?.[1] ?? null, out });
    });
  });
}
