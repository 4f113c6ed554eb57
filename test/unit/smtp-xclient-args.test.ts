// smtp/xclient-args.ts: incoming XCLIENT arguments (Postfix XCLIENT_README), on strings.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildXclient } from '../../src/backend/xclient.js';
import { SmtpError } from '../../src/smtp/errors.js';
import { XCLIENT_ATTRS, parseXclientArgs } from '../../src/smtp/xclient-args.js';

/** The 501 5.5.4 that `args` gets; its text. */
function refused(args: string): string {
  try {
    parseXclientArgs(args);
  } catch (err) {
    assert.ok(err instanceof SmtpError, String(err));
    assert.equal(err.smtpCode, 501, args);
    assert.equal(err.enhanced, '5.5.4', args);
    return err.text;
  }
  assert.fail(`accepted ${JSON.stringify(args)}`);
}

describe('parseXclientArgs', () => {
  it('every attribute, as Postfix’s smtp client sends them', () => {
    const t = parseXclientArgs('NAME=mail.example.org ADDR=192.0.2.1 PORT=54321 HELO=mail.example.org PROTO=ESMTP LOGIN=alice DESTADDR=198.51.100.2 DESTPORT=25');
    assert.equal(t.addr, '192.0.2.1');
    assert.equal(t.port, 54321);
    assert.equal(t.name, 'mail.example.org');
    assert.equal(t.helo, 'mail.example.org');
    assert.equal(t.proto, 'ESMTP');
    assert.equal(t.login, 'alice');
    assert.equal(t.destAddr, '198.51.100.2');
    assert.equal(t.destPort, 25);
  });

  it('not told: undefined, and NAME/HELO/LOGIN not even present (so “keep” differs from “unknown”)', () => {
    const t = parseXclientArgs('ADDR=192.0.2.1');
    assert.equal(t.port, undefined);
    assert.equal(t.proto, undefined);
    assert.equal(t.destAddr, undefined);
    assert.ok(!('name' in t) && !('helo' in t) && !('login' in t));
  });

  it('[UNAVAILABLE] and [TEMPUNAVAIL], any case: told, and null', () => {
    const t = parseXclientArgs('NAME=[UNAVAILABLE] HELO=[tempunavail] LOGIN=[Unavailable] ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE] PROTO=[UNAVAILABLE]');
    assert.ok('name' in t && 'helo' in t && 'login' in t);
    assert.equal(t.name, null);
    assert.equal(t.helo, null);
    assert.equal(t.login, null);
    assert.equal(t.addr, null);
    assert.equal(t.port, null);
    assert.equal(t.proto, null);
  });

  it('attribute names in any case; runs of spaces between attributes', () => {
    const t = parseXclientArgs('  addr=192.0.2.1    Port=25   proto=smtp ');
    assert.equal(t.addr, '192.0.2.1');
    assert.equal(t.port, 25);
    assert.equal(t.proto, 'SMTP');
  });

  it('IPv6: the IPV6: prefix in any case is removed, the address lower-cased', () => {
    assert.equal(parseXclientArgs('ADDR=IPV6:2001:DB8::1').addr, '2001:db8::1');
    assert.equal(parseXclientArgs('ADDR=ipv6:::1').addr, '::1');
    assert.equal(parseXclientArgs('DESTADDR=IPv6:2001:db8::25').destAddr, '2001:db8::25');
    assert.equal(parseXclientArgs('ADDR=2001:db8::2').addr, '2001:db8::2', 'bare IPv6 is taken too');
  });

  it('values are xtext: +XX decoded (UTF-8), so a value can hold spaces and = but never arrive raw', () => {
    assert.equal(parseXclientArgs('LOGIN=alice+40example.org').login, 'alice@example.org');
    assert.equal(parseXclientArgs('HELO=a+20b+3Dc').helo, 'a b=c');
    assert.equal(parseXclientArgs('NAME=b+C3+BCcher.example').name, 'bücher.example');
  });

  it('round trip: what buildXclient sends for a client, parsed back, is that client', () => {
    const id = {
      address: '2001:db8::7',
      port: 4567,
      destAddress: '198.51.100.9',
      destPort: 587,
      helo: 'odd helo = name+',
      proto: 'ESMTP' as const,
      name: null,
      login: 'bob@example.org',
    };
    const lines = buildXclient([...XCLIENT_ATTRS], id);
    const merged = Object.assign({}, ...lines.map((l) => parseXclientArgs(l.replace(/^XCLIENT /, ''))));
    assert.equal(merged.addr, id.address);
    assert.equal(merged.port, id.port);
    assert.equal(merged.destAddr, id.destAddress);
    assert.equal(merged.destPort, id.destPort);
    assert.equal(merged.helo, id.helo);
    assert.equal(merged.proto, 'ESMTP');
    assert.equal(merged.name, null);
    assert.equal(merged.login, id.login);
  });

  it('no attributes: 501 with the syntax', () => {
    assert.match(refused(''), /Syntax: XCLIENT attribute=value/);
    assert.match(refused('   '), /Syntax/);
  });

  it('unknown attribute, or one without `=`: 501 naming it', () => {
    assert.match(refused('ADDR=192.0.2.1 FOO=bar'), /Bad XCLIENT attribute name: FOO/);
    assert.match(refused('ADDR'), /Bad XCLIENT attribute name: ADDR/);
    assert.match(refused('=192.0.2.1'), /Bad XCLIENT attribute name/);
    assert.ok(refused('X'.repeat(1000) + '=1').length < 100, 'the echoed name is cut short');
  });

  it('bad addresses and ports: 501', () => {
    for (const a of ['ADDR=192.0.2.256', 'ADDR=example.org', 'ADDR=', 'ADDR=IPV6:192.0.2.1x', 'DESTADDR=1.2.3']) assert.match(refused(a), /Bad (DEST)?ADDR syntax/, a);
    for (const p of ['PORT=65536', 'PORT=-1', 'PORT=1e3', 'PORT=', 'PORT=123456', 'DESTPORT=x']) assert.match(refused(p), /Bad (DEST)?PORT syntax/, p);
    assert.equal(parseXclientArgs('PORT=0').port, 0);
    assert.equal(parseXclientArgs('PORT=65535').port, 65535);
  });

  it('PROTO other than SMTP/ESMTP: 501', () => {
    assert.match(refused('PROTO=HTTP'), /Bad PROTO syntax/);
    assert.match(refused('PROTO=ESMTPS'), /Bad PROTO syntax/);
  });

  it('malformed xtext: 501 naming the attribute', () => {
    assert.match(refused('NAME=a+ZZ'), /Bad XCLIENT NAME value/);
    assert.match(refused('LOGIN=a+4'), /Bad XCLIENT LOGIN value/);
    assert.match(refused('HELO=a=b'), /Bad XCLIENT HELO value/);
  });
});
