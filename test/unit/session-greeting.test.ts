// The greeting (session/greeting.ts) without sockets: a real config, lifecycle, reply queue
// and steps; the session around them reduced to what the greeting calls.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observe/logger.js';
import type { Decision, Verdict } from '../../src/session/decision.js';
import { Greeting } from '../../src/session/greeting.js';
import { Lifecycle } from '../../src/session/lifecycle.js';
import { ReplyQueue } from '../../src/session/reply-queue.js';
import { SessionSteps } from '../../src/session/steps.js';

const FACTS = { id: 'c1', listener: 'smtp', client: { address: '127.0.0.2', port: 40000 }, helo: null, tls: null, auth: null, from: null };

function greeting(extra = '', pregreeted = false) {
  const cfg = parseConfig(`hostname: mx.test
listeners: [{ name: smtp, listen: 127.0.0.1:2525 }]
backends: { servers: [{ address: 127.0.0.1:2526 }] }
${extra}`);
  const out: string[] = [];
  const events: string[] = [];
  const life = new Lifecycle();
  const queue = new ReplyQueue({ write: (chunks) => out.push(...chunks.map(String)) });
  const input = { wait: () => events.push('wait'), resume: () => events.push('resume') };
  const closeWith = (reason: string, reply: string) => {
    events.push(`close ${reason}`);
    out.push(reply);
  };
  const steps = new SessionSteps({
    queue,
    input,
    hostname: cfg.hostname,
    commandTimeoutMs: () => 1000,
    log: () => createLogger({ level: 'warn', format: 'json' }, { write: () => undefined }),
    closeWith,
    closeNow: closeWith,
  });
  let refusing = false;
  const g = new Greeting({
    cfg,
    life,
    queue,
    input,
    steps,
    writeNow: (line) => out.push(line),
    facts: () => FACTS,
    ending: () => life.ending,
    pregreeted: () => pregreeted,
    closeWith,
    refuseAll: () => (refusing = true),
  });
  return { g, out, events, life, refusing: () => refusing };
}

const screen = (v: Verdict): Decision => ({
  name: 'screen',
  deadlineMs: 1000,
  onTimeout: { kind: 'pass' },
  onError: { kind: 'pass' },
  decide: async () => v,
});

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('Greeting', () => {
  it('without a wait or a decision: 220 at once, phase greeted', () => {
    const t = greeting();
    t.g.start(null);
    assert.deepEqual(t.out, ['220 mx.test ESMTP Postern\r\n']);
    assert.equal(t.life.phase, 'greeted');
    assert.equal(t.g.sent, true);
  });

  it('greet wait: 220- first, the 220 when the wait is over; input waits meanwhile', async () => {
    const t = greeting('smtp: { pregreet: { wait: 30ms } }\n');
    t.g.start(null);
    assert.equal(t.life.phase, 'screening');
    assert.equal(t.g.sent, false);
    assert.deepEqual(t.out, ['220-mx.test ESMTP Postern\r\n']);
    await tick(60);
    assert.deepEqual(t.out, ['220-mx.test ESMTP Postern\r\n', '220 mx.test ESMTP Postern\r\n']);
    assert.equal(t.life.phase, 'greeted');
    assert.deepEqual(t.events, ['wait', 'resume']);
  });

  it('a client that talked during the wait, with action reject: 554 instead of the 220', async () => {
    const t = greeting('smtp: { pregreet: { wait: 10ms, action: reject } }\n', true);
    t.g.start(null);
    await tick(40);
    assert.equal(t.out.at(-1), '554 5.5.0 mx.test Protocol error: talked before the greeting\r\n');
    assert.ok(t.events.includes('close error'));
  });

  it('a screening reply replaces the 220, and the session refuses all but QUIT', async () => {
    const t = greeting();
    t.g.start(screen({ kind: 'reply', reply: '554 5.7.1 not here\r\n' }));
    await tick();
    assert.deepEqual(t.out, ['554 5.7.1 not here\r\n']);
    assert.equal(t.refusing(), true);
    assert.equal(t.life.phase, 'greeted');
  });

  it('a screening drop ends the session without waiting out the greet wait', async () => {
    const t = greeting('smtp: { pregreet: { wait: 5s } }\n');
    t.g.start(screen({ kind: 'drop', reply: '521 5.7.1 bye\r\n', reason: 'error' }));
    await tick();
    assert.deepEqual(t.out, ['220-mx.test ESMTP Postern\r\n', '521 5.7.1 bye\r\n']);
    t.g.stop();
  });
});
