// The http verifier against an auth_http server written here (node:http on loopback),
// answering the way nginx's auth_http servers do.
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { HttpVerifier } from '../../src/auth/http.js';
import type { VerifyRequest, VerifyResult } from '../../src/auth/verifier.js';
import { freePort } from '../helpers/net.js';

interface Seen {
  method: string;
  url: string;
  /** [name, value] as sent, in order, values as the bytes on the wire (latin1). */
  headers: Array<[string, string]>;
}

/** What the server answers: response headers, or 'hang' to never answer. */
type Answer = Record<string, string> | 'hang';

const REQ: VerifyRequest = {
  user: 'alice@example.org',
  password: 'a b%c\tdé',
  authzid: '',
  mechanism: 'LOGIN',
  client: { address: '192.0.2.42', port: 40000 },
  local: { address: '127.0.0.1', port: 587 },
  tls: true,
  helo: 'client.example.org',
  attempt: 3,
};

describe('http verifier (nginx auth_http protocol)', () => {
  let server: http.Server;
  let url = '';
  let seen: Seen[] = [];
  let answers: Answer[] = [];
  const verifiers: HttpVerifier[] = [];
  const make = (timeout = 3000, headers: Record<string, string> = {}): HttpVerifier => {
    const v = new HttpVerifier({ url, timeout, headers });
    verifiers.push(v);
    return v;
  };

  before(async () => {
    server = http.createServer((req, res) => {
      const headers: Array<[string, string]> = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string]);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers });
      const a = answers.shift() ?? { 'Auth-Status': 'OK' };
      if (a === 'hang') return;
      // nginx reads only headers; give a body anyway, as real auth servers do.
      res.writeHead(200, a);
      res.end('ignored body\n');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mail/auth?x=1`;
  });

  beforeEach(() => {
    seen = [];
    answers = [];
  });

  after(async () => {
    for (const v of verifiers) await v.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('sends the request headers as nginx does', async () => {
    const v = make(3000, { 'X-Auth-Key': 'shared-secret' });
    assert.deepEqual(await v.verify(REQ), { ok: true, user: 'alice@example.org' });
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.method, 'GET');
    assert.equal(seen[0]?.url, '/mail/auth?x=1');
    const h = (seen[0]?.headers ?? []).filter(([n]) => !['host', 'connection'].includes(n.toLowerCase()));
    assert.deepEqual(h, [
      ['Auth-Method', 'plain'],
      ['Auth-User', 'alice@example.org'],
      // space, % and TAB escaped; é as its two UTF-8 bytes
      ['Auth-Pass', 'a%20b%25c%09d\xc3\xa9'],
      ['Auth-Protocol', 'smtp'],
      ['Auth-Login-Attempt', '3'],
      ['Client-IP', '192.0.2.42'],
      ['Client-Host', '[UNAVAILABLE]'],
      ['Auth-SMTP-Helo', 'client.example.org'],
      ['Auth-SSL', 'on'],
      ['X-Auth-Key', 'shared-secret'],
    ]);
    assert.ok(seen[0]?.headers.some(([n, val]) => n === 'Host' && val === new URL(url).host));
  });

  it('routes to Auth-Server/Auth-Port and takes Auth-User as the login', async () => {
    answers = [{ 'Auth-Status': 'OK', 'Auth-Server': '127.0.0.1', 'Auth-Port': '2526', 'Auth-User': 'alice' }];
    assert.deepEqual(await make().verify(REQ), { ok: true, user: 'alice', server: { host: '127.0.0.1', port: 2526, text: '127.0.0.1:2526' } });
  });

  it('holds a refusal for Auth-Wait and keeps the session; without Auth-Wait it closes it', async () => {
    answers = [{ 'Auth-Status': 'Invalid login or password', 'Auth-Wait': '3' }, { 'Auth-Status': 'Invalid login or password' }];
    const v = make();
    const held = await v.verify(REQ);
    assert.deepEqual(withReply(held), { ok: false, failure: 'invalid', reason: 'auth server: Invalid login or password', reply: '535 5.7.8 Invalid login or password\r\n', waitMs: 3000 });
    const last = await v.verify(REQ);
    assert.deepEqual(withReply(last), { ok: false, failure: 'invalid', reason: 'auth server: Invalid login or password', reply: '535 5.7.8 Invalid login or password\r\n', close: true });
  });

  it('uses Auth-Error-Code; a 4xx code is a temporary failure', async () => {
    answers = [{ 'Auth-Status': 'Backend maintenance', 'Auth-Error-Code': '454 4.7.0', 'Auth-Wait': '1' }];
    assert.deepEqual(withReply(await make().verify(REQ)), {
      ok: false,
      failure: 'temporary',
      reason: 'auth server: Backend maintenance',
      reply: '454 4.7.0 Backend maintenance\r\n',
      waitMs: 1000,
    });
  });

  it('asks again after Auth-Status: WAIT', async () => {
    answers = [{ 'Auth-Status': 'WAIT', 'Auth-Wait': '0' }, { 'Auth-Status': 'OK' }];
    assert.deepEqual(await make().verify(REQ), { ok: true, user: 'alice@example.org' });
    assert.equal(seen.length, 2);
    // The same attempt, asked twice.
    assert.deepEqual(seen.map((s) => s.headers.find(([n]) => n === 'Auth-Login-Attempt')?.[1]), ['3', '3']);
  });

  it('fails temporary on a response without Auth-Status (an error page)', async () => {
    answers = [{ 'Content-Type': 'text/html' }];
    const r = await make().verify(REQ);
    assert.deepEqual(r, { ok: false, failure: 'temporary', reason: 'the auth server sent no Auth-Status header' });
  });

  it('times out a server that never answers', async () => {
    answers = ['hang'];
    const t0 = Date.now();
    const r = await make(300).verify(REQ);
    assert.equal(!r.ok && r.failure, 'temporary');
    assert.match(r.ok ? '' : r.reason, /no answer within 300 ms/);
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  });

  it('fails temporary when the server is down', async () => {
    const port = await freePort();
    const v = new HttpVerifier({ url: `http://127.0.0.1:${port}/auth`, timeout: 2000 });
    verifiers.push(v);
    const r = await v.verify(REQ);
    assert.equal(!r.ok && r.failure, 'temporary');
    assert.match(r.ok ? '' : r.reason, /ECONNREFUSED/);
  });

  it('asks again on a fresh connection when a kept-alive one is reset as it is reused', async () => {
    // A raw server that answers the first request of each connection and resets the
    // connection at the second: what a server closing idle keep-alive sockets looks like
    // when the close and our reuse cross.
    let connections = 0;
    const raw = net.createServer((sock) => {
      connections++;
      let requests = 0;
      let buf = '';
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        if (!buf.includes('\r\n\r\n')) return;
        buf = '';
        if (++requests > 1) {
          sock.resetAndDestroy();
          return;
        }
        sock.write('HTTP/1.1 200 OK\r\nAuth-Status: OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n');
      });
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
    const v = new HttpVerifier({ url: `http://127.0.0.1:${(raw.address() as AddressInfo).port}/auth`, timeout: 2000 });
    try {
      assert.deepEqual(await v.verify(REQ), { ok: true, user: 'alice@example.org' });
      assert.deepEqual(await v.verify(REQ), { ok: true, user: 'alice@example.org' });
      assert.equal(connections, 2);
    } finally {
      // The kept-alive connection would hold raw.close() open.
      await v.close();
      await new Promise((r) => raw.close(r));
    }
  });

  it('answers many attempts at once, each with its own result', async () => {
    const v = make();
    answers = Array.from({ length: 60 }, (_, i): Answer => (i % 2 === 0 ? { 'Auth-Status': 'OK' } : { 'Auth-Status': 'No', 'Auth-Wait': '0' }));
    // The server answers in arrival order; each request carries its user, so match by it.
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => v.verify({ ...REQ, user: `u${i}` })));
    const byUser = new Map(seen.map((s, i) => [s.headers.find(([n]) => n === 'Auth-User')?.[1], i % 2 === 0]));
    results.forEach((r, i) => assert.equal(r.ok, byUser.get(`u${i}`), `u${i}`));
  });
});

function withReply(r: VerifyResult): Record<string, unknown> {
  if (r.ok) return r;
  const { reply, ...rest } = r;
  return { ...rest, reply: reply?.reply };
}
