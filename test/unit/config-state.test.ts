// The second-round keys of the server room: state.redis and run_as.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/index.js';

const MINIMAL = `listeners: [{ name: smtp, listen: 127.0.0.1:2525 }]
backends: { servers: [{ address: 127.0.0.1:2526 }] }
`;

function problems(extra: string): string[] {
  try {
    parseConfig(MINIMAL + extra, 'test.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.problems.map((p) => `${p.path}: ${p.message}`);
  }
  return assert.fail('expected the config to be rejected');
}

describe('config state.redis', () => {
  it('is off (per-host state) when absent, empty or null', () => {
    for (const extra of ['', 'state:\n', 'state: {}\n', 'state: { redis: null }\n']) {
      assert.deepEqual(parseConfig(MINIMAL + extra).state, { redis: null }, extra);
    }
  });

  it('takes a redis, rediss or unix URL; prefix defaults to "postern:"', () => {
    assert.deepEqual(parseConfig(`${MINIMAL}state: { redis: { url: "redis://10.0.0.5:6379" } }\n`).state.redis, {
      url: 'redis://10.0.0.5:6379',
      prefix: 'postern:',
    });
    assert.deepEqual(parseConfig(`${MINIMAL}state: { redis: { url: "rediss://:secret@redis.example:6380/2", prefix: "mx1:" } }\n`).state.redis, {
      url: 'rediss://:secret@redis.example:6380/2',
      prefix: 'mx1:',
    });
    assert.equal(parseConfig(`${MINIMAL}state: { redis: { url: "unix:///run/redis/redis.sock" } }\n`).state.redis?.url, 'unix:///run/redis/redis.sock');
  });

  it('names the YAML path of a bad URL, a missing URL, a bad prefix or an unknown key', () => {
    assert.deepEqual(problems('state: { redis: { url: "http://x:1" } }\n'), ['state.redis.url: expected a redis://, rediss:// or unix:// URL, got "http://x:1"']);
    assert.match(problems('state: { redis: {} }\n')[0]!, /^state\.redis\.url: required key is missing/);
    assert.match(problems('state: { redis: { url: "redis://h:1", prefix: "a b" } }\n')[0]!, /^state\.redis\.prefix: /);
    assert.match(problems('state: { redis: { url: "redis://h:1", db: 2 } }\n')[0]!, /^state\.redis/);
  });
});

describe('config run_as', () => {
  it('is null when absent; group defaults to null (the user\'s own)', () => {
    assert.equal(parseConfig(MINIMAL).run_as, null);
    assert.deepEqual(parseConfig(`${MINIMAL}run_as: { user: postern }\n`).run_as, { user: 'postern', group: null });
    assert.deepEqual(parseConfig(`${MINIMAL}run_as: { user: postern, group: mail }\n`).run_as, { user: 'postern', group: 'mail' });
    assert.deepEqual(parseConfig(`${MINIMAL}run_as: { user: 998, group: 997 }\n`).run_as, { user: '998', group: '997' });
  });

  it('refuses root, a missing user and names that are no account names', () => {
    assert.deepEqual(problems('run_as: { user: root }\n'), ['run_as.user: user root would drop nothing']);
    assert.match(problems('run_as: {}\n')[0]!, /^run_as\.user: required key is missing/);
    assert.match(problems('run_as: { user: "a b" }\n')[0]!, /^run_as\.user: expected a user name/);
    assert.match(problems('run_as: { user: postern, group: 0 }\n')[0]!, /^run_as\.group: /);
  });
});
