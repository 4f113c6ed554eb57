// configWarnings: valid configs that probably do not mean what they say (issue 21: a
// config from before xclient_from, when trusted_proxies also granted XCLIENT).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configWarnings, parseConfig } from '../../src/config/index.js';

const cfg = (listener: string) =>
  parseConfig(`listeners:\n  - { name: mx, listen: '127.0.0.1:2525', ${listener} }\nbackends:\n  servers: [ { address: '127.0.0.1:2526' } ]\n`);

describe('configWarnings', () => {
  it('warns when trusted_proxies is set and xclient_from is empty (PROXY on: XCLIENT no longer offered)', () => {
    const w = configWarnings(cfg('proxy_protocol: on, trusted_proxies: [10.0.0.1]'));
    assert.equal(w.length, 1);
    assert.equal(w[0]!.path, 'listeners[0].trusted_proxies');
    assert.match(w[0]!.message, /grants the PROXY header only.*xclient_from/);
  });
  it('says trusted_proxies has no effect when proxy_protocol is off', () => {
    const w = configWarnings(cfg('trusted_proxies: [10.0.0.1]'));
    assert.match(w[0]!.message, /has no effect with proxy_protocol: off/);
  });
  it('is silent when the grants are explicit, or absent', () => {
    assert.deepEqual(configWarnings(cfg('proxy_protocol: on, trusted_proxies: [10.0.0.1], xclient_from: [10.0.0.9]')), []);
    assert.deepEqual(configWarnings(cfg('xclient_from: [10.0.0.9]')), []);
    assert.deepEqual(configWarnings(cfg('tls: none')), []);
  });
  it('xclient_from takes CIDRs and refuses anything else with its path', () => {
    assert.deepEqual(cfg("xclient_from: [10.0.0.0/8, '::1']").listeners[0]!.xclient_from, ['10.0.0.0/8', '::1']);
    assert.throws(() => cfg('xclient_from: [not-an-ip]'), /listeners\[0\]\.xclient_from\[0\]/);
  });
});
