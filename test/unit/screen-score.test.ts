import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDnsblSites } from '../../src/config/dnsbl-site.js';
import { classifyAnswers, judgeZoneCheck, scoreOutcomes } from '../../src/screen/score.js';

const SITES = parseDnsblSites(['zen.spamhaus.org=127.0.0.[2..11]*3', 'zen.spamhaus.org=127.0.0.4*1', 'list.dnswl.org=127.0.[0..255].[1;2;3]*-2', 'any.example*2']);

describe('scoreOutcomes', () => {
  it('adds the weight of each site whose filter matches, several sites on one zone each counting', () => {
    const r = scoreOutcomes(SITES, [{ zone: 'zen.spamhaus.org', answers: ['127.0.0.4'] }, { zone: 'list.dnswl.org', answers: [] }, { zone: 'any.example', answers: [] }]);
    assert.equal(r.score, 4);
    assert.deepEqual(r.hits, [
      { zone: 'zen.spamhaus.org', weight: 3, answer: '127.0.0.4' },
      { zone: 'zen.spamhaus.org', weight: 1, answer: '127.0.0.4' },
    ]);
    assert.deepEqual(r.errors, []);
  });

  it('counts a site once however many of its answers match, and names the first that matched', () => {
    const r = scoreOutcomes(SITES, [{ zone: 'zen.spamhaus.org', answers: ['127.0.0.20', '127.0.0.2', '127.0.0.10', '127.0.0.11'] }]);
    assert.equal(r.score, 3);
    assert.deepEqual(r.hits, [{ zone: 'zen.spamhaus.org', weight: 3, answer: '127.0.0.2' }]);
  });

  it('ignores answers that match no filter', () => {
    const r = scoreOutcomes(SITES, [
      { zone: 'zen.spamhaus.org', answers: ['127.0.0.12'] },
      { zone: 'list.dnswl.org', answers: ['127.0.5.0'] },
    ]);
    assert.equal(r.score, 0);
    assert.deepEqual(r.hits, []);
  });

  it('lets an allowlist hit pull the score below zero', () => {
    const r = scoreOutcomes(SITES, [
      { zone: 'zen.spamhaus.org', answers: [] },
      { zone: 'list.dnswl.org', answers: ['127.0.15.2'] },
      { zone: 'any.example', answers: [] },
    ]);
    assert.equal(r.score, -2);
    assert.deepEqual(r.hits, [{ zone: 'list.dnswl.org', weight: -2, answer: '127.0.15.2' }]);
  });

  it('takes any 127/8 answer for a site without a filter', () => {
    const r = scoreOutcomes(SITES, [{ zone: 'any.example', answers: ['127.0.0.200'] }]);
    assert.equal(r.score, 2);
  });

  it('treats 127.255.255.0/24 as an error for the whole zone, never a listing', () => {
    for (const code of ['127.255.255.252', '127.255.255.254', '127.255.255.255']) {
      const r = scoreOutcomes(SITES, [{ zone: 'zen.spamhaus.org', answers: ['127.0.0.2', code] }, { zone: 'any.example', answers: [code] }]);
      assert.equal(r.score, 0, code);
      assert.deepEqual(r.hits, []);
      assert.deepEqual(
        r.errors.map((e) => e.zone),
        ['zen.spamhaus.org', 'any.example'],
      );
      assert.match(r.errors[0]!.error, /refused/);
    }
  });

  it('treats answers outside 127/8 as an error (a wildcard on an expired domain)', () => {
    const r = scoreOutcomes(SITES, [{ zone: 'any.example', answers: ['198.51.100.7'] }]);
    assert.equal(r.score, 0);
    assert.match(r.errors[0]!.error, /outside 127\.0\.0\.0\/8/);
  });

  it('reports query errors per zone, counting nothing for them', () => {
    const r = scoreOutcomes(SITES, [{ zone: 'zen.spamhaus.org', error: 'SERVFAIL' }, { zone: 'list.dnswl.org', answers: ['127.0.9.1'] }]);
    assert.equal(r.score, -2);
    assert.deepEqual(r.errors, [{ zone: 'zen.spamhaus.org', error: 'SERVFAIL' }]);
  });

  it('counts nothing for a zone with no outcome (skipped or not asked)', () => {
    assert.deepEqual(scoreOutcomes(SITES, []), { score: 0, hits: [], errors: [] });
  });
});

describe('classifyAnswers', () => {
  it('sorts answers into clean, listed and error', () => {
    assert.deepEqual(classifyAnswers([]), { kind: 'clean' });
    assert.equal(classifyAnswers(['127.0.0.2']).kind, 'listed');
    assert.equal(classifyAnswers(['127.255.255.254']).kind, 'error');
    assert.equal(classifyAnswers(['10.0.0.1']).kind, 'error');
    assert.equal(classifyAnswers(['not-an-ip']).kind, 'error');
  });
});

describe('judgeZoneCheck (RFC 5782 §5)', () => {
  const z = 'bl.example';
  it('is ok when 127.0.0.1 is not listed and 127.0.0.2 is', () => {
    assert.deepEqual(judgeZoneCheck({ zone: z, answers: [] }, { zone: z, answers: ['127.0.0.2'] }), { state: 'ok' });
  });
  it('finds a zone that lists 127.0.0.1 broken', () => {
    const c = judgeZoneCheck({ zone: z, answers: ['127.0.0.2'] }, { zone: z, answers: ['127.0.0.2'] });
    assert.equal(c.state, 'broken');
    assert.match(c.why!, /127\.0\.0\.1/);
  });
  it('keeps a zone that does not list 127.0.0.2, saying why', () => {
    const c = judgeZoneCheck({ zone: z, answers: [] }, { zone: z, answers: [] });
    assert.equal(c.state, 'ok');
    assert.match(c.why!, /127\.0\.0\.2/);
  });
  it('knows nothing when the 127.0.0.1 query failed or was refused', () => {
    assert.equal(judgeZoneCheck({ zone: z, error: 'timeout' }, { zone: z, answers: ['127.0.0.2'] }).state, 'unknown');
    assert.equal(judgeZoneCheck({ zone: z, answers: ['127.255.255.254'] }, { zone: z, answers: ['127.0.0.2'] }).state, 'unknown');
  });
});
