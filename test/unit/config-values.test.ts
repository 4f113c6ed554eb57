import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CidrList, ConfigValueError, parseCidr, parseDuration, parseHostPort, parseIp, parseRate, parseSize } from '../../src/config/index.js';

describe('parseDuration', () => {
  it('reads each unit', () => {
    assert.equal(parseDuration('300ms'), 300);
    assert.equal(parseDuration('5s'), 5000);
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('1d'), 86_400_000);
    assert.equal(parseDuration('0'), 0);
    assert.equal(parseDuration(' 3s '), 3000);
  });
  it('reads decimals and sums', () => {
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('1h0m5s250ms'), 3_605_250);
  });
  it('takes a number as milliseconds', () => {
    assert.equal(parseDuration(250), 250);
    assert.equal(parseDuration(0), 0);
  });
  it('rejects bad forms with the expected form in the message', () => {
    for (const bad of ['', '5', '5 s', '-5s', 's', '5sec', '1.s', '5S', 'abc', '1e3ms']) {
      assert.throws(() => parseDuration(bad), (e: unknown) => e instanceof ConfigValueError && /duration such as 300ms/.test(e.message), bad);
    }
    assert.throws(() => parseDuration('30'), /add a unit/);
    assert.throws(() => parseDuration(-1), ConfigValueError);
    assert.throws(() => parseDuration(Number.NaN), ConfigValueError);
  });
  it('rejects durations Node timers cannot hold', () => {
    assert.equal(parseDuration('24d'), 24 * 86_400_000);
    assert.throws(() => parseDuration('25d'), /too long/);
  });
});

describe('parseSize', () => {
  it('reads binary units', () => {
    assert.equal(parseSize('100B'), 100);
    assert.equal(parseSize('512KB'), 512 * 1024);
    assert.equal(parseSize('50MB'), 50 * 1024 * 1024);
    assert.equal(parseSize('1GB'), 1024 ** 3);
    assert.equal(parseSize('2KiB'), 2048);
    assert.equal(parseSize('3MiB'), 3 * 1024 ** 2);
    assert.equal(parseSize('1GiB'), 1024 ** 3);
    assert.equal(parseSize('10mb'), 10 * 1024 ** 2);
    assert.equal(parseSize('1.5KB'), 1536);
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize(4096), 4096);
    assert.equal(parseSize('0'), 0);
  });
  it('rejects bad sizes', () => {
    for (const bad of ['', 'MB', '5XB', '-1KB', '1 TB', 'lots']) {
      assert.throws(() => parseSize(bad), /size such as 100B, 512KB, 50MB or 1GB/, bad);
    }
    assert.throws(() => parseSize(1.5), ConfigValueError);
    assert.throws(() => parseSize(-1), ConfigValueError);
  });
});

describe('parseHostPort', () => {
  it('reads IPv4, names and bracketed IPv6', () => {
    assert.deepEqual(parseHostPort('0.0.0.0:25'), { host: '0.0.0.0', port: 25, text: '0.0.0.0:25' });
    assert.deepEqual(parseHostPort('10.0.0.11:2525'), { host: '10.0.0.11', port: 2525, text: '10.0.0.11:2525' });
    assert.deepEqual(parseHostPort('[::1]:25'), { host: '::1', port: 25, text: '[::1]:25' });
    assert.deepEqual(parseHostPort('[::]:587'), { host: '::', port: 587, text: '[::]:587' });
    assert.deepEqual(parseHostPort('[2001:db8::1]:465'), { host: '2001:db8::1', port: 465, text: '[2001:db8::1]:465' });
    assert.deepEqual(parseHostPort('mx1.internal:25'), { host: 'mx1.internal', port: 25, text: 'mx1.internal:25' });
    assert.deepEqual(parseHostPort('localhost:65535'), { host: 'localhost', port: 65535, text: 'localhost:65535' });
    assert.equal(parseHostPort('127.0.0.1:0').port, 0);
  });
  it('rejects bad forms with an operator message', () => {
    assert.throws(() => parseHostPort('0.0.0.0'), (e: unknown) =>
      e instanceof ConfigValueError && e.message.startsWith('expected HOST:PORT (e.g. 0.0.0.0:25 or [::1]:25), got "0.0.0.0"'));
    const bad: Array<[string, RegExp]> = [
      ['::1:25', /brackets/],
      ['[::1]25', /HOST:PORT/],
      ['[::1', /HOST:PORT/],
      ['[nope]:25', /not an IPv6 address/],
      ['1.2.3.4:65536', /port must be 0-65535/],
      ['1.2.3.4:-1', /port/],
      ['1.2.3.4:', /port/],
      ['1.2.3.4:2x', /port/],
      [':25', /no host/],
      ['256.1.1.1:25', /not an IPv4 address/],
      ['1.2.3:25', /not an IPv4 address/],
      ['bad host:25', /not a host name/],
      ['', /HOST:PORT/],
    ];
    for (const [s, re] of bad) assert.throws(() => parseHostPort(s), re, s);
  });
});

describe('IP parsing', () => {
  it('parses IPv6 forms and folds v4-mapped to IPv4', () => {
    assert.deepEqual(parseIp('::1'), { family: 6, words: [0, 0, 0, 1] });
    assert.deepEqual(parseIp('::'), { family: 6, words: [0, 0, 0, 0] });
    assert.deepEqual(parseIp('2001:db8::'), { family: 6, words: [0x20010db8, 0, 0, 0] });
    assert.deepEqual(parseIp('1:2:3:4:5:6:7:8'), { family: 6, words: [0x10002, 0x30004, 0x50006, 0x70008] });
    assert.deepEqual(parseIp('::ffff:1.2.3.4'), { family: 4, words: [0x01020304] });
    assert.deepEqual(parseIp('::FFFF:0102:0304'), { family: 4, words: [0x01020304] });
    assert.deepEqual(parseIp('fe80::1%eth0'), { family: 6, words: [0xfe800000, 0, 0, 1] });
    for (const bad of ['1::2::3', ':1', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '1.2.3.4.5', '01.2.3.4', '::1.2.3']) {
      assert.equal(parseIp(bad), null, bad);
    }
  });
});

describe('CidrList', () => {
  it('matches IPv4 networks', () => {
    const l = new CidrList(['10.0.0.0/8', '192.168.1.0/24', '203.0.113.7']);
    assert.equal(l.contains('10.1.2.3'), true);
    assert.equal(l.contains('11.0.0.1'), false);
    assert.equal(l.contains('192.168.1.255'), true);
    assert.equal(l.contains('192.168.2.1'), false);
    assert.equal(l.contains('203.0.113.7'), true);
    assert.equal(l.contains('203.0.113.8'), false);
  });
  it('matches IPv6 networks', () => {
    const l = new CidrList(['2001:db8::/32', '::1', 'fd00:1:2:3::/64']);
    assert.equal(l.contains('2001:db8:ffff::1'), true);
    assert.equal(l.contains('2001:db9::1'), false);
    assert.equal(l.contains('::1'), true);
    assert.equal(l.contains('::2'), false);
    assert.equal(l.contains('fd00:1:2:3:ffff::1'), true);
    assert.equal(l.contains('fd00:1:2:4::1'), false);
    assert.equal(l.contains('10.0.0.1'), false);
  });
  it('matches v4-mapped clients against IPv4 networks', () => {
    const l = new CidrList(['10.0.0.0/8']);
    assert.equal(l.contains('::ffff:10.9.8.7'), true);
    assert.equal(l.contains('::ffff:11.9.8.7'), false);
    const mapped = new CidrList(['::ffff:10.0.0.0/104']);
    assert.equal(mapped.contains('10.1.1.1'), true);
    assert.equal(mapped.contains('::ffff:10.1.1.1'), true);
    assert.equal(mapped.contains('11.1.1.1'), false);
  });
  it('handles /0 per family and prefixes off word boundaries', () => {
    const v4all = new CidrList(['0.0.0.0/0']);
    assert.equal(v4all.contains('1.2.3.4'), true);
    assert.equal(v4all.contains('::ffff:1.2.3.4'), true);
    assert.equal(v4all.contains('::1'), false);
    const v6all = new CidrList(['::/0']);
    assert.equal(v6all.contains('2001:db8::1'), true);
    assert.equal(v6all.contains('1.2.3.4'), false);
    const odd = new CidrList(['2001:db8:8000::/33', '172.16.0.0/12']);
    assert.equal(odd.contains('2001:db8:8000::1'), true);
    assert.equal(odd.contains('2001:db8:7fff::1'), false);
    assert.equal(odd.contains('172.31.255.255'), true);
    assert.equal(odd.contains('172.32.0.0'), false);
  });
  it('clears host bits and answers false for junk input', () => {
    assert.deepEqual(parseCidr('10.1.2.3/8').network, [0x0a000000]);
    const l = new CidrList(['10.1.2.3/8']);
    assert.equal(l.contains('10.200.0.1'), true);
    assert.equal(l.contains('not an ip'), false);
    assert.equal(l.contains(''), false);
    assert.equal(new CidrList([]).contains('10.0.0.1'), false);
  });
  it('rejects invalid CIDRs with a message', () => {
    const bad = ['10.0.0.0/33', '::/129', '10.0.0/8', 'bogus', '10.0.0.0/', '10.0.0.0/08', '1::2::3/64', 'fe80::1%eth0/64', ''];
    for (const s of bad) {
      assert.throws(() => new CidrList([s]), (e: unknown) => e instanceof Error && /expected an IP address or CIDR network/.test(e.message), s);
    }
  });
});

describe('parseRate', () => {
  it('reads COUNT/WINDOW', () => {
    assert.deepEqual(parseRate('100/1m'), { count: 100, window: 60_000 });
    assert.deepEqual(parseRate('10/s'), { count: 10, window: 1000 });
    assert.deepEqual(parseRate('500/1h'), { count: 500, window: 3_600_000 });
    assert.deepEqual(parseRate('5/30s'), { count: 5, window: 30_000 });
    assert.deepEqual(parseRate('1/d'), { count: 1, window: 86_400_000 });
  });
  it('rejects bad rates', () => {
    for (const bad of ['100', '/1m', '0/1m', '10/0', '10/x', 'a/1m', '10/1m/2', '']) {
      assert.throws(() => parseRate(bad), /rate COUNT\/WINDOW/, bad);
    }
  });
});
