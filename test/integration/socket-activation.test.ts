// systemd socket activation, with systemd's own tool: systemd-socket-activate listens,
// then execs `postern run` with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID on the first
// connection. Postern serves on the inherited sockets whose address a listener names,
// binds the other listeners itself, and closes inherited sockets no listener wants.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { cliBuilt, startPosternProcess } from '../helpers/postern-process.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const ACTIVATE = '/usr/bin/systemd-socket-activate';

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('systemd socket activation', { skip: (!cliBuilt() && 'dist/cli.js missing: run `npm run build`') || (!existsSync(ACTIVATE) && `${ACTIVATE} missing (apt-get install systemd)`) }, () => {
  let sink: Sink;
  let dir: string;
  before(async () => {
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-activate-'));
  });
  after(async () => {
    await sink.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const workers of [1, 2]) {
    it(`serves on the inherited socket, binds the listener it was not given, closes the one no listener wants (workers: ${workers})`, async () => {
      const [inherited, unwanted, bound] = [await freePort(), await freePort(), await freePort()];
      const file = join(dir, `activate-${workers}.yaml`);
      await writeFile(
        file,
        `hostname: activated.test
workers: ${workers}
listeners:
  - name: smtp
    listen: 127.0.0.1:${inherited}
  - name: submission
    listen: 127.0.0.1:${bound}
backends:
  servers:
    - address: 127.0.0.1:${sink.address().port}
`,
      );
      const p = startPosternProcess(['run', '-c', file], {
        wrapper: [ACTIVATE, '-l', `127.0.0.1:${inherited}`, '-l', `127.0.0.1:${unwanted}`, '--fdname=smtp:other'],
      });
      try {
        await p.waitFor(new RegExp(`Listening on 127.0.0.1:${unwanted}`));
        // The first connection starts Postern; it waits in the kernel's queue meanwhile.
        const c = await SmtpClient.connect(inherited);
        const r = await sendMessage(c, { helo: 'activated.example' });
        assert.equal(r.code, 250);
        await p.waitFor(workers > 1 ? /workers running/ : /listening on/);
        const inheritedRecs = p.records().filter((x) => typeof x.msg === 'string' && x.msg.startsWith('listening on'));
        // Once per host: with workers, the primary writes it for all of them (the inherited fd is its own).
        assert.equal(inheritedRecs.filter((x) => x.fd === 3).length, 1, `smtp listens on fd 3, told once: ${JSON.stringify(inheritedRecs)}`);
        assert.equal(inheritedRecs.filter((x) => x.listener === 'submission' && x.fd === undefined).length, 1, 'submission was bound, told once');
        const warn = await p.waitRecord((x) => Array.isArray(x.sockets));
        assert.match(String(warn.msg), /1 inherited socket\(s\) match no listener: closed/);
        assert.deepEqual(warn.sockets, [{ fd: 4, name: 'other', host: '127.0.0.1', port: unwanted }]);
        assert.equal(await refused(unwanted), true, 'the unwanted socket is closed');
        const c2 = await SmtpClient.connect(bound);
        assert.equal((await sendMessage(c2, {})).code, 250, 'the listener Postern bound itself serves');
        for (let i = 0; i < 4; i++) {
          const c3 = await SmtpClient.connect(inherited);
          assert.equal((await sendMessage(c3, {})).code, 250);
        }
      } finally {
        assert.equal(await p.stop(), 0);
      }
    });
  }
});
