// Backend health is the host's, not each worker's (issue 22): with `workers: 2` a real
// Postfix sees one health-check session per interval (the primary checks), the lifecycle
// records are written once, and a backend found down by the primary is down on both
// workers without any session of theirs having tried it (reject_when_down: connect
// refuses at accept, so no worker ever connects to the backend on its own).
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../helpers/net.js';
import { connectLines, postfixAvailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { cliBuilt, startPosternProcess, type Rec } from '../helpers/postern-process.js';
import { SmtpClient } from '../helpers/smtp-client.js';

const INTERVAL_S = 1;
const WINDOW_S = 5;

const skip = !cliBuilt() ? 'dist/cli.js missing (npm run build)' : !postfixAvailable() ? 'needs Postfix (apt-get install postfix) and root' : false;

/** Postern's health checks reach Postfix from 127.0.0.1; clients here never do (they come from 127.0.0.2+). */
const checkSessions = (pf: PostfixInstance): number => connectLines(pf.readLog()).filter((c) => c.address === '127.0.0.1').length;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cluster (workers: 2): backend health once per host', { skip }, () => {
  let pf: PostfixInstance;
  let dir: string;
  before(async () => {
    pf = await startPostfix();
    dir = await mkdtemp(join(tmpdir(), 'postern-cluster-health-'));
  });
  after(async () => {
    await pf.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('Postfix sees one check per interval; listening/backend records once; a backend down reaches both workers', async () => {
    const [port, mport, added] = [await freePort(), await freePort(), await freePort()];
    const file = join(dir, 'health.yaml');
    const yaml = (more = '') => `hostname: health.test
workers: 2
listeners:
  - name: smtp
    listen: 127.0.0.1:${port}
${more}backends:
  reject_when_down: connect
  health_check: { interval: ${INTERVAL_S}s, fall: 1 }
  servers:
    - address: 127.0.0.1:${pf.port}
metrics: { listen: 127.0.0.1:${mport} }
`;
    await writeFile(file, yaml());
    const p = startPosternProcess(['run', '-c', file]);
    try {
      await p.waitFor(/2 workers running/);
      // Postfix logs through postlogd: give the first round's lines time to arrive.
      await sleep(500);
      const before = checkSessions(pf);
      await sleep(WINDOW_S * 1000);
      const during = checkSessions(pf) - before;
      assert.ok(Math.abs(during - WINDOW_S / INTERVAL_S) <= 1, `${during} health-check sessions in ${WINDOW_S} s at ${INTERVAL_S} s intervals (2 workers checking would be about ${(2 * WINDOW_S) / INTERVAL_S})`);

      const lifecycle = (pred: (r: Rec) => boolean) => p.records().filter(pred).length;
      assert.equal(lifecycle((r) => typeof r.msg === 'string' && r.msg.startsWith('listening on')), 1, 'one listening record for the one listener');
      assert.equal(lifecycle((r) => r.event === 'backend' && r.state === 'up'), 1, 'one backend up record');

      // A listener added by a reload is told once too, and serves on both workers' behalf.
      await writeFile(file, yaml(`  - name: submission\n    listen: 127.0.0.1:${added}\n`));
      p.child.kill('SIGHUP');
      await p.waitRecord((r) => r.event === 'reload', 30_000);
      assert.equal(lifecycle((r) => r.listener === 'submission' && typeof r.msg === 'string' && r.msg.startsWith('listening on')), 1, 'one listening record for the added listener');
      const sub = await SmtpClient.connect(added, { localAddress: '127.0.0.2' });
      assert.equal((await sub.waitReplies(1))[0]!.code, 220);
      sub.destroy();

      // The backend goes away: the primary's next check finds it down, and says so once.
      await pf.stop();
      await p.waitRecord((r) => r.event === 'backend' && r.state === 'down', 10_000);
      // /sessions merges the workers' own views (up when any worker finds it up): down here
      // means down on both, and no session of theirs touched the backend.
      const deadline = Date.now() + 5000;
      let up: unknown = true;
      while (up !== false && Date.now() < deadline) {
        await sleep(200);
        const body = (await (await fetch(`http://127.0.0.1:${mport}/sessions`)).json()) as { backends: { up: boolean | null }[] };
        up = body.backends[0]?.up;
      }
      assert.equal(up, false, 'both workers took the primary\'s word that the backend is down');

      // Clients on either worker are refused at connect (421), bounded in count.
      const refusedBy = new Set<string>();
      for (let i = 0; i < 24 && refusedBy.size < 2; i++) {
        const c = await SmtpClient.connect(port, { localAddress: `127.0.0.${2 + (i % 8)}` });
        const [greeting] = await c.waitReplies(1);
        assert.equal(greeting!.code, 421, 'refused: every backend down');
        c.destroy();
        const rec = await p.waitRecord((r) => r.event === 'session' && r.close === 'backend_failed' && !refusedBy.has(String(r.conn).slice(0, 6)), 1000).catch(() => null);
        if (rec) refusedBy.add(String(rec.conn).slice(0, 6));
      }
      assert.equal(refusedBy.size, 2, 'sessions on both workers were refused');
      assert.equal(lifecycle((r) => r.event === 'backend' && r.state === 'down'), 1, 'one backend down record');
    } finally {
      assert.equal(await p.stop(), 0);
    }
  });
});
