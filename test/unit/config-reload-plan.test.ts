// What a SIGHUP applies and what waits for a restart (config/reload-plan.ts): the changed
// keys by YAML path, each with its effect, and a rule for every documented key.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/index.js';
import { changedKeys, planReload, reloadEffect, ruleFor } from '../../src/config/reload-plan.js';

const ROOT = process.cwd();

const base = `listeners:
  - { name: smtp, listen: 127.0.0.1:2525 }
backends:
  servers: [{ address: 127.0.0.1:2526 }]
`;

const HEAD = 'hostname: a.test\nworkers: 2\n';
/** The plan from `base` + `before` to `base` + `after`. */
const plan = (after: string, before = HEAD) => planReload(parseConfig(base + before), parseConfig(base + after));

/** The path of every value in a YAML mapping that is not itself a mapping (lists are values). */
function leafPaths(v: unknown, path = ''): string[] {
  return Object.entries(v as Record<string, unknown>).flatMap(([k, child]) => {
    const p = path ? `${path}.${k}` : k;
    return child !== null && typeof child === 'object' && !Array.isArray(child) ? leafPaths(child, p) : [p];
  });
}

describe('reload plan', () => {
  it('no change: nothing changed, nothing to restart', () => {
    assert.deepEqual(plan(HEAD), { changed: [], restart: [] });
  });

  it('log.format needs a restart; hostname and log.level are applied', () => {
    assert.deepEqual(plan('hostname: b.test\nworkers: 2\nlog: { format: text, level: debug }\n'), {
      changed: ['hostname', 'log.level', 'log.format'],
      restart: ['log.format'],
    });
  });

  it('workers, run_as, state.redis and the TLS session settings need a restart', () => {
    const p = plan('hostname: a.test\nworkers: 3\nrun_as: { user: postern }\nstate: { redis: { url: "redis://127.0.0.1:6379" } }\n');
    assert.deepEqual(p.changed, ['workers', 'state.redis', 'run_as']);
    assert.deepEqual(p.restart, p.changed);
    assert.equal(reloadEffect('tls.ticket_keys.rotate'), 'restart');
    assert.equal(reloadEffect('tls.session_cache.file'), 'restart');
    assert.equal(reloadEffect('tls.session_tickets'), 'restart');
    assert.equal(reloadEffect('tls.certificates'), 'applied');
    assert.equal(reloadEffect('tls.min_version'), 'applied');
  });

  it('values that are one YAML scalar are named whole: an address, a rate', () => {
    assert.deepEqual(plan(HEAD + 'limits: { per_ip: { rate: 5/1m } }\nmetrics: { listen: 127.0.0.1:9999 }\n'), {
      changed: ['limits.per_ip.rate', 'metrics'],
      restart: [],
    });
    assert.deepEqual(plan(HEAD + 'metrics: { listen: 127.0.0.1:9999 }\n', HEAD + 'metrics: { listen: 127.0.0.1:9998 }\n').changed, ['metrics.listen']);
  });

  it('lists are compared whole: a listener added or changed is "listeners", applied', () => {
    const a = parseConfig(base);
    const b = parseConfig(base.replace('listen: 127.0.0.1:2525 }', 'listen: 127.0.0.1:2525, tls: none, auth: off, proxy_protocol_timeout: 1s }'));
    assert.deepEqual(planReload(a, b), { changed: ['listeners'], restart: [] });
  });

  it('a key that needs a restart stays named until the process runs with it', () => {
    const started = parseConfig(base + HEAD);
    const text = parseConfig(base + HEAD + 'log: { format: text }\n');
    const textB = parseConfig(base + HEAD.replace('a.test', 'b.test') + 'log: { format: text }\n');
    assert.deepEqual(planReload(text, textB, started), { changed: ['hostname'], restart: ['log.format'] });
    assert.deepEqual(planReload(textB, started, started), { changed: ['hostname', 'log.format'], restart: [] });
  });

  it('a key nobody classified counts as needing a restart', () => {
    assert.equal(ruleFor('future.section.key'), null);
    assert.equal(reloadEffect('future.section.key'), 'restart');
    assert.deepEqual(changedKeys({ a: 1, screen: { x: 1 } }, { a: 1, screen: { x: 2 } }), ['screen.x']);
    assert.equal(reloadEffect('tls.nonexistent.key'), 'restart', 'the tls rule is for the section only');
    assert.equal(reloadEffect('tls.acme.email'), 'applied', 'the ACME client restarts on a change');
  });

  it('every key of conf/examples/reference.yaml has a rule (add one in RELOAD_RULES for a new top-level key)', () => {
    const reference = parse(readFileSync(join(ROOT, 'conf/examples/reference.yaml'), 'utf8')) as unknown;
    const paths = leafPaths(reference);
    assert.ok(paths.length > 50, `only ${paths.length} keys read`);
    const missing = paths.filter((p) => ruleFor(p) === null);
    assert.deepEqual(missing, []);
  });
});
