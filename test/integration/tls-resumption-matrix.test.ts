// The TLS resumption matrix (issue 18), against real `postern run` processes with the
// default cluster (workers: 2) and with workers: 1, and real clients (openssl s_client
// -sess_out / -sess_in). Every cell resumes 16 times in a row and must resume every time,
// as the client sees it ("Reused") and as the server logged it (tls.resumed):
//   TLS 1.2 by session ID (-no_ticket), TLS 1.2 by ticket, TLS 1.3
//   x implicit TLS, STARTTLS, across listeners, across a ticket-key rotation, across a
//     restart with the key file (and tls.session_cache.file), across a restart with Redis,
//     across an upgrade (SIGUSR2: the new process takes the sockets over).
// With 2 workers the kernel hands each connection to either: a per-worker session cache
// resumes a session ID about 1 time in 2, and 16 in a row by luck has odds of 1 in 65,536
// (each cell also checks that its connections did land on another worker than the one that
// issued the session). One cluster serves every cell but the restarts.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { freePort } from '../helpers/net.js';
import { alive, cliBuilt, startPosternProcess, stopPid, type PosternProcess, type Rec } from '../helpers/postern-process.js';
import { redisAvailable, startRedis, type RedisServer } from '../helpers/redis.js';
import { opensslAvailable, RESUME_KINDS, visit, type ResumeKind, type Visit } from '../helpers/resumption.js';

const NAME = 'mx.matrix.test';
const ROUNDS = 16;
/** Visits added, 8 at a time, when none of the ROUNDS crossed to another worker. */
const EXTRA = 32;
const KIND_TEXT: Record<ResumeKind, string> = { 'tls12-id': 'TLS 1.2 by session ID', 'tls12-ticket': 'TLS 1.2 by ticket', tls13: 'TLS 1.3' };
const VERSION: Record<ResumeKind, string> = { 'tls12-id': 'TLSv1.2', 'tls12-ticket': 'TLSv1.2', tls13: 'TLSv1.3' };

type ListenerName = 'smtp' | 'smtps';

const skip =
  (!cliBuilt() && 'dist/cli.js missing: run `npm run build`') ||
  (!opensslAvailable() && 'openssl missing') ||
  (!redisAvailable() && 'redis-server missing (apt-get install redis-server)');

let seq = 0;

describe('TLS resumption matrix', { skip }, () => {
  let pki: TestPki;
  let leaf: Leaf;
  let sink: Sink;
  let redis: RedisServer;
  let dir: string;

  before(async () => {
    [pki, sink, redis, dir] = await Promise.all([makePki(), startSink({ xclient: true }), startRedis(), mkdtemp(join(tmpdir(), 'postern-matrix-'))]);
    leaf = await pki.leaf('matrix', 'ecdsa', [NAME]);
  });
  after(async () => {
    await sink?.close();
    await redis?.stop();
    await pki?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** One `postern run` configuration, restartable on the same ports. */
  class Instance {
    /** The process started last; after an upgrade its successor writes to the same output. */
    proc: PosternProcess | null = null;
    /** The process serving now (a successor after an upgrade). */
    pid = 0;
    readonly ports: Record<ListenerName, number> = { smtp: 0, smtps: 0 };
    file = '';
    keyFile = '';

    constructor(
      readonly name: string,
      readonly workers: number,
      readonly shared: 'file' | 'redis',
    ) {}

    async init(): Promise<void> {
      this.ports.smtp = await freePort();
      this.ports.smtps = await freePort();
      const home = join(dir, this.name);
      await mkdir(home, { recursive: true, mode: 0o700 });
      this.keyFile = join(home, 'ticket-keys');
      this.file = join(home, 'postern.yaml');
      const state =
        this.shared === 'redis'
          ? `  ticket_keys: { rotate: 3s, lifetime: 10m }\nstate: { redis: { url: "${redis.url}", prefix: "${this.name}:" } }\n`
          : `  ticket_keys: { file: ${this.keyFile}, rotate: 3s, lifetime: 10m }\n  session_cache: { file: ${join(home, 'tls-sessions')} }\n`;
      await writeFile(
        this.file,
        `hostname: ${this.name}.matrix.test
workers: ${this.workers}
shutdown_grace: 1s
listeners:
  - { name: smtp, listen: 127.0.0.1:${this.ports.smtp}, tls: starttls }
  - { name: smtps, listen: 127.0.0.1:${this.ports.smtps}, tls: implicit }
limits: { per_ip: { connections: 1000, rate: 1000000/1m } }
backends:
  identity: xclient
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
log: { level: info }
tls:
  certificates: [ { cert: ${leaf.cert}, key: ${leaf.key} } ]
${state}`,
      );
    }

    async start(): Promise<void> {
      const p = startPosternProcess(['run', '-c', this.file]);
      this.proc = p;
      this.pid = p.child.pid!;
      await p.waitFor(this.workers > 1 ? /workers running/ : new RegExp(`listening on 127\\.0\\.0\\.1:${this.ports.smtps}`), 30_000);
      if (this.shared === 'redis') await p.waitFor(/Redis connected/);
    }

    async stop(): Promise<void> {
      if (this.proc && this.pid !== this.proc.child.pid) await stopPid(this.pid);
      const code = await this.proc?.stop();
      assert.equal(code ?? 0, 0, `${this.name} stopped cleanly`);
    }

    /** SIGUSR2: a new process takes the listening sockets over; the old one drains and exits. */
    async upgrade(): Promise<void> {
      const old = this.pid;
      const from = this.proc!.output().length;
      process.kill(old, 'SIGUSR2');
      const m = await this.proc!.waitFor(/new process (\d+) serves/, 30_000, from);
      this.pid = Number(m[1]);
      const deadline = Date.now() + 15_000;
      while (alive(old)) {
        assert.ok(Date.now() < deadline, 'the old process drained and exited');
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    async restart(): Promise<void> {
      await this.stop();
      await this.start();
    }

    /** The session records of these EHLO names, once all are logged. */
    async records(helos: string[]): Promise<Map<string, Rec>> {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const found = new Map<string, Rec>();
        for (const r of this.proc!.records()) if (r.event === 'session' && typeof r.helo === 'string' && helos.includes(r.helo)) found.set(r.helo, r);
        if (found.size === helos.length) return found;
        if (Date.now() > deadline) assert.fail(`${this.name}: session records missing for ${helos.filter((h) => !found.has(h)).join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** One visit on `listener`, offering the session in `sessIn` (if any), keeping the new one in `sessOut`. */
  function go(inst: Instance, kind: ResumeKind, listener: ListenerName, sessIn: string | undefined, sessOut?: string): Promise<Visit> {
    return visit({
      port: inst.ports[listener],
      starttls: listener === 'smtp',
      kind,
      helo: `v${++seq}.${kind}.${inst.name}`,
      servername: NAME,
      ca: leaf.ca.cert,
      sessIn,
      sessOut,
    });
  }

  const sessFile = (tag: string) => join(dir, `sess-${++seq}-${tag}`);

  /** A first, full handshake: the session every resumption of a cell starts from. */
  async function issue(inst: Instance, kind: ResumeKind, listener: ListenerName): Promise<{ file: string; visit: Visit }> {
    const file = sessFile(kind);
    const v = await go(inst, kind, listener, undefined, file);
    assert.equal(v.reused, false, `the first visit is a full handshake:\n${v.out}`);
    assert.equal(v.protocol, VERSION[kind]);
    return { file, visit: v };
  }

  /**
   * ROUNDS resumptions: `chain` offers each time the newest session the client got (the
   * client's usual way), else always the issued one. All must resume, for the client
   * and in the server's record; with several workers, some must have landed on another
   * worker than the one whose session they offered.
   */
  async function resumeRounds(
    inst: Instance,
    kind: ResumeKind,
    first: { file: string; visit: Visit; proc?: PosternProcess },
    listenerOf: (i: number) => ListenerName,
    chain: boolean,
  ): Promise<void> {
    const visits: Visit[] = [];
    let offer = first.file;
    const more = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const out = chain ? sessFile(kind) : undefined;
        visits.push(await go(inst, kind, listenerOf(visits.length), offer, out));
        // s_client writes a session only when it gets a new one (a resumed TLS 1.2 session is not new).
        if (out && existsSync(out)) offer = out;
      }
    };
    await more(ROUNDS);
    // With several workers, some visit must land on another worker than the one whose session
    // it offered, or the cell proves nothing. The kernel may hand a run of connections to one
    // worker (CI once gave all 16 to one): then up to EXTRA more visits, until one crosses.
    const crossings = async (): Promise<number> => {
      const recs = await inst.records(visits.map((v) => v.helo));
      // Which process served each visit: a connection id starts with its process's prefix.
      const served = (v: Visit) => String(recs.get(v.helo)?.conn ?? '').slice(0, 6);
      const issuer = first.proc === inst.proc ? String((await inst.records([first.visit.helo])).get(first.visit.helo)!.conn).slice(0, 6) : 'before';
      let crossed = 0;
      let from = issuer;
      for (const v of visits) {
        if (served(v) !== from) crossed++;
        if (chain) from = served(v);
      }
      return crossed;
    };
    if (inst.workers > 1) for (let extra = 0; extra < EXTRA && (await crossings()) === 0; extra += 8) await more(8);
    const n = visits.length;
    const reused = visits.filter((v) => v.reused).length;
    const bad = visits.find((v) => !v.reused);
    assert.equal(reused, n, `${KIND_TEXT[kind]}: ${reused}/${n} resumed; one that did not:\n${bad?.out.slice(0, 3000)}`);
    for (const v of visits) assert.equal(v.protocol, VERSION[kind]);
    const recs = await inst.records(visits.map((v) => v.helo));
    const serverSaw = visits.filter((v) => (recs.get(v.helo)!.tls as { resumed: boolean }).resumed).length;
    assert.equal(serverSaw, n, `the server logged ${serverSaw}/${n} as resumed`);
    if (inst.workers > 1) assert.ok((await crossings()) > 0, `all ${n} resumptions landed on the worker that issued their session: the cell proved nothing`);
  }

  for (const workers of [2, 1]) {
    describe(`workers: ${workers}`, () => {
      const file = new Instance(`w${workers}-file`, workers, 'file');
      const shared = new Instance(`w${workers}-redis`, workers, 'redis');

      before(async () => {
        await Promise.all([file.init(), shared.init()]);
        await Promise.all([file.start(), shared.start()]);
      });
      after(async () => {
        await Promise.all([file.stop(), shared.stop()]);
      });

      for (const kind of RESUME_KINDS) {
        it(`${KIND_TEXT[kind]}, implicit TLS: ${ROUNDS}/${ROUNDS}`, async () => {
          const first = await issue(file, kind, 'smtps');
          await resumeRounds(file, kind, { ...first, proc: file.proc! }, () => 'smtps', true);
        });
        it(`${KIND_TEXT[kind]}, STARTTLS: ${ROUNDS}/${ROUNDS}`, async () => {
          const first = await issue(file, kind, 'smtp');
          await resumeRounds(file, kind, { ...first, proc: file.proc! }, () => 'smtp', true);
        });
        it(`${KIND_TEXT[kind]}, across listeners (implicit <-> STARTTLS): ${ROUNDS}/${ROUNDS}`, async () => {
          const first = await issue(file, kind, 'smtps');
          await resumeRounds(file, kind, { ...first, proc: file.proc! }, (i) => (i % 2 === 0 ? 'smtp' : 'smtps'), true);
        });
      }

      it(`across a ticket-key rotation, every kind: ${ROUNDS}/${ROUNDS}`, async () => {
        const firsts = new Map<ResumeKind, Awaited<ReturnType<typeof issue>>>();
        for (const kind of RESUME_KINDS) firsts.set(kind, await issue(file, kind, 'smtps'));
        const before = await currentKey(file.keyFile);
        const deadline = Date.now() + 10_000;
        while ((await currentKey(file.keyFile)) === before) {
          assert.ok(Date.now() < deadline, 'no rotation within 10 s');
          await new Promise((r) => setTimeout(r, 100));
        }
        // The issued sessions, offered every time: their tickets were sealed with the key that no longer encrypts.
        for (const kind of RESUME_KINDS) await resumeRounds(file, kind, { ...firsts.get(kind)!, proc: file.proc! }, () => 'smtps', false);
      });

      for (const inst of [file, shared]) {
        const how = inst === file ? 'the key file and tls.session_cache.file' : 'Redis (ticket keys and sessions)';
        it(`across a restart with ${how}, every kind: ${ROUNDS}/${ROUNDS} from the first connection`, async () => {
          const firsts = new Map<ResumeKind, Awaited<ReturnType<typeof issue>>>();
          for (const kind of RESUME_KINDS) firsts.set(kind, await issue(inst, kind, kind === 'tls12-id' ? 'smtp' : 'smtps'));
          await inst.restart();
          for (const kind of RESUME_KINDS) await resumeRounds(inst, kind, firsts.get(kind)!, (i) => (i % 2 === 0 ? 'smtps' : 'smtp'), false);
        });
      }

      it(`across an upgrade (SIGUSR2) with the key file and tls.session_cache.file, every kind: ${ROUNDS}/${ROUNDS}`, async () => {
        const firsts = new Map<ResumeKind, Awaited<ReturnType<typeof issue>>>();
        for (const kind of RESUME_KINDS) firsts.set(kind, await issue(file, kind, 'smtps'));
        await file.upgrade();
        for (const kind of RESUME_KINDS) await resumeRounds(file, kind, firsts.get(kind)!, (i) => (i % 2 === 0 ? 'smtp' : 'smtps'), false);
      });
    });
  }
});

/** The name (hex) of the ticket key that encrypts now, from the key file. */
async function currentKey(file: string): Promise<string> {
  const data = JSON.parse(await readFile(file, 'utf8')) as { keys: { active_from: string; key: string }[] };
  const now = Date.now();
  const active = data.keys.filter((k) => Date.parse(k.active_from) <= now).sort((a, b) => Date.parse(a.active_from) - Date.parse(b.active_from));
  return Buffer.from(active.at(-1)!.key, 'base64').subarray(0, 16).toString('hex');
}
