import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DnsblSiteError, filterMatches, parseDnsblSite, parseDnsblSites, parseFilter, zonesOf } from '../../src/config/dnsbl-site.js';

const q = (text: string): number[] => text.split('.').map(Number);
const matches = (site: string, answer: string): boolean => filterMatches(parseDnsblSite(site), q(answer));

function fails(text: string, code: string, pattern?: RegExp): void {
  assert.throws(
    () => parseDnsblSite(text),
    (err: unknown) => {
      assert.ok(err instanceof DnsblSiteError, `${text}: ${String(err)}`);
      assert.equal(err.code, code, `${text}: ${err.message}`);
      assert.equal(err.site, text.trim());
      assert.ok(err.message.includes(`"${text.trim()}"`), `the message names the site: ${err.message}`);
      if (pattern) assert.match(err.message, pattern);
      return true;
    },
  );
}

describe('parseDnsblSite', () => {
  it('reads zone, filter and weight as postscreen_dnsbl_sites writes them', () => {
    const s = parseDnsblSite('zen.spamhaus.org=127.0.0.[2..11]*3');
    assert.equal(s.zone, 'zen.spamhaus.org');
    assert.equal(s.filter, '127.0.0.[2..11]');
    assert.equal(s.weight, 3);
    assert.deepEqual(s.octets, [[[127, 127]], [[0, 0]], [[0, 0]], [[2, 11]]]);
  });

  it('defaults the weight to 1 and the filter to "any answer"', () => {
    const s = parseDnsblSite('b.barracudacentral.org');
    assert.equal(s.weight, 1);
    assert.equal(s.filter, null);
    assert.equal(s.octets, null);
    assert.ok(matches('b.barracudacentral.org', '127.0.0.2'));
    assert.ok(matches('b.barracudacentral.org', '127.1.2.3'));
  });

  it('takes a weight without a filter, and negative weights for allowlists', () => {
    assert.equal(parseDnsblSite('bl.example*2').weight, 2);
    const wl = parseDnsblSite('list.dnswl.org=127.0.[0..255].[1;2;3]*-2');
    assert.equal(wl.weight, -2);
    assert.deepEqual(wl.octets![3], [[1, 1], [2, 2], [3, 3]]);
    assert.equal(parseDnsblSite('bl.example*+4').weight, 4);
    assert.equal(parseDnsblSite('bl.example*0').weight, 0);
  });

  it('lower-cases the zone and trims the text', () => {
    const s = parseDnsblSite('  ZEN.Spamhaus.ORG=127.0.0.2 ');
    assert.equal(s.zone, 'zen.spamhaus.org');
    assert.equal(s.text, 'ZEN.Spamhaus.ORG=127.0.0.2');
  });

  it('accepts lists mixing numbers and ranges inside one field ([1..5;7])', () => {
    const s = parseDnsblSite('bl.example=127.0.0.[1..5;7]');
    assert.deepEqual(s.octets![3], [[1, 5], [7, 7]]);
    assert.ok(matches('bl.example=127.0.0.[1..5;7]', '127.0.0.5'));
    assert.ok(matches('bl.example=127.0.0.[1..5;7]', '127.0.0.7'));
    assert.ok(!matches('bl.example=127.0.0.[1..5;7]', '127.0.0.6'));
    assert.ok(!matches('bl.example=127.0.0.[1..5;7]', '127.0.1.5'));
  });

  it('strips one pair of brackets around the whole filter, as ip_match.c does', () => {
    assert.deepEqual(parseFilter('[127.0.0.2]'), parseFilter('127.0.0.2'));
    assert.deepEqual(parseFilter('[127.0.0.[2..11]]'), parseFilter('127.0.0.[2..11]'));
    // The first "[" closes before the end: not a wrapper.
    assert.deepEqual(parseFilter('[127..128].0.0.[2]')[0], [[127, 128]]);
  });

  it('accepts leading zeros in octets, as ip_match.c reads digits', () => {
    assert.deepEqual(parseDnsblSite('bl.example=127.0.0.002').octets![3], [[2, 2]]);
  });

  it('refuses bad weights', () => {
    fails('bl.example*', 'DNSBL_SITE_WEIGHT');
    fails('bl.example*x', 'DNSBL_SITE_WEIGHT');
    fails('bl.example*1.5', 'DNSBL_SITE_WEIGHT');
    fails('bl.example*2*3', 'DNSBL_SITE_WEIGHT');
    fails('bl.example=127.0.0.2*3x', 'DNSBL_SITE_WEIGHT');
  });

  it('refuses bad filters, naming the site', () => {
    fails('bl.example=', 'DNSBL_SITE_FILTER', /empty filter/);
    fails('bl.example=127.0.0', 'DNSBL_SITE_FILTER', /four fields/);
    fails('bl.example=127.0.0.2.1', 'DNSBL_SITE_FILTER', /four fields/);
    fails('bl.example=127.0.0.256', 'DNSBL_SITE_FILTER', /0\.\.255/);
    fails('bl.example=127.0.0.[11..2]', 'DNSBL_SITE_FILTER', /backwards/);
    fails('bl.example=127.0.0.[]', 'DNSBL_SITE_FILTER');
    fails('bl.example=127.0.0.[2;]', 'DNSBL_SITE_FILTER');
    fails('bl.example=127.0.0.[2', 'DNSBL_SITE_FILTER', /missing "\]"/);
    fails('bl.example=127.0.0.2]', 'DNSBL_SITE_FILTER');
    fails('bl.example=127.0.[0.2]', 'DNSBL_SITE_FILTER');
    fails('bl.example=127.0.0.3[6..9]', 'DNSBL_SITE_FILTER');
    fails('bl.example=127.0.0.[1...3]', 'DNSBL_SITE_FILTER');
    fails('bl.example=127.0.0.[[2]]', 'DNSBL_SITE_FILTER', /nested/);
    fails('bl.example=127.0.0.-1', 'DNSBL_SITE_FILTER');
    fails('bl.example=127.0.0.x', 'DNSBL_SITE_FILTER');
  });

  it('refuses bad zones', () => {
    fails('=127.0.0.2', 'DNSBL_SITE_ZONE');
    fails('*2', 'DNSBL_SITE_ZONE');
    fails('bad zone.example', 'DNSBL_SITE_ZONE');
    fails('bl..example', 'DNSBL_SITE_ZONE');
    fails('bl.example.', 'DNSBL_SITE_ZONE');
    fails('-bl.example', 'DNSBL_SITE_ZONE');
    fails('127.0.0.1', 'DNSBL_SITE_ZONE', /number/);
    fails(`${'a'.repeat(64)}.example`, 'DNSBL_SITE_ZONE');
    fails(`${'abcdefghi.'.repeat(26)}example`, 'DNSBL_SITE_ZONE', /253/);
    fails('   ', 'DNSBL_SITE_EMPTY');
  });
});

describe('parseDnsblSites', () => {
  it('splits main.cf values on commas and white space and keeps duplicates, as postscreen counts each', () => {
    const sites = parseDnsblSites(['zen.spamhaus.org=127.0.0.[2..11]*3, bl.example*2', 'list.dnswl.org=127.0.[0..255].[1;2;3]*-2\tbl.example*2']);
    assert.deepEqual(
      sites.map((s) => [s.zone, s.weight]),
      [
        ['zen.spamhaus.org', 3],
        ['bl.example', 2],
        ['list.dnswl.org', -2],
        ['bl.example', 2],
      ],
    );
    assert.deepEqual(zonesOf(sites), ['zen.spamhaus.org', 'bl.example', 'list.dnswl.org']);
  });

  it('stops at the first bad site and names it', () => {
    assert.throws(() => parseDnsblSites(['ok.example', 'bad.example=1.2.3']), (err: unknown) => err instanceof DnsblSiteError && err.site === 'bad.example=1.2.3');
  });
});

describe('filterMatches', () => {
  it('matches each field against its numbers and ranges', () => {
    const site = 'list.dnswl.org=127.0.[0..255].[1;2;3]';
    assert.ok(matches(site, '127.0.10.1'));
    assert.ok(matches(site, '127.0.255.3'));
    assert.ok(!matches(site, '127.0.10.0'));
    assert.ok(!matches(site, '127.0.10.4'));
    assert.ok(!matches(site, '127.1.10.1'));
    assert.ok(!matches(site, '128.0.10.1'));
  });

  it('needs four octets', () => {
    assert.ok(!filterMatches(parseDnsblSite('bl.example=127.0.0.2'), [127, 0, 0]));
  });
});

describe('bad input', () => {
  it('either parses or throws DnsblSiteError, for any text', () => {
    const alphabet = fc.constantFrom(...'abz09.=*[];-_+ ,\t'.split(''), '..', '127', '255', '256');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 40 }).map((a) => a.join('')), (text) => {
        try {
          const sites = parseDnsblSites([text]);
          for (const s of sites) {
            assert.ok(Number.isInteger(s.weight));
            assert.ok(s.zone.length > 0);
            assert.equal(filterMatches(s, [127, 0, 0, 2]), filterMatches(s, [127, 0, 0, 2]));
          }
        } catch (err) {
          assert.ok(err instanceof DnsblSiteError, String(err));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
