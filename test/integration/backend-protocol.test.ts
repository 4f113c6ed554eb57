// A backend that breaks SMTP mid-session: the client gets 421 4.4.2, never a made-up 250,
// and the session names backend_protocol_error.
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { basicYaml, startPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';

/** A backend that behaves until MAIL, then answers with `mailReply` (raw bytes). */
async function brokenBackend(mailReply: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.write('220 broken.test ESMTP\r\n');
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\r\n')) !== -1) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (/^EHLO/i.test(line)) s.write('250-broken.test\r\n250-PIPELINING\r\n250 XCLIENT ADDR PORT NAME HELO\r\n');
        else if (/^XCLIENT/i.test(line)) s.write('220 broken.test ESMTP\r\n');
        else if (/^QUIT/i.test(line)) s.end('221 bye\r\n');
        else if (/^MAIL/i.test(line)) s.write(mailReply);
        else s.write('250 ok\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

describe('backend protocol errors', () => {
  for (const [what, reply] of [
    ['a malformed reply', 'this is not SMTP\r\n'],
    ['an unsolicited reply after the one asked for', '250 ok\r\n250 surprise\r\n'],
  ] as const) {
    it(`${what}: 421 4.4.2 to the client and backend_protocol_error`, async () => {
      const backend = await brokenBackend(reply);
      const p = await startPostern(basicYaml([`127.0.0.1:${backend.port}`]));
      try {
        const c = await SmtpClient.connect(p.port);
        await c.waitReplies(1);
        await c.cmd('EHLO victim.test');
        const rs = await c.send('MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n', 1);
        await c.waitClose();
        const text = c.received.toString();
        assert.match(text, /421 4\.4\.2 /);
        assert.ok(rs[0]!.code === 421 || rs[0]!.code === 250, String(rs[0]!.code));
        const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'victim.test');
        assert.ok((rec.anomalies as string[]).includes('backend_protocol_error'), JSON.stringify(rec));
        assert.equal(rec.close, 'backend_failed');
      } finally {
        await p.stop();
        await backend.close();
      }
    });
  }
});
