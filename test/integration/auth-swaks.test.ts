// The AUTH building blocks (AuthExchange, Authenticator with the file verifier and the
// failure limits) driven by a real client, swaks, through a minimal SMTP responder
// written here. The responder is scaffolding until the session wires AUTH in; what is
// tested is that swaks's PLAIN and LOGIN get through the exchange, and that the replies
// it reads are the ones the session will send.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcrypt';
import { Authenticator } from '../../src/auth/authenticator.js';
import { AUTH_LINE_MAX, AuthExchange, authCommandRefusal, authKeyword, mailRefusal, type ExchangePolicy } from '../../src/auth/exchange.js';
import { FileVerifier } from '../../src/auth/file.js';
import { parseCommand } from '../../src/smtp/command.js';
import { LineReader } from '../../src/smtp/lines.js';
import { LocalWindowCounter } from '../../src/state/windows.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

const POLICY: ExchangePolicy = { mechanisms: ['PLAIN', 'LOGIN'], tls: false, plaintext: true };

/** One SMTP connection: EHLO, AUTH, MAIL (530 before AUTH), QUIT. */
function respond(sock: net.Socket, auth: Authenticator, logins: string[]): void {
  const lines = new LineReader();
  let exchange: AuthExchange | null = null;
  let authenticated = false;
  let ehlo = false;
  let attempt = 0;
  let busy = false;
  const send = (s: string): void => void sock.write(s);
  const ctx = () => ({
    client: { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 },
    local: { address: sock.localAddress ?? '', port: sock.localPort ?? 0 },
    tls: false,
    helo: 'swaks',
    attempt,
  });
  const pump = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    for (;;) {
      const line = lines.readLine(exchange?.waiting ? AUTH_LINE_MAX : 4096);
      if (line === null) break;
      const text = line.text.toString('latin1');
      if (exchange?.waiting) {
        const step = line.tooLong ? exchange.tooLong() : exchange.next(text);
        await answer(step);
        continue;
      }
      const { verb, args } = parseCommand(text);
      if (verb === 'EHLO') {
        ehlo = true;
        const kw = authKeyword('optional', POLICY);
        send(kw === null ? '250 harness\r\n' : `250-harness\r\n250 ${kw}\r\n`);
      } else if (verb === 'AUTH') {
        const refusal = authCommandRefusal({ mode: 'optional', ehlo, authenticated, inTransaction: false });
        if (refusal !== null) send(refusal.reply);
        else {
          attempt++;
          exchange = new AuthExchange(POLICY);
          await answer(exchange.start(args));
        }
      } else if (verb === 'MAIL') {
        send(mailRefusal('required', authenticated)?.reply ?? '250 2.1.0 Ok\r\n');
      } else if (verb === 'QUIT') {
        send('221 2.0.0 Bye\r\n');
        sock.end();
      } else {
        send('502 5.5.1 Not here\r\n');
      }
    }
    busy = false;
  };
  const answer = async (step: ReturnType<AuthExchange['start']>): Promise<void> => {
    if (step.kind === 'challenge') return send(step.reply);
    if (step.kind === 'error') return send(step.error.reply);
    const out = await auth.authenticate(step.credentials, ctx());
    if (out.result === 'ok') {
      authenticated = true;
      logins.push(`${out.mechanism}:${out.user}`);
      return send(out.reply);
    }
    await new Promise((r) => setTimeout(r, out.delayMs));
    send(out.reply.reply);
  };
  sock.on('data', (d: Buffer) => {
    lines.push(d);
    void pump();
  });
  sock.on('error', () => undefined);
  send('220 harness ESMTP\r\n');
}

describe('AUTH with swaks as the client', { skip: swaksAvailable() ? false : 'swaks is not installed' }, () => {
  let dir = '';
  let server: net.Server;
  let port = 0;
  let counter: LocalWindowCounter;
  const logins: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-auth-swaks-'));
    writeFileSync(join(dir, 'passwd'), `alice:${await bcrypt.hash('Secret pw!', 4)}\nbob:${await bcrypt.hash('bobs', 4)}\n`);
    counter = new LocalWindowCounter();
    const auth = new Authenticator(await FileVerifier.open(join(dir, 'passwd')), counter, { per_ip: { count: 3, window: 60_000 }, per_user: null }, { floodDelayMs: 10 });
    server = net.createServer((s) => respond(s, auth, logins));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });

  after(async () => {
    counter?.close();
    await new Promise((r) => server.close(r));
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const run = (from: string, mech: string, user: string, password: string) =>
    swaks(['--server', `127.0.0.1:${port}`, '--local-interface', from, '--auth', mech, '--auth-user', user, '--auth-password', password, '--quit-after', 'AUTH', '--timeout', '10']);

  for (const mech of ['PLAIN', 'LOGIN']) {
    it(`logs in with AUTH ${mech}`, async () => {
      const r = await run('127.0.0.2', mech, 'alice', 'Secret pw!');
      assert.equal(r.code, 0, r.transcript);
      assert.match(r.transcript, /^<- {2}235 2\.7\.0 Authentication successful$/m);
      if (mech === 'LOGIN') assert.match(r.transcript, /^<- {2}334 VXNlcm5hbWU6$[\s\S]*^<- {2}334 UGFzc3dvcmQ6$/m);
      assert.equal(logins.at(-1), `${mech}:alice`);
    });
  }

  it('refuses a wrong password with 535, and past the per-IP limit with 454', async () => {
    const codes: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await run('127.0.0.3', i % 2 === 0 ? 'PLAIN' : 'LOGIN', 'bob', `guess-${i}`);
      assert.notEqual(r.code, 0);
      // swaks marks replies it takes for errors with `<**`.
      codes.push(/^<\*\* +(\d{3} \d\.\d\.\d+) /m.exec(r.transcript)?.[1] ?? r.transcript);
    }
    assert.deepEqual(codes, ['535 5.7.8', '535 5.7.8', '535 5.7.8', '454 4.7.0']);
    // The right password from that address is refused too, without asking the verifier.
    const r = await run('127.0.0.3', 'PLAIN', 'bob', 'bobs');
    assert.match(r.transcript, /454 4\.7\.0 Too many failed authentication attempts/);
    // Another address is not affected.
    const other = await run('127.0.0.4', 'PLAIN', 'bob', 'bobs');
    assert.equal(other.code, 0, other.transcript);
  });

  it('answers MAIL before AUTH with 530 on a required listener', async () => {
    const r = await swaks(['--server', `127.0.0.1:${port}`, '--from', 'a@example.org', '--to', 'b@example.org', '--quit-after', 'MAIL', '--timeout', '10']);
    assert.match(r.transcript, /^<\*\* +530 5\.7\.0 Authentication required$/m);
  });
});
