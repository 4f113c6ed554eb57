// RST after QUIT as it happens on real networks (issue 14): after the 221 Postern
// half-closes and keeps reading for a short linger, so a reset that arrives before, during
// or after the 221's write is named, plain and TLS alike, and a clean FIN is not. Under TLS
// our close_notify waits for the client's FIN (issue 23): a client that waits for our close
// instead gets it after QUIT_FIN_WAIT_MS, and nothing is named.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { QUIT_FIN_WAIT_MS } from '../../src/session/farewell.js';
import { startSink, type Sink } from '../../src/sink/index.js';
import { makePki, type Leaf, type TestPki } from '../helpers/certs.js';
import { basicYaml, startPostern, type TestPostern } from '../helpers/postern.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Ending = 'reset-now' | 'reset-20ms' | 'reset-200ms' | 'fin-after-221' | 'wait-for-close';

/** How long the server took to close after the 221, for 'wait-for-close' (ms). */
const closeWaits: number[] = [];

/** Connects (plain or implicit TLS), says EHLO, sends QUIT and ends as `how` says; returns the local port. */
async function session(port: number, secure: Leaf | null, how: Ending): Promise<number> {
  const raw = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
  raw.on('error', () => undefined);
  await new Promise<void>((r) => raw.once('connect', () => r()));
  const s: net.Socket = secure ? tls.connect({ socket: raw, servername: 'mx.postern.test', ca: secure.ca.pem }) : raw;
  s.on('error', () => undefined);
  let got = '';
  const waitFor = (re: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${re} in ${JSON.stringify(got)}`)), 5000);
      const check = () => {
        if (re.test(got)) {
          clearTimeout(timer);
          s.off('data', onData);
          resolve();
        }
      };
      const onData = (d: Buffer) => {
        got += d.toString('latin1');
        check();
      };
      s.on('data', onData);
      check();
    });
  await waitFor(/^220 /m);
  s.write('EHLO linger.test\r\n');
  await waitFor(/^250 /m);
  const localPort = raw.localPort!;
  if (how === 'fin-after-221') {
    s.write('QUIT\r\n');
    await waitFor(/^221 /m);
    s.end();
    return localPort;
  }
  if (how === 'wait-for-close') {
    // Reads the 221, then waits for the server's close (RFC 5321 §4.1.1.10 lets it).
    s.write('QUIT\r\n');
    await waitFor(/^221 /m);
    const t221 = Date.now();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the server did not close within 5 s')), 5000);
      s.once('end', () => {
        clearTimeout(timer);
        resolve();
      });
      s.resume();
    });
    closeWaits.push(Date.now() - t221);
    s.end();
    return localPort;
  }
  // Not reading from here on: the 221 (and under TLS the close_notify) stays unread.
  s.pause();
  if (how === 'reset-now') {
    s.write('QUIT\r\n', () => raw.resetAndDestroy());
  } else {
    s.write('QUIT\r\n');
    await sleep(how === 'reset-20ms' ? 20 : 200);
    raw.resetAndDestroy();
  }
  return localPort;
}

describe('RST after QUIT, with real timing, plain and TLS', () => {
  let pki: TestPki;
  let leaf: Leaf;
  let sink: Sink;
  let p: TestPostern;
  let plainPort: number;
  let tlsPort: number;

  before(async () => {
    pki = await makePki();
    leaf = await pki.leaf('mx', 'ecdsa', ['mx.postern.test']);
    sink = await startSink({ xclient: true });
    const yaml = basicYaml([`127.0.0.1:${sink.address().port}`], `tls:\n  certificates:\n    - { cert: ${leaf.cert}, key: ${leaf.key} }\n`).replace(
      '  - name: smtp\n    listen: 127.0.0.1:0\n',
      '  - name: smtp\n    listen: 127.0.0.1:0\n  - name: smtps\n    listen: 127.0.0.1:0\n    tls: implicit\n',
    );
    p = await startPostern(yaml);
    plainPort = p.postern.addresses().smtp!.port;
    tlsPort = p.postern.addresses().smtps!.port;
  });
  after(async () => {
    await p.stop();
    await sink.close();
    await pki.cleanup();
  });

  const cases: [Ending, string[]][] = [
    ['reset-now', ['rst_after_quit']],
    ['reset-20ms', ['rst_after_quit']],
    ['reset-200ms', ['rst_after_quit']],
    ['fin-after-221', []],
    ['wait-for-close', []],
  ];
  for (const transport of ['plain', 'tls'] as const) {
    for (const [how, expected] of cases) {
      it(`${transport}: ${how} -> ${expected.length ? expected.join(',') : 'nothing'}`, async (t) => {
        // Repeated: a timing-dependent verdict must hold every time, not by luck.
        for (let i = 0; i < 5; i++) {
          const t0 = Date.now();
          // Only records written from now on: the kernel reuses a client port, and an earlier
          // session of the same port (another case's) must not stand in for this one.
          const since = p.records.length;
          const port = await session(transport === 'plain' ? plainPort : tlsPort, transport === 'tls' ? leaf : null, how);
          const listener = transport === 'plain' ? 'smtp' : 'smtps';
          const rec = await p.waitFor(
            (r) => r.event === 'session' && r.listener === listener && (r.client as { port: number }).port === port && p.records.indexOf(r) >= since,
            6000,
          );
          const waited = Date.now() - t0;
          assert.equal(rec.close, 'quit', JSON.stringify(rec));
          assert.deepEqual(rec.anomalies, expected, `run ${i}: ${JSON.stringify(rec)}`);
          // The linger (2 s) is the most the record may be held back.
          assert.ok(waited < 3000, `the record came ${waited} ms after the session started`);
          if (how === 'wait-for-close') {
            // Plain: our FIN comes with the 221; TLS: after QUIT_FIN_WAIT_MS (300 ms), plus load.
            const wait = closeWaits.at(-1)!;
            assert.ok(wait < (transport === 'plain' ? 1000 : QUIT_FIN_WAIT_MS + 1000), `run ${i}: the server closed ${wait} ms after the 221`);
          }
          if (expected.length) {
            const a = await p.waitFor((r) => r.event === 'anomaly' && r.conn === rec.conn);
            assert.equal(a.severity, 'notice');
          }
        }
        if (how === 'wait-for-close') t.diagnostic(`the server closed ${closeWaits.slice(-5).join(', ')} ms after the 221`);
      });
    }
  }
});
