// Defaults that must not refuse a standard sender: an unconfigured Postern advertises
// LIMITS MAILMAX=1000 RCPTMAX=100 (no RCPTDOMAINMAX) and lets Postfix's smtp-source send
// 100 messages over one connection (it reuses connections as Postfix's smtp client does).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const SMTP_SOURCE = '/usr/sbin/smtp-source';

describe('unconfigured limits', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true });
    // basicYaml sets no limits: every LIMITS value is the default.
    p = await startPostern(basicYaml([`127.0.0.1:${sink.address().port}`]));
  });
  after(async () => {
    await p.stop();
    await sink.close();
  });

  it('EHLO advertises LIMITS MAILMAX=1000 RCPTMAX=100 and no RCPTDOMAINMAX', async () => {
    const c = await SmtpClient.connect(p.port);
    await c.waitReplies(1);
    const e = await c.cmd('EHLO defaults.test');
    const limits = e.lines.filter((l) => l.startsWith('LIMITS'));
    assert.deepEqual(limits, ['LIMITS MAILMAX=1000 RCPTMAX=100'], e.lines.join('|'));
    await c.cmd('QUIT');
  });

  it('smtp-source -d -m 100: one session, 100 messages, all delivered', { skip: !existsSync(SMTP_SOURCE) && 'smtp-source not installed (apt-get install postfix)' }, async () => {
    const before = sink.messages.length;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(SMTP_SOURCE, ['-d', '-s', '1', '-m', '100', '-r', '2', '-l', '512', '-M', 'reuse.test', `127.0.0.1:${p.port}`], { timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}${stderr}`)) : resolve(stdout + stderr),
      ),
    );
    await sink.waitFor(before + 100, 10_000);
    const rec = await p.waitFor((x) => x.event === 'session' && x.helo === 'reuse.test');
    assert.equal(p.records.filter((x) => x.event === 'session' && x.helo === 'reuse.test').length, 1, 'one session');
    assert.equal(rec.transactions, 100, out);
    assert.deepEqual(rec.limit_rejections, {});
    assert.notEqual(rec.close, 'limit');
    const txs = p.records.filter((x) => x.event === 'transaction' && x.conn === rec.conn);
    assert.equal(txs.length, 100);
    assert.ok(txs.every((t) => /^250 /.test(String(t.reply))), 'every message accepted');
  });
});
