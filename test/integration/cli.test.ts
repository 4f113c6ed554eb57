// The CLI as operators use it: the built dist/cli.js in child processes (npm test builds first).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { freePort } from '../helpers/net.js';
import { SmtpClient, sendMessage } from '../helpers/smtp-client.js';
import { swaks, swaksAvailable } from '../helpers/swaks.js';

const CLI = join(process.cwd(), 'dist', 'cli.js');

interface Proc {
  child: ChildProcess;
  out: string;
  err: string;
  exit: Promise<number | null>;
  waitOut(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Proc = {
    child,
    out: '',
    err: '',
    exit: new Promise((r) => child.on('exit', (code) => r(code))),
    waitOut(re, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        let done = false;
        const timer = setTimeout(() => {
          // Stop polling too, or a failed wait keeps the test process alive.
          done = true;
          reject(new Error(`no ${re} in output:\n${p.out}\n${p.err}`));
        }, timeoutMs);
        const check = () => {
          if (done) return;
          const m = re.exec(p.out + p.err);
          if (m) {
            clearTimeout(timer);
            resolve(m);
          } else setTimeout(check, 25);
        };
        check();
      });
    },
  };
  child.stdout!.on('data', (d: Buffer) => (p.out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (p.err += d.toString()));
  return p;
}


function config(listenPort: number, backendPort: number, extra = ''): string {
  return `hostname: cli.test
listeners:
  - name: smtp
    listen: 127.0.0.1:${listenPort}
backends:
  identity: xclient
  health_check: { interval: 1s, timeout: 2s, rise: 1, fall: 1 }
  servers:
    - address: 127.0.0.1:${backendPort}
${extra}`;
}

describe('postern CLI', { skip: !existsSync(CLI) && 'dist/cli.js missing: run `npm run build` (npm test does)' }, () => {
  let dir: string;
  let sink: Sink;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'postern-cli-'));
    sink = await startSink({ xclient: true });
  });
  after(async () => {
    await sink.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('--version and --help exit 0', async () => {
    const v = start(['--version']);
    assert.equal(await v.exit, 0);
    assert.match(v.out, /^\d+\.\d+\.\d+\n$/);
    const h = start(['--help']);
    assert.equal(await h.exit, 0);
    assert.match(h.out, /postern <command>/);
    const bad = start(['frobnicate']);
    assert.equal(await bad.exit, 1);
    assert.match(bad.err, /unknown command/);
  });

  it('check: 0 for the shipped configs, 1 with every problem and its YAML path', async () => {
    for (const f of ['conf/postern.yaml', 'conf/examples/reference.yaml']) {
      const ok = start(['check', '-c', f]);
      const code = await ok.exit;
      // reference.yaml names certificate files that do not exist here: schema-valid, files missing.
      if (f === 'conf/postern.yaml') assert.equal(code, 0, ok.err);
    }
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'listeners:\n  - name: a\n    listen: nowhere\nbackends:\n  servers: []\n  colour: blue\n');
    const bad = start(['check', '-c', file]);
    assert.equal(await bad.exit, 1);
    assert.match(bad.err, /listeners\[0\]\.listen: /);
    assert.match(bad.err, /backends\.servers: /);
    assert.match(bad.err, /backends\.colour: unknown key/);
  });

  it('run: exit 1 with one line on stderr for a bad config or a port in use', async () => {
    const file = join(dir, 'bad-run.yaml');
    await writeFile(file, 'listeners: []\n');
    const bad = start(['run', '-c', file]);
    assert.equal(await bad.exit, 1);
    assert.equal(bad.err.trim().split('\n').length, 1, bad.err);
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as net.AddressInfo).port;
    const busy = join(dir, 'busy.yaml');
    await writeFile(busy, config(taken, sink.address().port));
    const p = start(['run', '-c', busy]);
    assert.equal(await p.exit, 1);
    assert.match(p.err, /already in use/);
    assert.equal(p.err.trim().split('\n').length, 1, p.err);
    blocker.close();
  });

  it('SIGHUP reloads a valid config, refuses an invalid one; SIGTERM drains and exits 0', async () => {
    const port = await freePort();
    const file = join(dir, 'live.yaml');
    await writeFile(file, config(port, sink.address().port));
    const p = start(['run', '-c', file]);
    try {
      await p.waitOut(/listening on/);
      // An invalid new config is refused; the old one keeps serving.
      await writeFile(file, 'listeners: nope\n');
      p.child.kill('SIGHUP');
      await p.waitOut(/"event":"reload_failed"/);
      const c1 = await SmtpClient.connect(port);
      assert.equal((await c1.waitReplies(1))[0]!.lines[0], 'cli.test ESMTP Postern');
      await c1.cmd('QUIT');
      // A valid one takes effect for new sessions.
      await writeFile(file, config(port, sink.address().port).replace('hostname: cli.test', 'hostname: reloaded.test'));
      p.child.kill('SIGHUP');
      await p.waitOut(/configuration reloaded/);
      const c2 = await SmtpClient.connect(port);
      assert.equal((await c2.waitReplies(1))[0]!.lines[0], 'reloaded.test ESMTP Postern');
      // SIGTERM with a session open: it may finish its work, then the process exits 0.
      await c2.cmd('EHLO draining.test');
      p.child.kill('SIGTERM');
      await p.waitOut(/draining/);
      const r = await sendMessage(c2, { helo: 'draining.test' }).catch((e: Error) => e);
      assert.ok(!(r instanceof Error) && r.code === 250, String(r));
      assert.equal(await p.exit, 0);
      await assert.rejects(SmtpClient.connect(port), 'no longer accepting');
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('SIGTERM: sessions still open after shutdown_grace get 421 4.3.2', async () => {
    const port = await freePort();
    const file = join(dir, 'grace.yaml');
    await writeFile(file, config(port, sink.address().port, 'shutdown_grace: 300ms\n'));
    const p = start(['run', '-c', file]);
    try {
      await p.waitOut(/listening on/);
      const c = await SmtpClient.connect(port);
      await c.waitReplies(1);
      await c.cmd('EHLO lingering.test');
      p.child.kill('SIGTERM');
      await c.waitClose(5000);
      assert.match(c.received.toString(), /421 4\.3\.2 /);
      assert.equal(await p.exit, 0);
      assert.match(p.out, /"close":"shutdown"/);
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('run with a metrics listener: /metrics, /readyz, and `postern status` read it', async () => {
    const port = await freePort();
    const mport = await freePort();
    const file = join(dir, 'metrics.yaml');
    await writeFile(file, config(port, sink.address().port, `metrics: { listen: 127.0.0.1:${mport} }\n`));
    const p = start(['run', '-c', file]);
    try {
      await p.waitOut(/metrics on/);
      const c = await SmtpClient.connect(port);
      assert.equal((await sendMessage(c, { helo: 'metrics.test' })).code, 250);
      const metrics = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
      assert.match(metrics, /postern_messages_total\{result="accepted"\} 1/);
      assert.match(metrics, /postern_backend_up\{pool="default",backend="127\.0\.0\.1:\d+"\} 1/);
      assert.equal((await fetch(`http://127.0.0.1:${mport}/readyz`)).status, 200);
      const st = start(['status', '--metrics', `127.0.0.1:${mport}`]);
      assert.equal(await st.exit, 0, st.err);
      assert.match(st.out, new RegExp(`127\\.0\\.0\\.1:${sink.address().port}`));
    } finally {
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0);
    }
  });

  it('every command answers --help and -h with its usage on stdout, exit 0, starting nothing', async () => {
    for (const cmd of ['run', 'check', 'demo', 'sink', 'status', 'report']) {
      for (const flag of ['--help', '-h']) {
        // Other arguments around the flag change nothing. A command that started (demo, run,
        // sink) would never exit by itself: the exit is the proof it started nothing.
        const p = start(cmd === 'run' || cmd === 'check' ? [cmd, '-c', 'conf/postern.yaml', flag] : [cmd, flag]);
        assert.equal(await p.exit, 0, `${cmd} ${flag}: ${p.err}`);
        assert.match(p.out, new RegExp(`^usage: postern ${cmd} `), `${cmd} ${flag}`);
        assert.equal(p.err, '', `${cmd} ${flag} printed to stderr`);
        assert.doesNotMatch(p.out, /listening|Postern demo|"event"/);
      }
    }
    // After `--`, -h is a file name for report, not a request for help.
    const r = start(['report', '--', '-h']);
    assert.equal(await r.exit, 1);
    assert.match(r.err, /^postern report: -h: ENOENT/);
  });

  it('status -c FILE reads the metrics address from the config', async () => {
    const port = await freePort();
    const mport = await freePort();
    const file = join(dir, 'status.yaml');
    // A wildcard bind is reached on loopback.
    await writeFile(file, config(port, sink.address().port, `metrics: { listen: 0.0.0.0:${mport} }\n`));
    const p = start(['run', '-c', file]);
    try {
      await p.waitOut(/metrics on/);
      const st = start(['status', '-c', file]);
      assert.equal(await st.exit, 0, st.err);
      assert.match(st.out, new RegExp(`^postern status from 127\\.0\\.0\\.1:${mport} at `));
      assert.match(st.out, new RegExp(`127\\.0\\.0\\.1:${sink.address().port}\\s+up`));
      const both = start(['status', '-c', file, '--metrics', `127.0.0.1:${mport}`]);
      assert.equal(await both.exit, 1);
      assert.match(both.err, /give --metrics or --config, not both/);
    } finally {
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0);
    }
    const none = join(dir, 'no-metrics.yaml');
    await writeFile(none, config(port, sink.address().port));
    const st = start(['status', '-c', none]);
    assert.equal(await st.exit, 1);
    assert.match(st.err, /no-metrics\.yaml has no metrics section/);
    const bad = start(['status', '-c', join(dir, 'missing.yaml')]);
    assert.equal(await bad.exit, 1);
    assert.match(bad.err, /missing\.yaml/);
  });

  it('demo --listen/--backend: refuses bad addresses with the usage', async () => {
    const bad = start(['demo', '--listen', 'nowhere']);
    assert.equal(await bad.exit, 1);
    assert.match(bad.err, /--listen: expected HOST:PORT/);
    assert.match(bad.err, /usage: postern demo/);
    const same = start(['demo', '--listen', '127.0.0.1:2600', '--backend', '127.0.0.1:2600']);
    assert.equal(await same.exit, 1);
    assert.match(same.err, /same address/);
    const unknown = start(['demo', '--colour', 'blue']);
    assert.equal(await unknown.exit, 1);
    assert.match(unknown.err, /--colour/);
  });

  it('demo --listen/--backend: the printed swaks line delivers, and the backend prints the client address', { skip: !swaksAvailable() && 'swaks not installed' }, async () => {
    const listen = await freePort();
    const backend = await freePort();
    const p = start(['demo', '--listen', `127.0.0.1:${listen}`, '--backend', `127.0.0.1:${backend}`]);
    try {
      const m = await p.waitOut(/\n\s+(swaks [^\n]+)\n/);
      assert.match(p.err, new RegExp(`proxy on 127\\.0\\.0\\.1:${listen}, built-in backend on 127\\.0\\.0\\.1:${backend} `));
      assert.match(m[1]!, new RegExp(`--server 127\\.0\\.0\\.1:${listen} `));
      const args = m[1]!.split(/\s+/).slice(1);
      const r = await swaks(args);
      assert.equal(r.code, 0, r.transcript);
      await p.waitOut(/"event":"message".*"client":\{"address":"127\.0\.0\.2","port":\d+\},"told":"xclient"/);
    } finally {
      p.child.kill('SIGTERM');
      await p.exit;
    }
  });
});
