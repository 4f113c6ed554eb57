// Inbound identity: PROXY headers from trusted balancers (listener proxy_protocol: on) and
// XCLIENT from trusted upstreams; the same from untrusted peers is refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Command, IPv4Address, IPv4ProxyAddress, TransportProtocol, V1ProxyProtocol, V2ProxyProtocol, INETProtocol, Peer } from 'proxy-protocol-js';
import { encodeProxyV2 } from '../../src/proxy/index.js';
import { startSink, type Sink } from '../../src/sink/index.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

describe('PROXY header from a trusted balancer', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(
      basicYaml([`127.0.0.1:${sink.address().port}`], 'limits: { per_ip: { connections: 1, rate: 100/1m } }\n').replace(
        '    listen: 127.0.0.1:0\n',
        '    listen: 127.0.0.1:0\n    proxy_protocol: on\n    trusted_proxies: [127.0.0.1/32]\n    proxy_protocol_timeout: 500ms\n',
      ),
    );
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  it('v2 (built by proxy-protocol-js): the backend and the record get the real client', async () => {
    const header = new V2ProxyProtocol(
      Command.PROXY,
      TransportProtocol.STREAM,
      new IPv4ProxyAddress(IPv4Address.createFrom([192, 0, 2, 10]), 4321, IPv4Address.createFrom([198, 51, 100, 1]), 25),
    ).build();
    const c = await SmtpClient.connect(p.port);
    const balancer = c.socket.localPort!;
    c.socket.write(Buffer.from(header));
    const r = await sendMessage(c, { helo: 'v2.test' });
    assert.equal(r.code, 250);
    const m = sink.messages.find((x) => x.helo === 'v2.test')!;
    assert.deepEqual(m.client, { address: '192.0.2.10', port: 4321 });
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'v2.test');
    assert.deepEqual(rec.client, { address: '192.0.2.10', port: 4321 });
    assert.equal(rec.proxy, `127.0.0.1:${balancer}`);
    assert.deepEqual(rec.anomalies, []);
  });

  it('v1 (built by proxy-protocol-js), with the first command in the same write', async () => {
    const line = new V1ProxyProtocol(INETProtocol.TCP6, new Peer('2001:db8::7', 5555), new Peer('2001:db8::1', 25)).build();
    const c = await SmtpClient.connect(p.port);
    c.socket.write(line + 'EHLO v1.test\r\n');
    const rs = await c.waitReplies(2);
    assert.deepEqual(rs.map((r) => r.code), [220, 250]);
    await c.cmd('MAIL FROM:<a@example.org>');
    await c.cmd('RCPT TO:<b@example.net>');
    await c.cmd('DATA');
    await c.send('Subject: v1\r\n\r\n.\r\n');
    await c.cmd('QUIT');
    const m = sink.messages.find((x) => x.helo === 'v1.test')!;
    assert.deepEqual(m.client, { address: '2001:db8::7', port: 5555 });
  });

  it('swaks --proxy-version 2 as the balancer', { skip: !swaksAvailable() && 'swaks not installed' }, async () => {
    const res = await swaks([
      '--server', `127.0.0.1:${p.port}`, '--ehlo', 'swaks-proxy.test', '--to', 'b@example.net', '--from', 'a@example.org',
      '--proxy-version', '2', '--proxy-family', 'AF_INET', '--proxy-protocol', 'STREAM', '--proxy-command', 'PROXY', '--proxy-source', '203.0.113.5', '--proxy-source-port', '6000',
      '--proxy-dest', '127.0.0.1', '--proxy-dest-port', '25',
    ]);
    assert.equal(res.code, 0, res.transcript);
    const m = sink.messages.find((x) => x.helo === 'swaks-proxy.test')!;
    assert.deepEqual(m.client, { address: '203.0.113.5', port: 6000 });
  });

  it('a v2 LOCAL header (health check) keeps the socket addresses', async () => {
    const c = await SmtpClient.connect(p.port);
    const port = c.socket.localPort!;
    c.socket.write(encodeProxyV2({ command: 'local' }));
    assert.equal((await c.waitReplies(1))[0]!.code, 220);
    await c.cmd('EHLO local.test');
    await c.cmd('QUIT');
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'local.test');
    assert.deepEqual(rec.client, { address: '127.0.0.1', port });
  });

  it('an invalid or late header: greeting, then 503 5.7.0 to all but QUIT, and the anomaly', async () => {
    for (const [what, bytes] of [['garbage', 'EHLO sneaky.test\r\n'], ['late', null]] as const) {
      const c = await SmtpClient.connect(p.port);
      if (bytes) c.socket.write(bytes);
      const [g] = await c.waitReplies(1, 3000);
      assert.equal(g!.code, 220, what);
      const e = await c.cmd('EHLO refused.test');
      assert.equal(e.code, 503);
      assert.match(e.lines[0]!, /^5\.7\.0 Command refused, required Proxy negotiation failed/);
      assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 503);
      assert.equal((await c.cmd('QUIT')).code, 221);
      await c.waitClose();
    }
    const recs = p.records.filter((x) => x.event === 'anomaly' && x.kind === 'proxy_header_invalid');
    assert.equal(recs.length, 2);
  });

  it('a header naming 0.0.0.0:0, [::]:N or port 0 as the client is invalid: 503 5.7.0, the anomaly, and the backend never hears of it (issue 21)', async () => {
    const zero = IPv4Address.createFrom([0, 0, 0, 0]);
    const headers: [string, Buffer][] = [
      ['v2 0.0.0.0:0', Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, new IPv4ProxyAddress(zero, 0, IPv4Address.createFrom([127, 0, 0, 1]), 25)).build())],
      ['v2 [::]:4000', encodeProxyV2({ command: 'proxy', source: { address: '::', port: 4000 }, destination: { address: '::1', port: 25 } })],
      ['v1 192.0.2.9:0', Buffer.from(new V1ProxyProtocol(INETProtocol.TCP4, new Peer('192.0.2.9', 0), new Peer('127.0.0.1', 25)).build())],
    ];
    const before = p.records.filter((x) => x.event === 'anomaly' && x.kind === 'proxy_header_invalid').length;
    for (const [what, header] of headers) {
      const c = await SmtpClient.connect(p.port);
      const port = c.socket.localPort!;
      c.socket.write(header);
      const [g] = await c.waitReplies(1, 3000);
      assert.equal(g!.code, 220, what);
      const e = await c.cmd('EHLO zero.test');
      assert.equal(e.code, 503, what);
      assert.match(e.lines[0]!, /^5\.7\.0 Command refused, required Proxy negotiation failed/);
      for (const cmd of ['MAIL FROM:<a@example.org>', 'RCPT TO:<b@example.net>', 'DATA']) assert.equal((await c.cmd(cmd)).code, 503, `${what}: ${cmd}`);
      assert.equal((await c.cmd('QUIT')).code, 221);
      await c.waitClose();
      const rec = await p.waitFor((x) => x.event === 'session' && (x.client as { port: number }).port === port);
      assert.deepEqual(rec.client, { address: '127.0.0.1', port }, `${what}: the session keeps the socket's address`);
      assert.equal(rec.backend, null, `${what}: no backend was bound`);
      assert.ok((rec.anomalies as string[]).includes('proxy_header_invalid'), what);
    }
    const recs = p.records.filter((x) => x.event === 'anomaly' && x.kind === 'proxy_header_invalid').slice(before);
    assert.equal(recs.length, headers.length);
    for (const r of recs) assert.match(String(r.detail), /UNSPECIFIED_SOURCE/);
    assert.ok(
      sink.messages.every((m) => m.client.address !== '0.0.0.0' && m.client.address !== '::' && m.client.port !== 0),
      'no message reached the backend from a zero client',
    );
  });

  it('per-IP limits count the real client behind the balancer', async () => {
    const hdr = (src: number) =>
      Buffer.from(
        new V2ProxyProtocol(
          Command.PROXY,
          TransportProtocol.STREAM,
          new IPv4ProxyAddress(IPv4Address.createFrom([192, 0, 2, src]), 1000, IPv4Address.createFrom([127, 0, 0, 1]), 25),
        ).build(),
      );
    const a = await SmtpClient.connect(p.port);
    a.socket.write(hdr(50));
    assert.equal((await a.waitReplies(1))[0]!.code, 220);
    const b = await SmtpClient.connect(p.port);
    b.socket.write(hdr(50));
    assert.equal((await b.waitReplies(1))[0]!.code, 421, 'the same real client twice: per_ip.connections is 1');
    const c = await SmtpClient.connect(p.port);
    c.socket.write(hdr(51));
    assert.equal((await c.waitReplies(1))[0]!.code, 220, 'another real client behind the same balancer');
    a.destroy();
    c.destroy();
  });
});

describe('untrusted peers and XCLIENT from trusted upstreams', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true });
    // 127.0.0.1 may send a PROXY header and XCLIENT (two grants); ::1 may send XCLIENT.
    p = await startPostern(
      basicYaml([`127.0.0.1:${sink.address().port}`]).replace(
        '    listen: 127.0.0.1:0\n',
        "    listen: 127.0.0.1:0\n    proxy_protocol: on\n    trusted_proxies: [127.0.0.1/32]\n    xclient_from: [127.0.0.1/32, '::1']\n",
      ),
    );
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  it('an untrusted peer is an ordinary client: its PROXY line gets 503 5.5.1 and the anomaly', async () => {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.2' });
    c.socket.write('PROXY TCP4 192.0.2.99 127.0.0.1 1234 25\r\n');
    const rs = await c.waitReplies(2);
    assert.deepEqual(rs.map((r) => r.code), [220, 503]);
    assert.match(rs[1]!.lines[0]!, /^5\.5\.1/);
    const e = await c.cmd('EHLO untrusted.test');
    assert.ok(!e.lines.some((l) => l.startsWith('XCLIENT')), 'XCLIENT is not offered to untrusted peers');
    const x = await c.cmd('XCLIENT ADDR=192.0.2.99');
    assert.equal(x.code, 550);
    const r = await sendMessage(c, { helo: 'untrusted.test' });
    assert.equal(r.code, 250);
    assert.equal(sink.messages.find((m) => m.helo === 'untrusted.test')!.client.address, '127.0.0.2');
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'untrusted.test');
    assert.deepEqual([...(rec.anomalies as string[])].sort(), ['proxy_header_invalid', 'xclient_untrusted']);
  });

  it('swaks --proxy-version 1 from an untrusted peer is refused and the client stays itself', { skip: !swaksAvailable() && 'swaks not installed' }, async () => {
    const res = await swaks([
      '--server', `127.0.0.1:${p.port}`, '--local-interface', '127.0.0.2', '--ehlo', 'swaks-untrusted.test', '--to', 'b@example.net',
      '--proxy-version', '1', '--proxy-family', 'TCP4', '--proxy-source', '192.0.2.200', '--proxy-source-port', '1234',
      '--proxy-dest', '127.0.0.1', '--proxy-dest-port', '25', '--quit-after', 'EHLO',
    ]);
    assert.match(res.transcript, /503 5\.5\.1/, res.transcript);
    const rec = await p.waitFor((x) => x.event === 'session' && (x.client as { address: string }).address === '127.0.0.2' && x.helo === 'swaks-untrusted.test');
    assert.ok((rec.anomalies as string[]).includes('proxy_header_invalid'));
  });

  it('XCLIENT from a trusted upstream (after its PROXY LOCAL header) names the client to the backend', async () => {
    const c = await SmtpClient.connect(p.port);
    c.socket.write(encodeProxyV2({ command: 'local' }));
    await c.waitReplies(1);
    const e = await c.cmd('EHLO upstream.test');
    assert.ok(e.lines.includes('XCLIENT ADDR PORT NAME HELO PROTO LOGIN DESTADDR DESTPORT'), e.lines.join('|'));
    // A HELO name with a space, xtext-encoded, must not upset the backend handshake.
    assert.equal((await c.cmd('XCLIENT HELO=real+20client')).code, 220);
    assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 250, 'HELO told by XCLIENT counts as a greeting');
    assert.equal((await c.cmd('RSET')).code, 250);
    const x = await c.cmd('XCLIENT ADDR=IPV6:2001:db8::42 PORT=2525 NAME=[UNAVAILABLE] PROTO=ESMTP');
    assert.equal(x.code, 220);
    assert.equal((await c.cmd('MAIL FROM:<a@example.org>')).code, 503, 'a fresh EHLO is needed after XCLIENT');
    // Rights follow the told client (not in xclient_from), as Postfix re-checks them.
    assert.equal((await c.cmd('XCLIENT ADDR=192.0.2.1')).code, 550);
    const r = await sendMessage(c, { helo: 'told.test' }).catch((err: Error) => err);
    assert.ok(!(r instanceof Error), String(r));
    const m = sink.messages.find((x) => x.helo === 'told.test')!;
    assert.deepEqual(m.client, { address: '2001:db8::42', port: 2525 });
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'told.test');
    assert.deepEqual(rec.client, { address: '2001:db8::42', port: 2525 });
    assert.match(String(rec.proxy), /^127\.0\.0\.1:\d+$/);
    assert.deepEqual(rec.anomalies, ['xclient_untrusted'], 'the second XCLIENT, from the told client');
  });

  it('refuses bad XCLIENT attributes and XCLIENT inside a transaction', async () => {
    const c = await SmtpClient.connect(p.port);
    c.socket.write(encodeProxyV2({ command: 'local' }));
    await c.waitReplies(1);
    await c.cmd('EHLO upstream2.test');
    assert.equal((await c.cmd('XCLIENT FOO=1')).code, 501);
    assert.equal((await c.cmd('XCLIENT ADDR=not-an-ip')).code, 501);
    assert.equal((await c.cmd('XCLIENT ADDR=::1')).code, 220, 'a bare IPv6 address is accepted too');
    await c.cmd('EHLO upstream2.test');
    await c.cmd('MAIL FROM:<a@example.org>');
    assert.equal((await c.cmd('XCLIENT ADDR=192.0.2.1')).code, 503);
    await c.cmd('QUIT');
  });
});
