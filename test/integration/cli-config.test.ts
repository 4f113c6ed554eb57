// Which config `run` and `check` read, and how they name what is wrong with it: the built
// dist/cli.js in child processes started from chosen working directories.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI, cliBuilt } from '../helpers/postern-process.js';

interface Result {
  code: number;
  out: string;
  err: string;
}

/** The CLI with `args` from `cwd`; every run ends within 30 s. */
function cli(args: string[], cwd: string): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd, timeout: 30_000 }, (err, out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: stderr });
    });
  });
}

const GOOD = `listeners:
  - name: smtp
    listen: 127.0.0.1:0
backends:
  servers:
    - address: 127.0.0.1:2526
`;

// A certificate that does not exist and a size that is a slip: both `check` and `run` must name both.
const BROKEN = `hostname: mx.test
listeners:
  - { name: smtp, listen: '127.0.0.1:0', tls: starttls }
tls:
  certificates:
    - cert: /nonexistent/postern-test/mx.pem
      key: /nonexistent/postern-test/mx.key
backends:
  servers: [{ address: '127.0.0.1:2526' }]
limits:
  message_size: 50
  line_length: 100
`;

const EXPECTED = [
  'broken.yaml:6:13: tls.certificates[0].cert: cannot read /nonexistent/postern-test/mx.pem: no such file',
  'broken.yaml:7:12: tls.certificates[0].key: cannot read /nonexistent/postern-test/mx.key: no such file',
  'broken.yaml:11:17: limits.message_size: 50 has no unit, so it means 50 bytes, below the minimum of 1000 bytes: write a unit, e.g. 50MB or 50KB',
  'broken.yaml:12:16: limits.line_length: expected an integer from 512 to 65536, got 100',
];

describe('config file: default path, FILE:LINE:COL, run = check', { skip: !cliBuilt() && 'dist/cli.js missing: run `npm run build`' }, () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-cli-config-'));
    await mkdir(join(dir, 'checkout', 'conf'), { recursive: true });
    await mkdir(join(dir, 'elsewhere'));
    await writeFile(join(dir, 'checkout', 'conf', 'postern.yaml'), GOOD);
    await writeFile(join(dir, 'elsewhere', 'broken.yaml'), BROKEN);
  });
  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('without -c, check reads conf/postern.yaml from a working directory that has one', async () => {
    const r = await cli(['check'], join(dir, 'checkout'));
    assert.deepEqual(r, { code: 0, out: 'conf/postern.yaml: OK\n', err: '' });
  });

  it('without -c and without conf/, check and run read /etc/postern/postern.yaml and name the paths tried', async () => {
    for (const cmd of ['check', 'run']) {
      const r = await cli([cmd], join(dir, 'elsewhere'));
      assert.equal(r.code, 1, `${cmd}: ${r.err}`);
      if (existsSync('/etc/postern/postern.yaml')) {
        // A machine with an installed Postern: that file is the one read.
        assert.match(r.out + r.err, /\/etc\/postern\/postern\.yaml/);
      } else {
        assert.equal(r.err, `postern: no config file: neither ${join(dir, 'elsewhere', 'conf', 'postern.yaml')} nor /etc/postern/postern.yaml exists (name one with -c FILE)\n`);
      }
    }
  });

  it('check prints every problem as FILE:LINE:COL: path: message', async () => {
    const r = await cli(['check', '-c', 'broken.yaml'], join(dir, 'elsewhere'));
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    assert.deepEqual(r.err.trimEnd().split('\n'), EXPECTED);
  });

  it('run names the same problems check does (the missing certificate too), on one line', async () => {
    const r = await cli(['run', '-c', 'broken.yaml'], join(dir, 'elsewhere'));
    assert.equal(r.code, 1);
    assert.equal(r.err, `postern: invalid config ${EXPECTED.join('; ')}\n`);
  });

  it('run without -c in a checkout reads its conf/postern.yaml and locates its problems there', async () => {
    const checkout = join(dir, 'checkout-broken');
    await mkdir(join(checkout, 'conf'), { recursive: true });
    await writeFile(join(checkout, 'conf', 'postern.yaml'), `${GOOD}limits: { message_size: 50 }\n`);
    const r = await cli(['run'], checkout);
    assert.equal(r.code, 1);
    assert.match(r.err, /^postern: invalid config conf\/postern\.yaml:7:25: limits\.message_size: 50 has no unit/);
  });
});
