import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clientKey, mappedIPv4, unmapIPv4 } from '../../src/net/ip.js';

describe('clientKey', () => {
  it('keeps IPv4 as it is', () => {
    assert.equal(clientKey('192.0.2.1'), '192.0.2.1');
  });

  it('reduces IPv6 to its /64 in one canonical spelling', () => {
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(clientKey('2001:0db8:0000:0000:0001::'), '2001:db8:0:0::/64');
    assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), clientKey('2001:db8:1:2::9'));
    assert.notEqual(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'));
    assert.equal(clientKey('::1'), '0:0:0:0::/64');
    assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64', 'a zone id does not matter');
  });

  it('counts an IPv4-mapped address as the IPv4 client it is, in either spelling', () => {
    assert.equal(clientKey('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(clientKey('::FFFF:192.0.2.1'), '192.0.2.1');
    assert.equal(clientKey('::ffff:c000:201'), '192.0.2.1');
    assert.notEqual(clientKey('::ffff:192.0.2.1'), clientKey('::ffff:192.0.2.2'), 'mapped clients are not lumped into one /64');
  });

  it('leaves text that is no address as its own key', () => {
    assert.equal(clientKey(''), '');
    assert.equal(clientKey('localhost'), 'localhost');
    assert.equal(clientKey('1:2:3'), '1:2:3');
    assert.equal(clientKey('192.0.2.01'), '192.0.2.01');
  });
});

describe('unmapIPv4', () => {
  it('turns a dual-stack socket\'s IPv4 peer into plain IPv4', () => {
    assert.equal(unmapIPv4('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(unmapIPv4('::FFFF:192.0.2.1'), '192.0.2.1');
  });

  it('leaves every other address as it is', () => {
    assert.equal(unmapIPv4('192.0.2.1'), '192.0.2.1');
    assert.equal(unmapIPv4('2001:db8::1'), '2001:db8::1');
    assert.equal(unmapIPv4('::ffff:1:2'), '::ffff:1:2', 'only the dotted form, as sockets report it');
    assert.equal(unmapIPv4('::ffff:192.0.2.300'), '::ffff:192.0.2.300');
    assert.equal(unmapIPv4('::1'), '::1');
    assert.equal(unmapIPv4(undefined), '');
  });
});

describe('mappedIPv4', () => {
  it('reads ::ffff:0:0/96 and nothing else', () => {
    assert.equal(mappedIPv4([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201]), '192.0.2.1');
    assert.equal(mappedIPv4([0, 0, 0, 0, 0, 0, 0xc000, 0x0201]), null);
    assert.equal(mappedIPv4([0x2001, 0xdb8, 0, 0, 0, 0xffff, 0xc000, 0x0201]), null);
    assert.equal(mappedIPv4([0, 0, 0xffff]), null);
  });
});
