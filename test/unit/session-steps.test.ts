// A session's bounded asynchronous steps (session/steps.ts) without sockets: a real reply
// queue and logger, the session around them reduced to what the steps call.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/observe/logger.js';
import type { CloseReason } from '../../src/observe/records.js';
import type { Decision, Verdict } from '../../src/session/decision.js';
import { ReplyQueue } from '../../src/session/reply-queue.js';
import { SessionSteps } from '../../src/session/steps.js';

const FACTS = { id: 'c1', listener: 'mx', client: { address: '127.0.0.2', port: 40000 }, helo: null, tls: null, auth: null, from: null };

function session(commandTimeoutMs = 1000) {
  const written: string[] = [];
  const logged: string[] = [];
  const events: string[] = [];
  const queue = new ReplyQueue({ write: (chunks) => written.push(...chunks.map(String)) });
  const log = createLogger({ level: 'info', format: 'json' }, { write: (s: string) => void logged.push(s) });
  const steps = new SessionSteps({
    queue,
    input: { wait: () => events.push('wait'), resume: () => events.push('resume') },
    hostname: 'mx.test',
    commandTimeoutMs: () => commandTimeoutMs,
    log: () => log,
    closeWith: (reason: CloseReason, reply: string) => events.push(`closeWith ${reason} ${reply.trim()}`),
    closeNow: (reason: CloseReason, reply: string) => events.push(`closeNow ${reason} ${reply.trim()}`),
  });
  return { steps, queue, written, logged, events };
}

function decision(verdict: Promise<Verdict>, deadlineMs = 1000): Decision {
  return {
    name: 'screen',
    deadlineMs,
    onTimeout: { kind: 'reply', reply: '451 4.7.1 timed out\r\n' },
    onError: { kind: 'reject', reply: '421 4.3.0 failed\r\n', reason: 'error' },
    decide: () => verdict,
  };
}

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('SessionSteps', () => {
  it('hold: input waits and a reply is owed until the step settles; then it answers', async () => {
    const s = session();
    let answer: (v: string) => void = () => undefined;
    s.steps.hold(new Promise<string>((r) => (answer = r)), (v) => s.queue.reply(`250 ${v}\r\n`));
    assert.equal(s.queue.owed, 1, 'the command\'s place is kept');
    assert.deepEqual(s.events, ['wait']);
    answer('done');
    await tick();
    assert.deepEqual(s.written, ['250 done\r\n']);
    assert.deepEqual(s.events, ['wait', 'resume']);
  });

  it('hold: a failed step is answered 451 4.3.0 and logged', async () => {
    const s = session();
    s.steps.hold(Promise.reject(new Error('verifier down')), () => assert.fail('not for a failure'));
    await tick();
    assert.deepEqual(s.written, ['451 4.3.0 mx.test Temporary failure, try again later\r\n']);
    assert.match(s.logged.join(''), /verifier down/);
  });

  it('hold: a step that never settles is answered 451 at the command timeout', async () => {
    const s = session(20);
    s.steps.hold(new Promise<never>(() => undefined), () => assert.fail('never settles'));
    await tick(60);
    assert.deepEqual(s.written, ['451 4.3.0 mx.test Temporary failure, try again later\r\n']);
    assert.deepEqual(s.events, ['wait', 'resume']);
  });

  it('decide: pass goes on, reply answers and goes on, reject and drop end the session', async () => {
    const cases: [Verdict, string[], string[]][] = [
      [{ kind: 'pass' }, ['wait', 'pass', 'resume'], []],
      [{ kind: 'reply', reply: '550 5.7.1 no\r\n' }, ['wait', 'refused', 'resume'], ['550 5.7.1 no\r\n']],
      [{ kind: 'reject', reply: '554 5.7.1 go\r\n', reason: 'error' }, ['wait', 'refused', 'closeWith error 554 5.7.1 go', 'resume'], []],
      [{ kind: 'drop', reply: '521 5.7.1 bye\r\n', reason: 'error' }, ['wait', 'refused', 'closeNow error 521 5.7.1 bye', 'resume'], []],
    ];
    for (const [v, events, written] of cases) {
      const s = session();
      s.steps.decide(decision(Promise.resolve(v)), FACTS, () => s.events.push('pass'), () => s.events.push('refused'));
      await tick();
      assert.deepEqual(s.events, events, v.kind);
      assert.deepEqual(s.written, written, v.kind);
    }
  });

  it('decide: a timeout or a failure applies the decision\'s fallback', async () => {
    const t = session();
    t.steps.decide(decision(new Promise<never>(() => undefined), 20), FACTS, () => assert.fail('no pass'));
    await tick(60);
    assert.deepEqual(t.written, ['451 4.7.1 timed out\r\n']);
    assert.match(t.logged.join(''), /did not decide/);
    const f = session();
    f.steps.decide(decision(Promise.reject(new Error('dns'))), FACTS, () => assert.fail('no pass'));
    await tick();
    assert.ok(f.events.includes('closeWith error 421 4.3.0 failed'));
  });

  it('abort: a running step never answers', async () => {
    const s = session(20);
    s.steps.hold(new Promise<never>(() => undefined), () => assert.fail('aborted'));
    s.steps.abort();
    await tick(60);
    assert.deepEqual(s.written, []);
    assert.deepEqual(s.events, ['wait']);
  });
});
