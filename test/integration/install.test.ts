// README "Install", run as written: the tested code block is taken from the README (so the
// docs and this test cannot drift apart) and run with `sh -e` in a copy of this checkout,
// with PREFIX set to a scratch directory. Then the installed command is used from a
// directory that has no conf/: --version, check, and demo relaying a real message.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../helpers/net.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';

const ROOT = process.cwd();
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const MARKER = 'test/integration/install.test.ts';
/** The path the README and the units install under. */
const DEFAULT_PREFIX = '/usr/local';
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };

/** The first ```sh block after the comment that names this test. */
function testedBlock(readme: string): string {
  const at = readme.indexOf(MARKER);
  assert.ok(at >= 0, `README names ${MARKER} above the block it runs`);
  const m = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  assert.ok(m, 'a ```sh block follows the marker');
  return m[1]!;
}

/** The "Install" section: from its heading to the next one of the same level. */
function installSection(readme: string): string {
  const start = readme.indexOf('\n## Install\n');
  assert.ok(start >= 0, 'README has an "Install" section');
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

function npmAvailable(): boolean {
  return spawnSync('npm', ['--version'], { stdio: 'ignore' }).status === 0;
}

interface Run {
  code: number;
  out: string;
}

function sh(script: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile('sh', ['-e', '-x', '-c', script], { cwd, env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` });
    });
  });
}

// Build output, test scratch and the dependencies are not part of a checkout; the copy
// links node_modules (npm pack's build needs tsc), which npm never packs.
const NOT_COPIED = new Set(['node_modules', 'dist', '.git', '.scratch', '.bench-scratch', 'tmp']);

describe('README "Install" in a scratch prefix', { skip: !npmAvailable() && 'npm not installed' }, () => {
  let dir = '';
  let prefix = '';
  let checkout = '';
  let env: NodeJS.ProcessEnv = {};
  let install: Run = { code: -1, out: '' };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-install-'));
    prefix = join(dir, 'prefix');
    checkout = join(dir, 'checkout');
    await cp(ROOT, checkout, { recursive: true, filter: (src) => !(NOT_COPIED.has(basename(src)) || src.endsWith('.tgz')) });
    await symlink(join(ROOT, 'node_modules'), join(checkout, 'node_modules'), 'dir');
    env = {
      ...process.env,
      PREFIX: prefix,
      // The dependencies come from npm's cache when `npm ci` filled it (as in CI), else the registry.
      npm_config_prefer_offline: 'true',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_update_notifier: 'false',
    };
    install = await sh(testedBlock(README), checkout, env, 300_000);
  });

  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('the README block runs as written and installs a working command', () => {
    assert.equal(install.code, 0, install.out);
    assert.ok(install.out.includes(`\n${PKG.version}\n`), `--version printed ${PKG.version}:\n${install.out}`);
    assert.match(install.out, /conf\/postern\.yaml: OK\n/);
    // The block sends the command to the prefix the units name, unless PREFIX says otherwise.
    assert.match(testedBlock(README), new RegExp(`^PREFIX=\\$\\{PREFIX:-${DEFAULT_PREFIX}\\}`, 'm'));
  });

  it('the package holds the built command, the configs, the units and this README, and no sources', async () => {
    assert.equal(install.code, 0, install.out);
    const pkg = join(prefix, 'lib', 'node_modules', PKG.name);
    const bin = join(prefix, 'bin', 'postern');
    assert.ok(lstatSync(bin).isSymbolicLink());
    assert.equal(readlinkSync(bin), `../lib/node_modules/${PKG.name}/dist/cli.js`);
    assert.ok((statSync(bin).mode & 0o111) !== 0, 'executable');
    assert.equal(readFileSync(bin, 'utf8').split('\n')[0], '#!/usr/bin/env node');
    for (const f of ['README.md', 'package.json', 'dist/cli.js', 'conf/postern.yaml', 'conf/examples/reference.yaml', 'conf/systemd/postern.service', 'conf/systemd/postern.socket', 'conf/systemd/postern@.service']) {
      assert.ok(existsSync(join(pkg, f)), `${f} in the package`);
    }
    assert.deepEqual((await readdir(pkg)).filter((f) => !['node_modules'].includes(f)).sort(), ['README.md', 'conf', 'dist', 'package.json']);
    const dist = await readdir(join(pkg, 'dist'), { recursive: true });
    assert.deepEqual(dist.filter((f) => f.endsWith('.ts') || f.endsWith('.map')), [], 'only built JavaScript');
    // Every package path the "Install" section names (the service steps too) is there.
    const named = [...installSection(README).matchAll(/"\$PREFIX\/lib\/node_modules\/postern\/([^"]+)"/g)].map((m) => m[1]!);
    assert.ok(named.length >= 3, named.join(', '));
    for (const f of named) assert.ok(existsSync(join(pkg, f)), `README names ${f}`);
  });

  it('the units run the installed command and document with the installed README', () => {
    assert.equal(install.code, 0, install.out);
    for (const unit of ['postern.service', 'postern.socket', 'postern@.service']) {
      const lines = readFileSync(join(ROOT, 'conf', 'systemd', unit), 'utf8').split('\n');
      for (const l of lines.filter((x) => x.startsWith('Documentation='))) {
        const file = l.replace(/^Documentation=file:\/\//, '');
        assert.ok(file.startsWith(`${DEFAULT_PREFIX}/`), l);
        assert.ok(existsSync(join(prefix, file.slice(DEFAULT_PREFIX.length))), `${unit}: ${l} exists once installed`);
      }
      for (const l of lines.filter((x) => /^Exec(Start|StartPre)=/.test(x))) {
        const command = l.split('=')[1]!.split(' ')[0]!;
        assert.equal(command, `${DEFAULT_PREFIX}/bin/postern`, l);
        assert.ok(existsSync(join(prefix, 'bin', 'postern')), l);
      }
    }
  });

  it('from a directory without conf/: check without -c names the paths it tried', async () => {
    assert.equal(install.code, 0, install.out);
    const empty = join(dir, 'empty');
    await mkdir(empty);
    const r = spawnSync(join(prefix, 'bin', 'postern'), ['check'], { cwd: empty, env, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1);
    if (!existsSync('/etc/postern/postern.yaml')) {
      assert.equal(r.stderr, `postern: no config file: neither ${join(empty, 'conf', 'postern.yaml')} nor /etc/postern/postern.yaml exists (name one with -c FILE)\n`);
    }
  });

  it('from a directory without conf/: demo relays a message to its built-in backend', async () => {
    assert.equal(install.code, 0, install.out);
    const listen = await freePort();
    const backend = await freePort();
    const child = spawn(join(prefix, 'bin', 'postern'), ['demo', '--listen', `127.0.0.1:${listen}`, '--backend', `127.0.0.1:${backend}`], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const waitFor = async (re: RegExp): Promise<void> => {
      for (const deadline = Date.now() + 20_000; !re.test(out); ) {
        if (Date.now() > deadline) throw new Error(`no ${re} in:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await waitFor(/Postern demo: proxy on 127\.0\.0\.1:\d+/);
      const c = await SmtpClient.connect(listen, { localAddress: '127.0.0.2' });
      const r = await sendMessage(c, { from: 'you@example.org', to: ['them@example.net'] });
      assert.equal(r.code, 250, JSON.stringify(r));
      await waitFor(/"event":"message".*"client":\{"address":"127\.0\.0\.2"/);
    } finally {
      child.kill('SIGTERM');
      assert.equal(await exited, 0, out);
    }
  });
});
