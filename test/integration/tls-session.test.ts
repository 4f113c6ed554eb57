// Client TLS through the whole proxy: STARTTLS and implicit TLS with real clients
// (openssl s_client, swaks, Node), resumption visible in the session record and metrics,
// STARTTLS injection discarded, failed handshakes named.
import { severityOf, type AnomalyKind } from '../../src/config/anomalies.js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

/** Runs `openssl s_client` with `input` on stdin (slowly, so the server answers each line). */
function sClient(args: string[], lines: string[]): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn('openssl', ['s_client', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    let i = 0;
    const feed = () => {
      if (i < lines.length) {
        child.stdin.write(lines[i++] + '\r\n');
        setTimeout(feed, 150);
      } else setTimeout(() => child.stdin.end(), 300);
    };
    setTimeout(feed, 400);
    const timer = setTimeout(() => child.kill(), 15_000);
    child.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

describe('client TLS through Postern', () => {
  let pki: TestPki;
  let leaf: Leaf;
  let sink: Sink;
  let dir: string;
  let p: TestPostern;
  let implicitPort: number;

  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('mx', 'ecdsa', ['mx.postern.test']);
    sink = await startSink({ xclient: true, keepBodies: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-tls-'));
    const yaml = basicYaml([`127.0.0.1:${sink.address().port}`], `tls:
  certificates:
    - { cert: ${leaf.cert}, key: ${leaf.key} }
  ticket_keys: { file: ${join(dir, 'tickets')} }
received_header: true
`).replace(
      '  - name: smtp\n    listen: 127.0.0.1:0\n',
      '  - name: smtp\n    listen: 127.0.0.1:0\n    tls: starttls\n  - name: smtps\n    listen: 127.0.0.1:0\n    tls: implicit\n',
    );
    p = await startPostern(yaml);
    implicitPort = p.postern.addresses().smtps!.port;
  });
  after(async () => {
    await p.stop();
    await sink.close();
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('STARTTLS with openssl s_client, then resumed with the saved session; visible in the record and metrics', async () => {
    const sess = join(dir, 'starttls.sess');
    const common = ['-connect', `127.0.0.1:${p.port}`, '-starttls', 'smtp', '-servername', 'mx.postern.test', '-CAfile', leaf.ca.cert, '-tls1_3', '-ign_eof'];
    const first = await sClient([...common, '-sess_out', sess], ['EHLO first.test', 'QUIT']);
    assert.match(first, /Verify return code: 0/);
    assert.match(first, /^New, TLSv1\.3/m);
    assert.doesNotMatch(first.split('250-')[1] ?? '', /STARTTLS/, 'not offered again after TLS');
    const second = await sClient([...common, '-sess_in', sess], ['EHLO second.test', 'QUIT']);
    assert.match(second, /^Reused, TLSv1\.3/m);
    const r1 = await p.waitFor((x) => x.event === 'session' && x.helo === 'first.test');
    const r2 = await p.waitFor((x) => x.event === 'session' && x.helo === 'second.test');
    assert.deepEqual({ ...(r1.tls as object) }, { version: 'TLSv1.3', cipher: (r1.tls as { cipher: string }).cipher, resumed: false, sni: 'mx.postern.test' });
    assert.equal((r2.tls as { resumed: boolean }).resumed, true);
    assert.deepEqual(r2.anomalies, []);
    const metrics = await p.postern.metrics.registry.getSingleMetricAsString('postern_tls_handshakes_total');
    assert.match(metrics, /listener="smtp",resumed="true"\} [1-9]/);
  });

  it('implicit TLS (465) with TLS 1.2, full then resumed', async () => {
    const sess = join(dir, 'implicit.sess');
    const common = ['-connect', `127.0.0.1:${implicitPort}`, '-servername', 'mx.postern.test', '-CAfile', leaf.ca.cert, '-tls1_2', '-ign_eof'];
    const first = await sClient([...common, '-sess_out', sess], ['EHLO implicit1.test', 'QUIT']);
    assert.match(first, /220 postern\.test ESMTP/);
    const second = await sClient([...common, '-sess_in', sess], ['EHLO implicit2.test', 'QUIT']);
    assert.match(second, /^Reused, TLSv1\.2/m);
    const r = await p.waitFor((x) => x.event === 'session' && x.helo === 'implicit2.test');
    assert.equal((r.tls as { resumed: boolean; version: string }).resumed, true);
    assert.equal(r.listener, 'smtps');
  });

  it('a message over STARTTLS carries the TLS details in the Received: header', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO plain.test');
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    const secure = tls.connect({ socket: c.socket, servername: 'mx.postern.test', ca: leaf.ca.pem });
    await new Promise<void>((r, j) => secure.once('secureConnect', r).once('error', j));
    const replies: string[] = [];
    let buf = '';
    secure.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\r\n')) !== -1) {
        replies.push(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    });
    const say = async (line: string, until: RegExp) => {
      secure.write(line + '\r\n');
      const end = Date.now() + 5000;
      while (!replies.some((r) => until.test(r))) {
        assert.ok(Date.now() < end, `no ${until} after ${line}: ${replies.join(' | ')}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      replies.length = 0;
    };
    await say('EHLO secure.test', /^250 /);
    await say('MAIL FROM:<tls@example.org>', /^250 /);
    await say('RCPT TO:<b@example.net>', /^250 /);
    await say('DATA', /^354 /);
    await say('Subject: over tls\r\n\r\nhello\r\n.', /^250 /);
    await say('QUIT', /^221 /);
    const m = sink.messages.find((x) => x.from === 'tls@example.org')!;
    assert.match(m.body!.toString(), /^Received: from secure\.test .*\r\n\t\(using TLSv1\.3 with cipher TLS_\w+\)\r\n\tby postern\.test \(Postern\) with ESMTPS id /);
  });

  it('bytes pipelined after STARTTLS are never answered, inside TLS or out', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO injector.test');
    c.socket.write('STARTTLS\r\nNOOP\r\n');
    await c.waitReplies(3);
    assert.equal(c.replies[2]!.code, 220);
    const secure = tls.connect({ socket: c.socket, servername: 'mx.postern.test', ca: leaf.ca.pem });
    await new Promise<void>((r, j) => secure.once('secureConnect', r).once('error', j));
    let inside = '';
    secure.on('data', (d: Buffer) => (inside += d.toString()));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(inside, '', 'the injected NOOP got no reply inside TLS');
    secure.write('EHLO injector.test\r\n');
    await new Promise((r) => setTimeout(r, 300));
    assert.match(inside, /^250-postern\.test/);
    secure.end('QUIT\r\n');
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'injector.test');
    assert.ok((rec.anomalies as string[]).includes('starttls_injection'));
    assert.ok(c.replies.length === 3, 'nothing in plaintext after the 220');
  });

  it('a failed handshake is tls_handshake_failed with the reason, after STARTTLS and on 465', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd('EHLO garbage.test');
    await c.cmd('STARTTLS');
    c.socket.write('this is not a ClientHello\r\n');
    await c.waitClose();
    const r1 = await p.waitFor((x) => x.event === 'session' && x.helo === 'garbage.test');
    assert.deepEqual(r1.anomalies, ['tls_handshake_failed']);
    assert.equal(r1.close, 'error');
    const a = await p.waitFor((x) => x.event === 'anomaly' && x.kind === 'tls_handshake_failed' && x.conn === r1.conn);
    assert.ok(String(a.detail).length > 0);
    // A plaintext client on the implicit-TLS port.
    const d = await SmtpClient.connect(implicitPort);
    d.socket.write('EHLO plaintext.test\r\n');
    await d.waitClose();
    await p.waitFor((x) => x.event === 'session' && x.listener === 'smtps' && x.close === 'error' && (x.anomalies as string[]).includes('tls_handshake_failed'));
  });

  it('QUIT and a reset under TLS: close=quit, never mistaken for a lost client', async () => {
    // Under TLS the 221 counts as written once it is encrypted; a reset before the client's
    // FIN is rst_after_quit, or quit_no_wait when it answers the 221's own write.
    const raw = await SmtpClient.connect(p.port);
    await raw.waitReplies(1);
    await raw.cmd('EHLO rst-tls.test');
    await raw.cmd('STARTTLS');
    const secure = tls.connect({ socket: raw.socket, servername: 'mx.postern.test', ca: leaf.ca.pem });
    await new Promise<void>((r, j) => secure.once('secureConnect', r).once('error', j));
    secure.on('error', () => undefined);
    let got = '';
    secure.on('data', (d: Buffer) => (got += d.toString()));
    secure.write('EHLO rst-tls.test\r\n');
    while (!/^250 /m.test(got)) await new Promise((r) => setTimeout(r, 10));
    secure.write('QUIT\r\n', () => raw.socket.resetAndDestroy());
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'rst-tls.test');
    assert.equal(rec.close, 'quit');
    for (const k of rec.anomalies as string[]) assert.ok(k === 'rst_after_quit' || k === 'quit_no_wait', JSON.stringify(rec));
    assert.ok(rec.tls);
  });

  it('swaks -tls and --tls-on-connect: delivered with no warnings', { skip: !swaksAvailable() && 'swaks not installed' }, async () => {
    const a = await swaks(['--server', `127.0.0.1:${p.port}`, '-tls', '--ehlo', 'swaks-tls.test', '--to', 'b@example.net', '--from', 'st@example.org']);
    assert.equal(a.code, 0, a.transcript);
    const b = await swaks(['--server', `127.0.0.1:${implicitPort}`, '--tls-on-connect', '--ehlo', 'swaks-tlsc.test', '--to', 'b@example.net', '--from', 'sc@example.org']);
    assert.equal(b.code, 0, b.transcript);
    for (const helo of ['swaks-tls.test', 'swaks-tlsc.test']) {
      const r = await p.waitFor((x) => x.event === 'session' && x.helo === helo);
      // Our close_notify waits for swaks's FIN (farewell.ts), so it is no longer left unread
      // to make swaks's kernel reset; anomaly-precision.test.ts checks that 50 times over.
      assert.deepEqual((r.anomalies as AnomalyKind[]).filter((k) => severityOf(k) === 'warning'), [], JSON.stringify(r));
      assert.ok(r.tls);
    }
  });
});
