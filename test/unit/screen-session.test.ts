// ScreenSession's decisions as values: the greeting decision with a greet control that
// records what it was asked (no socket), the deep tests' actions, and what is remembered.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observe/logger.js';
import { Screener } from '../../src/screen/screener.js';
import type { DnsblLookup } from '../../src/screen/types.js';
import type { GreetControl, SessionFacts } from '../../src/session/decision.js';
import { LocalWindowCounter } from '../../src/state/windows.js';

const config = (screen: string) =>
  parseConfig(`hostname: s.test
listeners: [ { name: mx, listen: 127.0.0.1:0, screen: on } ]
backends: { servers: [ { address: 127.0.0.1:25 } ] }
screen:
  greet_wait: 20ms
${screen}
`);

const logs: string[] = [];
const logger = createLogger(config('').log, { write: (l: string) => void logs.push(l) });
const facts = { id: 'c1', listener: 'mx', client: { address: '192.0.2.1', port: 1 }, helo: null, tls: null, auth: null, from: null } as SessionFacts;

/** A greet control that answers at once and says whether the client talked first. */
function greet(pregreeted = false): GreetControl & { teasers: number } {
  const g = {
    teasers: 0,
    async teaser() {
      g.teasers++;
    },
    pregreeted: () => pregreeted,
  };
  return g;
}

function setup(screen: string, dnsbl: DnsblLookup | null = null) {
  const windows = new LocalWindowCounter();
  const screener = new Screener({ windows, dnsbl, logger });
  return { screener, cfg: config(screen), windows };
}

describe('ScreenSession', () => {
  it('a DNSBL client that fails does not hold the client: pass, no score, a warning', async () => {
    const failing: DnsblLookup = { lookup: () => Promise.reject(new Error('SERVFAIL')), close() {} };
    const { screener, cfg, windows } = setup('  dnsbl: { sites: [zen.test], action: drop }', failing);
    const s = screener.session(cfg, '192.0.2.1');
    const g = greet();
    const v = await s.greeting().decide(facts, new AbortController().signal, g);
    assert.deepEqual(v, { kind: 'pass' });
    assert.equal(g.teasers, 1);
    assert.equal(s.record().result, 'pass');
    assert.equal(s.record().score, null);
    assert.ok(logs.some((l) => l.includes('DNSBL lookup failed')));
    windows.close();
  });

  it('a cached client gets no teaser and costs the DNSBLs nothing', async () => {
    let asked = 0;
    const slow: DnsblLookup = {
      lookup: () => {
        asked++;
        return new Promise(() => undefined);
      },
      close() {},
    };
    const { screener, cfg, windows } = setup('  dnsbl: { sites: [zen.test] }', slow);
    await screener.cache.remember('192.0.2.1', 'greet', 60_000);
    const s = screener.session(cfg, '192.0.2.1');
    const g = greet();
    assert.deepEqual(await s.greeting().decide(facts, new AbortController().signal, g), { kind: 'pass' });
    assert.equal(g.teasers, 0);
    assert.equal(s.record().result, 'cached');
    assert.equal(asked, 0);
    windows.close();
  });

  it('pregreet with enforce: the greeting passes, every RCPT is refused; the pass is not remembered', async () => {
    const { screener, cfg, windows } = setup('  pregreet_action: enforce');
    const s = screener.session(cfg, '192.0.2.1');
    assert.deepEqual(await s.greeting().decide(facts, new AbortController().signal, greet(true)), { kind: 'pass' });
    assert.equal(s.refusal?.smtpCode, 550);
    assert.equal(s.record().result, 'enforce');
    assert.deepEqual(s.record().tests, ['pregreet']);
    assert.equal(await screener.cache.passed('192.0.2.1', 'greet', 60_000), false);
    windows.close();
  });

  it('deep tests run until the first MAIL only, each with its action; a clean run is remembered', async () => {
    const { screener, cfg, windows } = setup('  pipelining_action: enforce\n  bare_lf_action: ignore\n  non_smtp_action: drop');
    const s = screener.session(cfg, '192.0.2.1');
    await s.greeting().decide(facts, new AbortController().signal, greet());
    assert.equal(s.anomaly('bare_lf'), null);
    assert.equal(s.refusal, null, 'ignore: logged only');
    assert.equal(s.anomaly('pipelining_violation'), null);
    // Read again: the assertion above narrowed the getter's type to null.
    const after = s as { refusal: { smtpCode: number } | null };
    assert.equal(after.refusal?.smtpCode, 550, 'enforce');
    s.mail();
    assert.equal(s.anomaly('non_smtp'), null, 'after MAIL the tests are over');
    assert.deepEqual(s.record().tests, ['bare_lf', 'pipelining']);
    assert.equal(await screener.cache.passed('192.0.2.1', 'deep', 60_000), false);

    const clean = screener.session(cfg, '192.0.2.2');
    await clean.greeting().decide({ ...facts, client: { address: '192.0.2.2', port: 1 } }, new AbortController().signal, greet());
    clean.mail();
    await new Promise((r) => setImmediate(r));
    assert.equal(await screener.cache.passed('192.0.2.2', 'deep', 60_000), true);
    assert.equal(await screener.cache.passed('192.0.2.2', 'greet', 60_000), true);
    windows.close();
  });

  it('non_smtp with drop answers 521 5.7.1', async () => {
    const { screener, cfg, windows } = setup('');
    const s = screener.session(cfg, '192.0.2.1');
    await s.greeting().decide(facts, new AbortController().signal, greet());
    const r = s.anomaly('non_smtp');
    assert.match(r?.drop ?? '', /^521 5\.7\.1 s\.test Service unavailable; client \[192\.0\.2\.1\] protocol error \(non_smtp\)\r\n$/);
    assert.equal(s.record().result, 'drop');
    windows.close();
  });
});
