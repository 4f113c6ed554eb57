// session/identity.ts: one ClientIdentity built at accept, replaced by XCLIENT from a
// trusted upstream, and turned into what the backend is told.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildXclient } from '../../src/backend/xclient.js';
import {
  acceptedIdentity,
  authenticated,
  backendClient,
  backendHelo,
  withName,
  xclientIdentity,
  type ClientIdentity,
} from '../../src/session/identity.js';
import { parseXclientArgs } from '../../src/smtp/xclient-args.js';

const accepted = (): ClientIdentity => acceptedIdentity({ address: '192.0.2.10', port: 40000 }, { address: '198.51.100.1', port: 25 }, null);
/** The accepted identity after a reverse lookup found `mail.example.org`. */
const named = (): ClientIdentity => ({ ...accepted(), name: 'mail.example.org' });
const UPSTREAM = '203.0.113.5:50000';

describe('acceptedIdentity', () => {
  it('knows the endpoints and the vouching proxy; no name looked up yet, nobody logged in', () => {
    const id = acceptedIdentity({ address: '192.0.2.10', port: 40000 }, { address: '198.51.100.1', port: 25 }, '10.0.0.1:3456');
    assert.deepEqual(id, {
      client: { address: '192.0.2.10', port: 40000 },
      local: { address: '198.51.100.1', port: 25 },
      proxy: '10.0.0.1:3456',
      name: undefined,
      auth: null,
    });
  });
});

describe('xclientIdentity', () => {
  it('a new address replaces the client and forgets the old client’s PTR name (looked up again later)', () => {
    const id = xclientIdentity(named(), parseXclientArgs('ADDR=192.0.2.99 PORT=1234'), UPSTREAM);
    assert.deepEqual(id.client, { address: '192.0.2.99', port: 1234 });
    assert.equal(id.name, undefined);
    assert.equal(id.proxy, UPSTREAM);
    assert.deepEqual(id.local, { address: '198.51.100.1', port: 25 }, 'not told: kept');
  });

  it('the same address (or none) keeps the PTR name', () => {
    assert.equal(xclientIdentity(named(), parseXclientArgs('ADDR=192.0.2.10'), UPSTREAM).name, 'mail.example.org');
    assert.equal(xclientIdentity(named(), parseXclientArgs('HELO=x.example'), UPSTREAM).name, 'mail.example.org');
  });

  it('a told NAME wins, even with a new address; NAME=[UNAVAILABLE] is a known “no name” (null)', () => {
    const told = xclientIdentity(named(), parseXclientArgs('ADDR=192.0.2.99 NAME=client.example.net'), UPSTREAM);
    assert.equal(told.name, 'client.example.net');
    for (const v of ['[UNAVAILABLE]', '[TEMPUNAVAIL]']) {
      const none = xclientIdentity(named(), parseXclientArgs(`NAME=${v}`), UPSTREAM);
      assert.equal(none.name, null, v);
    }
  });

  it('LOGIN sets who logged in (mechanism XCLIENT); LOGIN=[UNAVAILABLE] logs out; not told keeps it', () => {
    const inId = xclientIdentity(accepted(), parseXclientArgs('LOGIN=alice+40example.org'), UPSTREAM);
    assert.deepEqual(inId.auth, { user: 'alice@example.org', mechanism: 'XCLIENT' });
    assert.deepEqual(xclientIdentity(inId, parseXclientArgs('PORT=1'), UPSTREAM).auth, inId.auth);
    assert.equal(xclientIdentity(inId, parseXclientArgs('LOGIN=[UNAVAILABLE]'), UPSTREAM).auth, null);
  });

  it('DESTADDR and DESTPORT replace where the client connected to; an IPv6 ADDR is taken without its prefix', () => {
    const id = xclientIdentity(accepted(), parseXclientArgs('ADDR=IPV6:2001:DB8::5 DESTADDR=198.51.100.7 DESTPORT=587'), UPSTREAM);
    assert.deepEqual(id.client, { address: '2001:db8::5', port: 40000 });
    assert.deepEqual(id.local, { address: '198.51.100.7', port: 587 });
  });

  it('returns a new value: the old identity is untouched', () => {
    const before = named();
    const copy = structuredClone(before);
    xclientIdentity(before, parseXclientArgs('ADDR=192.0.2.99 LOGIN=bob'), UPSTREAM);
    assert.deepEqual(before, copy);
  });
});

describe('authenticated and withName', () => {
  it('authenticated sets auth and nothing else', () => {
    const id = authenticated(named(), { user: 'carol', mechanism: 'PLAIN' });
    assert.deepEqual(id, { ...named(), auth: { user: 'carol', mechanism: 'PLAIN' } });
  });

  it('withName: no lookup wanted, or a name already known (or known to be none): the same value', async () => {
    const id = accepted();
    assert.equal(await withName(id, false, 100), id);
    const n = named();
    assert.equal(await withName(n, true, 100), n);
    const none: ClientIdentity = { ...accepted(), name: null };
    assert.equal(await withName(none, true, 100), none);
  });
});

describe('backendHelo', () => {
  it('a plain host name passes as is; only the first word of a multi-word argument', () => {
    assert.equal(backendHelo('mail.example.org', '192.0.2.1'), 'mail.example.org');
    assert.equal(backendHelo('mail.example.org  trailing words', '192.0.2.1'), 'mail.example.org');
    assert.equal(backendHelo('[192.0.2.1]', '192.0.2.1'), '[192.0.2.1]');
  });

  it('no HELO yet: null', () => {
    assert.equal(backendHelo(null, '192.0.2.1'), null);
  });

  it('a name the backend could refuse becomes the address literal (RFC 5321 §4.1.3)', () => {
    for (const bad of ['', ' ', 'bad\x01name', 'bücher.example', 'x'.repeat(256), '\x7f']) {
      assert.equal(backendHelo(bad, '192.0.2.1'), '[192.0.2.1]', JSON.stringify(bad));
    }
    assert.equal(backendHelo('x'.repeat(255), '192.0.2.1'), 'x'.repeat(255), '255 is still fine');
  });

  it('an IPv6 client gets the IPv6 literal form', () => {
    assert.equal(backendHelo('bad\x00', '2001:db8::1'), '[IPv6:2001:db8::1]');
  });
});

describe('backendClient', () => {
  it('turns identity and session state into the XCLIENT / PROXY fields', () => {
    const id = xclientIdentity(named(), parseXclientArgs('LOGIN=alice'), UPSTREAM);
    const c = backendClient(id, {
      connId: 'c0ffee',
      helo: 'client.example',
      esmtp: true,
      tls: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', resumed: true, sni: 'mx.example.org' },
    });
    assert.deepEqual(c, {
      connId: 'c0ffee',
      tls: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', sni: 'mx.example.org' },
      address: '192.0.2.10',
      port: 40000,
      destAddress: '198.51.100.1',
      destPort: 25,
      helo: 'client.example',
      proto: 'ESMTP',
      name: 'mail.example.org',
      login: 'alice',
    });
  });

  it('plaintext, HELO (not EHLO), no name known, nobody logged in; a bad HELO is made safe', () => {
    const c = backendClient(accepted(), { connId: 'x', helo: 'bad name\x01', esmtp: false, tls: null });
    assert.equal(c.tls, null);
    assert.equal(c.proto, 'SMTP');
    assert.equal(c.name, null, 'undefined (not looked up) is told as unknown');
    assert.equal(c.login, null);
    assert.equal(c.helo, 'bad');
    assert.equal(backendClient(accepted(), { connId: 'x', helo: 'bad\x01name', esmtp: false, tls: null }).helo, '[192.0.2.10]');
  });

  it('what it returns makes a well-formed XCLIENT line (attributes the backend lists, ADDR and PORT always)', () => {
    const c = backendClient(named(), { connId: 'x', helo: 'client.example', esmtp: true, tls: null });
    const lines = buildXclient(['NAME', 'HELO', 'PROTO'], c);
    assert.equal(lines.length, 1);
    const told = parseXclientArgs(lines[0]!.replace(/^XCLIENT /, ''));
    assert.equal(told.addr, '192.0.2.10');
    assert.equal(told.port, 40000);
    assert.equal(told.name, 'mail.example.org');
    assert.equal(told.helo, 'client.example');
    assert.equal(told.proto, 'ESMTP');
  });
});
