import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import nodemailer from 'nodemailer';
import { startSink, parseSinkArgs, type Sink } from '../../src/sink/index.js';
import { RawSmtp } from '../helpers/postfix.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const sinks: Sink[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(sinks.map((s) => s.close()));
});

async function sink(opts: Parameters<typeof startSink>[0] = {}): Promise<Sink> {
  const s = await startSink(opts);
  sinks.push(s);
  return s;
}

/** A raw session up to an accepted RCPT; returns the client for DATA. */
async function envelope(c: RawSmtp, from: string, rcpts: string[], mailParams = ''): Promise<void> {
  assert.match(await c.command(`MAIL FROM:<${from}>${mailParams ? ' ' + mailParams : ''}`), /^250/);
  for (const r of rcpts) assert.match(await c.command(`RCPT TO:<${r}>`), /^250/);
  assert.match(await c.command('DATA'), /^354/);
}

describe('sink', { timeout: 60_000 }, () => {
  test('accepts a message from nodemailer and records envelope, size and peer', async () => {
    const s = await sink({ keepBodies: true });
    const { host, port } = s.address();
    const transport = nodemailer.createTransport({ host, port, secure: false, ignoreTLS: true, name: 'nm.example' });
    const raw = 'From: a@example.org\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nHello.\r\n.leading dot\r\n';
    const info = await transport.sendMail({ envelope: { from: 'a@example.org', to: ['b@example.com', 'c@example.com'] }, raw });
    transport.close();
    assert.match(info.response, /^250 2\.\d\.\d Ok: queued as [0-9A-F]{10}$/);
    const [m] = await s.waitFor(1);
    assert.ok(m);
    assert.equal(m.from, 'a@example.org');
    assert.deepEqual(m.rcpts, ['b@example.com', 'c@example.com']);
    assert.equal(m.helo, 'nm.example');
    assert.equal(m.told, null);
    assert.equal(m.client.address, '127.0.0.1');
    assert.deepEqual(m.client, m.peer);
    assert.ok(m.body);
    assert.equal(m.body.toString('latin1'), raw); // dot-stuffing undone
    assert.equal(m.size, Buffer.byteLength(raw));
    assert.equal(info.response.endsWith(m.id), true);
  });

  test('accepts a message from swaks', { skip: !swaksAvailable() && 'swaks is not installed' }, async () => {
    const s = await sink();
    const { port } = s.address();
    const r = await swaks(['--server', `127.0.0.1:${port}`, '--helo', 'swaks.example', '--from', 'x@example.org', '--to', 'y@example.com']);
    assert.equal(r.code, 0, r.transcript);
    const [m] = await s.waitFor(1);
    assert.ok(m);
    assert.equal(m.helo, 'swaks.example');
    assert.deepEqual(m.rcpts, ['y@example.com']);
    assert.ok(m.size > 0);
  });

  test('XCLIENT ADDR/PORT from 127.0.0.1 changes the recorded client', async () => {
    const s = await sink({ xclient: true });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    const ehlo = await c.command('EHLO proxy.example');
    assert.match(ehlo, /^250[- ]XCLIENT NAME ADDR PORT PROTO HELO LOGIN$/m);
    assert.match(await c.command('XCLIENT ADDR=127.0.0.9 PORT=4242'), /^220 sink\.localhost ESMTP/);
    // after ADDR the session belongs to the client: no second XCLIENT
    assert.doesNotMatch(await c.command('EHLO client.example'), /XCLIENT/);
    await envelope(c, 'a@example.org', ['b@example.com']);
    assert.match(await c.data('Subject: x\r\n\r\nhi\r\n'), /^250 /);
    const localPort = c.socket.localPort;
    await c.quit();
    const [m] = await s.waitFor(1);
    assert.ok(m);
    assert.deepEqual(m.client, { address: '127.0.0.9', port: 4242 });
    assert.equal(m.told, 'xclient');
    assert.equal(m.peer.address, '127.0.0.1');
    assert.equal(m.peer.port, localPort);
    assert.equal(m.helo, 'client.example');
  });

  test('XCLIENT with an IPv6 client address', async () => {
    const s = await sink({ xclient: true });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    await c.command('EHLO proxy.example');
    assert.match(await c.command('XCLIENT ADDR=IPV6:2001:db8::7 PORT=65000'), /^220/);
    await c.command('EHLO client.example');
    await envelope(c, 'a@example.org', ['b@example.com']);
    assert.match(await c.data('x\r\n'), /^250 /);
    await c.quit();
    const [m] = await s.waitFor(1);
    assert.deepEqual(m?.client, { address: '2001:db8::7', port: 65000 });
    assert.equal(m?.told, 'xclient');
  });

  test('XCLIENT is neither advertised nor honoured without the option', async () => {
    const s = await sink();
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    assert.doesNotMatch(await c.command('EHLO proxy.example'), /XCLIENT/);
    assert.match(await c.command('XCLIENT ADDR=127.0.0.9 PORT=4242'), /^5\d\d /);
    await c.quit();
  });

  test('PROXY v1 header sets the client; told=proxy', async () => {
    const s = await sink({ proxyProtocol: true });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port, {
      preface: `PROXY TCP4 192.0.2.7 127.0.0.1 5555 2526\r\n`,
    });
    assert.match(c.greeting, /^220 /);
    await c.command('EHLO client.example');
    await envelope(c, 'a@example.org', ['b@example.com']);
    assert.match(await c.data('x\r\n'), /^250 /);
    const localPort = c.socket.localPort;
    await c.quit();
    const [m] = await s.waitFor(1);
    assert.ok(m);
    assert.deepEqual(m.client, { address: '192.0.2.7', port: 5555 });
    assert.equal(m.told, 'proxy');
    assert.deepEqual(m.peer, { address: '127.0.0.1', port: localPort });
  });

  test('8-bit body and SMTPUTF8 envelope arrive byte-exact; size counted exactly', async () => {
    const s = await sink({ keepBodies: true });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    const ehlo = await c.command('EHLO client.example');
    assert.match(ehlo, /^250-8BITMIME$/m);
    assert.match(ehlo, /^250-SMTPUTF8$/m);
    await envelope(c, 'jöran@exämple.org', ['ünï@exämple.org'], 'SMTPUTF8 BODY=8BITMIME');
    // every byte value except CR and LF, in lines, plus UTF-8 text and leading dots
    const bytes: number[] = [];
    for (let b = 0; b < 256; b++) if (b !== 0x0d && b !== 0x0a) bytes.push(b);
    const body = Buffer.concat([
      Buffer.from('Subject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n', 'utf8'),
      Buffer.from(bytes),
      Buffer.from('\r\n.\r\n..two\r\nſmörgåsbord €\r\n', 'utf8'),
    ]);
    assert.match(await c.data(body), /^250 /);
    await c.quit();
    const [m] = await s.waitFor(1);
    assert.ok(m?.body);
    assert.equal(m.from, 'jöran@exämple.org');
    assert.deepEqual(m.rcpts, ['ünï@exämple.org']);
    assert.equal(Buffer.compare(m.body, body), 0);
    assert.equal(m.size, body.length);
  });

  test('size of a 3 MB message is exact', async () => {
    const s = await sink({ keepBodies: false });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port, { timeoutMs: 20_000 });
    await c.command('EHLO client.example');
    await envelope(c, 'a@example.org', ['b@example.com']);
    const line = '.' + 'x'.repeat(76) + '\r\n'; // leading dot: stuffed on the wire, not counted
    const body = line.repeat(Math.ceil((3 * 1024 * 1024) / line.length));
    assert.match(await c.data(body), /^250 /);
    await c.quit();
    const [m] = await s.waitFor(1);
    assert.equal(m?.size, Buffer.byteLength(body));
    assert.equal(m?.body, undefined);
  });

  test('SIZE is advertised and enforced', async () => {
    const s = await sink({ size: 1000 });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    assert.match(await c.command('EHLO client.example'), /^250[- ]SIZE 1000$/m);
    assert.match(await c.command('MAIL FROM:<a@example.org> SIZE=5000'), /^552 /);
    await envelope(c, 'a@example.org', ['b@example.com']);
    assert.match(await c.data('x'.repeat(2000)), /^552 5\.3\.4 Message size exceeds fixed limit of 1000 bytes$/);
    await c.quit();
    assert.equal(s.messages.length, 0);
  });

  test('LIMITS is advertised in EHLO and RCPTMAX enforced', async () => {
    const s = await sink({ limits: { mailmax: 20, rcptmax: 2, rcptdomainmax: 50 } });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    const ehlo = await c.command('EHLO client.example');
    assert.match(ehlo, /^250[- ]LIMITS MAILMAX=20 RCPTMAX=2 RCPTDOMAINMAX=50$/m);
    assert.match(await c.command('MAIL FROM:<a@example.org>'), /^250/);
    assert.match(await c.command('RCPT TO:<1@example.com>'), /^250/);
    assert.match(await c.command('RCPT TO:<2@example.com>'), /^250/);
    assert.match(await c.command('RCPT TO:<3@example.com>'), /^452 /);
    await c.quit();
  });

  test('hide removes extensions from EHLO; enhanced codes only when advertised', async () => {
    const s = await sink({
      hide: { PIPELINING: true, DSN: true, ENHANCEDSTATUSCODES: true, SMTPUTF8: true, '8BITMIME': true },
      rejectRcpt: () => '550 5.1.1 No such user',
    });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    const ehlo = await c.command('EHLO client.example');
    for (const kw of ['PIPELINING', 'DSN', 'ENHANCEDSTATUSCODES', 'SMTPUTF8', '8BITMIME', 'LIMITS']) {
      assert.doesNotMatch(ehlo, new RegExp(`^250[- ]${kw}\\b`, 'm'), kw);
    }
    assert.equal(await c.command('MAIL FROM:<a@example.org>'), '250 Accepted');
    assert.equal(await c.command('RCPT TO:<nobody@example.com>'), '550 No such user');
    await c.quit();
  });

  test('rejectRcpt refuses with the given reply, once', async () => {
    const s = await sink({ rejectRcpt: (a) => (a.startsWith('nobody@') ? '550 5.1.1 No such user' : null) });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    await c.command('EHLO client.example');
    assert.match(await c.command('MAIL FROM:<a@example.org>'), /^250/);
    assert.equal(await c.command('RCPT TO:<nobody@example.com>'), '550 5.1.1 No such user');
    assert.match(await c.command('RCPT TO:<somebody@example.com>'), /^250/);
    assert.match(await c.command('DATA'), /^354/);
    assert.match(await c.data('x\r\n'), /^250 /);
    await c.quit();
    const [m] = await s.waitFor(1);
    assert.deepEqual(m?.rcpts, ['somebody@example.com']);
  });

  test('waitFor times out cleanly and later calls still work', async () => {
    const s = await sink();
    const t0 = Date.now();
    await assert.rejects(s.waitFor(1, 200), /waited 200ms for 1 message\(s\), got 0/);
    assert.ok(Date.now() - t0 < 2000);
    const pending = s.waitFor(1, 5000);
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    await c.command('EHLO client.example');
    await envelope(c, 'a@example.org', ['b@example.com']);
    await c.data('x\r\n');
    await c.quit();
    assert.equal((await pending).length, 1);
  });

  test('onMessage is called and close() rejects pending waiters', async () => {
    const seen: string[] = [];
    const s = await startSink({ onMessage: (m) => seen.push(m.id) });
    const c = await RawSmtp.connect('127.0.0.1', s.address().port);
    await c.command('EHLO client.example');
    await envelope(c, 'a@example.org', ['b@example.com']);
    await c.data('x\r\n');
    await c.quit();
    const [m] = await s.waitFor(1);
    assert.deepEqual(seen, [m?.id]);
    const pending = assert.rejects(s.waitFor(2, 10_000), /sink: closed/);
    await s.close();
    await pending;
  });

  test('listens on ::1', async (t) => {
    let s: Sink;
    try {
      s = await sink({ host: '::1' });
    } catch {
      t.skip('no IPv6 loopback');
      return;
    }
    assert.equal(s.address().host, '::1');
    const c = await RawSmtp.connect('::1', s.address().port);
    await c.command('EHLO client.example');
    await envelope(c, 'a@example.org', ['b@example.com']);
    await c.data('x\r\n');
    await c.quit();
    const [m] = await s.waitFor(1);
    assert.equal(m?.client.address, '::1');
    assert.equal(m?.peer.address, '::1');
  });
});

describe('postern sink command', { timeout: 60_000 }, () => {
  test('argument parsing', () => {
    assert.deepEqual(parseSinkArgs([]), { print: true, host: '127.0.0.1', port: 2526 });
    assert.deepEqual(parseSinkArgs(['--listen', '[::1]:2600', '--xclient', '--proxy-protocol']), {
      print: true,
      xclient: true,
      proxyProtocol: true,
      host: '::1',
      port: 2600,
    });
    assert.equal(typeof parseSinkArgs(['--listen', 'nonsense']), 'string');
    assert.equal(typeof parseSinkArgs(['--listen', '127.0.0.1:70000']), 'string');
    assert.equal(typeof parseSinkArgs(['--bogus']), 'string');
  });

  test('sinkMain prints a startup line, one JSON line per message, and exits 0 on SIGTERM', async () => {
    const entry = fileURLToPath(new URL('../../src/sink/index.ts', import.meta.url));
    const script = `import { sinkMain } from ${JSON.stringify(entry)}; process.exitCode = await sinkMain(process.argv.slice(1));`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--', '--listen', '127.0.0.1:0', '--xclient'], {
      cwd: repoRoot, // where --import tsx resolves from
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const port = await until(() => /listening on 127\.0\.0\.1:(\d+) \(xclient on, proxy protocol off\)/.exec(stderr)?.[1], 15_000, () => stderr);
    const c = await RawSmtp.connect('127.0.0.1', Number(port));
    await c.command('EHLO proxy.example');
    assert.match(await c.command('XCLIENT ADDR=127.0.0.5 PORT=1234'), /^220/);
    await c.command('EHLO client.example');
    await envelope(c, 'a@example.org', ['b@example.com']);
    assert.match(await c.data('hello\r\n'), /^250 /);
    await c.quit();
    const line = await until(() => stdout.split('\n').find((l) => l.startsWith('{')), 5000, () => stdout);
    const rec = JSON.parse(line) as Record<string, unknown>;
    assert.deepEqual(Object.keys(rec), ['event', 'id', 'from', 'rcpts', 'size', 'helo', 'client', 'told', 'peer']);
    assert.equal(rec.event, 'message');
    assert.equal(rec.size, 7);
    assert.deepEqual(rec.client, { address: '127.0.0.5', port: 1234 });
    assert.equal(rec.told, 'xclient');
    child.kill('SIGTERM');
    const [code] = (await withTimeout(once(child, 'exit'), 10_000)) as [number | null];
    assert.equal(code, 0, stderr);
  });

  test('sinkMain exits 1 with one line when the port is taken', async () => {
    const s = await sink();
    const entry = fileURLToPath(new URL('../../src/sink/index.ts', import.meta.url));
    const script = `import { sinkMain } from ${JSON.stringify(entry)}; process.exitCode = await sinkMain(process.argv.slice(1));`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, '--', '--listen', `127.0.0.1:${s.address().port}`], {
      cwd: repoRoot, // where --import tsx resolves from
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await withTimeout(once(child, 'exit'), 15_000)) as [number | null];
    assert.equal(code, 1);
    assert.match(stderr, /^postern sink: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*\n$/);
  });
});

async function until<T>(get: () => T | undefined, timeoutMs: number, show: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms; output so far:\n${show()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms}ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
