// `postern report` streams: a log far larger than the heap is summarised, and the heap
// stays flat as the number of distinct clients and HELO names grows without end.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { emptyExpect, generateLines } from '../helpers/loggen.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const REPORT = path.join(ROOT, 'src/tools/report.ts');
const AGGREGATE = path.join(ROOT, 'src/tools/report-aggregate.ts');

function node(flags: string[], script: string, timeout = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...flags, '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: ROOT, timeout, maxBuffer: 1 << 24 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('postern report memory', { timeout: 120_000 }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'postern-report-mem-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('summarises a ~150 MB log with a 64 MB heap', async () => {
    // 50 MB of generated log (a fresh client address per session) written three times.
    const expect = emptyExpect();
    let chunk = '';
    for (const line of generateLines({ sessions: 70_000, seed: 9, clients: 0, tally: false }, expect)) chunk += line + '\n';
    const file = path.join(dir, 'big.log');
    const out = createWriteStream(file);
    for (let i = 0; i < 3; i++) if (!out.write(chunk)) await once(out, 'drain');
    out.end();
    await once(out, 'finish');
    const size = Buffer.byteLength(chunk) * 3;
    assert.ok(size > 135e6, `log is ${size} bytes`);
    chunk = '';

    const r = await node(
      ['--max-old-space-size=64'],
      `const m = await import(${JSON.stringify(REPORT)});
       let text = '';
       const code = await m.reportMain([${JSON.stringify(file)}, '--json'], process.stdin, { out: { write: (s) => (text += s) } });
       const rep = JSON.parse(text);
       console.log(JSON.stringify({ code, sessions: rep.totals.sessions, messages: rep.totals.messages.total, approximate: rep.top_clients.approximate, heap: process.memoryUsage().heapUsed }));`,
    );
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { code: number; sessions: number; messages: number; approximate: boolean; heap: number };
    assert.equal(got.code, 0);
    assert.equal(got.sessions, 3 * expect.sessions);
    assert.equal(got.messages, 3 * (expect.messages.accepted + expect.messages.tempfail + expect.messages.rejected));
    assert.equal(got.approximate, true, 'more distinct clients than the counter keeps');
    assert.ok(got.heap < 64e6, `heap ${got.heap}`);
  });

  it('keeps the heap flat when the distinct clients and HELO names triple', async () => {
    // Every line a new client, HELO name and offender: the worst case for the top lists.
    const r = await node(
      ['--expose-gc'],
      `const { ReportAggregator } = await import(${JSON.stringify(AGGREGATE)});
       const agg = new ReportAggregator();
       const feed = (from, to) => {
         for (let i = from; i < to; i++) {
           const a = '10.' + ((i >> 16) & 255) + '.' + ((i >> 8) & 255) + '.' + (i & 255);
           agg.line('{"level":"info","time":"2026-01-01T00:00:00.000Z","event":"session","conn":"c' + i + '","client":{"address":"' + a + '","port":1},"listener":"smtp","tls":null,"helo":"host' + i + '.example","backend":null,"transactions":0,"rcpts":0,"bytes_in":1,"bytes_out":1,"duration_ms":1,"close":"client_closed","anomalies":["no_quit"]}');
         }
       };
       const heap = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage().heapUsed; };
       feed(0, 100000);
       const h1 = heap();
       feed(100000, 400000);
       const h2 = heap();
       const rep = agg.result({ top: 10 });
       console.log(JSON.stringify({ h1, h2, sessions: rep.totals.sessions, approx: rep.top_helo.approximate && rep.anomalies.no_quit.top_offenders.approximate }));`,
    );
    assert.equal(r.code, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { h1: number; h2: number; sessions: number; approx: boolean };
    assert.equal(got.sessions, 400_000);
    assert.equal(got.approx, true);
    // 300,000 more distinct names would cost tens of MB if each were kept.
    assert.ok(got.h2 - got.h1 < 4e6, `heap grew ${got.h2 - got.h1} bytes`);
  });
});
