// A stop (SIGTERM, or the old process of an upgrade) waits for connections still arriving
// (accepted, their PROXY header, admission or TLS handshake not done) as it waits for
// sessions: before, it saw no session, finished, and the process exited under them, so their
// clients saw a close with no reply (CI: upgrade probes "connection closed before a reply").
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startSink, type Sink } from '../../src/sink/index.js';
import { startPostern, type TestPostern } from '../helpers/postern.js';

describe('a stop waits for connections still arriving', () => {
  let sink: Sink;
  let p: TestPostern;
  before(async () => {
    sink = await startSink({ xclient: true });
    p = await startPostern(`hostname: arrive.test
listeners: [ { name: mx, listen: 127.0.0.1:0, proxy_protocol: on, trusted_proxies: [127.0.0.1] } ]
backends: { identity: xclient, servers: [ { address: 127.0.0.1:${sink.address().port} } ] }
`);
  });
  after(async () => {
    await sink.close();
  });

  it('a balancer connection whose PROXY header comes after the stop began still gets its session and a reply before the stop ends', async () => {
    const s = net.connect({ port: p.postern.addresses().mx!.port, host: '127.0.0.1' });
    await new Promise<void>((r) => s.once('connect', () => r()));
    let got = '';
    s.on('data', (d) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    await new Promise((r) => setTimeout(r, 100)); // accepted, waiting for its header
    let stopped = false;
    const stopping = p.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(stopped, false, 'the stop waits for the arriving connection');
    s.write('PROXY TCP4 192.0.2.9 127.0.0.1 4321 25\r\n');
    await stopping;
    assert.match(got, /^220 /m, `the client was greeted: ${JSON.stringify(got)}`);
    assert.match(got, /^421 /m, `then told of the shutdown: ${JSON.stringify(got)}`);
    s.destroy();
  });
});
