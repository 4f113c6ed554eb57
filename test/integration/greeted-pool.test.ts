// backends.pool: connections that have already connected, read the 220 and sent EHLO wait
// for sessions. Real Postfix's own log shows which smtpd process served a session.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { postfixAvailable, startPostfix } from '../helpers/postfix.js';
import { basicYaml, startPostern } from '../helpers/postern.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const skip = !postfixAvailable() && 'postfix is not installed (apt-get install postfix), or not root';

/** `smtpd[PID]: connect from unknown[ADDR]:PORT` lines in log order. */
function connects(log: string): { pid: string; addr: string; at: number }[] {
  const out: { pid: string; addr: string; at: number }[] = [];
  const re = /smtpd\[(\d+)\]: connect from unknown\[([^\]]+)\]/g;
  for (let m; (m = re.exec(log)); ) out.push({ pid: m[1]!, addr: m[2]!, at: m.index });
  return out;
}

describe('pre-greeted backend connections', { skip }, () => {
  it('a session gets a connection Postfix accepted before the client even connected; the pool refills', async () => {
    const pf = await startPostfix();
    const p = await startPostern(
      basicYaml([`127.0.0.1:${pf.port}`])
        .replace('health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }', 'health_check: { interval: 1h, timeout: 2s, rise: 1, fall: 1 }')
        .replace('identity: xclient', 'identity: xclient\n  pool: { idle: 2, max_age: 60s }'),
    );
    try {
      // Two pooled connections ready (after one health check).
      const pool = p.postern.pool.servers[0]!.greeted!;
      const deadline = Date.now() + 10_000;
      while (pool.size < 2) {
        assert.ok(Date.now() < deadline, pf.readLog());
        await new Promise((r) => setTimeout(r, 50));
      }
      await new Promise((r) => setTimeout(r, 200)); // let postlogd write their connect lines
      const before = pf.readLog().length;
      const c = await SmtpClient.connect(p.port, { localAddress: '127.0.0.7' });
      const port = c.socket.localPort!;
      const r = await sendMessage(c, { helo: 'pooled.test' });
      assert.equal(r.code, 250);
      const m = await pf.waitForLog(new RegExp(`smtpd\\[(\\d+)\\]: \\w+: client=unknown\\[127\\.0\\.0\\.7\\]:${port}\\b`));
      const log = pf.readLog();
      // smtpd processes are reused: the connect that this session's smtpd handled is its last one before `client=`.
      const clientAt = log.indexOf(m[0]);
      const served = connects(log)
        .filter((x) => x.pid === m[1] && x.at < clientAt)
        .at(-1);
      assert.ok(served, 'the serving smtpd has a connect line');
      assert.ok(served.at < before, 'that smtpd was connected before the client arrived');
      assert.equal(served.addr, '127.0.0.1', 'Postfix saw Postern connect, then learned the client by XCLIENT');
      // The pool refills behind the session.
      const end = Date.now() + 5000;
      while (pool.size < 2) {
        assert.ok(Date.now() < end, 'refilled');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await p.stop();
      await pf.stop();
    }
  });

  it('idle connections are replaced after max_age with QUIT, never dropped', async () => {
    const pf = await startPostfix();
    // The harness's readiness probe connects and drops (`lost connection after CONNECT`);
    // postlogd may write that late, so wait for it before looking at our own lines.
    await pf.waitForLog(/lost connection after CONNECT/, 3000).catch(() => undefined);
    const from = pf.readLog().length;
    const p = await startPostern(
      basicYaml([`127.0.0.1:${pf.port}`])
        .replace('health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }', 'health_check: { interval: 1h, timeout: 2s, rise: 1, fall: 1 }')
        .replace('identity: xclient', 'identity: xclient\n  pool: { idle: 1, max_age: 600ms }'),
    );
    try {
      await new Promise((r) => setTimeout(r, 2000));
      const log = pf.readLog().slice(from);
      const pooledQuits = log.match(/disconnect from unknown\[127\.0\.0\.1\]:\d+ ehlo=1 quit=1 commands=2/g) ?? [];
      // The health check's and at least one recycled pooled connection's.
      assert.ok(pooledQuits.length >= 2, log);
      assert.doesNotMatch(log, /lost connection/);
      const c = await SmtpClient.connect(p.port);
      assert.equal((await sendMessage(c, { helo: 'after-recycle.test' })).code, 250);
    } finally {
      await p.stop();
      await pf.stop();
    }
  });
});
