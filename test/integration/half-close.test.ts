// A client that half-closes right after its last pipelined commands (Exim sends MAIL, RCPTs,
// BDAT LAST, the body and QUIT in one write, then its FIN, and reads the replies) gets every
// reply, the 221 included, and its session ends as a QUIT: found with Exim in front of
// Postfix pools (routing.test.ts, pools: postfix), where Postern answered only the MAIL and closed.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { startPostern, type TestPostern } from '../helpers/postern.js';

/** Sends `text` once the greeting is in, then half-closes; resolves with all it read until the server closed. */
function pipelineThenFin(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    let sent = false;
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no close from the server; got ${JSON.stringify(got)}`));
    }, 15_000);
    s.on('data', (d) => {
      got += d.toString('latin1');
      if (!sent && /^220 /m.test(got)) {
        sent = true;
        s.end(text); // the commands, then our FIN at once
      }
    });
    s.on('error', reject);
    s.on('end', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

describe('a client that half-closes after pipelining its last commands', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(`hostname: half.test
listeners: [ { name: mx, listen: 127.0.0.1:0 } ]
backends: { identity: xclient, servers: [ { address: 127.0.0.1:${sink.address().port} } ] }
`);
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  it('gets every reply and the 221 (MAIL held until the backend is bound, RCPT, RSET, QUIT, FIN)', async () => {
    for (let i = 0; i < 5; i++) {
      const got = await pipelineThenFin(p.postern.addresses().mx!.port, `EHLO half${i}.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRSET\r\nQUIT\r\n`);
      const codes = got.split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3));
      assert.deepEqual(codes, ['220', '250', '250', '250', '250', '221'], got);
      const rec = await p.waitFor((r) => r.event === 'session' && r.helo === `half${i}.test`, 10_000);
      assert.equal(rec.close, 'quit');
    }
  });

  it('without QUIT: its commands are answered, then the session ends as the client closing', async () => {
    const got = await pipelineThenFin(p.postern.addresses().mx!.port, 'EHLO nq.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n');
    const codes = got.split('\r\n').filter((l) => /^\d{3} /.test(l)).map((l) => l.slice(0, 3));
    assert.deepEqual(codes, ['220', '250', '250', '250'], got);
    const rec = await p.waitFor((r) => r.event === 'session' && r.helo === 'nq.test', 10_000);
    assert.equal(rec.close, 'client_closed');
  });
});
