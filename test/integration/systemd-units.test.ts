// The shipped systemd units (conf/systemd/) pass `systemd-analyze verify` with no complaint
// (unknown keys, bad values, missing executables), with the hardening the README promises.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CLI, cliBuilt } from '../helpers/postern-process.js';

const ANALYZE = '/usr/bin/systemd-analyze';
const UNITS = join(process.cwd(), 'conf', 'systemd');

function verify(files: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(ANALYZE, ['verify', '--man=no', ...files], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}`.trim() });
    });
  });
}

describe('systemd units', { skip: (!existsSync(ANALYZE) && `${ANALYZE} missing (apt-get install systemd)`) || (!cliBuilt() && 'dist/cli.js missing') }, () => {
  it('postern.service and postern.socket verify cleanly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-units-'));
    try {
      // The units name /usr/local/bin/postern: here it is this checkout's CLI.
      const bin = join(dir, 'postern');
      await writeFile(bin, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
      await chmod(bin, 0o755);
      for (const unit of ['postern.service', 'postern.socket']) {
        const text = await readFile(join(UNITS, unit), 'utf8');
        await writeFile(join(dir, unit), text.replaceAll('/usr/local/bin/postern', bin));
      }
      const r = await verify([join(dir, 'postern.service'), join(dir, 'postern.socket')]);
      assert.equal(r.code, 0, r.out);
      assert.equal(r.out, '', 'no warning either');
      // The check itself catches a mistake.
      await copyFile(join(dir, 'postern.service'), join(dir, 'broken.service'));
      await writeFile(join(dir, 'broken.service'), (await readFile(join(dir, 'broken.service'), 'utf8')).replace('ProtectSystem=strict', 'ProtectSystm=strict'));
      assert.match((await verify([join(dir, 'broken.service')])).out, /Unknown key 'ProtectSystm'/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('postern@.service verifies as a template and as an instance, with per-instance config, pid and state', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'postern-units-'));
    try {
      const bin = join(dir, 'postern');
      await writeFile(bin, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`);
      await chmod(bin, 0o755);
      const text = (await readFile(join(UNITS, 'postern@.service'), 'utf8')).replaceAll('/usr/local/bin/postern', bin);
      await writeFile(join(dir, 'postern@.service'), text);
      // An instance name expands %i, as `systemctl start postern@mx` would.
      await writeFile(join(dir, 'postern@mx.service'), text);
      for (const unit of ['postern@.service', 'postern@mx.service']) {
        const r = await verify([join(dir, unit)]);
        assert.equal(r.code, 0, r.out);
        assert.equal(r.out, '', `${unit}: no warning either`);
      }
      await writeFile(join(dir, 'broken@mx.service'), text.replace('RuntimeDirectory=', 'RuntimeDirectry='));
      assert.match((await verify([join(dir, 'broken@mx.service')])).out, /Unknown key 'RuntimeDirectry'/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const lines = readFileSync(join(UNITS, 'postern@.service'), 'utf8').split('\n');
    for (const line of [
      'ExecStartPre=/usr/local/bin/postern check -c /etc/postern/%i.yaml',
      'ExecStart=/usr/local/bin/postern run -c /etc/postern/%i.yaml --pid-file /run/postern/%i/postern.pid',
      'RuntimeDirectory=postern/%i',
      'StateDirectory=postern/%i',
      'ReadWritePaths=/var/lib/postern/%i',
      'NoNewPrivileges=true',
      'ProtectSystem=strict',
      'User=postern',
    ]) {
      assert.ok(lines.includes(line), `missing: ${line}`);
    }
  });

  it('Documentation= names the README of the installed package, not a registry page', () => {
    for (const unit of ['postern.service', 'postern.socket', 'postern@.service']) {
      const docs = readFileSync(join(UNITS, unit), 'utf8').split('\n').filter((l) => l.startsWith('Documentation='));
      assert.deepEqual(docs, ['Documentation=file:///usr/local/lib/node_modules/postern/README.md'], unit);
    }
    // test/integration/install.test.ts installs the package and finds that README at that place under its prefix.
  });

  it('the service is hardened, binds low ports by capability, and runs what the README says', () => {
    const service = readFileSync(join(UNITS, 'postern.service'), 'utf8');
    for (const line of [
      'NoNewPrivileges=true',
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/postern',
      'AmbientCapabilities=CAP_NET_BIND_SERVICE',
      'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
      'User=postern',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'ExecStart=/usr/local/bin/postern run -c /etc/postern/postern.yaml --pid-file /run/postern/postern.pid',
    ]) {
      assert.ok(service.split('\n').includes(line), `missing: ${line}`);
    }
    const socket = readFileSync(join(UNITS, 'postern.socket'), 'utf8');
    assert.deepEqual(socket.split('\n').filter((l) => l.startsWith('ListenStream=')), ['ListenStream=25', 'ListenStream=465', 'ListenStream=587']);
  });
});
