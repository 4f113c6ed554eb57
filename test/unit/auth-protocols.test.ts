import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DovecotProtocolError, HandshakeReader, authLine, cancelLine, clientHandshake, failIsTemporary, parseReply, tabEscape, tabUnescape,
} from '../../src/auth/dovecot-protocol.js';
import { authHttpRequestHeaders, escapeMailAuth, interpretAuthHttpResponse } from '../../src/auth/http-protocol.js';
import type { VerifyRequest } from '../../src/auth/verifier.js';

describe('dovecot auth protocol', () => {
  it('tab-escapes and unescapes as Dovecot does', () => {
    assert.equal(tabEscape('a\tb\nc\rd\x01e\x00'), 'a\x01tb\x01nc\x01rd\x011e\x010');
    assert.equal(tabUnescape('a\x01tb\x01nc\x01rd\x011e\x010'), 'a\tb\nc\rd\x01e\x00');
    // Any other character after the escape stands for itself.
    assert.equal(tabUnescape('x\x01y'), 'xy');
  });

  it('starts with VERSION 1.2 and the pid', () => {
    assert.equal(clientHandshake(4242), 'VERSION\t1\t2\nCPID\t4242\n');
  });

  it('reads the server handshake Dovecot 2.3 sends', () => {
    const r = new HandshakeReader();
    const lines = ['VERSION\t1\t2', 'MECH\tPLAIN\tplaintext', 'MECH\tLOGIN\tplaintext', 'SPID\t25993', 'CUID\t3', 'COOKIE\t481cab130f47d38dd4a1c812b950e0ed'];
    for (const l of lines) assert.equal(r.push(l), null);
    const hs = r.push('DONE');
    assert.deepEqual(hs, { minor: 2, mechanisms: new Map([['PLAIN', ['plaintext']], ['LOGIN', ['plaintext']]]), spid: '25993', cuid: '3' });
  });

  it('refuses another major version or a handshake that does not start with VERSION', () => {
    assert.throws(() => new HandshakeReader().push('VERSION\t2\t0'), DovecotProtocolError);
    assert.throws(() => new HandshakeReader().push('MECH\tPLAIN'), DovecotProtocolError);
  });

  it('builds AUTH with resp last and values escaped', () => {
    const line = authLine({
      id: 7,
      mechanism: 'PLAIN',
      service: 'smtp',
      params: [['session', 'a\tb'], ['rip', '192.0.2.1'], ['secured', 'tls'], ['nologin', null]],
      resp: 'AGFsaWNlAHNlY3JldA==',
    });
    assert.equal(line, 'AUTH\t7\tPLAIN\tservice=smtp\tsession=a\x01tb\trip=192.0.2.1\tsecured=tls\tnologin\tresp=AGFsaWNlAHNlY3JldA==\n');
    assert.equal(cancelLine(7), 'CANCEL\t7\n');
  });

  it('parses OK, FAIL and CONT, and ignores other lines', () => {
    assert.deepEqual(parseReply('OK\t1\tuser=alice\x01tx'), { type: 'OK', id: 1, params: new Map([['user', 'alice\tx']]) });
    const fail = parseReply('FAIL\t2\tuser=bob\tcode=temp_fail\treason=Internal error');
    assert.deepEqual(fail, { type: 'FAIL', id: 2, params: new Map([['user', 'bob'], ['code', 'temp_fail'], ['reason', 'Internal error']]) });
    assert.equal(failIsTemporary(fail?.type === 'FAIL' ? fail.params : new Map()), true);
    assert.equal(failIsTemporary(new Map([['temp', '']])), true);
    assert.equal(failIsTemporary(new Map([['code', 'authz_fail']])), false);
    assert.equal(failIsTemporary(new Map()), false);
    assert.deepEqual(parseReply('CONT\t3\tVXNlcm5hbWU6'), { type: 'CONT', id: 3, data: 'VXNlcm5hbWU6' });
    assert.equal(parseReply('NOTFOUND\t4'), null);
    assert.throws(() => parseReply('OK\tx\tuser=a'), DovecotProtocolError);
  });
});

const REQ: VerifyRequest = {
  user: 'alice@example.org',
  password: 'p ss%wörd\t',
  authzid: '',
  mechanism: 'LOGIN',
  client: { address: '192.0.2.42', port: 40000 },
  local: { address: '127.0.0.1', port: 587 },
  tls: true,
  helo: 'client.example.org',
  attempt: 2,
};

describe('auth_http protocol', () => {
  it('escapes user and password as nginx does (CTLs, space, % only; UTF-8 raw)', () => {
    assert.equal(escapeMailAuth('p ss%wörd\t\x7f'), 'p%20ss%25w\xc3\xb6rd%09%7F');
    assert.equal(escapeMailAuth('plain'), 'plain');
  });

  it('sends nginx\'s request headers, then the operator\'s', () => {
    assert.deepEqual(Object.entries(authHttpRequestHeaders(REQ, { 'X-Auth-Key': 'k' })), [
      ['Auth-Method', 'plain'],
      ['Auth-User', 'alice@example.org'],
      ['Auth-Pass', 'p%20ss%25w\xc3\xb6rd%09'],
      ['Auth-Protocol', 'smtp'],
      ['Auth-Login-Attempt', '2'],
      ['Client-IP', '192.0.2.42'],
      ['Client-Host', '[UNAVAILABLE]'],
      ['Auth-SMTP-Helo', 'client.example.org'],
      ['Auth-SSL', 'on'],
      ['X-Auth-Key', 'k'],
    ]);
    const h = authHttpRequestHeaders({ ...REQ, tls: false, helo: null, clientHost: 'c.example.net' });
    assert.equal(h['Client-Host'], 'c.example.net');
    assert.equal(h['Auth-SMTP-Helo'], undefined);
    assert.equal(h['Auth-SSL'], undefined);
  });

  it('reads OK with or without a server to route to, and Auth-User', () => {
    assert.deepEqual(interpretAuthHttpResponse({ 'auth-status': 'OK' }), { kind: 'ok', user: null, server: null });
    assert.deepEqual(interpretAuthHttpResponse({ 'auth-status': 'OK', 'auth-server': '198.51.100.1', 'auth-port': '25', 'auth-user': 'Alice' }), {
      kind: 'ok',
      user: 'Alice',
      server: { host: '198.51.100.1', port: 25, text: '198.51.100.1:25' },
    });
    assert.deepEqual(interpretAuthHttpResponse({ 'auth-status': 'OK', 'auth-server': '2001:db8::1', 'auth-port': '587' }), {
      kind: 'ok',
      user: null,
      server: { host: '2001:db8::1', port: 587, text: '[2001:db8::1]:587' },
    });
  });

  it('calls a half or bad route, or no Auth-Status, broken', () => {
    for (const h of [
      { 'auth-status': 'OK', 'auth-server': '198.51.100.1' },
      { 'auth-status': 'OK', 'auth-port': '25' },
      { 'auth-status': 'OK', 'auth-server': 'mx.example.org', 'auth-port': '25' },
      { 'auth-status': 'OK', 'auth-server': '198.51.100.1', 'auth-port': '70000' },
      {},
    ]) {
      assert.equal(interpretAuthHttpResponse(h).kind, 'broken', JSON.stringify(h));
    }
  });

  it('turns a refusal into the SMTP reply nginx would send, with 5.7.8 by default', () => {
    const a = interpretAuthHttpResponse({ 'auth-status': 'Invalid login or password', 'auth-wait': '3' });
    assert.equal(a.kind, 'refused');
    if (a.kind !== 'refused') return;
    assert.equal(a.reply.reply, '535 5.7.8 Invalid login or password\r\n');
    assert.equal(a.temporary, false);
    assert.equal(a.waitMs, 3000);

    const t = interpretAuthHttpResponse({ 'auth-status': 'Try later', 'auth-error-code': '454 4.7.0' });
    assert.equal(t.kind === 'refused' && t.reply.reply, '454 4.7.0 Try later\r\n');
    assert.equal(t.kind === 'refused' && t.temporary, true);
    assert.equal(t.kind === 'refused' && t.waitMs, null);

    const w = interpretAuthHttpResponse({ 'auth-status': 'Too weak', 'auth-error-code': '534 4.7.9' });
    assert.equal(w.kind === 'refused' && w.reply.reply, '534 5.7.8 Too weak\r\n');
    const bare = interpretAuthHttpResponse({ 'auth-status': 'No\r\n250 OK', 'auth-error-code': 'junk' });
    assert.equal(bare.kind === 'refused' && bare.reply.reply, '535 5.7.8 No250 OK\r\n');
  });

  it('reads WAIT, and caps Auth-Wait', () => {
    assert.deepEqual(interpretAuthHttpResponse({ 'auth-status': 'WAIT', 'auth-wait': '2' }), { kind: 'wait', waitMs: 2000 });
    const a = interpretAuthHttpResponse({ 'auth-status': 'No', 'auth-wait': '86400' });
    assert.equal(a.kind === 'refused' && a.waitMs, 60_000);
  });
});
