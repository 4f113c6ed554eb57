// TLS resumption around restarts of real `postern run` processes (issue 13, finding 6): a
// process stopped in the middle of a ticket key write, a restart right after a rotation, and
// back-to-back restarts. Every connection must resume, from the first one after a start, with
// TLS 1.2 and 1.3, on every worker; keys rotate every 2 s so rotations happen meanwhile.
import assert from 'node:assert/strict';
import { existsSync, watch } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { freePort } from '../helpers/net.js';
import { cliMissing, spawnPostern, type PosternProcess } from '../helpers/postern-group.js';
import { nodeTlsVisit, opensslAvailable, sClientVisit, type TlsVisit } from '../helpers/tls-clients.js';

const NAME = 'mx.restart.test';
const VERSIONS: tls.SecureVersion[] = ['TLSv1.3', 'TLSv1.2'];

describe('TLS resumption around restarts (real processes)', { skip: cliMissing() || (!opensslAvailable() && 'openssl missing') }, () => {
  let pki: TestPki;
  let leaf: Leaf;
  let sink: Sink;
  let dir: string;
  const running = new Set<PosternProcess>();

  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('restart', 'ecdsa', [NAME]);
    sink = await startSink({ xclient: true });
    dir = await mkdtemp(join(tmpdir(), 'postern-restart-'));
  });
  after(async () => {
    for (const p of running) await p.stop('SIGKILL');
    await sink.close();
    await pki.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  interface Setup {
    file: string;
    keyDir: string;
    keyFile: string;
    port: number;
    workers: number;
  }

  /** A config with an implicit-TLS listener on a fixed port; no session cache, so only tickets resume. */
  async function setup(name: string, workers: number, rotate = '2s'): Promise<Setup> {
    const port = await freePort();
    const keyDir = join(dir, name);
    await mkdir(keyDir, { recursive: true, mode: 0o700 });
    const keyFile = join(keyDir, 'ticket-keys');
    const file = join(dir, `${name}.yaml`);
    await writeFile(
      file,
      `hostname: restart.test
workers: ${workers}
shutdown_grace: 1s
listeners:
  - { name: smtps, listen: 127.0.0.1:${port}, tls: implicit }
tls:
  certificates: [ { cert: ${leaf.cert}, key: ${leaf.key} } ]
  ticket_keys: { file: ${keyFile}, rotate: ${rotate}, lifetime: 2m }
  session_cache: { size: 0 }
limits:
  per_ip: { connections: 1000, rate: 1000000/1m }
backends:
  identity: xclient
  servers: [ { address: 127.0.0.1:${sink.address().port} } ]
log: { level: info }
`,
    );
    return { file, keyDir, keyFile, port, workers };
  }

  async function start(s: Setup): Promise<PosternProcess> {
    const p = await spawnPostern(s.file, { workers: s.workers });
    running.add(p);
    return p;
  }

  async function stop(p: PosternProcess, sig: NodeJS.Signals): Promise<void> {
    await p.stop(sig);
    running.delete(p);
  }

  const visit = (s: Setup, version: tls.SecureVersion, session?: Buffer | null) =>
    nodeTlsVisit({ port: s.port, ca: leaf.ca.pem, servername: NAME, version, session });

  /** Which worker served a connection: conn ids start with a per-process prefix. */
  async function servedBy(p: PosternProcess, v: TlsVisit): Promise<string> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = p.records().find((x) => x.event === 'session' && (x.client as { port: number } | undefined)?.port === v.localPort);
      if (r) return String(r.conn).slice(0, 6);
      assert.ok(Date.now() < deadline, `no session record for client port ${v.localPort}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  /** Fresh tickets for each version (full handshakes). */
  async function tickets(s: Setup): Promise<Map<tls.SecureVersion, Buffer>> {
    const m = new Map<tls.SecureVersion, Buffer>();
    for (const v of VERSIONS) {
      const r = await visit(s, v);
      assert.ok(r.session, `${v}: a ticket`);
      m.set(v, r.session);
    }
    return m;
  }

  /** Sessions per worker among these visits (conn ids start with a per-process prefix). */
  function workersOf(p: PosternProcess, visits: TlsVisit[]): Map<string, number> {
    const ports = new Set(visits.map((v) => v.localPort));
    const by = new Map<string, number>();
    for (const r of p.records()) {
      if (r.event !== 'session' || !ports.has((r.client as { port: number } | undefined)?.port ?? -1)) continue;
      const w = String(r.conn).slice(0, 6);
      by.set(w, (by.get(w) ?? 0) + 1);
    }
    return by;
  }

  /**
   * Connects again and again for `ms`: each version with its newest ticket, twice in a row, and
   * every few rounds with each ticket set in `old`. All must resume. The workers accept on the
   * shared socket themselves (the kernel picks one, not in turn), so it goes on, up to 15 s more,
   * until every worker has served some. Returns the sessions per worker.
   */
  async function resumeFor(p: PosternProcess, s: Setup, ms: number, chain: Map<tls.SecureVersion, Buffer>, old: Map<tls.SecureVersion, Buffer>[], started: number): Promise<{ workers: Map<string, number>; resumed: number }> {
    const seen: TlsVisit[] = [];
    const end = Date.now() + ms;
    const more = () => Date.now() < end || (Date.now() < end + 15_000 && workersOf(p, seen).size < s.workers);
    for (let round = 0; round === 0 || more(); round++) {
      for (const v of VERSIONS) {
        for (let twice = 0; twice < 2; twice++) {
          const r = await visit(s, v, chain.get(v));
          assert.equal(r.reused, true, `${v}: a ticket issued after the start did not resume ${Date.now() - started} ms after it (round ${round})`);
          seen.push(r);
          if (twice === 1 && r.session) chain.set(v, r.session);
        }
        if (round % 10 === 0) {
          for (const [i, set] of old.entries()) {
            const o = await visit(s, v, set.get(v));
            assert.equal(o.reused, true, `${v}: ticket set ${i} from before the stop did not resume ${Date.now() - started} ms after the start`);
          }
        }
      }
    }
    await servedBy(p, seen.at(-1)!); // the last session's record is in
    return { workers: workersOf(p, seen), resumed: seen.length };
  }

  /**
   * Waits for a worker to start writing the key file and freezes it there (SIGSTOP as soon as its
   * temporary file appears, kept only if that file is still there: the write had not finished).
   */
  async function freezeMidWrite(s: Setup): Promise<number> {
    // Under load the write often ends before the SIGSTOP lands: many tries, each a key write away.
    for (let attempt = 0; attempt < 30; attempt++) {
      const pid = await new Promise<{ pid: number; tmp: string }>((resolve, reject) => {
        const w = watch(s.keyDir);
        const timer = setTimeout(() => {
          w.close();
          reject(new Error('no key file write within 10 s'));
        }, 10_000);
        w.on('change', (_e, name) => {
          const m = /\.tmp-(\d+)-/.exec(String(name));
          if (!m) return;
          try {
            process.kill(Number(m[1]), 'SIGSTOP');
          } catch {
            return;
          }
          clearTimeout(timer);
          w.close();
          resolve({ pid: Number(m[1]), tmp: join(s.keyDir, String(name)) });
        });
      });
      await new Promise((res) => setTimeout(res, 50));
      if (existsSync(pid.tmp)) return pid.pid;
      process.kill(pid.pid, 'SIGCONT');
    }
    throw new Error('could not catch a process in the middle of a key write');
  }

  for (const sig of ['SIGKILL', 'SIGTERM'] as const) {
    it(`${sig} while a worker is writing the key file costs no resumption afterwards (workers: 2)`, async (t) => {
      const s = await setup(`midwrite-${sig}`, 2);
      const a = await start(s);
      const before = await tickets(s);
      const frozen = await freezeMidWrite(s);
      const chain = await tickets(s);
      if (sig === 'SIGTERM') {
        // The frozen worker gets SIGTERM with the others, then runs on from the middle of its write.
        a.signal('SIGTERM');
        process.kill(frozen, 'SIGCONT');
      }
      await stop(a, sig);
      const left = await readdir(s.keyDir);
      assert.ok(left.includes('ticket-keys'), `the key file survives: ${left.join(' ')}`);
      const b = await start(s);
      const started = Date.now();
      // Two rotations (every 2 s) at least: the key file has no lock, so nothing left behind
      // by the frozen writer can hold later updates back.
      const { workers, resumed } = await resumeFor(b, s, 5000, chain, [before], started);
      const spread = [...workers.values()].join(' + ');
      assert.equal(workers.size, 2, `both workers served (sessions per worker: ${spread})`);
      t.diagnostic(`${resumed} resumptions with tickets issued after the start, all resumed; sessions per worker ${spread}`);
      await stop(b, 'SIGTERM');
    });
  }

  it('a restart right after a rotation: tickets from both keys resume at the first connection (workers: 2)', async () => {
    const s = await setup('rotation', 2);
    const a = await start(s);
    const before = await tickets(s);
    // Wait for the encrypting key to change, then take tickets under the new key and restart.
    const activeNow = async () => {
      const data = JSON.parse(await readFile(s.keyFile, 'utf8')) as { keys: { active_from: string; key: string }[] };
      return data.keys.filter((k) => Date.parse(k.active_from) <= Date.now()).at(-1)!;
    };
    const first = await activeNow();
    let cur = first;
    const deadline = Date.now() + 10_000;
    while (cur.key === first.key) {
      assert.ok(Date.now() < deadline, 'no rotation within 10 s');
      await new Promise((res) => setTimeout(res, 20));
      cur = await activeNow();
    }
    const after = await tickets(s);
    await stop(a, 'SIGTERM');
    const b = await start(s);
    for (const v of VERSIONS) {
      assert.equal((await visit(s, v, after.get(v))).reused, true, `${v}: ticket under the new key, first connection after the restart`);
      assert.equal((await visit(s, v, before.get(v))).reused, true, `${v}: ticket under the previous key`);
    }
    await stop(b, 'SIGTERM');
  });

  it('10 back-to-back restarts (SIGTERM and SIGKILL in turn): every first connection resumes, Node and openssl s_client', async () => {
    const s = await setup('back-to-back', 1);
    const sessIn = join(s.keyDir, 'sclient-0.sess');
    let p = await start(s);
    const first = await tickets(s);
    const sc = await sClientVisit(s.port, leaf.ca.cert, NAME, ['-tls1_3', '-sess_out', sessIn]);
    assert.equal(sc.reused, false);
    let prev = first;
    for (let i = 0; i < 10; i++) {
      const mine = await tickets(s);
      const sess = join(s.keyDir, `sclient-${i + 1}.sess`);
      await sClientVisit(s.port, leaf.ca.cert, NAME, [i % 2 ? '-tls1_2' : '-tls1_3', '-sess_out', sess]);
      await stop(p, i % 2 ? 'SIGKILL' : 'SIGTERM');
      p = await start(s);
      for (const v of VERSIONS) {
        assert.equal((await visit(s, v, mine.get(v))).reused, true, `restart ${i + 1}, ${v}: ticket from the last process, first connection`);
        assert.equal((await visit(s, v, prev.get(v))).reused, true, `restart ${i + 1}, ${v}: ticket from the process before`);
        assert.equal((await visit(s, v, first.get(v))).reused, true, `restart ${i + 1}, ${v}: ticket from the first process`);
      }
      const r = await sClientVisit(s.port, leaf.ca.cert, NAME, [i % 2 ? '-tls1_2' : '-tls1_3', '-sess_in', sess]);
      assert.equal(r.reused, true, `restart ${i + 1}: openssl s_client -sess_in\n${r.out}`);
      prev = mine;
    }
    const r0 = await sClientVisit(s.port, leaf.ca.cert, NAME, ['-tls1_3', '-sess_in', sessIn]);
    assert.equal(r0.reused, true, `openssl s_client with the session from the first process\n${r0.out}`);
    await stop(p, 'SIGTERM');
  });
});
