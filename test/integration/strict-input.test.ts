// Input is taken as sent, never rewritten (issue 13 finding 3 and "strict input"): invalid
// UTF-8 is refused before anything reaches the backend (a lossy decode once turned
// `inv\xc3(utf` into an address the client never sent), non-ASCII needs SMTPUTF8 (RFC 6531),
// a parameter given twice is refused, client text is echoed printable, and a PROXY v2 header
// from a peer not allowed to send one is not read as commands.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';

describe('strict input', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`]));
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  const client = async (helo = 'strict.test') => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    await c.cmd(`EHLO ${helo}`);
    return c;
  };

  it('MAIL with invalid UTF-8 (SMTPUTF8 declared): 500 5.5.2, and nothing reaches the backend', async () => {
    const c = await client();
    const bad = Buffer.concat([Buffer.from('MAIL FROM:<inv'), Buffer.from([0xc3, 0x28]), Buffer.from('utf@example.org> SMTPUTF8\r\n')]);
    const [r] = await c.send(bad);
    assert.equal(r!.code, 500);
    assert.match(r!.lines[0]!, /^5\.5\.2 .*UTF-8/);
    // The session goes on: a valid MAIL works.
    assert.equal((await c.cmd('MAIL FROM:<ok@example.org>')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<r@example.net>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const [d] = await c.send('Subject: x\r\n\r\nbody\r\n.\r\n');
    assert.equal(d!.code, 250);
    await c.cmd('QUIT');
    const msgs = await sink.waitFor(1);
    assert.ok(msgs.every((m) => !m.from.includes('\ufffd') && !m.from.startsWith('inv')), JSON.stringify(msgs.map((m) => m.from)));
  });

  it('a non-ASCII address needs SMTPUTF8 on its MAIL (553 5.6.7), and passes with it', async () => {
    const c = await client();
    const r = await c.cmd('MAIL FROM:<jörg@example.org>');
    assert.equal(r.code, 553);
    assert.match(r.lines[0]!, /^5\.6\.7 /);
    assert.equal((await c.cmd('MAIL FROM:<ok@example.org>')).code, 250);
    const rc = await c.cmd('RCPT TO:<björn@example.net>');
    assert.equal(rc.code, 553, 'a RCPT of a transaction without SMTPUTF8 too');
    await c.cmd('RSET');
    assert.equal((await c.cmd('MAIL FROM:<jörg@example.org> SMTPUTF8')).code, 250);
    assert.equal((await c.cmd('RCPT TO:<björn@example.net>')).code, 250);
    await c.cmd('QUIT');
  });

  it('a parameter given twice is 501 5.5.4 (two SIZE= would mean two things to two servers)', async () => {
    const c = await client();
    const r = await c.cmd('MAIL FROM:<a@example.org> SIZE=10 SIZE=999999999');
    assert.equal(r.code, 501);
    assert.match(r.lines[0]!, /Duplicate parameter: SIZE/);
    await c.cmd('QUIT');
  });

  it('the EHLO name is echoed as printable ASCII only', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    const [r] = await c.send(Buffer.concat([Buffer.from('EHLO evil'), Buffer.from([0x1b, 0x5b, 0x33, 0x31, 0x6d, 0x07]), Buffer.from('name\r\n')]));
    assert.equal(r!.code, 250);
    assert.match(r!.lines[0]!, /greets evil\?\[31m\?name$/);
    assert.ok(!r!.raw.includes(0x1b) && !r!.raw.includes(0x07));
    await c.cmd('QUIT');
  });

  it('a PROXY v2 header from an untrusted peer: non_smtp, refused, and its bytes are not read as commands', async () => {
    const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.31' });
    await c.waitReplies(1);
    // Signature (which read as lines would be two empty lines, a NUL and "QUIT"), then a
    // PROXY command and a TCP4 address block of 12 bytes.
    const header = Buffer.concat([
      Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c]),
      Buffer.from([127, 0, 0, 9, 127, 0, 0, 1, 0x30, 0x39, 0x00, 0x19]),
    ]);
    const [r] = await c.send(header);
    assert.equal(r!.code, 550);
    // Still open and serving: the QUIT inside the signature was not obeyed.
    assert.equal((await c.cmd('NOOP')).code, 250);
    await c.cmd('QUIT');
    const rec = await p.waitFor((x) => x.event === 'session' && (x.client as { address: string }).address === '127.0.0.31');
    assert.deepEqual(rec.anomalies, ['non_smtp']);
    assert.equal(rec.close, 'quit');
  });
});
