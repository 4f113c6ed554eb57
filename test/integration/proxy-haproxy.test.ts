// Inbound PROXY from a real balancer: HAProxy (send-proxy-v2 / send-proxy) in front of
// Postern (listener proxy_protocol: on, trusted_proxies: [127.0.0.1/32]), Postern in
// xclient mode to real Postfix. Postfix must log the address and port HAProxy's client
// had, and Postern's session record must name the client and, as `proxy`, HAProxy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { haproxyAvailable, startHaproxy, type HaproxyInstance } from '../helpers/haproxy.js';
import { postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const skip = !postfixAvailable()
  ? 'postfix is not installed (apt-get install postfix), or not root'
  : !haproxyAvailable()
    ? 'haproxy is not installed (apt-get install haproxy)'
    : false;

describe('HAProxy with send-proxy-v2 / send-proxy in front of Postern (xclient to Postfix)', { skip }, () => {
  let pf: PostfixInstance;
  let p: TestPostern;
  let hv2: HaproxyInstance;
  let hv1: HaproxyInstance;

  before(async () => {
    pf = await startPostfix();
    const yaml = basicYaml([`127.0.0.1:${pf.port}`]).replace(
      '    listen: 127.0.0.1:0\n',
      '    listen: 127.0.0.1:0\n    proxy_protocol: on\n    trusted_proxies: [127.0.0.1/32]\n    proxy_protocol_timeout: 3s\n',
    );
    p = await startPostern(yaml);
    hv2 = await startHaproxy({ target: { host: p.host, port: p.port }, sendProxy: 'v2' });
    hv1 = await startHaproxy({ target: { host: p.host, port: p.port }, sendProxy: 'v1' });
  });
  after(async () => {
    await hv2?.stop();
    await hv1?.stop();
    await p?.stop();
    await pf?.stop();
  });

  for (const [version, local] of [
    ['v2', '127.0.0.2'],
    ['v1', '127.0.0.3'],
  ] as const) {
    it(`${version}: Postfix logs the client HAProxy had; Postern's record names client and balancer`, async () => {
      const h = version === 'v2' ? hv2 : hv1;
      const c = await SmtpClient.connect(h.port, { localAddress: local });
      const port = c.socket.localPort!;
      const helo = `haproxy-${version}.test`;
      const r = await sendMessage(c, { helo });
      assert.equal(r.code, 250, r.lines.join(' '));
      await pf.waitForLog(new RegExp(`client=unknown\\[${esc(local)}\\]:${port}\\b`));
      const rec = await p.waitFor((x) => x.event === 'session' && x.helo === helo);
      assert.deepEqual(rec.client, { address: local, port });
      assert.match(String(rec.proxy), /^127\.0\.0\.1:\d+$/, 'the balancer, as seen by Postern');
      assert.deepEqual(rec.anomalies, []);
    });
  }

  it('swaks through HAProxy (v2) and Postern gets 250 from Postfix', { skip: !swaksAvailable() && 'swaks is not installed' }, async () => {
    const res = await swaks(['--server', `127.0.0.1:${hv2.port}`, '--local-interface', '127.0.0.4', '--ehlo', 'swaks-haproxy.test', '--from', 's@example.org', '--to', 'r@example.net']);
    assert.equal(res.code, 0, res.transcript);
    assert.match(res.transcript, /<- +250 2\.0\.0 Ok: queued/);
    await pf.waitForLog(/client=unknown\[127\.0\.0\.4\]:\d+/);
  });
});
