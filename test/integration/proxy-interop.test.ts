// Outbound PROXY interop: Postern with backends.identity proxy-v2 / proxy-v1 in front of
// real Postfix 3.7 (smtpd_upstream_proxy_protocol = haproxy) and real Exim 4.96
// (hosts_proxy). Each backend's own log must name the real client, address and port.
// Health checks send v2 LOCAL, or for v1 a TCP4 line naming the check's own connection
// (Postfix refuses v1 UNKNOWN on purpose), and must keep the backends up.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { handshake, type BackendClient } from '../../src/backend/handshake.js';
import { buildProxyHeader, MAX_PROXY_HEADER } from '../../src/backend/proxy-out.js';
import type { HostPort, Identity } from '../../src/config/types.js';
import { encodeProxyV2 } from '../../src/proxy/index.js';
import { eximSkipReason, startExim, type EximInstance } from '../helpers/exim.js';
import { ipv6LoopbackAvailable, postfixAvailable, RawSmtp, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Postern with one identity; a second listener on [::1] when `v6`. */
function yaml(identity: Identity, backendPort: number, v6: boolean): string {
  let y = basicYaml([`127.0.0.1:${backendPort}`]).replace('identity: xclient', `identity: ${identity}`);
  if (v6) y = y.replace('    listen: 127.0.0.1:0\n', '    listen: 127.0.0.1:0\n  - name: smtp6\n    listen: "[::1]:0"\n');
  return y;
}

/** A whole session from `localAddress` through Postern; returns the client's port. */
async function sessionFrom(p: TestPostern, localAddress: string, helo: string, host = '127.0.0.1', port = p.port): Promise<number> {
  const c = await SmtpClient.connect(port, { host, localAddress });
  const clientPort = c.socket.localPort!;
  const r = await sendMessage(c, { helo, from: `${helo}@example.org` });
  assert.equal(r.code, 250, r.lines.join(' '));
  return clientPort;
}

/** handshake() straight to a backend with the largest v2 header Postern can build, then a message. */
async function bigHeaderSession(server: HostPort, identity: Identity, client: BackendClient): Promise<void> {
  const header = buildProxyHeader(2, {
    client: { address: client.address, port: client.port },
    local: { address: client.destAddress, port: client.destPort },
    tls: client.tls ?? null,
    connId: client.connId ?? '',
  });
  assert.equal(header.length, MAX_PROXY_HEADER, 'the largest header Postern sends');
  const b = await handshake(server, client, { identity, hostname: 'postern.test', connectTimeout: 2000, replyTimeout: 5000 });
  try {
    for (const [line, code] of [
      ['MAIL FROM:<big@example.org>', 250],
      ['RCPT TO:<x@example.net>', 250],
      ['DATA', 354],
      ['Subject: big header\r\n\r\nhi\r\n.', 250],
    ] as const) {
      const r = await b.conn.command(line, 5000);
      assert.equal(r.code, code, `${line}: ${r.lines.join(' ')}`);
    }
  } finally {
    b.conn.quit();
  }
}

const longSni = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
const bigClient = (address: string, port: number): BackendClient => ({
  address,
  port,
  destAddress: '127.0.0.1',
  destPort: 25,
  helo: 'big.test',
  proto: 'ESMTP',
  name: null,
  login: null,
  // Sized so the header is exactly MAX_PROXY_HEADER bytes once the SNI is dropped.
  tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384_' + 'X'.repeat(29), sni: longSni },
  connId: 'u'.repeat(128),
});

const pfSkip = !postfixAvailable() ? 'postfix is not installed (apt-get install postfix), or not root' : false;

describe('Postern proxy-v2 / proxy-v1 in front of real Postfix 3.7', { skip: pfSkip }, () => {
  let pf: PostfixInstance;
  let p2: TestPostern;
  let p1: TestPostern;
  let v6 = false;

  before(async () => {
    v6 = await ipv6LoopbackAvailable();
    // Started without PROXY (startPostfix's readiness probe sends no header), then switched:
    // postconf() reloads and waits for the master.
    pf = await startPostfix();
    await pf.postconf({ smtpd_upstream_proxy_protocol: 'haproxy', smtpd_upstream_proxy_timeout: '5s' });
    p2 = await startPostern(yaml('proxy-v2', pf.port, v6));
    p1 = await startPostern(yaml('proxy-v1', pf.port, false));
  });
  after(async () => {
    await p2?.stop();
    await p1?.stop();
    await pf?.stop();
  });

  it('health checks (v2 LOCAL, v1 TCP4 with our own addresses) keep Postfix up and complete cleanly', async () => {
    assert.equal(p2.postern.pool.servers[0]!.up, true, p2.postern.pool.servers[0]!.reason);
    assert.equal(p1.postern.pool.servers[0]!.up, true, p1.postern.pool.servers[0]!.reason);
    await sleep(1500); // interval 1s: at least one more round each
    assert.equal(p2.postern.pool.servers[0]!.up, true, p2.postern.pool.servers[0]!.reason);
    assert.equal(p1.postern.pool.servers[0]!.up, true, p1.postern.pool.servers[0]!.reason);
    // Only what follows the switch to PROXY (the harness's readiness probe came before).
    const log = pf.readLog().split(/\/master\[\d+\]: reload -- /)[1] ?? '';
    // A finished check: EHLO and QUIT, from Postern's own address (LOCAL keeps it; v1 names it).
    assert.match(log, /disconnect from unknown\[127\.0\.0\.1\]:\d+ ehlo=1 quit=1 commands=2/);
    assert.doesNotMatch(log, /warning: haproxy|Server local error|lost connection after CONNECT/);
  });

  it('proxy-v2: Postfix logs each real IPv4 client, address and port', async () => {
    for (const local of ['127.0.0.2', '127.0.0.3']) {
      const port = await sessionFrom(p2, local, `v2-${local}.test`);
      await pf.waitForLog(new RegExp(`connect from unknown\\[${esc(local)}\\]:${port}\\b`));
      await pf.waitForLog(new RegExp(`client=unknown\\[${esc(local)}\\]:${port}\\b`));
    }
  });

  it('proxy-v1: Postfix logs each real IPv4 client, address and port', async () => {
    for (const local of ['127.0.0.4', '127.0.0.5']) {
      const port = await sessionFrom(p1, local, `v1-${local}.test`);
      await pf.waitForLog(new RegExp(`client=unknown\\[${esc(local)}\\]:${port}\\b`));
    }
  });

  it('proxy-v2: an IPv6 client on ::1 (INET6 header)', async (t) => {
    if (!v6) return t.skip('no ::1 on this machine');
    const port = await sessionFrom(p2, '::1', 'v2-six.test', '::1', p2.postern.addresses().smtp6!.port);
    await pf.waitForLog(new RegExp(`client=unknown\\[::1\\]:${port}\\b`));
  });

  it('swaks through Postern (proxy-v2 and proxy-v1) gets 250 from Postfix', { skip: !swaksAvailable() && 'swaks is not installed' }, async () => {
    for (const [p, local] of [
      [p2, '127.0.0.6'],
      [p1, '127.0.0.7'],
    ] as const) {
      const res = await swaks(['--server', `127.0.0.1:${p.port}`, '--local-interface', local, '--ehlo', `swaks-${local}.test`, '--from', 's@example.org', '--to', 'r@example.net']);
      assert.equal(res.code, 0, res.transcript);
      assert.match(res.transcript, /<- +250 2\.0\.0 Ok: queued/);
      await pf.waitForLog(new RegExp(`client=unknown\\[${esc(local)}\\]:\\d+`));
    }
  });

  it(`a v2 header at the ${MAX_PROXY_HEADER}-byte budget (long SNI dropped, TLS and UNIQUE_ID kept) is accepted`, async () => {
    await bigHeaderSession({ host: '127.0.0.1', port: pf.port, text: `127.0.0.1:${pf.port}` }, 'proxy-v2', bigClient('127.0.0.77', 40123));
    // (127.0.0.x: Postfix relays only for mynetworks)
    await pf.waitForLog(/client=unknown\[127\.0\.0\.77\]:40123\b/);
  });
});

const eximSkip = await eximSkipReason();

describe('Postern proxy-v2 / proxy-v1 in front of real Exim 4.96', { skip: eximSkip ?? false }, () => {
  let ex: EximInstance;
  let p2: TestPostern;
  let p1: TestPostern;
  let v6 = false;

  before(async () => {
    v6 = await ipv6LoopbackAvailable();
    ex = await startExim();
    p2 = await startPostern(yaml('proxy-v2', ex.port, v6));
    p1 = await startPostern(yaml('proxy-v1', ex.port, false));
  });
  after(async () => {
    await p2?.stop();
    await p1?.stop();
    await ex?.stop();
  });

  it('health checks (v2 LOCAL, v1 TCP4 with our own addresses) keep Exim up', async () => {
    assert.equal(p2.postern.pool.servers[0]!.up, true, p2.postern.pool.servers[0]!.reason);
    assert.equal(p1.postern.pool.servers[0]!.up, true, p1.postern.pool.servers[0]!.reason);
    await sleep(1500);
    assert.equal(p2.postern.pool.servers[0]!.up, true, p2.postern.pool.servers[0]!.reason);
    assert.equal(p1.postern.pool.servers[0]!.up, true, p1.postern.pool.servers[0]!.reason);
    const log = ex.readLog();
    assert.match(log, /SMTP connection from \(postern\.test\) \[127\.0\.0\.1\]:\d+ closed by QUIT/);
    assert.doesNotMatch(log, /Proxy negotiation failed|unreasonably large/);
  });

  it('proxy-v2: Exim logs each real client, address and port, with the proxy as PRX', async () => {
    for (const local of ['127.0.0.2', '127.0.0.3']) {
      const port = await sessionFrom(p2, local, `v2-${local}.test`);
      const m = await ex.waitForLog(new RegExp(`(\\S+) <= v2-${esc(local)}\\.test@example\\.org H=\\(v2-${esc(local)}\\.test\\) \\[${esc(local)}\\]:${port} P=esmtp PRX=127\\.0\\.0\\.1 `));
      // Exim's message id (`250 OK id=...`) joins Postern's transaction record to Exim's log.
      const tx = await p2.waitFor((r) => r.event === 'transaction' && r.from === `v2-${local}.test@example.org`);
      assert.equal(tx.queue_id, m[1]);
    }
  });

  it('proxy-v1: Exim logs each real client, address and port', async () => {
    for (const local of ['127.0.0.4', '127.0.0.5']) {
      const port = await sessionFrom(p1, local, `v1-${local}.test`);
      await ex.waitForLog(new RegExp(`H=\\(v1-${esc(local)}\\.test\\) \\[${esc(local)}\\]:${port} P=esmtp PRX=127\\.0\\.0\\.1 `));
    }
  });

  it('proxy-v2: an IPv6 client on ::1', async (t) => {
    if (!v6) return t.skip('no ::1 on this machine');
    const port = await sessionFrom(p2, '::1', 'v2-six.test', '::1', p2.postern.addresses().smtp6!.port);
    await ex.waitForLog(new RegExp(`H=\\(v2-six\\.test\\) \\[::1\\]:${port} P=esmtp PRX=`));
  });

  it('swaks through Postern (proxy-v1 and proxy-v2) gets 250 from Exim', { skip: !swaksAvailable() && 'swaks is not installed' }, async () => {
    for (const [p, local] of [
      [p1, '127.0.0.6'],
      [p2, '127.0.0.7'],
    ] as const) {
      const res = await swaks(['--server', `127.0.0.1:${p.port}`, '--local-interface', local, '--ehlo', `swaks-${local}.test`, '--from', 's@example.org', '--to', 'r@example.net']);
      assert.equal(res.code, 0, res.transcript);
      assert.match(res.transcript, /<- +250 OK id=/);
      await ex.waitForLog(new RegExp(`H=\\(swaks-${esc(local)}\\.test\\) \\[${esc(local)}\\]:\\d+ `));
    }
  });

  it(`a v2 header at the ${MAX_PROXY_HEADER}-byte budget is accepted by Exim; one byte more loses the client (why the budget)`, async () => {
    await bigHeaderSession({ host: '127.0.0.1', port: ex.port, text: `127.0.0.1:${ex.port}` }, 'proxy-v2', bigClient('192.0.2.77', 40123));
    await ex.waitForLog(/<= big@example\.org H=\(big\.test\) \[192\.0\.2\.77\]:40123 /);

    // The control: 233 bytes from a hosts_proxy address. Exim 4.96 gives up on the header
    // ("unreasonably large") after its first 16 bytes without failing the session: the
    // rest is read as an SMTP command line and the session goes on as the proxy itself.
    const over = encodeProxyV2({
      command: 'proxy',
      source: { address: '192.0.2.78', port: 1 },
      destination: { address: '127.0.0.1', port: 25 },
      authority: 'x'.repeat(MAX_PROXY_HEADER + 1 - 16 - 12 - 3),
    });
    assert.equal(over.length, MAX_PROXY_HEADER + 1);
    const c = await RawSmtp.connect('127.0.0.1', ex.port, { preface: over, localAddress: '127.0.0.1' });
    const port = c.socket.localPort!;
    const r = await c.command('EHLO over.test');
    assert.match(r, /^501 NUL characters are not allowed/, r);
    await c.quit();
    await ex.waitForLog(new RegExp(`SMTP syntax error in ".*xxxx(EHLO over\\.test)?" H=\\[127\\.0\\.0\\.1\\]:${port} NUL character`));
    assert.doesNotMatch(ex.readLog(), /192\.0\.2\.78/, 'the header\'s client never reaches the log');
  });
});
