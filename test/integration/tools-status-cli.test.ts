// `postern status` as an operator runs it: the built CLI against a real Postern (spawned,
// with a file verifier and the metrics listener), while a client logged in with AUTH PLAIN
// holds its session open. The table names the user; `--watch 1 | head -n 1` ends quietly
// when head leaves (issue 25: it died with a `write EPIPE` stack).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcrypt';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { CLI, cliBuilt, startPosternProcess, type PosternProcess } from '../helpers/postern-process.js';
import { SmtpClient } from '../helpers/smtp-client.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A shell line, bounded in time (killed after `ms`). */
function sh(line: string, ms = 15_000): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', line], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64');

describe('postern status (the CLI) against a running Postern', { skip: cliBuilt() ? false : 'dist/cli.js missing (npm test builds it)', timeout: 60_000 }, () => {
  let dir: string;
  let sink: Sink;
  let p: PosternProcess;
  let port: number;
  let metrics: string;
  let client: SmtpClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-status-cli-'));
    sink = await startSink({ xclient: true });
    port = await freePort();
    metrics = `127.0.0.1:${await freePort()}`;
    await writeFile(join(dir, 'passwd'), `carol@example.org:${await bcrypt.hash('carol-pw', 4)}\n`);
    await writeFile(
      join(dir, 'postern.yaml'),
      `hostname: status.test
listeners:
  - { name: submission, listen: 127.0.0.1:${port}, auth: optional }
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers: [{ address: 127.0.0.1:${sink.address().port} }]
auth:
  plaintext: true
  verifier: { type: file, path: ${join(dir, 'passwd')} }
metrics: { listen: ${metrics} }
`,
    );
    p = startPosternProcess(['run', '-c', join(dir, 'postern.yaml')]);
    await p.waitFor(/metrics on /);
    client = await SmtpClient.connect(port, { localAddress: '127.0.0.2' });
    await client.waitReplies(1);
    assert.equal((await client.cmd('EHLO carol.test')).code, 250);
    assert.equal((await client.cmd(`AUTH PLAIN ${plain('carol@example.org', 'carol-pw')}`, 8000)).code, 235);
    // With workers the primary's /sessions is what they last reported (about once a second).
    const deadline = Date.now() + 10_000;
    for (;;) {
      const live = (await (await fetch(`http://${metrics}/sessions`)).json()) as { sessions: unknown[] };
      if (live.sessions.length === 1) break;
      assert.ok(Date.now() < deadline, 'the session never appeared in /sessions');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(async () => {
    client?.socket.destroy();
    await p?.stop();
    await sink?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('shows the authenticated user of a live session', async () => {
    const r = await sh(`${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} status --metrics ${metrics}`);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const head = lines.findIndex((l) => l.startsWith('CONN'));
    assert.ok(head >= 0, r.stdout);
    assert.match(lines[head]!, /\bHELO\s+USER\s+TLS\b/);
    const row = lines.find((l) => l.includes(`127.0.0.2:${client.socket.localPort}`));
    assert.ok(row, r.stdout);
    assert.match(row, /\scarol\.test\s+carol@example\.org\s/);
  });

  it('--watch 1 | head -n 1 exits quietly when head leaves (no EPIPE stack)', async () => {
    const started = Date.now();
    const r = await sh(`${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} status --metrics ${metrics} --watch 1 | head -n 1; echo "status exit=\${PIPESTATUS[0]}"`);
    assert.equal(r.stderr, '', 'nothing on stderr');
    const out = r.stdout.split('\n');
    assert.match(out[0]!, /postern status from .*: 1 session, 1\/1 backends up/);
    assert.equal(out[1], 'status exit=0');
    // It stops at the first redraw after head left, not after the 15 s bound.
    assert.ok(Date.now() - started < 8000, `${Date.now() - started} ms`);
  });
});
